"""The bounded wait on a real Redis, on a simulated clock: a 2,000-chunk free job and a stream of new-user
jobs at quota 2. Bursts of new-user work fill the quota for five times the maximum wait, so during a
burst the free job moves only through promotion, one chunk per wait at most: the new-user jobs wait
at most that many chunk runs longer than with no free job at all (whole-job promotion would make them
wait for all 2,000 chunks), and the free job finishes."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from chunk_worker.contract import ChunkState, Keys
from dataset_operator.plan import JobPlan, make_plan
from dataset_operator.queue import ChunkQueue

KEYS = Keys("aging:")
T0 = 1_760_000_000.0
QUOTA, CHUNK_SECONDS, TICK, MAX_WAIT = 2, 60.0, 30.0, 600.0
BURST, GAP, EVERY = 3000.0, 1000.0, 60.0  # a 2-chunk new-user job every minute during a burst: 2 slots' worth
FREE_CHUNKS = 2000


def plan(chunks: int, tier: str) -> JobPlan:
    spec = {"tier": tier, "chunkSize": 1, "sources": [{"label": "x", "urls": [f"https://img.example/{i}.jpg"
                                                                               for i in range(chunks)]}]}
    return make_plan("team", f"{tier}-{uuid.uuid4().hex[:6]}", str(uuid.uuid4()), spec, "file:///tmp/d", {"openverse"})


@dataclass
class Outcome:
    new_user_waits: list[float] = field(default_factory=list)  # submission to its last chunk's admission, per job
    free_finished_at: float | None = None
    free_promotions: int = 0


async def simulate(redis_url: str, with_free_job: bool) -> Outcome:
    client = aioredis.from_url(redis_url)
    await client.flushall()
    queue, outcome = ChunkQueue(client, KEYS), Outcome()
    running: dict[str, float] = {}  # chunk id -> simulated end
    submitted: dict[str, float] = {}
    admitted: dict[str, float] = {}
    free = plan(FREE_CHUNKS, "free")
    if with_free_job:
        await queue.enqueue(free, T0)
        submitted[free.uid] = T0
    free_done = 0
    now, next_arrival = T0, T0
    try:
        while (free_done < FREE_CHUNKS if with_free_job else now < T0 + 20 * (BURST + GAP)):
            for member, end in list(running.items()):
                if end <= now:
                    await queue.settle(member, ChunkState.SUCCEEDED)
                    del running[member]
                    free_done += member.startswith(free.uid)
            if now >= next_arrival:
                if (now - T0) % (BURST + GAP) < BURST:
                    job = plan(2, "new-user")
                    await queue.enqueue(job, now)
                    submitted[job.uid] = now
                next_arrival += EVERY
            promoted = await queue.promote_waiting(now, MAX_WAIT, submitted, limit=QUOTA)
            outcome.free_promotions += promoted
            for claimed in await queue.claim(QUOTA - len(running), now + 600, {}, now=now):
                running[claimed.chunk_id] = now + CHUNK_SECONDS
                admitted[claimed.uid] = now
            now += TICK
        outcome.free_finished_at = now if with_free_job else None
        pending = set(await queue.queue_ranks())  # jobs with a chunk still queued at the end
        outcome.new_user_waits = [(now if uid in pending else admitted[uid]) - at for uid, at in submitted.items()
                                  if uid != free.uid]
        return outcome
    finally:
        await client.aclose()


def test_new_user_waits_stay_bounded_and_the_free_job_finishes(redis_url):
    alone = asyncio.run(simulate(redis_url, with_free_job=False))
    mixed = asyncio.run(simulate(redis_url, with_free_job=True))
    assert mixed.free_finished_at is not None  # all 2,000 chunks succeeded
    assert mixed.free_promotions > 0, "no burst outlasted the maximum wait: the aging was never exercised"
    promotions_per_burst = BURST // MAX_WAIT
    assert max(mixed.new_user_waits) <= max(alone.new_user_waits) + promotions_per_burst * CHUNK_SECONDS + TICK, (
        max(mixed.new_user_waits), max(alone.new_user_waits))
