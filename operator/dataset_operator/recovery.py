"""Chunks whose Job is lost, found and put right: a chunk claimed by a leader that died before creating
its Job goes back to the queue; a chunk whose Job was seen live but is gone without being seen to
finish is settled from what its worker recorded."""

from __future__ import annotations

import logging
import time

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from chunk_worker.contract import ChunkField, ChunkState
from dataset_operator import jobs
from dataset_operator.plan import max_attempts
from dataset_operator.queue import ChunkQueue, Claimed, split_chunk_id
from dataset_operator.registry import Registry
from dataset_operator.running_chunks import RunningChunks

log = logging.getLogger(__name__)


class Recovery:
    def __init__(self, queue: ChunkQueue, api: client.ApiClient, registry: Registry, running: RunningChunks) -> None:
        self.queue = queue
        self.batch = client.BatchV1Api(api)
        self.registry = registry
        self.running = running

    async def requeue_lost(self, pending: dict[str, float], now: float) -> None:
        """A chunk claimed by a leader that died before creating its Job goes back to the queue, once
        its admission deadline passed and its Job is not there when asked by name."""
        for member, deadline in pending.items():
            if deadline > now:
                continue
            uid, index = split_chunk_id(member)
            ref = self.registry.jobs.get(uid)
            [attempt_raw] = await self.queue.chunk_record(member, [ChunkField.ATTEMPT])
            claimed = Claimed(member, uid, index, int(attempt_raw or 1))
            if ref is None:
                self.running.claimed_without_job.discard(member)
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
            await self.running.release(claimed, ref.tier, ref.submitted_at)
            log.info("requeued a chunk admitted without a Job", extra={"fields": {"chunk": member}})

    async def recover_orphans(self, listed: set[str]) -> None:
        """A chunk whose Job was seen live but is gone without being seen to finish (deleted by hand, or
        removed by its TTL while no operator ran) is settled from what its worker recorded: `outcome`
        done means it succeeded; anything else is retried like a failure. The candidates come from the
        `running` index (at most the quota's worth), never from a scan of the keyspace."""
        for member in await self.queue.running():
            if member in listed:
                continue
            ref = self.registry.jobs.get(split_chunk_id(member)[0])
            if ref is None or ref.deleting:
                continue
            state, outcome, attempt = await self.queue.chunk_record(
                member, [ChunkField.STATE, ChunkField.OUTCOME, ChunkField.ATTEMPT])
            if outcome == "done":
                await self.queue.settle(member, ChunkState.SUCCEEDED)
            elif int(attempt or 1) >= max_attempts(ref.spec):
                await self.queue.settle(member, ChunkState.FAILED)
            else:
                await self.queue.retry_later(member, time.time(), "its Job disappeared before it finished")
            log.warning("recovered a chunk whose Job disappeared", extra={"fields": {"chunk": member, "state": state}})
