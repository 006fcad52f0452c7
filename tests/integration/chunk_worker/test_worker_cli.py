"""`python -m chunk_worker run` end to end: real HTTP fixture, real Redis, real Azurite, real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import redis
from azure.storage.blob import BlobServiceClient

from chunk_worker.contract import ChunkField, Keys
from tests.fixtures.worker_cli import ALLOW, manifest, run_worker, write_spec

def test_good_images_are_stored_content_addressed_with_a_manifest(image_server, tmp_path):
    items = [{"url": image_server.url(f"/img/{n}.{ext}"), "label": "cat"}
             for n, ext in zip(range(1, 9), ["jpg", "png", "webp", "gif"] * 2)]
    out = tmp_path / "out"
    result = run_worker("--spec", str(write_spec(tmp_path, items)), "--output", out.as_uri(), *ALLOW)
    assert result.returncode == 0, result.stderr
    lines = manifest(out)
    assert [line["url"] for line in lines] == [item["url"] for item in items]
    assert {line["status"] for line in lines} == {"ok"}
    for line in lines:
        stored = out / line["blob"]
        assert stored.name.startswith(line["sha256"])
        assert stored.stat().st_size == line["bytes"]
    assert json.loads(result.stdout)["counts"]["uploaded"] == 8


@pytest.mark.parametrize(("path", "reason"), [
    ("/bomb.png", "too_many_pixels"),
    ("/truncated.jpg", "truncated"),
    ("/small.jpg", "too_small"),
    ("/page.html", "not_an_image"),
    ("/huge", "too_large"),
    ("/404", "http_404"),
    ("/redirect-imds", "blocked_address"),
    ("/redirect-loopback2", "blocked_address"),
    ("/optout.jpg", "opt_out"),
    ("/drip", "timeout"),
])
def test_each_refused_item_names_its_reason_in_the_manifest(image_server, tmp_path, path, reason):
    items = [{"url": image_server.url(path)}, {"url": image_server.url("/img/1.jpg")}]
    out = tmp_path / "out"
    result = run_worker("--spec", str(write_spec(tmp_path, items)), "--output", out.as_uri(), *ALLOW,
                        env={"PIXCRAWLER_ITEM_DEADLINE_SECONDS": "3"})
    assert result.returncode == 0, result.stderr
    refused, good = manifest(out)
    assert (refused["reason"], good["status"]) == (reason, "ok")


def test_duplicates_and_near_duplicates_are_recorded_not_stored(image_server, tmp_path):
    items = [{"url": image_server.url("/img/5.jpg")}, {"url": image_server.url("/dup/5.jpg")},
             {"url": image_server.url("/near/5.jpg")}]
    out = tmp_path / "out"
    assert run_worker("--spec", str(write_spec(tmp_path, items)), "--output", out.as_uri(), *ALLOW).returncode == 0
    assert [line["status"] for line in manifest(out)] == ["ok", "duplicate", "duplicate"]  # the first copy wins
    assert len(list((out / "images").rglob("*.jpg"))) == 1


def test_rerunning_a_chunk_writes_no_image_twice(image_server, tmp_path):
    items = [{"url": image_server.url(f"/img/{n}.png")} for n in range(20, 26)]
    out = tmp_path / "out"
    spec = str(write_spec(tmp_path, items))
    assert run_worker("--spec", spec, "--output", out.as_uri(), *ALLOW).returncode == 0
    before = {path: path.stat().st_ino for path in (out / "images").rglob("*.png")}
    second = run_worker("--spec", spec, "--output", out.as_uri(), *ALLOW)
    assert second.returncode == 0
    after = {path: path.stat().st_ino for path in (out / "images").rglob("*.png")}
    assert after == before
    assert {line["status"] for line in manifest(out)} == {"ok"}


def test_malformed_spec_exits_2_naming_the_field(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"job": "default/x", "chunk": -1, "items": [{"label": "cat"}]}))
    result = run_worker("--spec", str(path), "--output", (tmp_path / "out").as_uri())
    assert result.returncode == 2
    assert "chunk" in result.stderr and "items.0.url" in result.stderr


def test_unreachable_output_exits_1_and_leaves_nothing_behind(image_server, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the output directory should be")
    spec = write_spec(tmp_path, [{"url": image_server.url("/img/1.jpg")}])
    result = run_worker("--spec", str(spec), "--output", (blocker / "out").as_uri(), *ALLOW)
    assert result.returncode == 1, result.stderr
    assert blocker.read_text().startswith("a file")


def test_sigterm_stops_with_143_and_removes_the_temp_dir(image_server, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    items = [{"url": image_server.url("/drip")} for _ in range(4)]
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "chunk_worker", "run", "--spec", str(write_spec(tmp_path, items)),
         "--output", out.as_uri(), *ALLOW, "--progress", "none"],
        env={**os.environ, "PIXCRAWLER_TMP_DIR": str(scratch), "PIXCRAWLER_ITEM_DEADLINE_SECONDS": "60"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not any(scratch.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(scratch.iterdir()), "the worker never made its temp dir"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 143
    assert list(scratch.iterdir()) == []
    assert not (out / "manifests").exists()


def test_in_cluster_mode_reads_the_chunk_from_redis_and_reports_progress(image_server, redis_url, redis_client,
                                                                         tmp_path):
    keys = Keys("pc:")
    spec = json.loads(write_spec(tmp_path, [{"url": image_server.url(f"/img/{n}.jpg")} for n in range(30, 35)]
                                 + [{"url": image_server.url("/404")}],
                                 job_uid="uid-1", output=(tmp_path / "out").as_uri()).read_text())
    redis_client.hset(keys.chunk("uid-1-00000"), mapping={ChunkField.SPEC: json.dumps(spec), "state": "admitted"})
    result = run_worker("--chunk-id", "uid-1-00000", "--redis-url", redis_url, *ALLOW)
    assert result.returncode == 0, result.stderr
    record = redis_client.hgetall(keys.chunk("uid-1-00000"))
    assert (record["state"], record["outcome"]) == ("running", "done")
    assert (record["n_requested"], record["n_uploaded"], record["n_failed"]) == ("6", "5", "1")


def test_near_duplicates_across_two_chunks_of_one_job_are_caught_through_redis(image_server, redis_url,
                                                                               redis_client, tmp_path):
    keys = Keys("pc:")
    out = tmp_path / "out"
    for index, path in enumerate(["/img/40.jpg", "/near/40.jpg"]):
        spec = {"job": "default/j", "job_uid": "uid-2", "chunk": index, "items": [{"url": image_server.url(path)}],
                "output": out.as_uri(), "validation": {"minWidth": 32, "minHeight": 32, "dedup": "near"}}
        redis_client.hset(keys.chunk(f"uid-2-{index:05d}"), ChunkField.SPEC, json.dumps(spec))
        assert run_worker("--chunk-id", f"uid-2-{index:05d}", "--redis-url", redis_url, *ALLOW).returncode == 0
    assert manifest(out, 0)[0]["status"] == "ok"
    assert (manifest(out, 1)[0]["status"], manifest(out, 1)[0]["reason"]) == ("duplicate", "near_duplicate")


def test_missing_chunk_in_redis_is_permanent(redis_url, redis_client):
    result = run_worker("--chunk-id", "nope-00000", "--redis-url", redis_url)
    assert result.returncode == 2
    assert "not found" in result.stderr


def test_unreachable_redis_is_retryable():
    result = run_worker("--chunk-id", "x-00000", "--redis-url", "redis://127.0.0.1:1/0")
    assert result.returncode == 1


def test_azure_output_stores_blobs_with_their_content_type(image_server, azurite, azure_container, tmp_path):
    items = [{"url": image_server.url("/img/50.png")}, {"url": image_server.url("/img/51.webp")}]
    result = run_worker("--spec", str(write_spec(tmp_path, items)), "--output", f"azure://{azure_container}/ds/a",
                        *ALLOW, env={"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string})
    assert result.returncode == 0, result.stderr
    container = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(
        azure_container)
    blobs = {blob.name: blob.content_settings.content_type for blob in container.list_blobs()}
    images = {name: kind for name, kind in blobs.items() if name.startswith("ds/a/images/")}
    assert sorted(images.values()) == ["image/png", "image/webp"]
    assert "ds/a/manifests/chunk-00000.jsonl" in blobs


def test_redis_password_comes_from_the_environment_not_the_url(image_server, tmp_path):
    from localservices import RedisServer

    with RedisServer(tmp_path / "redis", password="s3cret/+key") as server:
        client = redis.Redis.from_url(server.url, password="s3cret/+key", decode_responses=True)
        spec = json.loads(write_spec(tmp_path, [{"url": image_server.url("/img/60.jpg")}], job_uid="uid-3",
                                     output=(tmp_path / "out").as_uri()).read_text())
        client.hset(Keys("pc:").chunk("uid-3-00000"), ChunkField.SPEC, json.dumps(spec))
        denied = run_worker("--chunk-id", "uid-3-00000", "--redis-url", server.url, *ALLOW)
        allowed = run_worker("--chunk-id", "uid-3-00000", "--redis-url", server.url, *ALLOW,
                             env={"PIXCRAWLER_REDIS_PASSWORD": "s3cret/+key"})
        outcome = client.hget(Keys("pc:").chunk("uid-3-00000"), "outcome")
    assert (denied.returncode, allowed.returncode, outcome) == (1, 0, "done")


def test_opt_outs_are_recorded_per_item_and_counted_by_reason(site_server, redis_url, redis_client, tmp_path):
    server = site_server({
        "/robots.txt": b"User-agent: *\nDisallow: /img/\nAllow: /img/2.jpg\nAllow: /img/3.jpg\n",
        "/.well-known/tdmrep.json": json.dumps([{"location": "/img/3.jpg", "tdm-reservation": 1}]).encode(),
    })
    keys = Keys("pc:")
    items = [{"url": server.url(path)} for path in ("/img/1.jpg", "/img/2.jpg", "/img/3.jpg", "/optout.jpg",
                                                    "/tdm.jpg?reservation=1")]
    spec = json.loads(write_spec(tmp_path, items, job_uid="uid-9", output=(tmp_path / "out").as_uri()).read_text())
    redis_client.hset(keys.chunk("uid-9-00000"), mapping={ChunkField.SPEC: json.dumps(spec), "state": "admitted"})
    result = run_worker("--chunk-id", "uid-9-00000", "--redis-url", redis_url, *ALLOW)
    assert result.returncode == 0, result.stderr
    lines = manifest(tmp_path / "out")
    assert [(line["status"], line.get("reason")) for line in lines] == [
        ("rejected", "robots_txt_disallowed"), ("ok", None), ("rejected", "tdm_reserved"), ("rejected", "opt_out"),
        ("rejected", "tdm_reserved")]
    assert [line.get("opt_out") for line in lines] == [
        {"signal": "robots.txt", "value": "Disallow: /img/", "agent": "pixcrawler"}, None,
        {"signal": "tdmrep.json", "value": "/img/3.jpg: tdm-reservation 1"},
        {"signal": "x-robots-tag", "value": "noai"}, {"signal": "tdm-reservation", "value": "1"}]
    record = redis_client.hgetall(keys.chunk("uid-9-00000"))
    assert (record["r_robots_txt_disallowed"], record["r_tdm_reserved"], record["r_opt_out"]) == ("1", "2", "1")
    assert (record["n_rejected"], record["n_uploaded"]) == ("4", "1")


def test_a_job_that_does_not_respect_robots_txt_fetches_what_it_disallows(site_server, tmp_path):
    server = site_server({"/robots.txt": b"User-agent: *\nDisallow: /\n"})
    out = tmp_path / "out"
    spec = write_spec(tmp_path, [{"url": server.url("/img/1.jpg")}], respect={"robotsTxt": False})
    result = run_worker("--spec", str(spec), "--output", out.as_uri(), *ALLOW)
    assert result.returncode == 0, result.stderr
    assert manifest(out)[0]["status"] == "ok"
    assert server.hits("/robots.txt") == 0
