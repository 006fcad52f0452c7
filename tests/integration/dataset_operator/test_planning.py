"""Planning beside kopf, on a real Redis with the API server's status writes and events recorded: a new
job is queued with one status write however many events wake it, an invalid spec fails once, one
job's failing step is retried without holding up the others, a tier change moves the queued chunks,
and a deleting job's cleanup waits for a step under way."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import redis.asyncio as aioredis
from kubernetes_asyncio.client.exceptions import ApiException

from chunk_worker.contract import Keys
from dataset_operator import metrics, planning
from dataset_operator.planner import Planner
from dataset_operator.planning import Planning
from dataset_operator.queue import ChunkQueue
from dataset_operator.registry import JobRef, Registry
from dataset_operator.settings import OperatorSettings

KEYS = Keys("pl:")


class RecordedApi:
    """The two calls planning makes, recorded; `refuse` names jobs whose next status write gets a 500,
    `hold` makes every status write wait until it is set."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, dict]] = []
        self.events: list[tuple[str, str, str]] = []
        self.refuse: set[str] = set()
        self.hold = asyncio.Event()
        self.hold.set()

    async def patch_namespaced_custom_object_status(self, group, version, namespace, plural, name, body, **_):
        await self.hold.wait()
        if name in self.refuse:
            self.refuse.discard(name)
            raise ApiException(status=500, reason="Internal Server Error")
        self.patches.append((name, body["status"]))

    async def create_namespaced_event(self, namespace, body):
        self.events.append((body["involvedObject"]["name"], body["reason"], body["type"]))


def job(registry: Registry, name: str, tier: str = "free", **spec) -> JobRef:
    return registry.observe({"metadata": {"uid": str(uuid.uuid4()), "namespace": "team", "name": name,
                                          "creationTimestamp": "2024-01-01T00:00:00Z", "generation": 1},
                             "spec": {"tier": tier, "chunkSize": 2,
                                      "sources": [{"label": name, "urls": [f"https://img.example/{name}/{i}.jpg"
                                                                           for i in range(4)]}], **spec}})


async def started(redis_url: str) -> tuple[aioredis.Redis, ChunkQueue, Registry, RecordedApi, Planning]:
    raw = aioredis.from_url(redis_url)
    await raw.flushall()
    queue = ChunkQueue(raw, KEYS)
    await queue.lead(1)
    registry, api = Registry(), RecordedApi()
    settings = OperatorSettings(redis_prefix=KEYS.prefix, storage="file:///tmp/datasets")
    planner = Planning(Planner(settings, queue, counter=None), queue, registry, api=object(), running=lambda uid: set())
    planner.custom = planner.core = api
    return raw, queue, registry, api, planner


async def until(predicate: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def test_a_new_job_is_queued_with_one_status_write_however_many_events_wake_it(redis_url):
    async def main():
        raw, queue, registry, api, planner = await started(redis_url)
        loop = asyncio.create_task(planner.run())
        ref = job(registry, "cats")
        for _ in range(5):  # creation, kopf's finalizer patch, the status write's own event, ...
            planner.want(ref)
            await asyncio.sleep(0.05)
        await until(lambda: not planner.busy and not planner.due, "planning to settle")
        queued = await queue.has_job(ref.uid)
        loop.cancel()
        await raw.aclose()
        return api, queued

    api, queued = asyncio.run(main())
    assert queued
    assert [(name, body["phase"], body["chunks"]["total"]) for name, body in api.patches] == [("cats", "Queued", 2)]
    assert api.events == [("cats", "Queued", "Normal")]


def test_an_invalid_spec_fails_the_job_once_and_is_not_retried(redis_url, monkeypatch):
    monkeypatch.setattr(planning, "FAILED_DELAY", 0.05)

    async def main():
        raw, queue, registry, api, planner = await started(redis_url)
        loop = asyncio.create_task(planner.run())
        ref = job(registry, "broken", sources=[{"label": "x", "urls": ["ftp://img.example/a.jpg"]}])
        planner.want(ref)
        await until(lambda: api.patches, "the failure to be written")
        await asyncio.sleep(0.3)
        planner.want(ref)  # the status write's own event
        await asyncio.sleep(0.3)
        loop.cancel()
        await raw.aclose()
        return api

    api = asyncio.run(main())
    assert [(name, body["phase"], body["reason"]) for name, body in api.patches] == [("broken", "Failed",
                                                                                      "InvalidSpec")]
    assert "ftp://img.example/a.jpg" in api.patches[0][1]["message"]
    assert api.events == [("broken", "InvalidSpec", "Warning")]


def test_a_failing_step_is_retried_and_holds_up_no_other_job(redis_url, monkeypatch):
    monkeypatch.setattr(planning, "FAILED_DELAY", 0.2)
    before = metrics.JOB_ERRORS.labels(loop="planning")._value.get()

    async def main():
        raw, queue, registry, api, planner = await started(redis_url)
        api.refuse = {"first"}
        loop = asyncio.create_task(planner.run())
        first, second = job(registry, "first"), job(registry, "second")
        planner.want(first)
        planner.want(second)
        await until(lambda: {name for name, _ in api.patches} == {"first", "second"}, "both status writes")
        loop.cancel()
        await raw.aclose()
        return api

    api = asyncio.run(main())
    assert [name for name, _ in api.patches] == ["second", "first"]
    assert ("first", "PlanningFailed", "Warning") in api.events
    assert metrics.JOB_ERRORS.labels(loop="planning")._value.get() - before == 1


def test_a_tier_change_moves_the_jobs_queued_chunks(redis_url):
    async def main():
        raw, queue, registry, api, planner = await started(redis_url)
        loop = asyncio.create_task(planner.run())
        ref = job(registry, "cats", tier="free")
        planner.want(ref)
        await until(lambda: api.patches, "the plan")
        await until(lambda: not planner.busy, "planning to settle")
        before = await queue.tier_of(ref.uid)
        ref = registry.observe({"metadata": {"uid": ref.uid, "namespace": "team", "name": "cats",
                                             "creationTimestamp": "2024-01-01T00:00:00Z", "generation": 2},
                                "spec": {**ref.spec, "tier": "new-user"}})
        planner.want(ref)
        await until(lambda: not planner.busy and not planner.due, "the retier")
        after = await queue.tier_of(ref.uid)
        loop.cancel()
        await raw.aclose()
        return before, after, len(api.patches)

    before, after, writes = asyncio.run(main())
    assert (before, after) == ("free", "new-user")
    assert writes == 1


def test_a_deleting_jobs_cleanup_waits_for_its_step_under_way(redis_url):
    async def main():
        raw, queue, registry, api, planner = await started(redis_url)
        api.hold.clear()
        loop = asyncio.create_task(planner.run())
        ref = job(registry, "doomed")
        planner.want(ref)
        await until(lambda: planner.busy, "the step to start")
        registry.forget(ref.uid)
        planner.forget(ref.uid)
        settled = asyncio.create_task(planner.busy.settled(ref.uid))
        await asyncio.sleep(0.2)
        early = settled.done()
        api.hold.set()
        await asyncio.wait_for(settled, 5)
        loop.cancel()
        await raw.aclose()
        return early

    assert asyncio.run(main()) is False
