"""Job creation racing a DatasetJob's deletion, on a real Redis with the API server's create stood in
for: the cleanup's wait (`settled`) outlasts a create already sent, and a claim of a job deleted
before its Job was made gets none (otherwise the cleanup lists the Jobs too early and a late one
keeps its pods, and the deletion, waiting)."""

from __future__ import annotations

import asyncio
import time
import uuid

import redis.asyncio as aioredis
from kubernetes_asyncio import client

from chunk_worker.contract import Keys
from dataset_operator.job_creation import JobCreator
from dataset_operator.plan import make_plan
from dataset_operator.queue import ChunkQueue
from dataset_operator.registry import Registry
from dataset_operator.running_chunks import RunningChunks
from dataset_operator.settings import OperatorSettings

KEYS = Keys("jc:")


class HeldCreates:
    """Each create waits until `release` is set, as one sent to a slow API server does."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.sent: list[str] = []

    async def create_namespaced_job(self, namespace: str, manifest: dict) -> None:
        self.sent.append(manifest["metadata"]["name"])
        await self.release.wait()


async def claimed_job(redis_url: str, chunks: int):
    raw = aioredis.from_url(redis_url)
    await raw.flushall()
    queue = ChunkQueue(raw, KEYS)
    await queue.lead(1)
    uid = str(uuid.uuid4())
    spec = {"tier": "free", "chunkSize": 1,
            "sources": [{"label": "x", "urls": [f"https://img.example/{i}.jpg" for i in range(chunks)]}]}
    await queue.enqueue(make_plan("team", "raced", uid, spec, "file:///tmp/d", {"openverse"}), 1.0)
    registry = Registry()
    ref = registry.observe({"metadata": {"uid": uid, "namespace": "team", "name": "raced",
                                         "creationTimestamp": "2024-01-01T00:00:00Z"}, "spec": spec})
    claimed = await queue.claim(chunks, time.time() + 60, job_slots={})
    return raw, queue, registry, ref, claimed


def held_creator(queue: ChunkQueue, api: client.ApiClient) -> tuple[JobCreator, HeldCreates]:
    creator = JobCreator(OperatorSettings(redis_prefix=KEYS.prefix), queue, api, RunningChunks(queue))
    creator.batch = held = HeldCreates()
    return creator, held


def test_settled_waits_for_a_create_already_sent_when_its_job_is_deleted(redis_url):
    async def main():
        raw, queue, registry, ref, claimed = await claimed_job(redis_url, 1)
        async with client.ApiClient() as api:
            creator, held = held_creator(queue, api)
            creating = asyncio.create_task(creator.create_jobs(claimed, {ref.uid: ref}))
            while not held.sent:
                await asyncio.sleep(0.01)
            registry.forget(ref.uid)
            settled = asyncio.create_task(creator.creating.settled(ref.uid))
            await asyncio.sleep(0.2)
            before_landing = settled.done()
            held.release.set()
            await asyncio.wait_for(settled, 5)
            await creating
        await raw.aclose()
        return before_landing, held.sent

    before_landing, sent = asyncio.run(main())
    assert before_landing is False
    assert len(sent) == 1


def test_a_claim_of_a_job_deleted_before_its_create_gets_no_job(redis_url):
    async def main():
        raw, queue, registry, ref, claimed = await claimed_job(redis_url, 3)
        async with client.ApiClient() as api:
            creator, held = held_creator(queue, api)
            held.release.set()
            registry.forget(ref.uid)
            await creator.create_jobs(claimed, {ref.uid: ref})
            await asyncio.wait_for(creator.creating.settled(ref.uid), 5)
            specs = [await raw.hget(KEYS.chunk(c.chunk_id), "spec") for c in claimed]
        await raw.aclose()
        return held.sent, specs

    sent, specs = asyncio.run(main())
    assert sent == []
    assert specs == [None, None, None]
