"""How a chunk attempt ends, as the leader sees it: a finished Job is settled (done, retried after a
backoff, or failed for good); a Job whose pod cannot be made, placed or started is named, and given
up after a grace period so it stops holding a quota slot (a Job that vanished is recovery's). Every
failed attempt is recorded with the reason the pods give (`WorkerOOMKilled`,
`WorkerImageUnavailable`, ...), which the status shows."""

from __future__ import annotations

import logging
import time
from typing import Any

from chunk_worker.contract import ChunkField, ChunkState, metric_reasons
from dataset_operator import completion, jobs, metrics, pod_trouble
from dataset_operator.plan import max_attempts
from dataset_operator.pod_inspector import PodInspector
from dataset_operator.pod_trouble import Trouble
from dataset_operator.queue import ChunkQueue, split_chunk_id
from dataset_operator.registry import JobRef, Registry
from dataset_operator.settings import OperatorSettings

log = logging.getLogger(__name__)


def note_troubles(registry: Registry, troubles: dict[str, Trouble]) -> None:
    """Each DatasetJob shows the trouble of one of its stuck chunks (the lowest index), or none."""
    for ref in registry.jobs.values():
        ref.trouble = None
    for member in sorted(troubles, key=lambda m: split_chunk_id(m)[1], reverse=True):
        ref = registry.jobs.get(split_chunk_id(member)[0])
        if ref is not None:
            ref.trouble = troubles[member]


class ChunkOutcomes:
    def __init__(self, settings: OperatorSettings, queue: ChunkQueue, inspector: PodInspector,
                 registry: Registry) -> None:
        self.settings = settings
        self.queue = queue
        self.registry = registry
        self.inspector = inspector

    async def settle_finished(self, finished: list[dict[str, Any]]) -> None:
        """Finished Jobs stay listed until their TTL, so most are settled already: their records are
        read in one round trip and only the unsettled ones cost more."""
        owned = [(job, *jobs.chunk_of(job)) for job in finished if jobs.chunk_of(job)[0] is not None]
        records = await self.queue.chunk_fields([member for _, member, _ in owned],
                                                [ChunkField.STATE, ChunkField.ATTEMPT, ChunkField.STARTED_AT])
        for (job, member, attempt), record in zip(owned, records):
            try:
                await self.settle_one(job, member, attempt, record)
            except Exception:  # one chunk's trouble must not keep the others unsettled
                metrics.JOB_ERRORS.labels(loop="settle").inc()
                log.exception("could not settle chunk %s", member)

    async def settle_one(self, job: dict[str, Any], member: str, attempt: int, record: list[str | None]) -> None:
        state, recorded_attempt, started = record
        if state in (ChunkState.SUCCEEDED.value, ChunkState.FAILED.value, ChunkState.QUEUED.value):
            return
        if recorded_attempt is not None and int(recorded_attempt) != attempt:
            return  # a Job of an older attempt, already dealt with
        uid, _ = split_chunk_id(member)
        ref = self.registry.jobs.get(uid)
        if ref is None or ref.deleting:
            return  # deleted (settling would recreate its keys) or not seen yet since a restart
        outcome = completion.classify(job)
        if outcome == "active":
            return
        if outcome == "failed_permanent" and started is None:
            # Exit 2 before the worker recorded its start: it found no chunk record (Redis lost it),
            # which says nothing about the spec. Retry.
            outcome = "failed"
        if recorded_attempt is None:  # the record was lost: the next claim must not reuse this Job's name
            await self.queue.keep_attempt(member, attempt)
        if outcome == "succeeded":
            if await self.queue.settle(member, ChunkState.SUCCEEDED):
                metrics.CHUNKS_FINISHED.labels(result="succeeded").inc()
                await self.count_images(member)
            return
        await self.fail_attempt(member, attempt, outcome, await self.inspector.ended(job), ref)

    async def fail_attempt(self, member: str, attempt: int, outcome: completion.Outcome, trouble: Trouble,
                           ref: JobRef) -> None:
        """One failed attempt: retried after a backoff while attempts remain, else failed for good."""
        decision = completion.next_step(outcome, attempt, max_attempts(ref.spec), self.settings.retry_base_seconds,
                                        self.settings.retry_max_seconds)
        if decision.step == "fail":
            if await self.queue.settle(member, ChunkState.FAILED):
                metrics.CHUNKS_FINISHED.labels(result="failed").inc()
                await self.count_images(member)
                await self.record_failure(member, attempt, trouble)
                log.warning("chunk failed for good", extra={"fields": {
                    "chunk": member, "attempt": attempt, "reason": trouble.reason, "why": trouble.message}})
        elif decision.step == "retry":
            if await self.queue.retry_later(member, time.time() + decision.delay, trouble.describe()):
                metrics.CHUNKS_FINISHED.labels(result="retried").inc()
                await self.record_failure(member, attempt, trouble)
                log.info("chunk attempt failed; retrying", extra={"fields": {
                    "chunk": member, "attempt": attempt, "reason": trouble.reason, "why": trouble.message}})

    async def record_failure(self, member: str, attempt: int, trouble: Trouble) -> None:
        metrics.CHUNK_ATTEMPTS_FAILED.labels(reason=trouble.reason).inc()
        await self.queue.record_failure(member, attempt, trouble.reason, trouble.message)

    async def watch_stuck(self, active: dict[str, dict[str, Any]]) -> dict[str, Trouble]:
        """Names the trouble of every active Job whose pod cannot run (chunk id -> trouble) and gives
        up those that have had it for longer than their grace: deleted, the attempt failed."""
        now = time.time()
        by_name = {job["metadata"]["name"]: member for member, job in active.items()}
        troubles = await self.inspector.stuck(active.values(), now)
        found = {}
        for name, trouble in troubles.items():
            member = by_name[name]
            found[member] = trouble
            grace = pod_trouble.grace(trouble, self.settings.stuck_pod_grace_seconds,
                                      self.settings.unschedulable_grace_seconds)
            ref = self.registry.jobs.get(split_chunk_id(member)[0])
            if ref is None or ref.deleting or not pod_trouble.gives_up(trouble, now, grace):
                continue
            job = active[member]
            if not await self.inspector.delete(job):
                continue
            log.warning("gave up a chunk Job whose pod cannot run", extra={"fields": {
                "chunk": member, "job": name, "reason": trouble.reason, "why": trouble.message}})
            _, attempt = jobs.chunk_of(job)
            await self.fail_attempt(member, attempt, "failed", pod_trouble.given_up(trouble, grace), ref)
        return found

    async def count_images(self, member: str) -> None:
        names = ("uploaded", "rejected", "failed", "duplicates")
        reasons = metric_reasons()
        fields = [ChunkField.counter(n) for n in names] + [ChunkField.reason_counter(r) for r in reasons]
        values = await self.queue.chunk_record(member, fields)
        for name, value in zip(names, values):
            if value:
                metrics.IMAGES.labels(status=name).inc(int(value))
        for reason, value in zip(reasons, values[len(names):]):
            if value:
                metrics.IMAGES_NOT_STORED.labels(reason=reason).inc(int(value))
