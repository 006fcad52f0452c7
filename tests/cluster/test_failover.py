"""Two operator processes: SIGKILL the leader mid-run and the standby takes over, never runs a chunk
twice at once, and finishes the job (the takeover time is printed, a figure for bench/, not asserted)."""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from tests.cluster.conftest import JobSampler, image_urls, inline_job, phase, wait_until

pytestmark = pytest.mark.cluster

LEASE = "pixcrawler-operator"


def holder(coordination: client.CoordinationV1Api, namespace: str) -> str | None:
    try:
        return coordination.read_namespaced_lease(LEASE, namespace).spec.holder_identity
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_the_standby_takes_over_when_the_leader_is_killed(operator, image_server, admin):
    coordination = client.CoordinationV1Api(admin)
    first = operator.start(PIXCRAWLER_IDENTITY="op-a", PIXCRAWLER_MAX_CONCURRENT_CHUNKS="2")
    wait_until(lambda: holder(coordination, operator.namespace) == "op-a", 60, "op-a to hold the lease")
    second = operator.start(PIXCRAWLER_IDENTITY="op-b", PIXCRAWLER_MAX_CONCURRENT_CHUNKS="2")
    processes = {"op-a": first, "op-b": second}
    with JobSampler(operator) as sampler:
        # 10 chunks of 3 images that take ~1 s each: long enough to be mid-run when the leader dies.
        operator.apply(inline_job("failover", image_urls(image_server.base_url, 4000, 30, route="slow",
                                                         query="delay=1"), 3))
        operator.wait_for("failover", lambda b: (b.get("status") or {}).get("chunks", {}).get("succeeded", 0) >= 2,
                          timeout=180, what="two chunks done")
        leader = holder(coordination, operator.namespace)
        standby = "op-b" if leader == "op-a" else "op-a"
        created_before = len(sampler.jobs)
        killed_at = time.monotonic()
        processes[leader].kill()
        wait_until(lambda: holder(coordination, operator.namespace) == standby, 40, f"{standby} to take the lease",
                   interval=0.05)
        takeover = time.monotonic() - killed_at
        done = operator.wait_for("failover", lambda b: phase(b) in ("Succeeded", "Failed"), timeout=240,
                                 what="the end")
    assert phase(done) == "Succeeded"
    assert done["status"]["chunks"]["succeeded"] == 10
    assert len(sampler.jobs) > created_before, "the new leader created no chunk Job"
    assert not sampler.errors
    assert sampler.doubled == set(), f"chunks with two active Jobs at once: {sampler.doubled}"
    assert sampler.max_active <= 2
    print(f"takeover {takeover:.2f}s after SIGKILL")
