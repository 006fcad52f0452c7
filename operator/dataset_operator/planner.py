"""Turns a DatasetJob into queued chunks, once: on create, on operator restart, and again when
Redis lost its data, then skipping what the status records as finished and what still runs. URL
lists are read, counted and written as pages under the output by a Job (list_counting.py), never by
this process; the status keeps the counts, so a re-plan needs no new Job."""

from __future__ import annotations

import logging

from chunk_worker.contract import COUNTERS, list_pages_root
from chunk_worker.provider_catalog import PROVIDER_NAMES
from dataset_operator import status
from dataset_operator.list_counting import ListCounter
from dataset_operator.plan import JobPlan, list_request, lists_to_count, make_plan, output_url, recorded_counts
from dataset_operator.queue import ChunkQueue
from dataset_operator.registry import JobRef
from dataset_operator.settings import OperatorSettings

log = logging.getLogger(__name__)


class Planner:
    def __init__(self, settings: OperatorSettings, queue: ChunkQueue, counter: ListCounter) -> None:
        self.settings = settings
        self.queue = queue
        self.counter = counter

    async def plan(self, ref: JobRef) -> JobPlan:
        """The job's plan; raises CountingLists while its URL lists are being counted."""
        counted: dict[int, int] = {}
        pages = None
        if lists_to_count(ref.spec):
            kept = recorded_counts(ref.status, ref.spec, ref.uid, status.planned(ref.status))
            if kept is None:
                output = output_url(self.settings.storage, ref.namespace, ref.name, ref.spec.get("output", {}))
                counted = await self.counter.counts(ref, list_request(ref.spec, ref.uid, output))
                pages = list_pages_root(ref.uid)
            else:
                counted, pages = kept
        keys = set(self.settings.search_credential_keys) if self.settings.search_credentials_secret else set()
        return make_plan(ref.namespace, ref.name, ref.uid, ref.spec, self.settings.storage, set(PROVIDER_NAMES),
                         counted, configured_keys=keys, trusted_endpoints=self.settings.search_key_endpoints,
                         list_pages=pages)

    async def ensure_planned(self, ref: JobRef, running: set[int], rebuild: bool = False) -> JobPlan | None:
        """Idempotent. Returns the plan, or None when the job was already queued."""
        if await self.queue.has_job(ref.uid):
            return None
        plan = await self.plan(ref)
        done = status.parse_ranges(ref.status.get("finishedChunks"))
        failed = status.parse_ranges(ref.status.get("failedChunks"))
        await self.queue.enqueue(plan, ref.submitted_at, skip=done | failed | running)
        if rebuild:
            await self.restore(ref, done, failed)
            log.warning("queue rebuilt from status", extra={"fields": {
                "job": ref.key, "finished": len(done), "failed": len(failed), "running": len(running)}})
        return plan

    async def restore(self, ref: JobRef, done: set[int], failed: set[int]) -> None:
        """Redis lost the job's counters: put back what the status recorded for settled chunks."""
        settled = ref.status.get("imagesSettled") or {}
        counters = {name: int(settled.get(name, 0)) for name in COUNTERS if settled.get(name)}
        await self.queue.restore_settled(ref.uid, done, failed, counters)
