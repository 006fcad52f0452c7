"""Flickr's flickr.photos.search through the stand-in answering its documented JSON (nojsoncallback=1)."""

from __future__ import annotations

import pytest

from chunk_worker.errors import SpecError
from chunk_worker.providers.flickr import FlickrProvider
from tests.integration.chunk_worker.providers.conftest import fixture, small_pages

PATH = "/services/rest/"
KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def flickr(provider_server):
    provider_server.route(PATH, lambda request: fixture(
        "flickr", {"1": "search-page1", "2": "search-page2"}.get(request.params["page"], "empty")))
    return provider_server


def provider(context, server):
    return small_pages(FlickrProvider, context, server)


def test_photos_page_through_with_licence_owner_and_size(context_for, flickr):
    items = list(provider(context_for(search_flickr_api_key=KEY), flickr).search("sunflower", 0, 10))
    assert [(item.url, item.license, item.license_url, item.creator) for item in items] == [
        ("https://live.staticflickr.com/3855/32547078274_dcc9f61d9f_b.jpg", "by",
         "https://creativecommons.org/licenses/by/2.0/", "Jane Photographer"),
        ("https://live.staticflickr.com/660/33007015650_10a9056f37_b.jpg", "cc0",
         "https://creativecommons.org/publicdomain/zero/1.0/", "Jane Photographer"),  # built from server/id/secret
        ("https://live.staticflickr.com/3895/33262233881_5a583dd624_c.jpg", None, None, "Someone")]  # 0: ARR
    assert items[0].landing_url == "https://www.flickr.com/photos/148578535@N03/32547078274"
    first = flickr.requests(PATH)[0].params
    assert (first["method"], first["text"], first["format"], first["nojsoncallback"], first["api_key"]) == (
        "flickr.photos.search", "sunflower", "json", "1", KEY)
    assert "license" in first["extras"] and "owner_name" in first["extras"]
    assert len(flickr.requests(PATH)) == 2  # pages: 2


def test_allow_list_is_pushed_down_as_flickr_licence_ids(context_for, flickr):
    list(provider(context_for(search_flickr_api_key=KEY), flickr).search("x", 0, 1, frozenset({"cc0", "by"})))
    assert flickr.requests(PATH)[0].params["license"] == "4,9,11"


def test_an_invalid_key_is_permanent_and_names_the_setting(context_for, provider_server):
    provider_server.route(PATH, lambda request: fixture("flickr", "invalid-key"))
    with pytest.raises(SpecError, match="PIXCRAWLER_SEARCH_FLICKR_API_KEY"):
        list(provider(context_for(search_flickr_api_key=KEY), provider_server).search("x", 0, 1))


def test_without_a_key_nothing_is_sent(context_for, flickr):
    with pytest.raises(SpecError, match="PIXCRAWLER_SEARCH_FLICKR_API_KEY.*flickr-api-key"):
        provider(context_for(), flickr)
    assert flickr.requests() == []


def test_no_results_is_an_empty_stream(context_for, provider_server):
    provider_server.route(PATH, lambda request: fixture("flickr", "empty"))
    assert list(provider(context_for(search_flickr_api_key=KEY), provider_server).search("x", 0, 5)) == []
