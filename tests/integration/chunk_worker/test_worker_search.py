"""A chunk with a search source, run by `python -m chunk_worker run` in cluster mode: the provider
stand-in answers Commons' documented pages (images from the image server), pacing goes through the
real Redis, and every item's licence and credit reach the manifest; the allow-list Commons cannot
apply is applied by the worker before any byte is fetched."""

from __future__ import annotations

import json

import providerserver
from providerserver import Reply

from chunk_worker.contract import ChunkField, Keys
from tests.fixtures.worker_cli import ALLOW, manifest, run_worker


def test_search_items_reach_the_manifest_with_licence_and_credit(provider_server, image_server, redis_url,
                                                                 redis_client, tmp_path):
    page = providerserver.point_images_at(providerserver.load("wikimedia", "search-page1"),
                                          lambda n: image_server.url(f"/img/{60 + n}.jpg"))
    provider_server.route("/w/api.php", lambda request: Reply(page) if request.params["gsroffset"] == "0"
                          else Reply(providerserver.load("wikimedia", "empty")))
    keys = Keys("pc:")
    out = tmp_path / "out"
    spec = {"job": "default/flowers", "job_uid": "uid-s", "chunk": 0, "output": out.as_uri(),
            "validation": {"minWidth": 32, "minHeight": 32, "licenses": ["by-sa", "cc0"]},
            "sources": [{"label": "sunflower", "start": 0, "count": 5,
                         "search": {"provider": "wikimedia", "query": "sunflower",
                                    "endpoint": provider_server.base_url}}]}
    redis_client.hset(keys.chunk("uid-s-00000"), ChunkField.SPEC, json.dumps(spec))
    before = {n: image_server.hits(f"/img/{n}.jpg") for n in (60, 61)}
    result = run_worker("--chunk-id", "uid-s-00000", "--redis-url", redis_url, *ALLOW,
                        env={"PIXCRAWLER_SEARCH_RATES": "wikimedia=50"})
    assert result.returncode == 0, result.stderr
    lines = {line["license"]: line for line in manifest(out)}
    assert lines["by-sa"]["status"] == "ok"
    assert (lines["by-sa"]["creator"], lines["by-sa"]["license_url"], lines["by-sa"]["landing_url"]) == (
        "Fir0002", "https://creativecommons.org/licenses/by-sa/3.0",
        "https://commons.wikimedia.org/wiki/File:Sunflower_sky_backdrop.jpg")
    assert "via Wikimedia Commons" in lines["by-sa"]["attribution"]
    assert (lines["pdm"]["status"], lines["pdm"]["reason"]) == ("rejected", "license_not_allowed")
    refused = int(lines["pdm"]["url"].removeprefix(image_server.url("/img/")).removesuffix(".jpg"))
    (kept,) = set(before) - {refused}
    fetched = {n: image_server.hits(f"/img/{n}.jpg") - before[n] for n in before}
    assert fetched == {refused: 0, kept: 1}  # the refused image was never fetched
    assert redis_client.exists(keys.pace(f"wikimedia:{provider_server.base_url}"))  # the cluster's bucket
