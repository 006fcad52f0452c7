"""Pod-level trouble shows in the DatasetJob, on the real node: a namespace without the worker
ServiceAccount, an image that cannot be pulled, a pod no node can take and a worker killed at its
memory limit each get a reason naming them, and the chunk is retried or failed by the retry policy."""

from __future__ import annotations

import re

import pytest
from kubernetes import client

from tests.cluster.conftest import image_urls, inline_job, phase, wait_for

pytestmark = pytest.mark.cluster


def status_of(body: dict) -> dict:
    return body.get("status") or {}


def quota_used(process) -> float:
    match = re.search(r"^pixcrawler_quota_used_chunks (\S+)$", process.metrics(), re.M)
    return float(match.group(1)) if match else -1.0


def reasons_until_end(operator, name: str, timeout: float) -> tuple[dict, set[str]]:
    """The job's end, and every reason its status showed on the way."""
    seen: set[str] = set()

    def ended(body: dict) -> bool:
        seen.add(status_of(body).get("reason") or "")
        return phase(body) in ("Succeeded", "Failed")

    return operator.wait_for(name, ended, timeout=timeout, what="the end"), seen


def test_a_namespace_without_the_worker_account_waits_with_a_reason_and_holds_no_quota(operator, image_server):
    core = client.CoreV1Api(operator.api)
    core.delete_namespaced_service_account("pixcrawler-worker", operator.namespace)
    process = operator.start()
    operator.apply(inline_job("no-account", image_urls(image_server.base_url, 7000, 4), chunk_size=2))
    body = operator.wait_for("no-account", lambda b: status_of(b).get("reason") == "WorkerServiceAccountMissing",
                             timeout=60, what="reason WorkerServiceAccountMissing")
    assert phase(body) == "Queued"
    assert f'not found in namespace "{operator.namespace}"' in status_of(body)["message"]
    assert operator.chunk_jobs() == []
    assert quota_used(process) == 0
    core.create_namespaced_service_account(operator.namespace, {"metadata": {"name": "pixcrawler-worker"}})
    done = operator.wait_for("no-account", lambda b: phase(b) in ("Succeeded", "Failed"), timeout=180, what="the end")
    assert phase(done) == "Succeeded" and status_of(done)["images"]["uploaded"] == 4


def test_an_image_that_cannot_be_pulled_is_named_given_up_and_retried_by_policy(operator, image_server):
    # Nothing listens on 127.0.0.1:1: containerd's pull is refused on this machine, nothing leaves it.
    operator.start(PIXCRAWLER_WORKER_IMAGE="127.0.0.1:1/pixcrawler/absent:0",
                   PIXCRAWLER_STUCK_POD_GRACE_SECONDS="6")
    job = inline_job("no-image", image_urls(image_server.base_url, 7100, 2), chunk_size=2)
    job["spec"]["retries"]["maxAttempts"] = 2
    operator.apply(job)
    done, seen = reasons_until_end(operator, "no-image", timeout=180)
    assert "WorkerImageUnavailable" in seen
    status = status_of(done)
    assert (phase(done), status["reason"]) == ("Failed", "WorkerImageUnavailable")
    assert status["lastFailure"]["attempt"] == 2 and "127.0.0.1:1/pixcrawler/absent:0" in status["lastFailure"]["message"]
    assert "given up after 6s" in status["message"]
    wait_for(lambda: not [j for j in operator.chunk_jobs() if not j.metadata.deletion_timestamp],
             timeout=60, what="the stuck Jobs deleted")


def test_a_pod_no_node_can_take_is_unschedulable_and_fails_by_policy(operator, image_server):
    operator.start(PIXCRAWLER_WORKER_MEMORY_REQUEST="64Ti", PIXCRAWLER_WORKER_MEMORY_LIMIT="64Ti",
                   PIXCRAWLER_UNSCHEDULABLE_GRACE_SECONDS="6")
    job = inline_job("too-big", image_urls(image_server.base_url, 7200, 2), chunk_size=2)
    job["spec"]["retries"]["maxAttempts"] = 1
    operator.apply(job)
    running = operator.wait_for("too-big", lambda b: status_of(b).get("reason") == "Unschedulable",
                                timeout=60, what="reason Unschedulable")
    assert phase(running) == "Running" and "Insufficient memory" in status_of(running)["message"]
    done = operator.wait_for("too-big", lambda b: phase(b) in ("Succeeded", "Failed"), timeout=120, what="the end")
    assert (phase(done), status_of(done)["reason"]) == ("Failed", "Unschedulable")
    assert status_of(done)["chunks"]["failed"] == 1


def test_a_worker_killed_at_its_memory_limit_is_named_and_retried_by_policy(operator, image_server):
    # The real worker under a limit below what its interpreter and imports take: the kernel kills it.
    operator.start(PIXCRAWLER_WORKER_MEMORY_REQUEST="40Mi", PIXCRAWLER_WORKER_MEMORY_LIMIT="40Mi")
    job = inline_job("oom", image_urls(image_server.base_url, 7300, 2), chunk_size=2)
    job["spec"]["retries"]["maxAttempts"] = 2
    operator.apply(job)
    done, seen = reasons_until_end(operator, "oom", timeout=180)
    status = status_of(done)
    assert (phase(done), status["reason"]) == ("Failed", "WorkerOOMKilled"), status
    assert status["lastFailure"]["attempt"] == 2
    assert "memory limit of 40Mi" in status["lastFailure"]["message"]
    assert sorted(int(j.metadata.labels["pixcrawler.io/attempt"]) for j in operator.chunk_jobs()) == [1, 2]
