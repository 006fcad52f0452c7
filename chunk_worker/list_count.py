"""Reading URL lists for the operator's plan, in a Job of the worker image: the operator itself never
requests a user-given URL. Each list is streamed once through the same SSRF-safe fetcher and parser
the chunks use, up to its limit; when the request names an output, its items are written there as
pages (list_pages.py) that the chunks read instead of the list. The counts (or the first error,
naming the source) go to Redis, where the operator reads them; the pages are all written first."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import partial
from itertools import islice

import redis

from chunk_worker import list_pages
from chunk_worker.contract import (
    LIST_COUNTS, ExitCode, Item, Keys, ListCountRequest, ListCounts, UrlList, source_pages,
)
from chunk_worker.errors import ChunkError, StorageUnavailable
from chunk_worker.fetch import Fetcher
from chunk_worker.netpolicy import NetworkPolicy
from chunk_worker.redaction import redact_url
from chunk_worker.settings import WorkerSettings
from chunk_worker.sources import list_items
from chunk_worker.storage import Storage, open_storage

log = logging.getLogger(__name__)

LIST_LINE_MAX_BYTES = 1024 * 1024


def read_url_list(url_list: UrlList, settings: WorkerSettings, limit: int | None = None,
                  consume: Callable[[Iterable[Item]], int] | None = None) -> int:
    """Streams the list (its first `limit` items at most) into `consume`, which returns how many items
    it took; without one, the items are only counted."""
    fetcher = Fetcher(NetworkPolicy(list(settings.allow_networks)), settings, max_bytes=LIST_LINE_MAX_BYTES)
    try:
        lines = fetcher.open_lines(url_list.url)
        try:
            items = islice(list_items(lines, url_list, ""), limit)
            return consume(items) if consume is not None else sum(1 for _ in items)
        finally:
            lines.close()
    finally:
        fetcher.close()


def count_lists(request: ListCountRequest, settings: WorkerSettings) -> ListCounts:
    """Every list's count (and pages), or the first error (naming the source) and whether a retry could help."""
    storage: Storage | None = None
    if request.output is not None:
        try:
            storage = open_storage(request.output)
            storage.check()
        except ChunkError as exc:
            if storage is not None:
                storage.close()
            return ListCounts(error=f"output {redact_url(request.output)}: {exc}",
                              permanent=exc.exit_code == ExitCode.PERMANENT)
    try:
        return _read_all(request, settings, storage)
    finally:
        if storage is not None:
            storage.close()


def _read_all(request: ListCountRequest, settings: WorkerSettings, storage: Storage | None) -> ListCounts:
    counts = {}
    for position, url_list in sorted(request.lists.items()):
        consume = None
        if storage is not None:
            assert request.pages is not None
            consume = partial(list_pages.write_pages, storage=storage, prefix=source_pages(request.pages, position),
                              page_size=request.page_size, tmp_dir=settings.tmp_dir)
        try:
            counts[position] = read_url_list(url_list, settings, request.limits.get(position), consume)
        except StorageUnavailable as exc:
            return ListCounts(error=f"pages of spec.sources[{position}].urlList: {exc}")
        except ChunkError as exc:
            return ListCounts(error=f"spec.sources[{position}].urlList.url: {exc}",
                              permanent=exc.exit_code == ExitCode.PERMANENT)
        log.info("URL list read", extra={"fields": {"source": position, "items": counts[position],
                                                    "pages": storage is not None}})
    return ListCounts(counts=counts)


def publish(client: redis.Redis, keys: Keys, job_uid: str, result: ListCounts) -> None:
    client.hset(keys.job(job_uid), LIST_COUNTS, result.model_dump_json(by_alias=True))
