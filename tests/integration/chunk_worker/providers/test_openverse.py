"""Keyword search through the Openverse provider, against the image server's Openverse look-alike
(results in the API's documented format, its `license` filter, a log of the queries it was sent)."""

from __future__ import annotations

import pytest

from chunk_worker.contract import ChunkSpec
from chunk_worker.errors import SourceUnavailable, SpecError
from chunk_worker.providers.openverse import OpenverseProvider
from chunk_worker.providers.protocol import SearchContext
from chunk_worker.providers.registry import get_provider
from chunk_worker.sources import resolve_items


OPENVERSE_PATH = "/openverse/v1/images/"


def endpoint(server) -> str:
    return server.url("/openverse")


def img(server, n: int) -> str:
    return server.url(f"/img/{n}.jpg")


def test_search_pages_across_page_boundaries(fetcher, image_server):
    before = image_server.hits("/openverse/v1/images/")
    provider = get_provider("openverse", SearchContext.start(fetcher), endpoint(image_server))
    urls = [item.url for item in provider.search("cats", start=15, count=30)]
    assert urls == [img(image_server, n) for n in range(15, 45)]
    assert image_server.hits("/openverse/v1/images/") - before == 3  # pages 1-3 of 20 results each, no more


def test_search_stops_when_results_run_out(fetcher, image_server):
    provider = get_provider("openverse", SearchContext.start(fetcher), endpoint(image_server))
    urls = [item.url for item in provider.search("cats", start=190, count=50)]  # the server has 200 results
    assert urls == [img(image_server, n) for n in range(190, 200)]


def test_search_slice_past_the_last_page_is_empty(fetcher, image_server):
    provider = get_provider("openverse", SearchContext.start(fetcher), endpoint(image_server))
    assert list(provider.search("cats", start=400, count=20)) == []


def test_search_source_in_a_chunk_gets_the_source_label(fetcher, image_server):
    spec = ChunkSpec.model_validate({
        "job": "default/test", "chunk": 0,
        "sources": [{"label": "bird", "search": {"provider": "openverse", "query": "bird", "limit": 25,
                                                  "endpoint": endpoint(image_server)}, "start": 20, "count": 20}],
    })
    items = list(resolve_items(spec, fetcher))
    assert [item.url for item in items] == [img(image_server, n) for n in range(20, 25)]  # capped by limit
    assert {item.label for item in items} == {"bird"}


def search_spec(server, query: str, start: int, count: int, licenses: list[str] | None = None) -> ChunkSpec:
    return ChunkSpec.model_validate({
        "job": "default/test", "chunk": 0, "validation": {"licenses": licenses},
        "sources": [{"label": "bird", "search": {"query": query, "endpoint": endpoint(server)},
                     "start": start, "count": count}],
    })


def sent(server, query: str) -> list[dict[str, str]]:
    return [params for params in server.queries(OPENVERSE_PATH) if params.get("q") == query]


def test_search_items_carry_the_results_licence_and_credit(fetcher, image_server):
    items = list(resolve_items(search_spec(image_server, "credit", 0, 12), fetcher))
    results = [image_server.openverse_result("credit", n) for n in range(12)]
    assert [(item.license, item.license_url, item.creator, item.attribution, item.landing_url, item.caption)
            for item in items] == [
        (r["license"], r["license_url"], r["creator"], r["attribution"], r["foreign_landing_url"], r["title"])
        for r in results]
    assert {item.license for item in items} >= {"cc0", "pdm", "by", "by-sa"}  # the page mixes licences


def test_allow_list_is_sent_as_the_license_parameter(fetcher, image_server):
    list(resolve_items(search_spec(image_server, "filtered", 0, 5, ["CC0", "cc-by-sa", "by"]), fetcher))
    assert [params.get("license") for params in sent(image_server, "filtered")] == ["by,by-sa,cc0"]


def test_without_an_allow_list_no_license_parameter_is_sent(fetcher, image_server):
    list(resolve_items(search_spec(image_server, "unfiltered", 0, 5), fetcher))
    assert [params.get("license") for params in sent(image_server, "unfiltered")] == [None]


def test_filtered_slices_tile_the_filtered_results_across_pages(fetcher, image_server):
    allowed = ["by", "pdm"]
    matches = image_server.openverse_matches(frozenset(allowed))
    first = list(resolve_items(search_spec(image_server, "tiles", 0, 25, allowed), fetcher))
    second = list(resolve_items(search_spec(image_server, "tiles", 25, 25, allowed), fetcher))
    assert [item.url for item in first + second] == [img(image_server, n) for n in matches[:50]]
    assert {item.license for item in first + second} == {"by", "pdm"}
    assert [int(params["page"]) for params in sent(image_server, "tiles")] == [1, 2, 2, 3]


def test_filtered_search_stops_at_the_last_filtered_page(fetcher, image_server):
    matches = image_server.openverse_matches(frozenset({"sampling+"}))
    items = list(resolve_items(search_spec(image_server, "retired", 0, 100, ["sampling+"]), fetcher))
    assert [item.url for item in items] == [img(image_server, n) for n in matches]
    assert len(matches) < 100


def test_unknown_provider_is_a_spec_error_naming_the_known_ones(fetcher):
    with pytest.raises(SpecError, match="openverse"):
        get_provider("altavista", SearchContext.start(fetcher))


def test_provider_failure_is_retryable(fetcher, image_server):
    provider = OpenverseProvider(SearchContext.start(fetcher), image_server.url("/nowhere"))
    with pytest.raises(SourceUnavailable):
        list(provider.search("cats", 0, 5))


def test_public_endpoint_is_the_default(fetcher):
    assert OpenverseProvider(SearchContext.start(fetcher)).endpoint == "https://api.openverse.org"
