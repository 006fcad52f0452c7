"""Admission at the edges: how many chunks may start now (the quota, the nodes' slots, each job's
parallelism, the worker ServiceAccount), the fenced claim of that many, and why the rest wait, as
each DatasetJob's reason and as gauges. The arithmetic is admission.py's and capacity.py's."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import psutil
from kubernetes_asyncio import client

from chunk_worker.contract import ChunkField, ChunkState
from dataset_operator import admission, capacity, jobs, metrics, pod_trouble
from dataset_operator.queue import ChunkQueue, Claimed, split_chunk_id
from dataset_operator.registry import JobRef
from dataset_operator.running_chunks import LiveJobs, RunningChunks
from dataset_operator.settings import OperatorSettings
from dataset_operator.worker_identity import WorkerIdentity, missing_message

TIERS = ("new-user", "enterprise", "free", "promoted")
WAITING_REASONS = (admission.WAITING_FOR_QUOTA, admission.WAITING_FOR_NODE_DISK, admission.WAITING_FOR_NODE_MEMORY,
                   "none")


@dataclass(frozen=True)
class Admitted:
    """One cycle's admission: what was claimed, and what it was decided from."""

    claimed: list[Claimed]
    decision: admission.Decision
    slots: dict[str, int]  # job uid -> chunks it may still start
    unserved: set[str]  # namespaces without the worker ServiceAccount
    node_capacity: admission.Capacity


class Admitter:
    def __init__(self, settings: OperatorSettings, queue: ChunkQueue, api: client.ApiClient,
                 running: RunningChunks) -> None:
        self.settings = settings
        self.queue = queue
        self.running = running
        self.identity = WorkerIdentity(api, settings.worker_service_account)
        self.capacity_note = ""

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

    async def admit(self, live: LiveJobs, pending: dict[str, float], refs: dict[str, JobRef]) -> Admitted:
        """Claims n = min(quota - running, node slots) chunks, within each job's slots: running chunks
        are the live Jobs plus `pending` (claimed, no Job listed yet), and chunks not started yet
        (pending, or a live Job whose worker has not begun) hold node slots."""
        running_by_job = live.running_by_job()
        for member in pending:
            running_by_job[split_chunk_id(member)[0]] += 1
        running = len(live.active) + len(pending)
        states = [state for [state] in await self.queue.chunk_fields(list(live.active), [ChunkField.STATE])]
        starting = len(pending) + sum(1 for state in states if state == ChunkState.ADMITTED.value)
        node_capacity = await self.node_capacity(starting)
        queued = await self.queue.queued_count()
        decision = admission.decide(self.settings.max_concurrent_chunks, running, node_capacity, queued)
        slots = admission.job_slots({uid: ref.parallelism for uid, ref in refs.items()}, running_by_job,
                                    {uid for uid, ref in refs.items() if ref.suspended})
        unserved = await self.identity.missing({ref.namespace for ref in refs.values() if not ref.terminal})
        slots.update({uid: 0 for uid, ref in refs.items() if ref.namespace in unserved})
        claimable = {uid: slots.get(uid, decision.admit) for uid in refs}  # unknown and deleting jobs: never
        metrics.QUOTA_USED.set(running)
        claimed = await self.queue.claim(decision.admit, time.time() + self.settings.admit_deadline_seconds,
                                         claimable, only_listed=True)
        self.running.claimed(claimed)
        if decision.admit:
            metrics.ADMISSION_ATTEMPTS.labels(result="admitted" if claimed else "empty").inc()
        elif queued:
            metrics.ADMISSION_ATTEMPTS.labels(result="no_slot").inc()
        return Admitted(claimed, decision, slots, unserved, node_capacity)

    def record_reasons(self, refs: dict[str, JobRef], admitted: Admitted) -> None:
        """Why each job waits, for its status."""
        for uid, ref in refs.items():
            ref.waiting_message = ""
            if ref.suspended:
                ref.waiting_reason = "Suspended"
            elif ref.namespace in admitted.unserved:
                ref.waiting_reason = pod_trouble.SERVICE_ACCOUNT_MISSING
                ref.waiting_message = missing_message(self.settings.worker_service_account, ref.namespace)
            elif uid in admitted.slots and admitted.slots[uid] == 0 and ref.parallelism is not None:
                ref.waiting_reason = "WaitingForJobParallelism"
            else:
                ref.waiting_reason = admitted.decision.reason
            ref.extra_message = self.capacity_note

    async def export_gauges(self, live: LiveJobs, admitted: Admitted) -> None:
        by_tier = Counter((job["metadata"].get("labels") or {}).get(jobs.LABEL_TIER, "free")
                          for job in live.active.values())
        waiting = await self.queue.pending_by_tier()
        for tier in TIERS:
            metrics.RUNNING_CHUNKS.labels(tier=tier).set(by_tier.get(tier, 0))
            for reason in WAITING_REASONS:
                value = waiting.get(tier, 0) if reason == (admitted.decision.reason or "none") else 0
                metrics.PENDING_CHUNKS.labels(tier=tier, reason=reason).set(value)
        metrics.NODE_SLOTS.set(admitted.node_capacity.slots)
