"""Recovering chunks whose Job vanished, on a real Redis: the candidates come from the `running`
index, a chunk whose worker recorded `done` is settled as succeeded, others are retried, and the
index empties as they settle."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis
from kubernetes_asyncio import client

from chunk_worker.contract import ChunkField, Keys
from dataset_operator.plan import make_plan
from dataset_operator.queue import ChunkQueue
from dataset_operator.recovery import Recovery
from dataset_operator.registry import Registry
from dataset_operator.running_chunks import RunningChunks

KEYS = Keys("co:")


def run_recovery(redis_url: str, outcomes_recorded: dict[int, str | None], listed_indices: set[int]):
    """Three chunks claimed and seen live; the worker recorded `outcomes_recorded`; only the Jobs of
    `listed_indices` are still listed. Returns (done, delayed members, running index)."""
    async def main():
        raw = aioredis.from_url(redis_url)
        await raw.flushall()
        queue = ChunkQueue(raw, KEYS)
        uid = str(uuid.uuid4())
        spec = {"tier": "free", "chunkSize": 1, "retries": {"maxAttempts": 3},
                "sources": [{"label": "x", "urls": [f"https://img.example/{i}.jpg" for i in range(3)]}]}
        await queue.enqueue(make_plan("team", "cats", uid, spec, "file:///tmp/d", {"openverse"}), 1.0)
        registry = Registry()
        registry.observe({"metadata": {"uid": uid, "namespace": "team", "name": "cats"}, "spec": spec})
        claimed = await queue.claim(3, 9e9, {})
        await queue.mark_running([c.chunk_id for c in claimed], 2.0)
        for c in claimed:
            if outcomes_recorded.get(c.index):
                await raw.hset(KEYS.chunk(c.chunk_id), ChunkField.OUTCOME, outcomes_recorded[c.index])
        async with client.ApiClient() as api:
            recovery = Recovery(queue, api, registry, RunningChunks(queue))
            await recovery.recover_orphans({c.chunk_id for c in claimed if c.index in listed_indices})
        done = {int(i) for i in await raw.smembers(KEYS.job_done(uid))}
        delayed = {m.decode() for m in await raw.zrange(KEYS.delayed, 0, -1)}
        running = await queue.running()
        await raw.aclose()
        return done, {int(m.rsplit("-", 1)[1]) for m in delayed}, {int(m.rsplit("-", 1)[1]) for m in running}
    return asyncio.run(main())


def test_a_vanished_job_whose_worker_finished_is_settled_as_succeeded(redis_url):
    done, delayed, running = run_recovery(redis_url, {0: "done"}, listed_indices={1, 2})
    assert (done, delayed, running) == ({0}, set(), {1, 2})


def test_a_vanished_job_without_an_outcome_is_retried(redis_url):
    done, delayed, running = run_recovery(redis_url, {}, listed_indices={0, 2})
    assert (done, delayed, running) == (set(), {1}, {0, 2})


def test_chunks_whose_jobs_are_still_listed_are_left_alone(redis_url):
    assert run_recovery(redis_url, {0: "done"}, listed_indices={0, 1, 2}) == (set(), set(), {0, 1, 2})
