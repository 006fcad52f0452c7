"""The Met Collection API through the stand-in: a search of object ids, then one object per result."""

from __future__ import annotations

import time

import pytest
from providerserver import Reply

from chunk_worker.errors import SourceUnavailable
from chunk_worker.providers.met import MetProvider
from tests.integration.chunk_worker.providers.conftest import fixture

SEARCH = "/public/collection/v1/search"
OBJECTS = "/public/collection/v1/objects/"


@pytest.fixture
def met(provider_server):
    provider_server.route(SEARCH, lambda request: fixture("met", "search"))
    provider_server.route(OBJECTS + "45734", lambda request: fixture("met", "object-45734"))
    provider_server.route(OBJECTS + "437133", lambda request: fixture("met", "object-437133"))
    provider_server.route(OBJECTS + "11111", lambda request: Reply(fixture("met", "not-found").document, 404))
    return provider_server


def test_only_public_domain_objects_become_cc0_items(context_for, met):
    items = list(MetProvider(context_for(), met.base_url).search("quail", 0, 10))
    assert [(item.url, item.license, item.license_url, item.creator, item.caption, item.landing_url)
            for item in items] == [(
        "https://images.metmuseum.org/CRDImages/as/original/DP251139.jpg", "cc0",
        "https://creativecommons.org/publicdomain/zero/1.0/", "Kiyohara Yukinobu", "Quail and Millet",
        "https://www.metmuseum.org/art/collection/search/45734")]
    assert met.requests(SEARCH)[0].params == {"q": "quail", "hasImages": "true"}
    assert len(met.requests()) == 4  # the search, then every listed object (a withdrawn one is a 404)


def test_a_slice_asks_only_for_its_objects(context_for, met):
    assert list(MetProvider(context_for(), met.base_url).search("quail", 1, 1)) == []
    assert [request.path for request in met.requests()] == [SEARCH, OBJECTS + "437133"]


def test_no_match_is_an_empty_stream(context_for, provider_server):
    provider_server.route(SEARCH, lambda request: fixture("met", "search-empty"))
    assert list(MetProvider(context_for(), provider_server.base_url).search("nothing", 0, 10)) == []


def test_an_allow_list_without_cc0_asks_nothing(context_for, met):
    assert list(MetProvider(context_for(), met.base_url).search("quail", 0, 10, frozenset({"by"}))) == []
    assert met.requests() == []


def test_a_page_slower_than_an_images_deadline_is_waited_for_within_the_search_deadline(context_for, met):
    def slow(request):
        time.sleep(1.5)
        return fixture("met", "search")

    met.route(SEARCH, slow)
    context = context_for(item_deadline_seconds=1.0, list_deadline_seconds=20.0)
    assert len(list(MetProvider(context, met.base_url).search("quail", 0, 1))) == 1


def test_a_search_past_its_deadline_is_retryable(context_for, met):
    def slow(request):
        time.sleep(2.5)
        return fixture("met", "search")

    met.route(SEARCH, slow)
    with pytest.raises(SourceUnavailable, match="timeout"):
        list(MetProvider(context_for(item_deadline_seconds=30.0, list_deadline_seconds=1.0), met.base_url)
             .search("quail", 0, 1))
