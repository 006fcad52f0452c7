"""Runs one chunk: items flow fetch -> validate -> dedup -> upload on a bounded thread pool,
then the manifest is written last and the temp dir removed, whatever happened."""

from __future__ import annotations

import logging
import queue
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Iterable, Iterator

from chunk_worker import licenses
from chunk_worker.arenas import release_free_heap
from chunk_worker.contract import Attribution, ChunkSpec, Item, ManifestLine, Reason, manifest_name, sample_key
from chunk_worker.dedup import Deduper
from chunk_worker.errors import ChunkError
from chunk_worker.fetch import Fetcher
from chunk_worker.layouts import Layout, open_layout
from chunk_worker.logs import fields
from chunk_worker.progress import Progress, Tally
from chunk_worker.redaction import redact_url
from chunk_worker.sources import RejectedLine
from chunk_worker.splits import class_index, split_of
from chunk_worker.storage import Storage
from chunk_worker.transform import pixels_for, transform_image
from chunk_worker.validate import Rejected, validate_decoded

log = logging.getLogger(__name__)

REFUSED_BY_POLICY = {
    Reason.BLOCKED_ADDRESS.value,
    Reason.BLOCKED_SCHEME.value,
    Reason.BAD_URL.value,
    Reason.TOO_LARGE.value,
    Reason.OPT_OUT.value,
    Reason.ENCODED_BODY.value,
    Reason.LICENSE_NOT_ALLOWED.value,
    Reason.LABEL_NOT_IN_CLASSES.value,
}


TRIM_EVERY = 200
"""Items between two `release_free_heap` calls: the freed image buffers of 200 items sit between
records that stay, where glibc never returns them on its own (3,000 home items: 230 -> 150 MiB)."""


def status_for_fetch_failure(reason: str) -> str:
    """Refused by our own rules is `rejected`; the network or the server letting us down is `failed`."""
    return "rejected" if reason in REFUSED_BY_POLICY else "failed"


def item_owner(chunk: int, position: int) -> str:
    """Stable across retries of a chunk, so a retry never marks its own earlier uploads as duplicates."""
    return f"{chunk:05d}.{position:05d}"


def planned_total(spec: ChunkSpec) -> int:
    return len(spec.items) + sum(source.count for source in spec.sources)


@dataclass
class Pipeline:
    """The per-item work, shared by every thread of one chunk. `layout` is opened by run_chunk in the
    chunk's temp dir."""

    spec: ChunkSpec
    fetcher: Fetcher
    deduper: Deduper
    storage: Storage
    layout: Layout | None = None

    def process(self, position: int, item: Item) -> ManifestLine:
        try:
            return self._process(position, item)
        except ChunkError:
            raise
        except Exception:  # a storage outage ends the chunk (above); anything else is one bad item
            log.exception("item failed unexpectedly", extra=fields(url=redact_url(item.url)))
            return ManifestLine(url=redact_url(item.url), label=item.label, status="failed", reason="internal_error")

    def _process(self, position: int, item: Item) -> ManifestLine:
        """Policy first (licence, class: no byte is fetched for an item the job cannot keep), then fetch,
        validate, dedup, transform, store."""
        known = dict(url=redact_url(item.url), label=item.label,
                     **item.model_dump(include=set(Attribution.model_fields)))
        if isinstance(item, RejectedLine):  # a URL-list line that gave no item: nothing to fetch
            return ManifestLine(status="rejected", reason=Reason.BAD_LIST_LINE.value, **known)
        rules = self.spec.validation
        if rules.licenses is not None and not licenses.is_allowed(item.license, rules.licenses):
            return ManifestLine(status="rejected", reason=Reason.LICENSE_NOT_ALLOWED.value, **known)
        cls = class_index(item.label, self.spec.classes) if self.spec.classes else None
        if self.spec.classes and cls is None:
            return ManifestLine(status="rejected", reason=Reason.LABEL_NOT_IN_CLASSES.value, **known)
        fetched = self.fetcher.fetch(item.url)
        if not fetched.ok or fetched.data is None:
            reason = fetched.reason or Reason.CONNECTION_ERROR.value
            return ManifestLine(status=status_for_fetch_failure(reason), reason=reason, **known)
        data = fetched.data
        try:
            info, decoded = validate_decoded(data, rules, partial(pixels_for, self.spec.transform))
        except Rejected as rejected:
            return ManifestLine(status="rejected", reason=rejected.reason, bytes=len(data), **known)
        try:  # the decoded image (one per item in flight) lives until its transform, not a moment longer
            described = dict(known, sha256=info.sha256, phash=info.phash_hex, width=info.width, height=info.height,
                             original_width=info.original_width, original_height=info.original_height,
                             bytes=info.bytes, format=info.format)
            duplicate = self.deduper.claim(info, item_owner(self.spec.chunk, position))
            if duplicate:
                return ManifestLine(status="duplicate", reason=str(getattr(duplicate, "value", duplicate)),
                                    **described)
            try:
                stored = transform_image(data, info, self.spec.transform, decoded)
            except Rejected as rejected:
                return ManifestLine(status="rejected", reason=rejected.reason, **described)
        finally:
            if decoded is not None:
                decoded.close()
        line = ManifestLine(status="ok", key=sample_key(self.spec.chunk, position),
                            split=split_of(info.sha256, self.spec.split), cls=cls,
                            **dict(described, width=stored.width, height=stored.height, bytes=len(stored.data),
                                   format=stored.format))
        assert self.layout is not None, "run_chunk opens the layout"
        return self.layout.add(line, stored.data)


@dataclass
class ChunkSummary:
    job: str
    chunk: int
    manifest: str
    counts: dict[str, int]
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.counts.get("requested", 0) / self.seconds if self.seconds > 0 else 0.0


def run_in_pool(pipeline: Pipeline, items: Iterable[Item], threads: int) -> Iterator[tuple[int, ManifestLine]]:
    """Yields (position, line) as items finish. `threads` long-lived threads each take the next item
    when they are free, so at most `threads` items are in memory: bounded by threads x byte cap,
    never by the chunk's size. A ChunkError in any thread ends the chunk."""
    source = enumerate(items)
    take = threading.Lock()
    stop = threading.Event()
    results: queue.SimpleQueue[tuple[int, ManifestLine] | BaseException | None] = queue.SimpleQueue()

    def work() -> None:
        try:
            while not stop.is_set():
                with take:
                    position, item = next(source, (None, None))
                if item is None:
                    return
                results.put((position, pipeline.process(position, item)))
        except BaseException as exc:  # handed to the main thread, which ends the chunk
            results.put(exc)
        finally:
            results.put(None)

    pool = [threading.Thread(target=work, name=f"item-{n}", daemon=True) for n in range(threads)]
    for thread in pool:
        thread.start()
    running = len(pool)
    try:
        while running:
            try:
                result = results.get(timeout=0.5)  # a timeout keeps SIGTERM deliverable
            except queue.Empty:
                continue
            if result is None:
                running -= 1
            elif isinstance(result, BaseException):
                raise result
            else:
                yield result
    finally:
        stop.set()


def run_chunk(
    spec: ChunkSpec,
    items: Iterable[Item],
    pipeline: Pipeline,
    progress: list[Progress],
    tally: Tally,
    threads: int,
    tmp_root: str | None = None,
) -> ChunkSummary:
    """The manifest is assembled in a per-chunk temp dir and written to the output last."""
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=f"pixcrawler-chunk-{spec.chunk:05d}-", dir=tmp_root))
    try:
        pipeline.storage.check()
        samples = tmp / "samples"
        samples.mkdir()
        pipeline = replace(pipeline, layout=open_layout(spec, pipeline.storage, samples))
        for sink in progress:
            sink.started(planned_total(spec))
        results: dict[int, ManifestLine] = {}
        for position, line in run_in_pool(pipeline, items, threads):
            results[position] = line
            tally.add(line)
            for sink in progress:
                sink.record(line)
            if len(results) % TRIM_EVERY == 0:
                release_free_heap()
        release_free_heap()  # before the commit pages in pyarrow
        pipeline.layout.commit()  # shards are whole under their final names before the manifest declares them
        manifest = "".join(results[position].model_dump_json(exclude_none=True) + "\n"
                           for position in sorted(results)).encode()
        (tmp / "manifest.jsonl").write_bytes(manifest)
        name = manifest_name(spec.chunk)
        pipeline.storage.put_manifest(name, manifest)
        summary = ChunkSummary(spec.job, spec.chunk, name, dict(tally.counts), time.monotonic() - started)
        log.info("chunk done", extra=fields(job=spec.job, chunk=spec.chunk, seconds=round(summary.seconds, 3),
                                           **summary.counts))
        return summary
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
