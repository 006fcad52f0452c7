"""Keyword search through the Openverse provider, against the image server's Openverse look-alike."""

from __future__ import annotations

import pytest

from chunk_worker.contract import ChunkSpec
from chunk_worker.errors import SourceUnavailable, SpecError
from chunk_worker.search import OpenverseProvider, get_provider
from chunk_worker.sources import resolve_items


def endpoint(server) -> str:
    return server.url("/openverse")


def img(server, n: int) -> str:
    return server.url(f"/img/{n}.jpg")


def test_search_pages_across_page_boundaries(fetcher, image_server):
    before = image_server.hits("/openverse/v1/images/")
    provider = get_provider("openverse", fetcher, endpoint(image_server))
    urls = list(provider.search("cats", start=15, count=30))
    assert urls == [img(image_server, n) for n in range(15, 45)]
    assert image_server.hits("/openverse/v1/images/") - before == 3  # pages 1-3 of 20 results each, no more


def test_search_stops_when_results_run_out(fetcher, image_server):
    provider = get_provider("openverse", fetcher, endpoint(image_server))
    urls = list(provider.search("cats", start=190, count=50))  # the server has 200 results
    assert urls == [img(image_server, n) for n in range(190, 200)]


def test_search_slice_past_the_last_page_is_empty(fetcher, image_server):
    provider = get_provider("openverse", fetcher, endpoint(image_server))
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


def test_unknown_provider_is_a_spec_error_naming_the_known_ones(fetcher):
    with pytest.raises(SpecError, match="openverse"):
        get_provider("altavista", fetcher)


def test_provider_failure_is_retryable(fetcher, image_server):
    provider = OpenverseProvider(fetcher, image_server.url("/nowhere"))
    with pytest.raises(SourceUnavailable):
        list(provider.search("cats", 0, 5))


def test_public_endpoint_is_the_default():
    assert OpenverseProvider(fetcher=None).endpoint == "https://api.openverse.org"  # type: ignore[arg-type]
