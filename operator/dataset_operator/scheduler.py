"""The one scheduling loop of the leader.

Each cycle: read the live chunk Jobs from the Job watch (the truth about what runs), settle the finished ones and name
the stuck ones (chunk_outcomes), put due retries back, promote chunks that waited too long, then
admit n = min(quota - running, node slots) chunks through the fenced Redis claim and create one Job
each. Chunks of a namespace without the worker ServiceAccount are not admitted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psutil
import redis.asyncio as aioredis
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from chunk_worker.contract import ChunkField, ChunkState
from dataset_operator import admission, capacity, completion, jobs, metrics, pod_trouble
from dataset_operator.chunk_outcomes import ChunkOutcomes
from dataset_operator.job_watch import JobWatch
from dataset_operator.leader import LeadershipLost
from dataset_operator.plan import chunk_spec
from dataset_operator.pod_trouble import Trouble
from dataset_operator.queue import ChunkQueue, Claimed, StaleFence, split_chunk_id, text
from dataset_operator.registry import JobRef, Registry
from dataset_operator.settings import OperatorSettings
from dataset_operator.worker_identity import WorkerIdentity, missing_message

log = logging.getLogger(__name__)

CREATE_CONCURRENCY = 32
ORPHAN_CHECK_EVERY = 15  # cycles


@dataclass
class LiveJobs:
    """Chunk Jobs as the API server lists them this cycle."""

    active: dict[str, dict[str, Any]] = field(default_factory=dict)  # chunk id -> Job
    finished: list[dict[str, Any]] = field(default_factory=list)

    def running_by_job(self) -> Counter[str]:
        return Counter(split_chunk_id(member)[0] for member in self.active)


class Scheduler:
    def __init__(self, settings: OperatorSettings, queue: ChunkQueue, api: client.ApiClient, registry: Registry) -> None:
        self.settings = settings
        self.queue = queue
        self.api = api
        self.batch = client.BatchV1Api(api)
        self.registry = registry
        self.last_cycle = 0.0
        self.live = LiveJobs()
        self.capacity_note = ""
        self.cycles = 0
        self.claimed_without_job: set[str] = set()  # claimed, their Job not listed yet: they run too
        self.outcomes = ChunkOutcomes(settings, queue, api, registry)
        self.identity = WorkerIdentity(api, settings.worker_service_account)
        self.job_watch = JobWatch(api, settings.namespace or None, f"{jobs.LABEL_MANAGED_BY}={jobs.MANAGED_BY}")

    def running_of(self, uid: str) -> list[str]:
        """One job's running chunks: a live Job, or claimed with its Job about to be listed. Counting
        only listed Jobs would show a job Suspended for a moment while a chunk claimed just before the
        suspend is starting."""
        return self.running_chunks_by_job().get(uid, [])

    def running_chunks_by_job(self) -> dict[str, list[str]]:
        """Every job's running chunks at once (running_of for all jobs, in one walk)."""
        found: dict[str, list[str]] = {}
        for member in (*self.live.active, *self.claimed_without_job):
            found.setdefault(split_chunk_id(member)[0], []).append(member)
        return found

    def indices_of(self, uid: str) -> set[int]:
        """Indices of one job's running chunks (a rebuilt queue must not hold them again)."""
        return {split_chunk_id(member)[1] for member in self.running_of(uid)}

    async def load_datasetjobs(self) -> None:
        """Before the first admission, know every DatasetJob: kopf's watch fills the registry too, but
        a new leader admitting before it has listed them all could start a lower tier first."""
        custom = client.CustomObjectsApi(self.api)
        while True:
            try:
                if self.settings.namespace:
                    listed = await custom.list_namespaced_custom_object(jobs.GROUP, jobs.VERSION,
                                                                        self.settings.namespace, jobs.PLURAL)
                else:
                    listed = await custom.list_cluster_custom_object(jobs.GROUP, jobs.VERSION, jobs.PLURAL)
                break
            except ApiException as exc:
                log.warning("cannot list DatasetJobs yet: %s %s", exc.status, exc.reason)
                await asyncio.sleep(self.settings.scheduler_interval_seconds)
        for body in listed.get("items", []):
            self.registry.observe(body)

    async def run(self) -> None:
        await self.load_datasetjobs()
        watching = asyncio.create_task(self.job_watch.run(), name="job-watch")
        try:
            await self.job_watch.synced.wait()
            await self._loop()
        finally:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)

    async def _loop(self) -> None:
        redis_failing_since: float | None = None
        while True:
            started = time.monotonic()
            try:
                await self.cycle()
                self.last_cycle = time.monotonic()
                redis_failing_since = None
            except asyncio.CancelledError:
                raise
            except StaleFence as exc:
                raise LeadershipLost(f"a newer leader writes to the queue ({exc})") from exc
            except aioredis.RedisError as exc:
                redis_failing_since = redis_failing_since or started
                cut_off = time.monotonic() - redis_failing_since
                if cut_off >= self.settings.redis_step_down_seconds:
                    raise LeadershipLost(f"Redis unreachable for {cut_off:.0f}s ({exc}); stepping down so an "
                                         "operator that reaches it can lead") from exc
                log.warning("scheduler cycle: Redis unreachable for %.0fs: %s", cut_off, exc)
            except Exception:
                log.exception("scheduler cycle failed")
            metrics.SCHEDULER_CYCLE.observe(time.monotonic() - started)
            await asyncio.sleep(max(self.settings.scheduler_interval_seconds - (time.monotonic() - started), 0.05))

    async def list_jobs(self) -> LiveJobs:
        """The operator's Jobs as the watch has them (no API call per cycle)."""
        live = LiveJobs()
        for job in self.job_watch.snapshot():
            member, _ = jobs.chunk_of(job)
            if member is None:
                continue
            if completion.classify(job) == "active" and not (job["metadata"].get("deletionTimestamp")):
                live.active[member] = job
            else:
                live.finished.append(job)
        return live

    async def cycle(self) -> None:
        now = time.time()
        live = await self.list_jobs()
        self.live = live
        await self.outcomes.settle_finished(live.finished)
        self.note_troubles(await self.outcomes.watch_stuck(live.active))
        admitted = await self.queue.admitted()
        self.cycles += 1
        if self.cycles % ORPHAN_CHECK_EVERY == 0:
            listed = set(live.active) | {jobs.chunk_of(job)[0] for job in live.finished} | set(admitted)
            await self.outcomes.recover_orphans(listed)
        await self.queue.mark_running([member for member in admitted if member in live.active], now)
        pending = {member: deadline for member, deadline in admitted.items() if member not in live.active}
        self.claimed_without_job = set(pending)
        await self.requeue_lost(pending, now)
        refs = {ref.uid: ref for ref in self.registry.jobs.values() if not ref.deleting}
        tiers = {uid: ref.tier for uid, ref in refs.items()}
        submitted = {uid: ref.submitted_at for uid, ref in refs.items()}
        await self.queue.requeue_due(now, tiers, submitted)
        await self.queue.promote_waiting(now, self.settings.max_wait_seconds, submitted,
                                         limit=self.settings.max_concurrent_chunks)
        await self.admit(live, pending, refs)

    async def requeue_lost(self, pending: dict[str, float], now: float) -> None:
        """A chunk claimed by a leader that died before creating its Job goes back to the queue."""
        for member, deadline in pending.items():
            if deadline > now:
                continue
            uid, index = split_chunk_id(member)
            ref = self.registry.jobs.get(uid)
            attempt_raw = await self.queue.client.hget(self.queue.keys.chunk(member), ChunkField.ATTEMPT)
            claimed = Claimed(member, uid, index, int(attempt_raw or 1))
            if ref is None:
                self.claimed_without_job.discard(member)
                await self.queue.forget_admitted([member])
                continue
            name = jobs.job_name(ref.name, ref.uid, index, claimed.attempt)
            try:
                await self.batch.read_namespaced_job(name, ref.namespace)
                continue  # it exists after all; the next list will see it
            except ApiException as exc:
                if exc.status != 404:  # cannot tell now: ask again next cycle, admit the others meanwhile
                    log.warning("cannot read Job %s/%s: %s %s", ref.namespace, name, exc.status, exc.reason)
                    continue
            await self.release(claimed, ref.tier, ref.submitted_at)
            log.info("requeued a chunk admitted without a Job", extra={"fields": {"chunk": member}})

    async def node_capacity(self, starting: int) -> admission.Capacity:
        needs = capacity.ChunkNeeds(self.settings.chunk_disk_bytes, self.settings.chunk_memory_bytes,
                                    self.settings.node_disk_reserve_bytes, self.settings.node_memory_reserve_bytes)
        reports = await self.queue.node_reports(time.time() - self.settings.node_report_max_age_seconds)
        fresh = capacity.fresh(reports, time.time(), self.settings.node_report_max_age_seconds)
        if fresh:
            self.capacity_note = ""
            return capacity.capacity(fresh, needs, starting)
        local = capacity.NodeReport("local", psutil.disk_usage(self.settings.local_disk_path).free,
                                    psutil.virtual_memory().available, time.time())
        self.capacity_note = "no fresh node report: node capacity measured on the operator's own node"
        return capacity.capacity([local], needs, starting, from_reports=False)

    async def admit(self, live: LiveJobs, pending: dict[str, float], refs: dict[str, JobRef]) -> None:
        running_by_job = live.running_by_job()
        for member in pending:
            running_by_job[split_chunk_id(member)[0]] += 1
        running = len(live.active) + len(pending)
        states = await self._states(list(live.active))
        starting = len(pending) + sum(1 for state in states if state == ChunkState.ADMITTED.value)
        node_capacity = await self.node_capacity(starting)
        queued = await self.queue.client.zcard(self.queue.keys.queue)
        decision = admission.decide(self.settings.max_concurrent_chunks, running, node_capacity, queued)
        slots = admission.job_slots({uid: ref.parallelism for uid, ref in refs.items()}, running_by_job,
                                    {uid for uid, ref in refs.items() if ref.suspended})
        unserved = await self.identity.missing({ref.namespace for ref in refs.values() if not ref.terminal})
        slots.update({uid: 0 for uid, ref in refs.items() if ref.namespace in unserved})
        claimable = {uid: slots.get(uid, decision.admit) for uid in refs}  # unknown and deleting jobs: never
        metrics.QUOTA_USED.set(running)
        claimed = await self.queue.claim(decision.admit, time.time() + self.settings.admit_deadline_seconds,
                                         claimable, only_listed=True)
        self.claimed_without_job.update(item.chunk_id for item in claimed)
        if decision.admit:
            metrics.ADMISSION_ATTEMPTS.labels(result="admitted" if claimed else "empty").inc()
        elif queued:
            metrics.ADMISSION_ATTEMPTS.labels(result="no_slot").inc()
        await self.create_jobs(claimed, refs)
        self.record_reasons(refs, decision, slots, unserved)
        await self.export_gauges(live, node_capacity, decision)

    async def export_gauges(self, live: LiveJobs, node_capacity: admission.Capacity,
                            decision: admission.Decision) -> None:
        by_tier = Counter((job["metadata"].get("labels") or {}).get(jobs.LABEL_TIER, "free")
                          for job in live.active.values())
        waiting = await self.queue.pending_by_tier()
        for tier in ("new-user", "enterprise", "free", "promoted"):
            metrics.RUNNING_CHUNKS.labels(tier=tier).set(by_tier.get(tier, 0))
            for reason in (admission.WAITING_FOR_QUOTA, admission.WAITING_FOR_NODE_DISK,
                           admission.WAITING_FOR_NODE_MEMORY, "none"):
                value = waiting.get(tier, 0) if reason == (decision.reason or "none") else 0
                metrics.PENDING_CHUNKS.labels(tier=tier, reason=reason).set(value)
        metrics.NODE_SLOTS.set(node_capacity.slots)

    async def _states(self, members: list[str]) -> list[str | None]:
        if not members:
            return []
        async with self.queue.client.pipeline(transaction=False) as pipe:
            for member in members:
                pipe.hget(self.queue.keys.chunk(member), ChunkField.STATE)
            values = await pipe.execute()
        return [text(value) for value in values]

    async def create_jobs(self, claimed: list[Claimed], refs: dict[str, JobRef]) -> None:
        gate = asyncio.Semaphore(CREATE_CONCURRENCY)

        async def create(item: Claimed) -> None:
            async with gate:
                await self.create_job(item, refs.get(item.uid))

        await asyncio.gather(*(create(item) for item in claimed))

    async def create_job(self, item: Claimed, ref: JobRef | None) -> None:
        if ref is None:
            await self.release(item, "free", time.time())
            return
        plan = await self.queue.load_plan(item.uid)
        if plan is None:
            await self.release(item, ref.tier, time.time())
            return
        manifest = jobs.build_job(dataset=ref.name, namespace=ref.namespace, uid=ref.uid, tier=ref.tier,
                                  chunk_id=item.chunk_id, index=item.index, attempt=item.attempt,
                                  settings=self.settings)
        spec = chunk_spec(plan, item.index, item.attempt)
        await self.queue.set_spec(item.chunk_id, spec.dump(), manifest["metadata"]["name"])
        try:
            await self.batch.create_namespaced_job(ref.namespace, manifest)
        except ApiException as exc:
            if exc.status == 409:
                return  # created by an earlier cycle or leader: same name, same chunk, same attempt
            log.warning("could not create Job for chunk %s: %s %s", item.chunk_id, exc.status, exc.reason)
            await self.release(item, ref.tier, ref.submitted_at)
            return
        metrics.ADMISSION_WAIT.labels(tier=ref.tier).observe(max(time.time() - ref.submitted_at, 0))

    async def release(self, item: Claimed, tier: str, submitted_at: float) -> None:
        self.claimed_without_job.discard(item.chunk_id)
        await self.queue.release(item, tier, submitted_at)

    def note_troubles(self, troubles: dict[str, Trouble]) -> None:
        """Each DatasetJob shows the trouble of one of its stuck chunks (the lowest index)."""
        for ref in self.registry.jobs.values():
            ref.trouble = None
        for member in sorted(troubles, key=lambda m: split_chunk_id(m)[1], reverse=True):
            ref = self.registry.jobs.get(split_chunk_id(member)[0])
            if ref is not None:
                ref.trouble = troubles[member]

    def record_reasons(self, refs: dict[str, JobRef], decision: admission.Decision, slots: dict[str, int],
                       unserved: set[str]) -> None:
        for uid, ref in refs.items():
            ref.waiting_message = ""
            if ref.suspended:
                ref.waiting_reason = "Suspended"
            elif ref.namespace in unserved:
                ref.waiting_reason = pod_trouble.SERVICE_ACCOUNT_MISSING
                ref.waiting_message = missing_message(self.settings.worker_service_account, ref.namespace)
            elif uid in slots and slots[uid] == 0 and ref.parallelism is not None:
                ref.waiting_reason = "WaitingForJobParallelism"
            else:
                ref.waiting_reason = decision.reason
            ref.extra_message = self.capacity_note
