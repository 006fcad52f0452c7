"""The chunk queue at scale, on a real redis-server: enqueue of a 10-million-image job, Redis bytes
per queued chunk, and one admission cycle with 100,000 queued chunks across 1,000 jobs.

(Not named queue.py: bench/ goes first on sys.path, and a bench/queue.py would shadow the standard
library's `queue`, which redis-py imports.)

What is timed, exactly:
- enqueue: `ChunkQueue.enqueue` of a 10,000,000-image plan at chunkSize 500 (20,000 chunks, one
  MULTI/EXEC), and `make_plan` separately; a second, idempotent enqueue of the same plan.
- bytes per chunk: INFO used_memory after minus before enqueuing, over the chunks enqueued
  (queue + waiting zsets + the job hash), plus MEMORY USAGE of the zsets alone.
- admission: with 100,000 chunks of 1,000 jobs queued, (1) the pure decision (`admission.job_slots`
  over 1,000 jobs + `admission.decide`), (2) `ChunkQueue.claim` of 35 under per-job caps for 100 jobs
  (50 suspended, 50 with one slot left), (3) the same claim when 990 jobs are suspended (the Lua
  scan walks to its 20,000-entry limit), and (4) `Scheduler.cycle` with its two API calls (list
  Jobs, create Jobs) left out, so everything else a cycle does in Redis is in. Medians of several
  runs; the claimed chunks are put back between runs, untimed.
- dedup keys: before the admission part, every job also gets the dedup keys a real job has once it
  kept `--dedup-images` images (the sha hash and one phash band set per band, the names and member
  shapes `chunk_worker.dedup` writes), so a periodic path that walked the keyspace would pay for
  them; their bytes per kept image are printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from kubernetes_asyncio import client as k8s
from redis.utils import HIREDIS_AVAILABLE

from chunk_worker.contract import Keys
from chunk_worker.dedup import DEFAULT_TTL_SECONDS, bands
from dataset_operator import admission
from dataset_operator.plan import JobPlan, make_plan
from dataset_operator.queue import ChunkQueue, Claimed
from dataset_operator.registry import JobRef, Registry
from dataset_operator.planner import Planner
from dataset_operator.job_watch import JobWatch
from dataset_operator.pod_inspector import PodInspector
from dataset_operator.pod_watch import PodWatch
from dataset_operator.running_chunks import LiveJobs
from dataset_operator.scheduler import Scheduler
from dataset_operator.status_writer import StatusWriter
from dataset_operator.settings import OperatorSettings
from localservices import RedisServer

BIG_IMAGES = 10_000_000
CHUNK_SIZE = 500
JOBS = 1_000
CHUNKS_PER_JOB = 100
QUOTA = 35
CAPPED_JOBS = 100
DEDUP_IMAGES = 50  # kept images per job whose dedup keys are present
DEDUP_BATCH = 2_000
RUNS = 15
GOAL_CYCLE_MS = 100.0
GOAL_STATUS_MS = 1000.0
GOAL_BYTES_PER_CHUNK = 300.0
TIERS = ("new-user", "enterprise", "free")


def plan_for(uid: str, name: str, images: int, tier: str) -> JobPlan:
    spec = {"tier": tier, "chunkSize": CHUNK_SIZE, "maxImages": images,
            "sources": [{"label": "any", "urlList": {"url": f"https://lists.example/{name}.txt", "count": images}}]}
    return make_plan("bench", name, uid, spec, "file:///tmp/bench-datasets", {"openverse"})


async def used_memory(redis: aioredis.Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def zset_bytes(redis: aioredis.Redis, keys: Keys) -> int:
    return sum([int(await redis.memory_usage(key, samples=0) or 0) for key in (keys.queue, keys.waiting, keys.promoted)])


def median_ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1000:.1f} ms (min {min(samples) * 1000:.1f}, " \
           f"max {max(samples) * 1000:.1f}, n={len(samples)})"


def verdict(value: float, goal: float, lower_is_better: bool = True) -> str:
    met = value <= goal if lower_is_better else value >= goal
    return f"{value / goal:.2f}x the goal of {goal:g}: {'met' if met else 'MISSED'}"


async def server_cpu(redis: aioredis.Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def enqueue_big_job(redis: aioredis.Redis, runs: int = 3) -> None:
    """`runs` separate 10M-image jobs, each into an empty keyspace; memory is read around the first."""
    walls, cpus, servers, repeats = [], [], [], []
    per_chunk = zsets = 0.0
    for run in range(runs):
        keys = Keys(f"big{run}:")
        queue = ChunkQueue(redis, keys)
        started = time.perf_counter()
        plan = plan_for(str(uuid.uuid4()), "ten-million", BIG_IMAGES, "free")
        planned = time.perf_counter() - started
        before, server_before = await used_memory(redis), await server_cpu(redis)
        started, cpu = time.perf_counter(), time.process_time()
        added = await queue.enqueue(plan, time.time())
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
        servers.append(await server_cpu(redis) - server_before)
        if run == 0:
            per_chunk = (await used_memory(redis) - before) / added
            zsets = await zset_bytes(redis, keys) / added
        started = time.perf_counter()
        again = await queue.enqueue(plan, time.time())
        repeats.append(time.perf_counter() - started)
        assert again == 0, "a repeated enqueue added chunks"
    print(f"enqueue: {BIG_IMAGES:,} images at chunkSize {CHUNK_SIZE} -> {added:,} chunks "
          f"(make_plan {planned * 1000:.1f} ms)")
    print(f"  ChunkQueue.enqueue wall {median_ms(walls)} = {added / statistics.median(walls):,.0f} chunks/s; "
          f"operator CPU median {statistics.median(cpus) * 1000:.0f} ms, redis-server CPU median "
          f"{statistics.median(servers) * 1000:.0f} ms; idempotent re-enqueue {median_ms(repeats)} (0 added)")
    print(f"redis memory, one {added:,}-chunk job: {per_chunk:.0f} B per queued chunk (used_memory delta, job hash "
          f"included), zsets alone {zsets:.0f} B -> {verdict(per_chunk, GOAL_BYTES_PER_CHUNK)}")


async def fill(redis: aioredis.Redis, queue: ChunkQueue, keys: Keys) -> tuple[list[JobPlan], float]:
    """1,000 jobs of 100 chunks, a third in each tier, submitted a second apart."""
    submitted = time.time() - JOBS
    plans = [plan_for(str(uuid.uuid4()), f"job-{n:04d}", CHUNKS_PER_JOB * CHUNK_SIZE, TIERS[n % 3])
             for n in range(JOBS)]
    before = await used_memory(redis)
    for n, plan in enumerate(plans):
        await queue.enqueue(plan, submitted + n)
    after = await used_memory(redis)
    chunks = await queue.queued_count()
    per_chunk = (after - before) / chunks
    print(f"redis memory, {JOBS:,} jobs x {CHUNKS_PER_JOB} chunks: {per_chunk:.0f} B per queued chunk "
          f"(used_memory delta {(after - before) / 1024 / 1024:.2f} MiB for {chunks:,} chunks, job hashes included), "
          f"zsets alone {await zset_bytes(redis, keys) / chunks:.0f} B -> "
          f"{verdict(per_chunk, GOAL_BYTES_PER_CHUNK)}")
    return plans, submitted


def registry_of(plans: list[JobPlan], capped: dict[str, int | None], suspended: set[str], submitted: float) -> Registry:
    registry = Registry()
    for n, plan in enumerate(plans):
        spec: dict[str, object] = {"tier": plan.tier, "suspend": plan.uid in suspended}
        if capped.get(plan.uid) is not None:
            spec["parallelism"] = capped[plan.uid]
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(submitted + n))
        registry.jobs[plan.uid] = JobRef(plan.uid, "bench", plan.job.split("/")[1], spec, {}, 1, created)
    return registry


async def put_back(queue: ChunkQueue, claimed: list[Claimed], tiers: dict[str, str],
                   submitted: dict[str, float]) -> None:
    for item in claimed:
        await queue.release(item, tiers[item.uid], submitted[item.uid])


async def timed_runs(run: Callable[[], Awaitable[list[Claimed]]], undo: Callable[[list[Claimed]], Awaitable[None]],
                     runs: int = RUNS) -> tuple[list[float], int]:
    samples, claimed_count = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        claimed = await run()
        samples.append(time.perf_counter() - started)
        claimed_count = len(claimed)
        await undo(claimed)
    return samples, claimed_count


class _EveryNamespaceServed:
    """The worker ServiceAccount check (an API read per namespace) left out: every namespace has it."""

    async def missing(self, namespaces: set[str]) -> set[str]:
        return set()


class _Kept:
    """Stands in for the Job creation: the claimed chunks are kept, not created."""

    def __init__(self) -> None:
        self.claimed: list[Claimed] = []

    async def create_jobs(self, claimed: list[Claimed], refs: dict[str, JobRef]) -> None:
        self.claimed = claimed


async def fill_dedup(redis: aioredis.Redis, keys: Keys, plans: list[JobPlan]) -> None:
    """What `chunk_worker.dedup`'s claim script leaves for DEDUP_IMAGES kept images of every job, written
    in bulk: the sha hash (sha256 -> owner) and a set per phash band ("<phash hex>:<owner>")."""
    rng = random.Random(13)
    before, written = await used_memory(redis), 0
    async with redis.pipeline(transaction=False) as pipe:
        for plan in plans:
            for image in range(DEDUP_IMAGES):
                owner = f"{image // CHUNK_SIZE}:{image}"
                phash = rng.getrandbits(64)
                pipe.hset(keys.job_sha(plan.uid), f"{rng.getrandbits(256):064x}", owner)
                for band, value in bands(phash):
                    pipe.sadd(keys.job_phash_band(plan.uid, band, value), f"{phash:016x}:{owner}")
                    pipe.expire(keys.job_phash_band(plan.uid, band, value), DEFAULT_TTL_SECONDS)
                written += 1
                if written % DEDUP_BATCH == 0:
                    await pipe.execute()
            pipe.expire(keys.job_sha(plan.uid), DEFAULT_TTL_SECONDS)
        await pipe.execute()
    grown = await used_memory(redis) - before
    print(f"dedup keys: {written:,} kept images ({DEDUP_IMAGES} per job) -> {await redis.dbsize():,} keys in all; "
          f"{grown / max(written, 1):.0f} B per kept image (sha hash entry + {len(bands(0))} band-set members)")


class RedisSideScheduler(Scheduler):
    """The real cycle with its API calls left out: no Jobs listed, no ServiceAccount read, claimed
    chunks not created."""

    def __init__(self, settings: OperatorSettings, queue: ChunkQueue, api: k8s.ApiClient, registry: Registry) -> None:
        super().__init__(settings, queue, api, registry, JobWatch(api, None), PodInspector(api, PodWatch(api, None)))
        self.admitter.identity = _EveryNamespaceServed()
        self.creator = _Kept()

    @property
    def claimed(self) -> list[Claimed]:
        return self.creator.claimed

    async def list_jobs(self) -> LiveJobs:
        return LiveJobs()


async def admission_cycle(redis: aioredis.Redis) -> None:
    keys = Keys("cyc:")
    queue = ChunkQueue(redis, keys)
    plans, submitted_base = await fill(redis, queue, keys)
    await fill_dedup(redis, keys, plans)
    await queue.lead(1)
    tiers = {plan.uid: plan.tier for plan in plans}
    submitted = {plan.uid: submitted_base + n for n, plan in enumerate(plans)}
    head = [plan.uid for plan in plans if plan.tier == "new-user"][:CAPPED_JOBS]  # the first in queue order
    suspended = set(head[: CAPPED_JOBS // 2])
    parallelism: dict[str, int | None] = {uid: None for uid in tiers}
    parallelism.update({uid: 1 for uid in head[CAPPED_JOBS // 2:]})
    running_by_job: dict[str, int] = {}
    capacity = admission.Capacity(slots=1_000, limited_by="disk", from_reports=True)
    queued = await redis.zcard(keys.queue)
    print(f"admission: {queued:,} chunks of {JOBS:,} jobs queued; claim of {QUOTA} with caps for {CAPPED_JOBS} jobs "
          f"({len(suspended)} suspended, {CAPPED_JOBS - len(suspended)} with parallelism 1), "
          f"the capped ones at the head of the queue")

    def decide() -> tuple[admission.Decision, dict[str, int]]:
        slots = admission.job_slots(parallelism, running_by_job, suspended)
        return admission.decide(QUOTA, sum(running_by_job.values()), capacity, queued), slots

    pure = []
    for _ in range(RUNS * 10):
        started = time.perf_counter()
        decision, slots = decide()
        pure.append(time.perf_counter() - started)
    print(f"  pure decision (job_slots over {JOBS:,} jobs + decide): {median_ms(pure)}; admits {decision.admit}")

    async def claim() -> list[Claimed]:
        return await queue.claim(QUOTA, time.time() + 120, slots)

    async def undo(claimed: list[Claimed]) -> None:
        await put_back(queue, claimed, tiers, submitted)

    claims, count = await timed_runs(claim, undo)
    cycle = [p + c for p, c in zip(pure, claims)]
    print(f"  ChunkQueue.claim: {median_ms(claims)}; claimed {count}")
    print(f"  decision + claim: median {statistics.median(cycle) * 1000:.1f} ms -> "
          f"{verdict(statistics.median(cycle) * 1000, GOAL_CYCLE_MS)}")

    last = max(tiers, key=lambda uid: (TIERS.index(tiers[uid]), submitted[uid]))

    async def claim_sparse() -> list[Claimed]:
        return await queue.claim(QUOTA, time.time() + 120, {uid: 0 for uid in tiers if uid != last})

    sparse, count = await timed_runs(claim_sparse, undo)
    print(f"  worst case, every job suspended but the last in queue order (the Lua scan stops at its 20,000-entry "
          f"limit): ChunkQueue.claim {median_ms(sparse)}; claimed {count}")

    settings = OperatorSettings(max_concurrent_chunks=QUOTA, redis_prefix=keys.prefix)
    await redis.hset(keys.node("bench-node"), mapping={"disk_free": 500 * 1024**3, "memory_available": 64 * 1024**3,
                                                       "at": f"{time.time() + 3600:.3f}"})
    await redis.zadd(keys.nodes, {"bench-node": time.time() + 3600})
    api = k8s.ApiClient()
    try:
        scheduler = RedisSideScheduler(settings, queue, api, registry_of(plans, parallelism, suspended,
                                                                          submitted_base))

        async def cycle() -> list[Claimed]:
            await scheduler.cycle()
            return scheduler.claimed

        await cycle()
        await undo(scheduler.claimed)
        full, count = await timed_runs(cycle, undo, runs=7)
        print(f"  Scheduler.cycle without its API calls (list Jobs, create Jobs): {median_ms(full)}; claimed {count} "
              f"-> {verdict(statistics.median(full) * 1000, GOAL_CYCLE_MS)}")
        await cycle_breakdown(queue)
        await status_pass(settings, queue, api, scheduler)
    finally:
        await api.close()


class _Recorded:
    """Stands in for the API calls a status pass makes (status patches, events), counting them."""

    def __init__(self) -> None:
        self.calls = 0

    async def patch_namespaced_custom_object_status(self, *args: object, **kwargs: object) -> None:
        self.calls += 1

    async def create_namespaced_event(self, *args: object, **kwargs: object) -> None:
        self.calls += 1


async def status_pass(settings: OperatorSettings, queue: ChunkQueue, api: k8s.ApiClient, scheduler: Scheduler) -> None:
    """One StatusWriter.cycle over every job with its API calls recorded instead of made: the first
    pass writes every job's status, the next ones (nothing changed) write none."""
    writer = StatusWriter(settings, queue, api, scheduler.registry, scheduler.running, Planner(settings, queue, None),
                          scheduler.outcomes.inspector)
    writer.custom = writer.core = _Recorded()
    passes = []
    for _ in range(5):
        started = time.perf_counter()
        await writer.cycle()
        passes.append(time.perf_counter() - started)
    steady = statistics.median(passes[2:])
    print(f"  status writer, one pass over {len(scheduler.registry.jobs):,} jobs: first {passes[0] * 1000:.0f} ms "
          f"(every status written: {writer.custom.calls:,} API calls recorded), second {passes[1] * 1000:.0f} ms "
          f"(every status rebuilt, none changed), then median {steady * 1000:.0f} ms (nothing changed) "
          f"-> {verdict(steady * 1000, GOAL_STATUS_MS)}")


async def cycle_breakdown(queue: ChunkQueue) -> None:
    """The status writer's walk over the whole queue (it runs every status interval in the same
    event loop as the scheduler)."""
    ranks = []
    for _ in range(5):
        started = time.perf_counter()
        await queue.queue_ranks()
        ranks.append(time.perf_counter() - started)
    print(f"  status writer, ChunkQueue.queue_ranks over all {await queue.queued_count():,} "
          f"queued chunks: {median_ms(ranks)} (hiredis parser: {'yes' if HIREDIS_AVAILABLE else 'no'})")


async def run() -> None:
    with RedisServer() as server:
        redis = aioredis.from_url(server.url)
        try:
            await enqueue_big_job(redis)
            await redis.flushall()
            await admission_cycle(redis)
        finally:
            await redis.aclose()


def main() -> None:
    global JOBS, CHUNKS_PER_JOB, DEDUP_IMAGES
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=JOBS, help=f"DatasetJobs in the admission part (default {JOBS:,})")
    parser.add_argument("--chunks-per-job", type=int, default=CHUNKS_PER_JOB,
                        help=f"queued chunks of each (default {CHUNKS_PER_JOB})")
    parser.add_argument("--dedup-images", type=int, default=DEDUP_IMAGES,
                        help=f"kept images per job whose dedup keys are present (default {DEDUP_IMAGES})")
    args = parser.parse_args()
    JOBS, CHUNKS_PER_JOB, DEDUP_IMAGES = args.jobs, args.chunks_per_job, args.dedup_images
    asyncio.run(run())


if __name__ == "__main__":
    main()
