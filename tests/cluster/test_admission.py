"""Admission on the real control plane: strict tier order with round-robin inside a tier, a quota that
holds under load, and node reports that hold chunks back while the nodes are short of disk."""

from __future__ import annotations

import threading
import time

import pytest

from chunk_worker import node_agent
from chunk_worker.contract import Keys
from tests.cluster.conftest import (
    JobSampler,
    chunk_key,
    image_urls,
    inline_job,
    phase,
    prefix_of,
    redis_client,
)

pytestmark = pytest.mark.cluster

GIB = 1024 ** 3


def test_chunks_start_in_tier_order_and_round_robin_within_a_tier(operator, image_server):
    jobs = {  # name -> tier; two chunks of two images each
        "free-a": "free",
        "ent-a": "enterprise",
        "new-a": "new-user",
        "new-b": "new-user",
    }
    for number, (name, tier) in enumerate(jobs.items()):
        operator.apply(inline_job(name, image_urls(image_server.base_url, 1000 + 10 * number, 4), 2, tier=tier))
    # Plan every job with a quota of 0 first, so the whole queue exists before anything may start.
    planner = operator.start(PIXCRAWLER_MAX_CONCURRENT_CHUNKS="0")
    for name in jobs:
        operator.wait_for(name, lambda b: phase(b) == "Queued", timeout=60, what="Queued")
    assert operator.chunk_jobs() == []
    planner.stop()
    with JobSampler(operator) as sampler:
        operator.start(PIXCRAWLER_MAX_CONCURRENT_CHUNKS="1")
        for name in jobs:
            operator.wait_for(name, lambda b: phase(b) == "Succeeded", timeout=240, what="Succeeded")
    assert not sampler.errors
    assert sampler.max_active == 1
    order = [chunk_key(sampler.jobs[name]) for name in sampler.order]
    assert len(order) == 8
    new_user, enterprise, free = order[:4], order[4:6], order[6:]
    assert {key for key in new_user[:2]} == {("new-a", 0), ("new-b", 0)}, order
    assert {key for key in new_user[2:]} == {("new-a", 1), ("new-b", 1)}, order
    assert enterprise == [("ent-a", 0), ("ent-a", 1)], order
    assert free == [("free-a", 0), ("free-a", 1)], order


def test_the_quota_is_never_exceeded_under_load(operator, image_server):
    names = ["load-a", "load-b", "load-c"]
    with JobSampler(operator) as sampler:
        operator.start(PIXCRAWLER_MAX_CONCURRENT_CHUNKS="3")
        for number, name in enumerate(names):
            operator.apply(inline_job(name, image_urls(image_server.base_url, 2000 + 20 * number, 12), 2))
        for name in names:
            done = operator.wait_for(name, lambda b: phase(b) in ("Succeeded", "Failed"), timeout=300,
                                     what="the end")
            assert phase(done) == "Succeeded"
    assert not sampler.errors
    assert sampler.samples > 50
    # one Job per chunk; a retried attempt (a storage timeout on this loaded machine) adds one more
    assert len({chunk_key(job) for job in sampler.jobs.values()}) == 18
    assert sampler.max_active == 3


class NodeReports:
    """Stands in for the node agent: refreshes one node's report in Redis every 0.5 s."""

    def __init__(self, harness, node: str, disk_free: int, memory_available: int) -> None:
        self.client = redis_client(harness)
        self.keys, self.node = Keys(prefix_of(harness)), node
        self.values = {"disk_free": disk_free, "memory_available": memory_available}
        self._stop = threading.Event()
        self._write()
        self._thread = threading.Thread(target=self._run, name="node-reports", daemon=True)
        self._thread.start()

    def set(self, **values: int) -> None:
        self.values.update(values)
        self._write()

    def _write(self) -> None:
        node_agent.publish(self.client, self.keys, self.node, {**self.values, "at": round(time.time(), 3)}, 30)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._write()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.client.close()


def test_a_node_short_of_disk_holds_chunks_until_it_reports_room(operator, image_server):
    reports = NodeReports(operator, "node-a", disk_free=1 * GIB, memory_available=64 * GIB)
    try:
        operator.start()
        operator.apply(inline_job("disk", image_urls(image_server.base_url, 3000, 4), 2))
        waiting = operator.wait_for("disk", lambda b: (b.get("status") or {}).get("reason") == "WaitingForNodeDisk",
                                    timeout=60, what="reason WaitingForNodeDisk")
        assert phase(waiting) == "Queued"
        assert "disk" in waiting["status"]["message"]
        assert operator.chunk_jobs() == []
        reports.set(disk_free=100 * GIB)
        done = operator.wait_for("disk", lambda b: phase(b) in ("Succeeded", "Failed"), timeout=120, what="the end")
        assert phase(done) == "Succeeded"
        assert len(operator.chunk_jobs()) == 2
    finally:
        reports.close()
