"""The chunk queue in Redis: enqueue a planned job, claim the top chunks, settle finished chunks,
retry with backoff, promote chunks of jobs that waited too long.

Every multi-key change is one Lua script (queue_scripts.py) or one MULTI/EXEC, so a crash between two
steps never leaves a chunk both queued and admitted, or counted twice. Every change is fenced by the
leader epoch the queue was given with `lead()`: a deposed leader's writes are refused (StaleFence)
once a newer leader has written, whatever Redis lost in between.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain, islice
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError, WatchError

from chunk_worker.contract import COUNTERS, LIST_COUNTS, ChunkField, ChunkState, Keys, ListCounts, chunk_id
from dataset_operator import capacity, priority, queue_scripts
from dataset_operator.plan import JobPlan, OutlineFields

ENQUEUE_BATCH = 5000
PLAN = "plan"  # fields of the job hash
SUBMITTED_AT = "submitted_at"
TIER = "tier"
FINALIZE_ATTEMPT = "finalize_attempt"
FINALIZE_NOT_BEFORE = "finalize_not_before"
LIST_COUNT_ATTEMPT = "list_count_attempt"
LAST_FAILURE = "last_failure"
SCAN_BATCH = 1000
POSITION_LIMIT = 20_000
"""Queue entries the status writer walks for positions (as many as a claim looks at)."""
PROGRESS_BATCH = 500

@dataclass(frozen=True)
class JobProgress:
    """What Redis holds of one planned job's progress, for its status."""

    done: set[int]
    failed: set[int]
    settled: dict[str, int]  # counters of settled chunks
    live: list[dict[str, int]]  # counters of each running chunk asked for
    last_failure: dict[str, Any] | None


@dataclass(frozen=True)
class Claimed:
    chunk_id: str
    uid: str
    index: int
    attempt: int


def _json_or_none(value: str | bytes | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def _batches(items: Iterable[Any], size: int = SCAN_BATCH) -> Iterator[list[Any]]:
    """Lists of `size`, taken as they are needed: a generator of names is never held whole."""
    stream = iter(items)
    while batch := list(islice(stream, size)):
        yield batch


def split_chunk_id(member: str | bytes) -> tuple[str, int]:
    """`<job uid>-<index>`: the index is after the last dash (uids have dashes; indices may pass 99999)."""
    uid, _, index = text(member).rpartition("-")
    return uid, int(index)


def text(value: str | bytes | None) -> str | None:
    """Redis answers bytes unless the client decodes; both read as text here."""
    return value.decode() if isinstance(value, bytes) else value


PLAN_CACHE = 512
"""Parsed plans kept in memory: one is ~7 KB parsed, so 10,000 kept would take ~75 MB."""


@dataclass(frozen=True, slots=True)
class PlanOutline:
    """The few facts of a plan a status pass reads for every job, without the parsed plan."""

    chunk_count: int
    output: str
    format: str

    @classmethod
    def of(cls, plan: JobPlan | OutlineFields) -> PlanOutline:
        return cls(plan.chunk_count, plan.output, plan.format)


class StaleFence(RuntimeError):
    """A newer leader has written to the queue: this process no longer leads and must stop."""


class ChunkQueue:
    def __init__(self, client: aioredis.Redis, keys: Keys, epoch: int = 0) -> None:
        self._client = client  # private: the keyspace is this class's, reached only through its methods
        self._keys = keys
        self.epoch = epoch
        self._scripts = {name: client.register_script(getattr(queue_scripts, name))
                         for name in ("FENCE", "CLAIM", "SETTLE", "RETRY_LATER", "RELEASE",
                                      "PROGRESS", "FIELD_OF_EACH")}
        self._plans: OrderedDict[str, JobPlan] = OrderedDict()  # least recently used first
        self._outlines: dict[str, PlanOutline] = {}

    async def lead(self, epoch: int) -> int:
        """A new term writes under `epoch` from now on, and raises the fence to it at once: writes of
        any older leader are refused from here on. Answers the fence (above `epoch`: StaleFence)."""
        self.epoch = epoch
        return int(await self._run("FENCE", [], []))

    async def _run(self, script: str, keys: list[str], args: list[object]) -> Any:
        try:
            return await self._scripts[script](keys=[self._keys.fence, *keys], args=[self.epoch, *args])
        except ResponseError as exc:
            if str(exc).startswith(queue_scripts.STALE_FENCE):
                raise StaleFence(f"epoch {self.epoch} is fenced off: {exc}") from exc
            raise

    async def _write(self, build: Callable[[Pipeline], object]) -> list[Any]:
        """One MULTI/EXEC of the commands `build` queues, run only if the fence is not above this
        queue's epoch and did not move meanwhile (WATCH): the scripts' guarantee, for plain commands.
        Answers the commands' results."""
        async with self._client.pipeline(transaction=True) as pipe:
            await pipe.watch(self._keys.fence)
            fence = int(await pipe.get(self._keys.fence) or 0)
            if self.epoch < fence:
                raise StaleFence(f"epoch {self.epoch} is fenced off: fence {fence}")
            pipe.multi()
            if self.epoch > fence:
                pipe.set(self._keys.fence, self.epoch)
            build(pipe)
            try:
                results = await pipe.execute()
            except WatchError as exc:
                raise StaleFence(f"the fence moved during a write of epoch {self.epoch}") from exc
        return results[1:] if self.epoch > fence else results

    async def enqueue(self, plan: JobPlan, submitted_at: float, skip: set[int] | frozenset[int] = frozenset()) -> int:
        """Idempotent: a second call adds nothing already there. `skip` holds chunks that already finished
        (from the DatasetJob's status), so a queue rebuilt after Redis lost its data never re-runs them."""
        keys = self._keys
        members = [
            (chunk_id(plan.uid, index), priority.score(plan.tier, index, submitted_at))
            for index in range(plan.chunk_count)
            if index not in skip
        ]
        self.forget_plan(plan.uid)  # the next load reads whichever plan Redis kept

        def build(pipe: Pipeline) -> None:
            pipe.hsetnx(keys.job(plan.uid), PLAN, plan.model_dump_json())
            pipe.hsetnx(keys.job(plan.uid), SUBMITTED_AT, f"{submitted_at:.3f}")
            pipe.hset(keys.job(plan.uid), TIER, plan.tier)
            pipe.zadd(keys.waiting, {plan.uid: submitted_at}, nx=True)
            for start in range(0, len(members), ENQUEUE_BATCH):
                pipe.zadd(keys.queue, dict(members[start:start + ENQUEUE_BATCH]), nx=True)
        return sum((await self._write(build))[4:])

    async def progress(self, jobs: list[tuple[str, Sequence[str]]],
                       known: dict[str, JobProgress] | None = None) -> dict[str, JobProgress | None]:
        """Every job's progress (None: no plan in Redis, so it lost the job), `jobs` being (uid, running
        chunk ids) pairs, in one round trip per PROGRESS_BATCH jobs whatever their number. The sets of
        finished chunks are read again only for jobs whose set sizes changed since `known`, the
        previous answer, so a pass over quiet jobs moves counters, not every finished index."""
        known = known or {}
        found: dict[str, JobProgress | None] = {}
        fields = [SUBMITTED_AT, *COUNTERS, LAST_FAILURE]
        live_counters = await self._chunk_counters([member for _, live in jobs for member in live])
        for start in range(0, len(jobs), PROGRESS_BATCH):
            batch = jobs[start:start + PROGRESS_BATCH]
            keys = [key for uid, _ in batch
                    for key in (self._keys.job(uid), self._keys.job_done(uid), self._keys.job_failed(uid))]
            rows = await self._scripts["PROGRESS"](keys=keys, args=fields)
            stale = []
            for (uid, live), (job, done_size, failed_size) in zip(batch, rows):
                chunks = [live_counters[member] for member in live]
                if job[0] is None:  # submitted_at is written with the plan
                    found[uid] = None
                    continue
                previous = known.get(uid)
                fresh = previous is not None and (len(previous.done), len(previous.failed)) == (done_size, failed_size)
                read = JobProgress(
                    done=previous.done if fresh else set(), failed=previous.failed if fresh else set(),
                    settled={name: int(value or 0) for name, value in zip(COUNTERS, job[1:])},
                    live=[{name: int(value or 0) for name, value in zip(COUNTERS, values)} for values in chunks],
                    last_failure=_json_or_none(job[-1]))
                found[uid] = previous if fresh and read == previous else read  # quiet jobs leave the GC nothing new
                if not fresh and (done_size or failed_size):
                    stale.append(uid)
            if stale:
                async with self._client.pipeline(transaction=False) as pipe:
                    for uid in stale:
                        pipe.smembers(self._keys.job_done(uid))
                        pipe.smembers(self._keys.job_failed(uid))
                    sets = iter(await pipe.execute())
                for uid in stale:
                    found[uid].done.update(int(v) for v in next(sets))
                    found[uid].failed.update(int(v) for v in next(sets))
        return found

    async def _chunk_counters(self, chunk_ids: list[str]) -> dict[str, list[Any]]:
        """The counters of the running chunks (a few dozen at most: the quota), in one round trip."""
        if not chunk_ids:
            return {}
        async with self._client.pipeline(transaction=False) as pipe:
            for member in chunk_ids:
                pipe.hmget(self._keys.chunk(member), [ChunkField.counter(name) for name in COUNTERS])
            return dict(zip(chunk_ids, await pipe.execute()))

    async def list_counts(self, uid: str) -> ListCounts | None:
        """The list-count Job's answer, if it has given one."""
        raw = await self._client.hget(self._keys.job(uid), LIST_COUNTS)
        return None if raw is None else ListCounts.model_validate_json(raw)

    async def list_count_attempt(self, uid: str) -> int:
        return int(await self._client.hget(self._keys.job(uid), LIST_COUNT_ATTEMPT) or 1)

    async def next_list_count_attempt(self, uid: str, attempt: int) -> None:
        """The next list-count Job gets a new name, and the last answer goes."""
        def build(pipe: Pipeline) -> None:
            pipe.hset(self._keys.job(uid), LIST_COUNT_ATTEMPT, attempt)
            pipe.hdel(self._keys.job(uid), LIST_COUNTS)
        await self._write(build)

    async def finalize_attempt(self, uid: str) -> tuple[int, float]:
        """The finalize Job's current attempt (from 1) and the time before which it must not start."""
        attempt, not_before = await self._client.hmget(self._keys.job(uid), [FINALIZE_ATTEMPT, FINALIZE_NOT_BEFORE])
        return int(attempt or 1), float(not_before or 0)

    async def retry_finalize(self, uid: str, attempt: int, not_before: float) -> None:
        await self._write(lambda pipe: pipe.hset(self._keys.job(uid), mapping={
            FINALIZE_ATTEMPT: attempt, FINALIZE_NOT_BEFORE: f"{not_before:.3f}"}))

    async def has_job(self, uid: str) -> bool:
        return bool(await self._client.hexists(self._keys.job(uid), PLAN))

    async def tier_of(self, uid: str) -> str | None:
        """The tier the job's chunks are queued under (its spec may have changed since)."""
        value = await self._client.hget(self._keys.job(uid), TIER)
        return value.decode() if isinstance(value, bytes) else value

    async def load_plan(self, uid: str) -> JobPlan | None:
        """A plan never changes once stored, so a parsed one is kept for the next call, up to
        PLAN_CACHE of them (an inline-URL plan can be large; the jobs being admitted stay in).
        `has_job` asks Redis."""
        plan = self._plans.get(uid)
        if plan is not None:
            self._plans.move_to_end(uid)
            return plan
        raw = await self._client.hget(self._keys.job(uid), PLAN)
        if raw is None:
            return None
        plan = self._plans[uid] = JobPlan.model_validate_json(raw)
        if len(self._plans) > PLAN_CACHE:
            self._plans.popitem(last=False)
        self._outlines[uid] = PlanOutline.of(plan)
        return plan

    async def read_outlines(self, uids: Iterable[str]) -> dict[str, PlanOutline | None]:
        """What the status writer needs of each plan (None: no plan in Redis), kept for every job (about
        200 B each); those not yet kept are read PROGRESS_BATCH jobs per command, so the first status
        pass after a start does not wait on one read per job."""
        wanted = list(uids)
        missing = [uid for uid in wanted if uid not in self._outlines]
        for start in range(0, len(missing), PROGRESS_BATCH):
            batch = missing[start:start + PROGRESS_BATCH]
            raws = await self._scripts["FIELD_OF_EACH"](keys=[self._keys.job(uid) for uid in batch], args=[PLAN])
            for uid, raw in zip(batch, raws):
                if raw is not None:
                    self._outlines[uid] = PlanOutline.of(OutlineFields.model_validate_json(raw))
        return {uid: self._outlines.get(uid) for uid in wanted}

    def forget_plan(self, uid: str) -> None:
        self._plans.pop(uid, None)
        self._outlines.pop(uid, None)

    async def claim(self, n: int, admit_deadline: float, job_slots: dict[str, int], scan_limit: int = 20_000,
                    only_listed: bool = False, now: float | None = None) -> list[Claimed]:
        """Pops up to n chunks from the top, skipping jobs with no slot left (and, with `only_listed`,
        jobs `job_slots` does not name: ones this leader does not know or that are being deleted)."""
        if n <= 0:
            return []
        args: list[object] = [n, f"{time.time() if now is None else now:.3f}", f"{admit_deadline:.3f}", scan_limit,
                              self._keys.chunk(""), "1" if only_listed else "0"]
        for uid, slots in job_slots.items():
            args += [uid, max(slots, 0)]
        keys = self._keys
        flat = await self._run("CLAIM", [keys.queue, keys.admitted, keys.waiting, keys.promoted], args)
        claimed = []
        for member, attempt in zip(flat[0::2], flat[1::2]):
            uid, index = split_chunk_id(member)
            claimed.append(Claimed(text(member), uid, index, int(attempt)))
        return claimed

    async def release(self, claimed: Claimed, tier: str, submitted_at: float) -> bool:
        score = priority.score(tier, claimed.index, submitted_at)
        keys = self._keys
        return bool(await self._run("RELEASE", [keys.chunk(claimed.chunk_id), keys.admitted, keys.queue, keys.waiting],
                                    [claimed.chunk_id, score, f"{time.time():.3f}", claimed.uid]))

    async def keep_attempt(self, member: str, attempt: int) -> None:
        """A chunk record lost with Redis gets its Job's attempt back, so the next claim does not reuse
        that Job's name."""
        await self._write(lambda pipe: pipe.hsetnx(self._keys.chunk(member), ChunkField.ATTEMPT, attempt))

    async def restore_settled(self, uid: str, done: set[int], failed: set[int], counters: dict[str, int]) -> None:
        """What a DatasetJob's status recorded of its settled chunks, put back after Redis lost it."""
        def build(pipe: Pipeline) -> None:
            if done:
                pipe.sadd(self._keys.job_done(uid), *done)
            if failed:
                pipe.sadd(self._keys.job_failed(uid), *failed)
            if counters:
                pipe.hset(self._keys.job(uid), mapping=counters)
        await self._write(build)

    async def set_spec(self, member: str, spec_json: str, k8s_job: str) -> None:
        await self._write(lambda pipe: pipe.hset(self._keys.chunk(member), mapping={
            ChunkField.SPEC: spec_json, ChunkField.K8S_JOB: k8s_job}))

    async def chunk_fields(self, members: list[str], fields: list[str]) -> list[list[str | None]]:
        """The same fields of many chunk records, in one round trip (the values as text, None where
        unset), in the order of `members`."""
        if not members:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for member in members:
                pipe.hmget(self._keys.chunk(member), fields)
            found = await pipe.execute()
        return [[text(value) for value in values] for values in found]

    async def chunk_record(self, member: str, fields: list[str]) -> list[str | None]:
        """Some fields of one chunk record (as text, None where unset)."""
        return [text(value) for value in await self._client.hmget(self._keys.chunk(member), fields)]

    async def settle(self, member: str, state: ChunkState) -> bool:
        """Records a chunk's end (succeeded or failed for good) once; folds its counters into the job."""
        uid, index = split_chunk_id(member)
        keys = self._keys
        target = keys.job_done(uid) if state is ChunkState.SUCCEEDED else keys.job_failed(uid)
        return bool(await self._run(
            "SETTLE", [keys.chunk(member), keys.job(uid), target, keys.admitted, keys.delayed, keys.queue, keys.running],
            [state.value, member, index, f"{time.time():.3f}", *COUNTERS]))

    async def retry_later(self, member: str, retry_at: float, message: str) -> bool:
        keys = self._keys
        return bool(await self._run("RETRY_LATER", [keys.chunk(member), keys.admitted, keys.delayed, keys.running],
                                    [member, f"{retry_at:.3f}", message[:500]]))

    async def record_failure(self, member: str, attempt: int, reason: str, message: str) -> None:
        """The job's latest failed attempt, kept with the job's totals so any leader shows it."""
        uid, index = split_chunk_id(member)
        when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        record = json.dumps({"chunk": index, "attempt": attempt, "reason": reason, "message": message[:1000],
                             "time": when})
        await self._write(lambda pipe: pipe.hset(self._keys.job(uid), LAST_FAILURE, record))

    async def requeue_due(self, now: float, tiers: dict[str, str], submitted: dict[str, float]) -> int:
        """Delayed chunks whose backoff is over go back to the queue at their usual place."""
        due = await self._client.zrangebyscore(self._keys.delayed, "-inf", now, start=0, num=1000)
        if not due:
            return 0

        def build(pipe: Pipeline) -> None:
            for member in due:
                uid, index = split_chunk_id(member)
                pipe.zrem(self._keys.delayed, member)
                if uid in tiers:  # a job this leader does not know (deleted) has its retry dropped
                    pipe.zadd(self._keys.queue, {member: priority.score(tiers[uid], index, submitted[uid])})
                    pipe.zadd(self._keys.waiting, {uid: now}, nx=True)
        await self._write(build)
        return len(due)

    async def promote_waiting(self, now: float, max_wait: float, submitted: dict[str, float],
                              limit: int = 100) -> int:
        """Aging per job, one chunk at a time: a job none of whose chunks was admitted for `max_wait`
        gets its first queued chunk promoted above every tier, and no other until that one is admitted
        (which restarts its wait). Every waiting job thus progresses, and the higher tiers are held
        back by at most one chunk per job that waited that long, never by a whole old job. At most
        `limit` promoted chunks are queued at once (the quota: more could not start sooner), the
        longest-waiting jobs first, so a cycle's work stays bounded however many jobs wait."""
        width = 1 << (priority.INDEX_BITS + priority.TIME_BITS)
        budget = limit - await self._client.zcount(self._keys.queue, 0, width - 1)
        promoted = 0
        if budget <= 0:
            return 0
        due = await self._client.zrangebyscore(self._keys.waiting, "-inf", now - max_wait, start=0, num=100)
        for uid in map(text, due):
            if promoted >= budget:
                break
            current = text(await self._client.hget(self._keys.promoted, uid))
            if current is not None and await self._client.zscore(self._keys.queue, current) is not None:
                await self._write(lambda pipe: pipe.zrem(self._keys.waiting, uid))  # it still waits for a slot
                continue
            plan = await self.load_plan(uid)
            member = None if plan is None else await self._first_queued(uid, plan.chunk_count)
            if member is None:  # nothing of it queued: it waits for nothing (a requeue starts a new wait)
                await self._write(lambda pipe: pipe.zrem(self._keys.waiting, uid))
                continue
            score = priority.score("free", split_chunk_id(member)[1], submitted.get(uid, now), promoted=True)

            def build(pipe: Pipeline) -> None:
                pipe.zadd(self._keys.queue, {member: score}, xx=True)
                pipe.hset(self._keys.promoted, uid, member)
                pipe.zrem(self._keys.waiting, uid)
            await self._write(build)
            promoted += 1
        return promoted

    async def _first_queued(self, uid: str, chunk_count: int) -> str | None:
        """The job's lowest-index queued chunk (its first in queue order), by direct lookups of its
        members in batches: no scan of the queue."""
        for start in range(0, chunk_count, SCAN_BATCH):
            members = [chunk_id(uid, index) for index in range(start, min(start + SCAN_BATCH, chunk_count))]
            for member, score in zip(members, await self._client.zmscore(self._keys.queue, members)):
                if score is not None:
                    return member
        return None

    async def retier(self, uid: str, tier: str, submitted_at: float) -> int:
        """A tier change moves the job's queued chunks (promoted ones keep their place). The job's
        members are looked up by name, so the cost is the job's size, not the queue's."""
        plan = await self.load_plan(uid)
        moved: dict[str, float] = {}
        for members in _batches([chunk_id(uid, index) for index in range(plan.chunk_count if plan else 0)]):
            for member, value in zip(members, await self._client.zmscore(self._keys.queue, members)):
                if value is not None and priority.decode(value)[0] != priority.PROMOTED:
                    moved[member] = priority.score(tier, split_chunk_id(member)[1], submitted_at)

        def build(pipe: Pipeline) -> None:
            pipe.hset(self._keys.job(uid), TIER, tier)
            if moved:
                pipe.zadd(self._keys.queue, moved, xx=True)
        await self._write(build)
        return len(moved)

    async def pending_by_tier(self) -> dict[str, int]:
        """Queued chunks per rank, by counting score ranges (no scan)."""
        width = 1 << (priority.INDEX_BITS + priority.TIME_BITS)
        async with self._client.pipeline(transaction=False) as pipe:
            for rank in range(4):
                pipe.zcount(self._keys.queue, rank * width, (rank + 1) * width - 1)
            counts = await pipe.execute()
        return {priority.tier_of_rank(rank): int(count) for rank, count in enumerate(counts)}

    async def queued_count(self) -> int:
        """Chunks in the queue, whatever their tier."""
        return int(await self._client.zcard(self._keys.queue))

    async def delayed(self) -> list[str]:
        """Chunks waiting out a retry backoff (each returns to the queue when its time comes)."""
        return [text(member) for member in await self._client.zrange(self._keys.delayed, 0, -1)]

    async def admitted(self) -> dict[str, float]:
        """Claimed chunks not yet seen as a live Job, with their deadlines."""
        return {text(m): s for m, s in await self._client.zrange(self._keys.admitted, 0, -1, withscores=True)}

    async def forget_admitted(self, members: list[str]) -> None:
        if members:
            await self._write(lambda pipe: pipe.zrem(self._keys.admitted, *members))

    async def mark_running(self, members: list[str], now: float) -> None:
        """Chunks whose Job is live move from the admitted-deadline watch to the `running` index,
        where they stay until settled or retried (the worker itself sets the chunk's state to running
        when it starts)."""
        if members:
            def build(pipe: Pipeline) -> None:
                pipe.zrem(self._keys.admitted, *members)
                pipe.zadd(self._keys.running, {member: now for member in members}, nx=True)
            await self._write(build)

    async def running(self) -> list[str]:
        """Chunks whose Job was seen live and that are not settled yet: at most the quota's worth."""
        return [text(member) for member in await self._client.zrange(self._keys.running, 0, -1)]

    async def node_reports(self, since: float) -> list[capacity.NodeReport]:
        """The node agents' reports newer than `since`, read from the `nodes` index (no SCAN); older
        index entries are dropped, so the index holds only the nodes that still report."""
        await self._client.zremrangebyscore(self._keys.nodes, "-inf", f"({since}")
        names = [text(name) for name in await self._client.zrangebyscore(self._keys.nodes, since, "+inf")]
        async with self._client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self._keys.node(name))
            found = await pipe.execute()
        reports = []
        for name, values in zip(names, found):
            values = {text(key): text(value) for key, value in values.items()}
            try:
                reports.append(capacity.NodeReport(name, int(values["disk_free"]), int(values["memory_available"]),
                                                   float(values["at"])))
            except (KeyError, ValueError):
                continue  # expired since, or written by an older agent
        return reports

    async def remove_job(self, uid: str, chunk_count: int | None = None) -> None:
        """Everything of one job: queue entries, chunk records, dedup sets, counters. Not fenced: a
        deletion leaves the same nothing whoever runs it, and it runs in batches no MULTI should hold.
        Every name is derived from the plan (or `chunk_count`, the status's, when Redis lost the plan):
        its chunk ids and keys, the job's own keys and every phash band set a near-dedup job can have,
        so the cost is the job's size, not the keyspace's. Only a job of unknown size is found by SCAN."""
        plan = await self.load_plan(uid)
        self.forget_plan(uid)
        count = plan.chunk_count if plan is not None else chunk_count
        await self._client.zrem(self._keys.waiting, uid)
        await self._client.hdel(self._keys.promoted, uid)
        if count is None:
            await self._remove_by_scan(uid)
            return
        members = [chunk_id(uid, index) for index in range(count)]
        for zset in (self._keys.queue, self._keys.admitted, self._keys.delayed, self._keys.running):
            for batch in _batches(members):
                await self._client.zrem(zset, *batch)
        names: Iterable[str] = chain((self._keys.chunk(member) for member in members),
                                     (self._keys.job(uid), self._keys.job_done(uid), self._keys.job_failed(uid),
                                      self._keys.job_sha(uid)))
        if plan is None or plan.validation.dedup == "near":
            names = chain(names, self._keys.job_phash_bands(uid))
        for batch in _batches(names):  # the 262,144 band names are never held at once
            await self._client.unlink(*batch)

    async def _remove_by_scan(self, uid: str) -> None:
        for zset in (self._keys.queue, self._keys.admitted, self._keys.delayed, self._keys.running):
            members = [m async for m, _ in self._client.zscan_iter(zset, match=f"{uid}-*", count=SCAN_BATCH)]
            for batch in _batches(members):
                await self._client.zrem(zset, *batch)
        for pattern in (self._keys.chunk_pattern(uid), self._keys.job_pattern(uid)):
            batch = []
            async for key in self._client.scan_iter(match=pattern, count=SCAN_BATCH):
                batch.append(key)
                if len(batch) >= SCAN_BATCH:
                    await self._client.unlink(*batch)
                    batch = []
            if batch:
                await self._client.unlink(*batch)

    async def queue_ranks(self, limit: int = POSITION_LIMIT) -> dict[str, int]:
        """Rank of each job's first queued chunk (its queue position) among the first `limit` entries:
        the cost is bounded whatever the queue holds, and a job further back has no position. Members
        only have their uid cut off, undecoded; the index is never parsed."""
        ranks: dict[str | bytes, int] = {}
        rank = 0
        while rank < limit:
            members = await self._client.zrange(self._keys.queue, rank, min(rank + 9999, limit - 1))
            if not members:
                break
            dash = b"-" if isinstance(members[0], bytes) else "-"
            for offset, member in enumerate(members):
                uid = member.rpartition(dash)[0]
                if uid not in ranks:
                    ranks[uid] = rank + offset
            rank += len(members)
        return {text(uid): first for uid, first in ranks.items()}
