"""Counting URL lists for the operator's plan, in a Job of the worker image: the operator itself never
requests a user-given URL. Each list is streamed once through the same SSRF-safe fetcher and parser
the chunks use, and the answer goes to Redis, where the operator reads it."""

from __future__ import annotations

import logging

import redis

from chunk_worker.contract import LIST_COUNTS, ExitCode, Keys, ListCountRequest, ListCounts, UrlList
from chunk_worker.errors import ChunkError
from chunk_worker.fetch import Fetcher
from chunk_worker.netpolicy import NetworkPolicy
from chunk_worker.settings import WorkerSettings
from chunk_worker.sources import list_items

log = logging.getLogger(__name__)

LIST_LINE_MAX_BYTES = 1024 * 1024


def count_url_list(url_list: UrlList, settings: WorkerSettings) -> int:
    fetcher = Fetcher(NetworkPolicy(list(settings.allow_networks)), settings, max_bytes=LIST_LINE_MAX_BYTES)
    try:
        lines = fetcher.open_lines(url_list.url)
        try:
            return sum(1 for _ in list_items(lines, url_list, ""))
        finally:
            lines.close()
    finally:
        fetcher.close()


def count_lists(request: ListCountRequest, settings: WorkerSettings) -> ListCounts:
    """Every list's count, or the first error (naming the source) and whether a retry could help."""
    counts = {}
    for position, url_list in sorted(request.lists.items()):
        try:
            counts[position] = count_url_list(url_list, settings)
        except ChunkError as exc:
            return ListCounts(error=f"spec.sources[{position}].urlList.url: {exc}",
                              permanent=exc.exit_code == ExitCode.PERMANENT)
        log.info("URL list counted", extra={"fields": {"source": position, "items": counts[position]}})
    return ListCounts(counts=counts)


def publish(client: redis.Redis, keys: Keys, job_uid: str, result: ListCounts) -> None:
    client.hset(keys.job(job_uid), LIST_COUNTS, result.model_dump_json(by_alias=True))
