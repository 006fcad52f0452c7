"""A chunk whose worker fails is retried through admission; one whose spec is unusable fails at once."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.cluster.conftest import attempt_of, chunk_key, image_urls, inline_job, phase, prefix_of, redis_client

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


def private_search_job(name: str, limit: int) -> dict:
    """A search at an endpoint on a private address: the chunk's worker refuses it before connecting
    (exit 2). A URL list there would fail the job at planning instead, in the list-count Job."""
    return {
        "apiVersion": "pixcrawler.io/v1alpha1",
        "kind": "DatasetJob",
        "metadata": {"name": name},
        "spec": {
            "sources": [{"label": "x", "search": {"provider": "openverse", "query": "x", "limit": limit,
                                                  "endpoint": "http://10.0.0.1"}}],
            "chunkSize": limit,
            "validation": {"minWidth": 16, "minHeight": 16},
            "retries": {"maxAttempts": 3},
        },
    }


def failing_chunk(attempts: str) -> str:
    """A worker command whose pods of chunk 0's attempts named by `attempts` (a shell pattern) exit 1
    before doing anything; everything else (the list-count Job, other attempts) runs the real worker.
    The pod name carries the chunk and attempt (`<job>-<uid>-<index 05d>-a<attempt>-<suffix>`)."""
    script = f'case "$HOSTNAME" in *-00000-a{attempts}-*) echo "chunk refused by the test" >&2; exit 1;; esac; ' \
             'exec python -m chunk_worker "$@"'
    return json.dumps(["sh", "-c", script, "worker"])


def condition(body: dict, kind: str) -> str | None:
    for item in (body.get("status") or {}).get("conditions") or []:
        if item["type"] == kind:
            return item["status"]
    return None


def test_a_worker_failing_once_is_retried_and_the_job_succeeds(operator, image_server):
    """The list answers 404 once: a second list-count Job reads it into pages. Chunk 0's first attempt
    fails (exit 1) and its retry succeeds, reading the pages: the list is requested twice, by the two
    list-count Jobs, never by a chunk."""
    key = uuid.uuid4().hex
    url = f"{image_server.base_url}/flaky/list.txt?key={key}&fails=1&n=4&start=3000"
    operator.start(PIXCRAWLER_WORKER_COMMAND=failing_chunk("1"))
    operator.apply(url_list_job("flaky", url, 4))
    done = operator.wait_for("flaky", lambda b: phase(b) in ("Succeeded", "Failed"), timeout=180, what="the end")
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
    operator.apply(private_search_job("blocked", 5))
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


def test_a_url_list_at_a_private_address_fails_the_job_at_planning_naming_the_source(operator):
    operator.start()
    operator.apply(url_list_job("unlisted", "http://10.0.0.1/list.txt", 5))
    done = operator.wait_for("unlisted", lambda b: phase(b) == "Failed", timeout=120, what="Failed")
    assert done["status"]["reason"] == "InvalidSpec"
    assert done["status"]["message"].startswith("spec.sources[0].urlList.url:")
    assert operator.chunk_jobs() == []


def failing_finalize(attempts: str) -> str:
    """A worker command whose finalize pods named by `attempts` (a shell pattern on the attempt number) exit 1
    before doing anything; everything else runs the real worker. The pod name carries the finalize Job's
    attempt (`<job>-<uid>-final-a<attempt>-<suffix>`), so the failure needs no state between pods."""
    script = f'case "$HOSTNAME" in *-final-a{attempts}-*) echo "finalize refused by the test" >&2; exit 1;; esac; ' \
             'exec python -m chunk_worker "$@"'
    return json.dumps(["sh", "-c", script, "worker"])


def finalize_jobs(operator) -> list:
    return operator.batch.list_namespaced_job(operator.namespace, label_selector="pixcrawler.io/role=finalize").items


def test_a_finalize_job_failing_once_is_retried_and_the_job_completes(operator, image_server):
    operator.start(PIXCRAWLER_WORKER_COMMAND=failing_finalize("1"))
    operator.apply(inline_job("refinal", image_urls(image_server.base_url, 4100, 4), 2))
    done = operator.wait_for("refinal", lambda b: phase(b) in ("Succeeded", "Failed"), timeout=120, what="the end")
    assert phase(done) == "Succeeded", done["status"]
    assert done["status"]["output"]["card"].endswith("/README.md")
    outcomes = sorted((attempt_of(job), next(c.type for c in job.status.conditions
                                             if c.status == "True" and c.type in ("Complete", "Failed")))
                      for job in finalize_jobs(operator))
    assert outcomes == [(1, "Failed"), (2, "Complete")]


def test_a_finalize_job_failing_every_attempt_fails_the_job_with_its_reason(operator, image_server):
    operator.start(PIXCRAWLER_WORKER_COMMAND=failing_finalize("*"))
    operator.apply(inline_job("nofinal", image_urls(image_server.base_url, 4200, 2), 2, retries={"maxAttempts": 2}))
    done = operator.wait_for("nofinal", lambda b: phase(b) in ("Succeeded", "Failed"), timeout=120, what="the end")
    assert (phase(done), done["status"]["reason"]) == ("Failed", "FinalizeFailed"), done["status"]
    assert done["status"]["chunks"]["succeeded"] == 1
    assert "failed 2 times" in done["status"]["message"]
    assert sorted(attempt_of(job) for job in finalize_jobs(operator)) == [1, 2]
