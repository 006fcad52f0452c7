"""A DatasetJob's life after creation: suspend holds admissions and resume finishes the job; delete
mid-run, or racing the first claims, leaves nothing behind (Redis keys, chunk Jobs, the object itself)."""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from tests.cluster.conftest import (
    GROUP,
    PLURAL,
    VERSION,
    image_urls,
    inline_job,
    phase,
    prefix_of,
    redis_client,
    wait_until,
)

pytestmark = pytest.mark.cluster


def chunks(body: dict) -> dict:
    return (body.get("status") or {}).get("chunks") or {}


def test_suspend_holds_new_admissions_and_resume_finishes(operator, image_server):
    operator.start(PIXCRAWLER_MAX_CONCURRENT_CHUNKS="2")
    operator.apply(inline_job("pausable", image_urls(image_server.base_url, 5000, 16, route="slow",
                                                     query="delay=0.5"), 2))
    wait_until(lambda: operator.chunk_jobs(), 120, "the first chunk Job")
    operator.patch_spec("pausable", {"suspend": True})
    suspended = operator.wait_for("pausable", lambda b: phase(b) == "Suspended", timeout=120, what="Suspended")
    assert suspended["status"]["reason"] == "Suspended"
    held = len(operator.chunk_jobs())
    assert held < 8
    deadline = time.monotonic() + 6  # several scheduler cycles (1 s each) with room in the quota
    while time.monotonic() < deadline:
        assert len(operator.chunk_jobs()) == held
        assert phase(operator.get("pausable")) == "Suspended"
        time.sleep(0.5)
    operator.patch_spec("pausable", {"suspend": False})
    done = operator.wait_for("pausable", lambda b: phase(b) in ("Succeeded", "Failed"), timeout=240, what="the end")
    assert phase(done) == "Succeeded"
    assert chunks(done)["succeeded"] == 8
    assert len(operator.chunk_jobs()) == 8


def test_delete_mid_run_leaves_no_redis_keys_no_jobs_and_no_object(operator, image_server):
    operator.start(PIXCRAWLER_MAX_CONCURRENT_CHUNKS="2")
    # Images that take 3 s each: workers are mid-chunk (writing progress and dedup keys) at the delete.
    operator.apply(inline_job("doomed", image_urls(image_server.base_url, 6000, 20, route="slow",
                                                   query="delay=3"), 2))
    body = operator.wait_for("doomed", lambda b: chunks(b).get("succeeded", 0) >= 1 and chunks(b).get("running"),
                             timeout=180, what="one chunk done and more running")
    uid = body["metadata"]["uid"]
    assert len(operator.chunk_jobs()) >= 2
    operator.custom.delete_namespaced_custom_object(GROUP, VERSION, operator.namespace, PLURAL, "doomed")
    assert_nothing_left(operator, "doomed", uid)


def test_delete_racing_the_first_claims_leaves_nothing(operator, image_server):
    """Deleted the moment its first chunk Job appears, while the scheduler is still claiming the rest."""
    operator.start(PIXCRAWLER_MAX_CONCURRENT_CHUNKS="6")
    created = operator.apply(inline_job("raced", image_urls(image_server.base_url, 6100, 24), 2))
    wait_until(lambda: operator.chunk_jobs(), 120, "the first chunk Job", interval=0.05)
    operator.custom.delete_namespaced_custom_object(GROUP, VERSION, operator.namespace, PLURAL, "raced")
    assert_nothing_left(operator, "raced", created["metadata"]["uid"])
    time.sleep(5)  # a few more scheduler cycles: nothing of it may come back
    assert operator.chunk_jobs() == []
    with redis_client(operator) as redis:
        assert not [key for key in redis.scan_iter(match=f"{prefix_of(operator)}*") if created["metadata"]["uid"] in key]


def assert_nothing_left(operator, name: str, uid: str) -> None:
    def gone() -> bool:
        try:
            operator.get(name)
        except client.ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    wait_until(gone, 60, "the DatasetJob to be gone (finalizer removed)")
    wait_until(lambda: operator.chunk_jobs() == [], 120, "garbage collection of the chunk Jobs")
    core = client.CoreV1Api(operator.api)
    wait_until(lambda: core.list_namespaced_pod(operator.namespace).items == [], 120, "the chunk pods to go")
    with redis_client(operator) as redis:
        left = sorted(key for key in redis.scan_iter(match=f"{prefix_of(operator)}*") if uid in key)
        queued = [m for zset in ("queue", "admitted", "delayed", "running", "waiting")
                  for m in redis.zrange(f"{prefix_of(operator)}{zset}", 0, -1) if m.startswith(uid)]
        promoted = redis.hget(f"{prefix_of(operator)}promoted", uid)
    assert left == []
    assert queued == [] and promoted is None


def test_delete_completes_when_redis_is_gone_for_good_and_says_so(operator, image_server, tmp_path):
    from localservices import RedisServer

    own_redis = RedisServer(tmp_path / "redis").start()
    operator.start(PIXCRAWLER_REDIS_URL=own_redis.url, PIXCRAWLER_REDIS_DELETE_ATTEMPTS="2",
                   PIXCRAWLER_MAX_CONCURRENT_CHUNKS="0")
    operator.apply(inline_job("orphaned", image_urls(image_server.base_url, 6000, 4), 2))
    operator.wait_for("orphaned", lambda b: phase(b) == "Queued", timeout=120, what="Queued")
    own_redis.stop()
    operator.custom.delete_namespaced_custom_object(GROUP, VERSION, operator.namespace, PLURAL, "orphaned")

    def gone() -> bool:
        try:
            operator.get("orphaned")
        except client.ApiException as exc:
            return exc.status == 404
        return False

    wait_until(gone, 120, "the DatasetJob to be deleted although Redis is down")
    events = client.CoreV1Api(operator.api).list_namespaced_event(operator.namespace).items
    assert any(e.reason == "CleanupIncomplete" and "Redis unreachable" in e.message for e in events)
