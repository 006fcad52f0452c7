"""The scheduler's Job watch against the real API server: it lists page by page, follows creations and
deletions of the operator's Jobs only, and relists on its resync period without losing a Job."""

from __future__ import annotations

import asyncio
import time

import pytest
from kubernetes_asyncio import client, config

from dataset_operator import jobs, watched_cache
from dataset_operator.job_watch import JobWatch

pytestmark = pytest.mark.cluster

SELECTOR = f"{jobs.LABEL_MANAGED_BY}={jobs.MANAGED_BY}"


def job(name: str, ours: bool = True) -> dict:
    labels = {jobs.LABEL_MANAGED_BY: jobs.MANAGED_BY} if ours else {"app": "someone-else"}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": labels},
            "spec": {"suspend": True, "template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "c", "image": "localhost/pixcrawler-absent:0"}]}}}}  # suspended: no pod is made


async def until(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def names(watch: JobWatch) -> set[str]:
    return {j["metadata"]["name"] for j in watch.snapshot()}


def test_the_watch_lists_in_pages_follows_changes_and_resyncs(cluster, namespace, monkeypatch):
    monkeypatch.setattr(watched_cache, "PAGE", 2)  # three Jobs take two pages

    async def main() -> None:
        await config.load_kube_config(config_file=str(cluster.kubeconfig))
        async with client.ApiClient() as api:
            batch = client.BatchV1Api(api)
            for name in ("one", "two", "three"):
                await batch.create_namespaced_job(namespace, job(name))
            await batch.create_namespaced_job(namespace, job("theirs", ours=False))
            watch = JobWatch(api, namespace, SELECTOR, resync_seconds=3)
            task = asyncio.create_task(watch.run())
            try:
                await asyncio.wait_for(watch.synced.wait(), 30)
                assert names(watch) == {"one", "two", "three"}
                await batch.create_namespaced_job(namespace, job("four"))
                await until(lambda: "four" in names(watch), "a created Job to be seen")
                await batch.delete_namespaced_job("one", namespace, propagation_policy="Background")
                await until(lambda: "one" not in names(watch), "a deleted Job to go")
                await until(lambda: watch.lists >= 2, "a resync")
                assert names(watch) == {"two", "three", "four"}
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
