"""A provider endpoint is user-given: whatever it answers, a search ends in an error the runner maps to
an exit code (SourceUnavailable, retryable) or in fewer items, never in another exception."""

from __future__ import annotations

import pytest
from providerserver import Reply

from chunk_worker.errors import ChunkError
from chunk_worker.providers.registry import PROVIDERS

PATHS = {"openverse": "/v1/images/", "wikimedia": "/w/api.php", "inaturalist": "/v1/observations",
         "met": "/public/collection/v1/search", "smithsonian": "/openaccess/api/v1.0/search",
         "flickr": "/services/rest/"}
KEYS = {"search_flickr_api_key": "k", "search_smithsonian_api_key": "k"}

ANSWERS = {
    "deeply nested": Reply(raw=b"[" * 200_000 + b"]" * 200_000),
    "not JSON": Reply(raw=b"<html>maintenance</html>"),
    "a list": Reply(["results", "photos"]),
    "a string": Reply("results"),
    "wrong types": Reply({"results": {"url": 1}, "query": {"pages": "x"}, "photos": {"photo": "x", "pages": "many"},
                          "objectIDs": "1,2", "response": {"rows": 5}, "continue": 1, "page_count": "x"}),
    "lists of junk": Reply({"results": [None, 1, "x", {"url": ["x"]}, {"photos": [None, {"url": 5}]}],
                            "query": {"pages": [None, {"imageinfo": "x"}, {"imageinfo": [None]},
                                                {"imageinfo": [{"url": 5, "extmetadata": {"Artist": "x"}}]}]},
                            "photos": {"photo": [None, {"id": {"x": 1}, "license": [1]}], "pages": 1},
                            "objectIDs": [None, "x"], "response": {"rows": [None, {"content": "x"}], "rowCount": 2},
                            "total_results": "lots", "page_count": 1}),
    "an error status": Reply({"detail": "no"}, 500),
}


@pytest.mark.parametrize("answer", ANSWERS, ids=list(ANSWERS))
@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_any_answer_ends_in_a_chunk_error_or_fewer_items(name, answer, context_for, provider_server, monkeypatch):
    monkeypatch.setattr("chunk_worker.providers.client.TRIES", 1)
    provider_server.route(PATHS[name], lambda request: ANSWERS[answer])
    provider = PROVIDERS[name](context_for(**KEYS), provider_server.base_url)
    try:
        items = list(provider.search("x", 0, 10))
    except ChunkError:
        return
    assert all(item.url.startswith("http") for item in items)
