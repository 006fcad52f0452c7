"""`python -m chunk_worker count-lists`, what the operator's list-count Job runs: each list streamed
once from a real HTTP server (and written as pages when the request names an output), the counts (or
why a list cannot be counted) written to the job's hash in a real Redis, where the operator reads them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from chunk_worker.contract import LIST_COUNTS, Keys, ListCounts, list_pages_root, source_pages

KEYS = Keys("lc:")


def count_lists(redis_url: str, lists: dict[int, dict], uid: str = "uid-1") -> subprocess.CompletedProcess:
    env = {**os.environ, "PIXCRAWLER_REDIS_URL": redis_url, "PIXCRAWLER_REDIS_PREFIX": KEYS.prefix,
           "PIXCRAWLER_ALLOW_NETWORKS": "127.0.0.1/32"}
    return subprocess.run([sys.executable, "-m", "chunk_worker", "count-lists", "--job-uid", uid, "--spec-json",
                           json.dumps({"lists": lists}), "--log-format", "text"],
                          capture_output=True, text=True, timeout=120, env=env)


def answer(redis_client, uid: str = "uid-1") -> ListCounts:
    return ListCounts.model_validate_json(redis_client.hget(KEYS.job(uid), LIST_COUNTS))


def test_each_list_is_counted_into_the_jobs_hash(image_server, redis_url, redis_client):
    result = count_lists(redis_url, {0: {"url": image_server.url("/list.txt?n=7")},
                                     2: {"url": image_server.url("/list.csv?n=5"), "format": "csv"}})
    assert result.returncode == 0, result.stderr
    assert answer(redis_client) == ListCounts(counts={0: 7, 2: 5})


def test_a_list_at_a_private_address_is_a_permanent_answer_naming_the_source(redis_url, redis_client):
    result = count_lists(redis_url, {1: {"url": "http://10.0.0.1/list.txt"}})
    assert result.returncode == 0, result.stderr
    got = answer(redis_client)
    assert got.permanent and got.counts == {} and got.error.startswith("spec.sources[1].urlList.url:")


def test_a_list_that_cannot_be_read_now_is_an_answer_a_retry_may_change(image_server, redis_url, redis_client):
    result = count_lists(redis_url, {0: {"url": image_server.url("/500/list.txt")}})
    assert result.returncode == 0, result.stderr
    got = answer(redis_client)
    assert not got.permanent and "spec.sources[0]" in got.error


def test_without_redis_the_job_fails_to_be_retried(image_server):
    result = count_lists("redis://127.0.0.1:1/0", {0: {"url": image_server.url("/list.txt?n=3")}})
    assert result.returncode == 1 and "cannot write the list counts" in result.stderr


def test_with_an_output_each_list_is_also_written_as_pages_before_the_answer(image_server, redis_url, redis_client,
                                                                             tmp_path):
    out = tmp_path / "out"
    request = {"lists": {0: {"url": image_server.url("/list.txt?n=7")}}, "limits": {0: 5}, "output": out.as_uri(),
               "pages": list_pages_root("uid-2"), "pageSize": 2}
    env = {**os.environ, "PIXCRAWLER_REDIS_URL": redis_url, "PIXCRAWLER_REDIS_PREFIX": KEYS.prefix,
           "PIXCRAWLER_ALLOW_NETWORKS": "127.0.0.1/32", "PIXCRAWLER_TMP_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "chunk_worker", "count-lists", "--job-uid", "uid-2", "--spec-json",
                             json.dumps(request), "--log-format", "text"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert answer(redis_client, "uid-2") == ListCounts(counts={0: 5})
    pages = out / source_pages(list_pages_root("uid-2"), 0)
    assert sorted(path.name for path in pages.iterdir()) == ["page-000000.jsonl", "page-000001.jsonl",
                                                              "page-000002.jsonl"]
    assert [len((pages / f"page-00000{p}.jsonl").read_bytes().splitlines()) for p in range(3)] == [2, 2, 1]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]  # no local page left behind
