"""The one scheduling loop of the leader, composing the parts that each own one idea.

Each cycle: read the live chunk Jobs from the Job watch (running_chunks: the truth about what runs),
settle the finished ones and name the stuck ones (chunk_outcomes), put right chunks whose Job is lost
(recovery), put due retries back and promote chunks that waited too long (the queue), then admit
n = min(quota - running, node slots) chunks through the fenced Redis claim (admitting) and create one
Job each (job_creation). Chunks of a namespace without the worker ServiceAccount are not admitted.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as aioredis
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from dataset_operator import jobs, metrics
from dataset_operator.admitting import Admitter
from dataset_operator.chunk_outcomes import ChunkOutcomes, note_troubles
from dataset_operator.job_creation import JobCreator
from dataset_operator.job_watch import JobWatch
from dataset_operator.leader import LeadershipLost
from dataset_operator.pod_inspector import PodInspector
from dataset_operator.queue import ChunkQueue, StaleFence
from dataset_operator.recovery import Recovery
from dataset_operator.registry import Registry
from dataset_operator.running_chunks import LiveJobs, RunningChunks, live_jobs
from dataset_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

ORPHAN_CHECK_EVERY = 15  # cycles


class Scheduler:
    def __init__(self, settings: OperatorSettings, queue: ChunkQueue, api: client.ApiClient, registry: Registry,
                 job_watch: JobWatch, inspector: PodInspector) -> None:
        self.settings = settings
        self.queue = queue
        self.api = api
        self.registry = registry
        self.job_watch = job_watch
        self.last_cycle = 0.0
        self.cycles = 0
        self.running = RunningChunks(queue)
        self.outcomes = ChunkOutcomes(settings, queue, inspector, registry)
        self.recovery = Recovery(queue, api, registry, self.running)
        self.admitter = Admitter(settings, queue, api, self.running)
        self.creator = JobCreator(settings, queue, api, self.running)

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
        """Cycles once the Job watch has listed: before that, every running chunk would look lost."""
        await self.load_datasetjobs()
        await self.job_watch.synced.wait()
        await self._loop()

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
        return live_jobs(self.job_watch.snapshot())

    async def cycle(self) -> None:
        now = time.time()
        live = await self.list_jobs()
        self.running.live = live
        await self.outcomes.settle_finished(live.finished)
        note_troubles(self.registry, await self.outcomes.watch_stuck(live.active))
        admitted = await self.queue.admitted()
        self.cycles += 1
        if self.cycles % ORPHAN_CHECK_EVERY == 0:
            listed = set(live.active) | {jobs.chunk_of(job)[0] for job in live.finished} | set(admitted)
            await self.recovery.recover_orphans(listed)
        await self.queue.mark_running([member for member in admitted if member in live.active], now)
        pending = {member: deadline for member, deadline in admitted.items() if member not in live.active}
        self.running.claimed_without_job = set(pending)
        await self.recovery.requeue_lost(pending, now)
        refs = {ref.uid: ref for ref in self.registry.jobs.values() if not ref.deleting}
        tiers = {uid: ref.tier for uid, ref in refs.items()}
        submitted = {uid: ref.submitted_at for uid, ref in refs.items()}
        await self.queue.requeue_due(now, tiers, submitted)
        await self.queue.promote_waiting(now, self.settings.max_wait_seconds, submitted,
                                         limit=self.settings.max_concurrent_chunks)
        admission = await self.admitter.admit(live, pending, refs)
        await self.creator.create_jobs(admission.claimed, refs)
        self.admitter.record_reasons(refs, admission)
        await self.admitter.export_gauges(live, admission)
