"""One Kubernetes Job per claimed chunk, under a deterministic name so that a repeated create is
harmless (409: an earlier cycle or leader made it). A chunk whose Job cannot be made goes back to the
queue without losing an attempt. A DatasetJob being deleted gets no new Job: its cleanup waits for
the creations already under way (`settled`) before it lists the Jobs to stop."""

from __future__ import annotations

import asyncio
import logging
import time

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from dataset_operator import jobs, metrics
from dataset_operator.in_flight import InFlight
from dataset_operator.plan import JobPlan, chunk_spec
from dataset_operator.queue import ChunkQueue, Claimed
from dataset_operator.registry import JobRef
from dataset_operator.running_chunks import RunningChunks
from dataset_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

CREATE_CONCURRENCY = 32


class JobCreator:
    def __init__(self, settings: OperatorSettings, queue: ChunkQueue, api: client.ApiClient,
                 running: RunningChunks) -> None:
        self.settings = settings
        self.queue = queue
        self.batch = client.BatchV1Api(api)
        self.running = running
        self.creating = InFlight()  # with its ref marked deleting, no create of a job starts after `settled`

    async def create_jobs(self, claimed: list[Claimed], refs: dict[str, JobRef]) -> None:
        gate = asyncio.Semaphore(CREATE_CONCURRENCY)

        async def create(item: Claimed) -> None:
            async with gate:
                await self.create_job(item, refs.get(item.uid))

        await asyncio.gather(*(create(item) for item in claimed))

    async def create_job(self, item: Claimed, ref: JobRef | None) -> None:
        if ref is None:
            await self.running.release(item, "free", time.time())
            return
        plan = await self.queue.load_plan(item.uid)
        if ref.deleting:
            return  # its cleanup removes the claim with the rest of its keys
        if plan is None:
            await self.running.release(item, ref.tier, time.time())
            return
        self.creating.enter(ref.uid)
        try:
            await self._create(item, ref, plan)
        finally:
            await self.creating.leave(ref.uid)

    async def _create(self, item: Claimed, ref: JobRef, plan: JobPlan) -> None:
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
            await self.running.release(item, ref.tier, ref.submitted_at)
            return
        metrics.ADMISSION_WAIT.labels(tier=ref.tier).observe(max(time.time() - ref.submitted_at, 0))
