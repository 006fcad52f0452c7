"""iNaturalist observation photos through the stand-in answering the API's documented /v1/observations."""

from __future__ import annotations

import pytest

from chunk_worker.providers.inaturalist import INaturalistProvider
from tests.integration.chunk_worker.providers.conftest import fixture, small_pages

PATH = "/v1/observations"


@pytest.fixture
def inat(provider_server):
    provider_server.route(PATH, lambda request: fixture(
        "inaturalist", {"1": "observations-page1", "2": "observations-page2"}.get(request.params["page"], "empty")))
    return provider_server


def provider(context, server):
    return small_pages(INaturalistProvider, context, server)


def test_observations_page_by_id_and_carry_the_photos_licence(context_for, inat):
    items = list(provider(context_for(), inat).search("sunflower", 0, 10))
    assert [item.url for item in items] == [
        "https://inaturalist-open-data.s3.amazonaws.com/photos/4047/large.jpg",
        "https://inaturalist-open-data.s3.amazonaws.com/photos/5001/large.jpeg",
        "https://inaturalist-open-data.s3.amazonaws.com/photos/6001/large.jpg"]
    assert [item.license for item in items] == ["by", None, "cc0"]  # null license_code: all rights reserved
    assert (items[0].creator, items[0].attribution, items[0].caption, items[0].landing_url) == (
        "Ken-ichi Ueda", "(c) Ken-ichi Ueda, some rights reserved (CC BY)", "Common Sunflower",
        "https://www.inaturalist.org/observations/1001")
    assert items[1].creator == "loarie"  # no name: the login
    assert [(r.params["page"], r.params["order_by"], r.params["order"]) for r in inat.requests(PATH)] == [
        ("1", "id", "asc"), ("2", "id", "asc")]  # total_results 3 at 2 a page: no third request


def test_allow_list_is_pushed_down_and_picks_the_allowed_photo(context_for, inat):
    items = list(provider(context_for(), inat).search("sunflower", 0, 2, frozenset({"by", "by-nc"})))
    assert inat.requests(PATH)[0].params["photo_license"] == "cc-by,cc-by-nc"
    assert [(item.url.rsplit("/", 2)[1], item.license) for item in items] == [("4047", "by"), ("5002", "by-nc")]


def test_an_allow_list_inaturalist_cannot_meet_asks_nothing(context_for, inat):
    assert list(provider(context_for(), inat).search("sunflower", 0, 10, frozenset({"pdm"}))) == []
    assert inat.requests(PATH) == []


def test_an_empty_answer_ends_the_stream(context_for, provider_server):
    provider_server.route(PATH, lambda request: fixture("inaturalist", "empty"))
    assert list(provider(context_for(), provider_server).search("nothing", 0, 10)) == []
    assert len(provider_server.requests(PATH)) == 1
