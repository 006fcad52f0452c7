"""The watched caches without an API server: watch events applied to the cache, a LIST over pages,
a relist at once on 410 Gone and after the server ends the watch (its resync timeout), and the pod
inspector answering from the pod cache (a failed Job's OOM kill, a pod that cannot pull its image)."""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from dataset_operator import pod_trouble
from dataset_operator.pod_inspector import PodInspector
from dataset_operator.pod_watch import JOB_NAME_LABEL, PodWatch, pods_by_job
from dataset_operator.watched_cache import WatchedCache, apply


def obj(uid: str, version: str = "1", **labels: str) -> dict[str, Any]:
    return {"metadata": {"uid": uid, "name": uid, "namespace": "ns", "resourceVersion": version, "labels": labels}}


def event(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "raw_object": item}


def test_added_and_modified_objects_are_kept_and_deleted_ones_go():
    items: dict[str, dict[str, Any]] = {}
    apply(items, event("ADDED", obj("a")))
    apply(items, event("ADDED", obj("b")))
    apply(items, event("MODIFIED", obj("a", version="2")))
    apply(items, event("DELETED", obj("b")))
    apply(items, event("DELETED", obj("never-seen")))
    assert {uid: o["metadata"]["resourceVersion"] for uid, o in items.items()} == {"a": "2"}


def test_a_bookmark_changes_nothing():
    items = {"a": obj("a")}
    apply(items, {"type": "BOOKMARK", "raw_object": {"metadata": {"resourceVersion": "9"}}})
    assert items == {"a": obj("a")}


class Scripted(WatchedCache):
    """A cache whose LIST pages and watch streams are given by the test, one script per LIST."""

    def __init__(self, lists: list[tuple[list[dict[str, Any]], list[Any]]]) -> None:
        super().__init__("ns", "app=x")
        self.scripts = lists
        self.pages_asked: list[str | None] = []
        self.watched_from: list[str] = []
        self.done = asyncio.Event()

    async def _page(self, token: str | None) -> dict[str, Any]:
        self.pages_asked.append(token)
        pages, _ = self.scripts[self.lists]
        page = pages[int(token or 0)]
        return page

    async def _events(self, version: str):
        self.watched_from.append(version)
        _, stream = self.scripts[self.lists - 1]
        for step in stream:
            if isinstance(step, Exception):
                raise step
            yield step
        if self.lists == len(self.scripts):
            self.done.set()
            await asyncio.Event().wait()  # the last watch stays open until the test ends


def run_until_done(cache: Scripted) -> None:
    async def main() -> None:
        task = asyncio.create_task(cache.run())
        await asyncio.wait_for(cache.done.wait(), 10)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    asyncio.run(main())


def page(items: list[dict[str, Any]], version: str, more: str | None = None) -> dict[str, Any]:
    return {"items": items, "metadata": {"resourceVersion": version, **({"continue": more} if more else {})}}


def test_the_list_reads_every_page_and_the_watch_starts_from_its_version():
    cache = Scripted([([page([obj("a")], "5", more="1"), page([obj("b")], "7")],
                       [event("ADDED", obj("c")), event("DELETED", obj("a"))])])
    run_until_done(cache)
    assert (cache.pages_asked, cache.watched_from, sorted(cache.items), cache.lists) == (
        [None, "1"], ["7"], ["b", "c"], 1)
    assert cache.synced.is_set()


def test_410_gone_lists_again_at_once_and_the_relist_replaces_the_cache():
    cache = Scripted([([page([obj("a"), obj("b")], "5")], [event("ADDED", obj("c")), ApiException(status=410)]),
                      ([page([obj("b"), obj("d")], "9")], [])])
    run_until_done(cache)
    assert (cache.watched_from, sorted(cache.items), cache.lists) == (["5", "9"], ["b", "d"], 2)


def test_the_end_of_the_watch_at_its_timeout_is_a_resync():
    cache = Scripted([([page([obj("a")], "5")], [event("MODIFIED", obj("a", version="6"))]),
                      ([page([obj("a", version="8")], "8")], [])])
    run_until_done(cache)
    assert (cache.watched_from, cache.items["a"]["metadata"]["resourceVersion"], cache.lists) == (["5", "8"], "8", 2)


def pod(uid: str, job: str, namespace: str = "ns", **status: Any) -> dict[str, Any]:
    return {"metadata": {"uid": uid, "name": uid, "namespace": namespace, "labels": {JOB_NAME_LABEL: job}},
            "spec": {"containers": [{"name": "worker", "resources": {"limits": {"memory": "2Gi"}}}]},
            "status": status}


def test_pods_are_grouped_by_their_job_within_one_namespace():
    pods = [pod("p1", "a"), pod("p2", "a"), pod("p3", "b"), pod("p4", "a", namespace="other"), pod("p5", "c")]
    found = pods_by_job(pods, "ns", {"a", "b"})
    assert {name: [p["metadata"]["uid"] for p in listed] for name, listed in found.items()} == {
        "a": ["p1", "p2"], "b": ["p3"]}


def inspect(pods: list[dict[str, Any]], ask) -> Any:  # noqa: ANN001
    async def main() -> Any:
        async with client.ApiClient() as api:
            watch = PodWatch(api, "ns")
            for item in pods:
                apply(watch.items, event("ADDED", item))
            return await ask(PodInspector(api, watch))
    return asyncio.run(main())


def test_a_failed_job_is_explained_by_its_cached_pod():
    killed = pod("p1", "chunk-a", containerStatuses=[{"name": "worker", "state": {"terminated": {
        "reason": "OOMKilled", "exitCode": 137}}}])
    failed = {"metadata": {"name": "chunk-a", "namespace": "ns"},
              "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}}
    trouble = inspect([killed, pod("p2", "chunk-b")], lambda inspector: inspector.ended(failed))
    assert trouble.reason == pod_trouble.OOM_KILLED and "2Gi" in trouble.message


def test_a_stuck_pod_is_named_from_the_cache_without_a_call():
    pulling = pod("p1", "chunk-a", containerStatuses=[{"name": "worker", "state": {"waiting": {
        "reason": "ImagePullBackOff", "message": "not found"}}}])
    active = {"metadata": {"name": "chunk-a", "namespace": "ns", "creationTimestamp": "2000-01-01T00:00:00Z"},
              "status": {"active": 1}}
    troubles = inspect([pulling], lambda inspector: inspector.stuck([active], 2e9))
    assert troubles["chunk-a"].reason == pod_trouble.IMAGE_UNAVAILABLE
