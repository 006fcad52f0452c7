"""A chunk whose worker fails is retried through admission; one whose spec is unusable fails at once."""

from __future__ import annotations

import uuid

import pytest

from tests.cluster.conftest import attempt_of, chunk_key, phase, redis_client, prefix_of

pytestmark = pytest.mark.cluster


def url_list_job(name: str, url: str, count: int) -> dict:
    return {
        "apiVersion": "pixcrawler.io/v1alpha1",
        "kind": "DatasetJob",
        "metadata": {"name": name},
        "spec": {
            "sources": [{"label": "x", "urlList": {"url": url, "format": "txt", "count": count}}],
            "chunkSize": count,
            "validation": {"minWidth": 16, "minHeight": 16},
            "retries": {"maxAttempts": 3},
        },
    }


def condition(body: dict, kind: str) -> str | None:
    for item in (body.get("status") or {}).get("conditions") or []:
        if item["type"] == kind:
            return item["status"]
    return None


def test_a_worker_failing_once_is_retried_and_the_job_succeeds(operator, image_server):
    key = uuid.uuid4().hex
    url = f"{image_server.base_url}/flaky/list.txt?key={key}&fails=1&n=4&start=3000"
    operator.start()
    operator.apply(url_list_job("flaky", url, 4))
    done = operator.wait_for("flaky", lambda b: phase(b) in ("Succeeded", "Failed"), timeout=120, what="the end")
    assert phase(done) == "Succeeded"
    assert done["status"]["images"]["uploaded"] == 4
    jobs = operator.chunk_jobs()
    assert sorted(attempt_of(job) for job in jobs) == [1, 2]
    first = next(job for job in jobs if attempt_of(job) == 1)
    assert any(c.type == "Failed" and c.status == "True" for c in first.status.conditions or [])
    assert len(image_server.request_times("/flaky/list.txt", key)) == 2


def test_exit_code_2_fails_the_job_without_retries(operator):
    # A private address: the worker's policy refuses it before connecting, so nothing leaves the machine.
    operator.start()
    operator.apply(url_list_job("blocked", "http://10.0.0.1/list.txt", 5))
    done = operator.wait_for("blocked", lambda b: phase(b) in ("Succeeded", "Failed"), timeout=120, what="the end")
    assert phase(done) == "Failed"
    assert condition(done, "Failed") == "True"
    assert condition(done, "Complete") == "False"
    assert done["status"]["chunks"]["failed"] == 1
    jobs = operator.chunk_jobs()
    assert [(chunk_key(job), attempt_of(job)) for job in jobs] == [(("blocked", 0), 1)]
    failed = next(c for c in jobs[0].status.conditions if c.type == "Failed")
    assert failed.reason == "PodFailurePolicy"
    with redis_client(operator) as client:
        uid = done["metadata"]["uid"]
        assert client.hget(f"{prefix_of(operator)}chunk:{uid}-00000", "attempt") == "1"
