"""The composed scheduler cycle on a real Redis, its Kubernetes side stood in for (no Job listed yet,
every namespace served, Jobs recorded instead of created): the claim respects a job's parallelism
and a suspension, the claimed chunks count as running before their Jobs are listed (so the next
cycle claims nothing more of a job at its parallelism), and each job's waiting reason is set."""

from __future__ import annotations

import asyncio
import time
import uuid

import redis.asyncio as aioredis
from kubernetes_asyncio import client

from chunk_worker.contract import Keys
from dataset_operator.job_watch import JobWatch
from dataset_operator.plan import make_plan
from dataset_operator.pod_inspector import PodInspector
from dataset_operator.pod_watch import PodWatch
from dataset_operator.queue import ChunkQueue, Claimed
from dataset_operator.registry import JobRef, Registry
from dataset_operator.scheduler import Scheduler
from dataset_operator.settings import OperatorSettings

KEYS = Keys("sc:")


class EveryNamespaceServed:
    async def missing(self, namespaces: set[str]) -> set[str]:
        return set()


class Recorded:
    def __init__(self) -> None:
        self.claimed: list[Claimed] = []

    async def create_jobs(self, claimed: list[Claimed], refs: dict[str, JobRef]) -> None:
        self.claimed += claimed


def test_a_cycle_claims_within_each_jobs_slots_and_counts_the_claims_as_running(redis_url):
    async def main():
        raw = aioredis.from_url(redis_url)
        await raw.flushall()
        queue = ChunkQueue(raw, KEYS)
        await queue.lead(1)
        registry = Registry()
        specs = {"capped": {"parallelism": 2}, "free": {}, "held": {"suspend": True}}
        uids = {}
        for n, (name, extra) in enumerate(specs.items()):
            uid = uids[name] = str(uuid.uuid4())
            spec = {"tier": "free", "chunkSize": 1, **extra,
                    "sources": [{"label": "x", "urls": [f"https://img.example/{i}.jpg" for i in range(4)]}]}
            await queue.enqueue(make_plan("team", name, uid, spec, "file:///tmp/d", {"openverse"}), 1.0 + n)
            registry.observe({"metadata": {"uid": uid, "namespace": "team", "name": name,
                                           "creationTimestamp": f"2024-01-01T00:00:0{n}Z"}, "spec": spec})
        await raw.hset(KEYS.node("n1"), mapping={"disk_free": 500 * 1024**3, "memory_available": 64 * 1024**3,
                                                 "at": f"{time.time():.3f}"})
        await raw.zadd(KEYS.nodes, {"n1": time.time()})
        async with client.ApiClient() as api:
            scheduler = Scheduler(OperatorSettings(redis_prefix=KEYS.prefix), queue, api, registry,
                                  JobWatch(api, None), PodInspector(api, PodWatch(api, None)))
            scheduler.admitter.identity = EveryNamespaceServed()
            scheduler.creator = recorded = Recorded()
            await scheduler.cycle()
            first = {name: registry.jobs[uid].waiting_reason for name, uid in uids.items()}
            await scheduler.cycle()  # the claims, still without a listed Job, hold the capped job's slots
        await raw.aclose()
        by_name = {name: sorted(c.index for c in recorded.claimed if c.uid == uid) for name, uid in uids.items()}
        running = {name: scheduler.running.indices_of(uid) for name, uid in uids.items()}
        reasons = {name: registry.jobs[uid].waiting_reason for name, uid in uids.items()}
        return by_name, running, first, reasons

    by_name, running, first, reasons = asyncio.run(main())
    assert by_name == {"capped": [0, 1], "free": [0, 1, 2, 3], "held": []}
    assert running == {"capped": {0, 1}, "free": {0, 1, 2, 3}, "held": set()}
    assert first == {"capped": None, "free": None, "held": "Suspended"}
    assert reasons == {"capped": "WaitingForJobParallelism", "free": None, "held": "Suspended"}
