"""The pod watch against the real API server: it lists the pods of the operator's Jobs page by page,
follows their changes (a pod that cannot pull its image, a worker that exits non-zero) and their
deletion with their Job, leaves other pods out, and relists on its resync period without losing one.
The pod inspector reads its answers from that cache: a stuck pod is named, a failed Job's exit code
is given."""

from __future__ import annotations

import asyncio
import time

import pytest
from kubernetes_asyncio import client, config

from dataset_operator import jobs, pod_trouble, watched_cache
from dataset_operator.pod_inspector import PodInspector
from dataset_operator.pod_watch import PodWatch

pytestmark = pytest.mark.cluster


def job(name: str, image: str, command: list[str] | None = None, ours: bool = True) -> dict:
    labels = {jobs.LABEL_MANAGED_BY: jobs.MANAGED_BY} if ours else {"app": "someone-else"}
    container = {"name": jobs.CONTAINER, "image": image, "imagePullPolicy": "IfNotPresent",
                 **({"command": command} if command else {})}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": labels},
            "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": labels}, "spec": {
                "restartPolicy": "Never", "automountServiceAccountToken": False, "containers": [container]}}}}


async def until(predicate, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def owners(watch: PodWatch) -> set[str]:
    return {(p["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name") for p in watch.snapshot()}


def terminated(watch: PodWatch, namespace: str, name: str) -> bool:
    return any(((s.get("state") or {}).get("terminated")) for pod in watch.of_jobs(namespace, {name}).get(name, [])
               for s in (pod.get("status") or {}).get("containerStatuses") or [])


def test_the_pod_watch_follows_the_operators_pods_and_feeds_the_inspector(cluster, namespace, worker_image,
                                                                           monkeypatch):
    monkeypatch.setattr(watched_cache, "PAGE", 2)  # three pods take two pages

    async def main() -> None:
        await config.load_kube_config(config_file=str(cluster.kubeconfig))
        async with client.ApiClient() as api:
            batch = client.BatchV1Api(api)
            exits = ["python", "-c", "import sys; sys.exit(3)"]
            for name in ("one", "two"):
                await batch.create_namespaced_job(namespace, job(name, "localhost/pixcrawler-absent:0"))
            await batch.create_namespaced_job(namespace, job("exits", worker_image, exits))
            await batch.create_namespaced_job(namespace, job("theirs", "localhost/pixcrawler-absent:0", ours=False))
            core = client.CoreV1Api(api)
            deadline = time.monotonic() + 90
            while len((await core.list_namespaced_pod(namespace)).items) < 4:  # all made before the watch starts
                if time.monotonic() > deadline:
                    pytest.fail("timed out waiting for the Job controller to make the four pods")
                await asyncio.sleep(0.2)
            watch = PodWatch(api, namespace, resync_seconds=3)
            task = asyncio.create_task(watch.run())
            try:
                await asyncio.wait_for(watch.synced.wait(), 30)
                assert owners(watch) == {"one", "two", "exits"}
                inspector = PodInspector(api, watch)

                def stuck_one() -> bool:
                    found = watch.of_jobs(namespace, {"one"}).get("one", [])
                    return pod_trouble.stuck(found, [], None) is not None
                await until(stuck_one, "the pod's image pull to fail")
                one = api.sanitize_for_serialization(await batch.read_namespaced_job("one", namespace))
                one["status"] = {}  # not ready
                one["metadata"]["creationTimestamp"] = "2000-01-01T00:00:00Z"  # past the settling time
                troubles = await inspector.stuck([one], time.time())
                assert troubles["one"].reason == pod_trouble.IMAGE_UNAVAILABLE

                await until(lambda: terminated(watch, namespace, "exits"), "the worker's exit to be seen")
                failed = api.sanitize_for_serialization(await batch.read_namespaced_job("exits", namespace))
                ended = await inspector.ended(failed)
                assert (ended.reason, "exited with code 3" in ended.message) == (pod_trouble.WORKER_FAILED, True)

                await batch.delete_namespaced_job("one", namespace, propagation_policy="Background")
                await until(lambda: "one" not in owners(watch), "the deleted Job's pod to go")
                await until(lambda: watch.lists >= 2, "a resync")
                assert owners(watch) == {"two", "exits"}
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
