"""Turns a DatasetJob into queued chunks, once: on create, on operator restart, and again when
Redis lost its data, then skipping what the status records as finished and what still runs."""

from __future__ import annotations

import asyncio
import ipaddress
import logging

from chunk_worker.contract import COUNTERS, UrlList
from chunk_worker.errors import ChunkError
from chunk_worker.fetch import Fetcher
from chunk_worker.netpolicy import NetworkPolicy
from chunk_worker.providers.registry import PROVIDERS
from chunk_worker.settings import WorkerSettings
from chunk_worker.sources import list_items
from dataset_operator import status
from dataset_operator.plan import InvalidSpec, JobPlan, make_plan
from dataset_operator.queue import ChunkQueue
from dataset_operator.registry import JobRef
from dataset_operator.settings import OperatorSettings

log = logging.getLogger(__name__)


class SourceNotReadable(RuntimeError):
    """A URL list could not be counted now; planning is retried later."""


def count_url_list(url_list: UrlList, settings: OperatorSettings) -> int:
    """Streams the list once through the same safe fetcher and parser the workers use."""
    worker = WorkerSettings(allow_networks=[ipaddress.ip_network(n, strict=False) for n in settings.allow_networks])
    fetcher = Fetcher(NetworkPolicy(list(worker.allow_networks)), worker, max_bytes=1024 * 1024)
    try:
        lines = fetcher.open_lines(url_list.url)
        try:
            return sum(1 for _ in list_items(lines, url_list, ""))
        finally:
            lines.close()
    finally:
        fetcher.close()


class Planner:
    def __init__(self, settings: OperatorSettings, queue: ChunkQueue) -> None:
        self.settings = settings
        self.queue = queue

    async def plan(self, ref: JobRef) -> JobPlan:
        counted: dict[int, int] = {}
        for position, source in enumerate(ref.spec.get("sources", [])):
            url_list = source.get("urlList")
            if url_list and url_list.get("count") is None and url_list["url"].startswith(("http://", "https://")):
                parsed = UrlList.model_validate({k: v for k, v in url_list.items() if k != "count"})
                try:
                    counted[position] = await asyncio.to_thread(count_url_list, parsed, self.settings)
                except ChunkError as exc:
                    if exc.exit_code == 2:
                        raise InvalidSpec(f"spec.sources[{position}].urlList.url: {exc}") from exc
                    raise SourceNotReadable(f"spec.sources[{position}].urlList.url: {exc}") from exc
        keys = set(self.settings.search_credential_keys) if self.settings.search_credentials_secret else set()
        return make_plan(ref.namespace, ref.name, ref.uid, ref.spec, self.settings.storage, set(PROVIDERS), counted,
                         configured_keys=keys, trusted_endpoints=self.settings.search_key_endpoints)

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
        keys = self.queue.keys
        settled = ref.status.get("imagesSettled") or {}
        async with self.queue.client.pipeline(transaction=True) as pipe:
            if done:
                pipe.sadd(keys.job_done(ref.uid), *done)
            if failed:
                pipe.sadd(keys.job_failed(ref.uid), *failed)
            counters = {name: int(settled.get(name, 0)) for name in COUNTERS if settled.get(name)}
            if counters:
                pipe.hset(keys.job(ref.uid), mapping=counters)
            await pipe.execute()
