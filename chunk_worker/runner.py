"""Runs one chunk: items flow fetch -> validate -> transform -> dedup -> upload on a bounded thread
pool, then the manifest is written last and the temp dir removed, whatever happened.

Dedup claims are made in item order (dedup.ClaimSequencer), so the lower position of a duplicate pair
is the one kept whichever download ends first. An image whose claim waits for a slower item before it
is parked, its bytes in the chunk's temp dir, and its thread takes the next item; the thread whose
item ends the wait hands the released claims to whichever threads are free. An image is transformed
before its claim (a duplicate's transform is wasted work), so that no decoded pixels wait. Parked
bytes stay in memory while all of them together fit in PARK_MEMORY_BYTES, past that they go to one
scratch file (spool.Spool)."""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Iterable, Iterator

from chunk_worker import licenses
from chunk_worker.arenas import release_free_heap
from chunk_worker.contract import (
    Attribution, ChunkRun, ChunkSpec, Item, ManifestLine, Reason, manifest_name, run_name, sample_key,
)
from chunk_worker.dedup import Claimed, ClaimSequencer, Deduper
from chunk_worker.errors import ChunkError
from chunk_worker.fetch import Fetcher
from chunk_worker.layouts import Layout, open_layout
from chunk_worker.logs import fields
from chunk_worker.memory import MemoryBudget
from chunk_worker.progress import Progress, Tally
from chunk_worker.redaction import redact_url
from chunk_worker.report.refused import RefusedSampler
from chunk_worker.sources import RejectedLine
from chunk_worker.spool import Spool
from chunk_worker.splits import class_index, split_of
from chunk_worker.storage import Storage
from chunk_worker.transform import pixels_for, transform_image
from chunk_worker.validate import ImageInfo, Rejected, validate_decoded

log = logging.getLogger(__name__)

REFUSED_BY_POLICY = {
    Reason.BLOCKED_ADDRESS.value,
    Reason.BLOCKED_SCHEME.value,
    Reason.BAD_URL.value,
    Reason.TOO_LARGE.value,
    Reason.OPT_OUT.value,
    Reason.ROBOTS_TXT_DISALLOWED.value,
    Reason.TDM_RESERVED.value,
    Reason.ENCODED_BODY.value,
    Reason.LICENSE_NOT_ALLOWED.value,
    Reason.LABEL_NOT_IN_CLASSES.value,
}


PARK_MEMORY_BYTES = 4 * 1024 * 1024
"""Parked images (encoded bytes, ~100 KB each for web-sized JPEGs) kept in memory at most; the rest
wait in the parking's spool file. In-order claims park nearly every image for a moment (the lower
positions still in flight): a file each, written and read back, was 0.6 ms of CPU per image. On the
bench workload up to 12 MiB wait at once; past 4 MiB (about 1 in 4 images there) one pwrite and one
pread each cost next to nothing, and the cap keeps a stalled download from holding more memory."""

TRIM_EVERY = 200
"""Items between two `release_free_heap` calls: the freed image buffers of 200 items sit between
records that stay, where glibc never returns them on its own (3,000 home items: 230 -> 150 MiB)."""


def pixel_slots(configured: int | None = None) -> int:
    """How many items decode, hash and encode at once: `configured` (PIXCRAWLER_PIXEL_SLOTS), else the
    CPUs this process may run on, plus one. The other item threads wait on the network or for a
    slot, not for the GIL: 32 threads all doing pixel work on 2 cores spent 0.5 ms per image handing
    the GIL back and forth (futex wakes), and each held a decoded image in memory meanwhile."""
    if configured:
        return configured
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return cpus + 1


def status_for_fetch_failure(reason: str) -> str:
    """Refused by our own rules is `rejected`; the network or the server letting us down is `failed`."""
    return "rejected" if reason in REFUSED_BY_POLICY else "failed"


def item_owner(chunk: int, position: int) -> str:
    """Stable across retries of a chunk, so a retry never marks its own earlier uploads as duplicates."""
    return f"{chunk:05d}.{position:05d}"


def planned_total(spec: ChunkSpec) -> int:
    return len(spec.items) + sum(source.count for source in spec.sources)


class Parking:
    """Where images wait for their claim: in memory while the bytes waiting there stay under
    `memory_bytes`, else in one spool file in `directory`. Thread-safe."""

    def __init__(self, directory: Path, memory_bytes: int = PARK_MEMORY_BYTES) -> None:
        self.spool = Spool(directory / "parked")
        self.memory_bytes = memory_bytes
        self._held = 0
        self._lock = threading.Lock()

    def hold(self, size: int) -> bool:
        """Whether `size` more bytes may wait in memory (then counted until `let_go`)."""
        with self._lock:
            if self._held + size > self.memory_bytes:
                return False
            self._held += size
            return True

    def let_go(self, size: int) -> None:
        with self._lock:
            self._held -= size

    def close(self) -> None:
        self.spool.close()


class Accepted:
    """An image past validation and transform, before its claim: its line if kept, what it is if a
    duplicate, and the bytes to store, held by the parking while the claim waits (`park`)."""

    def __init__(self, info: ImageInfo, described: dict, line: ManifestLine, data: bytes) -> None:
        self.info, self.described, self.line = info, described, line
        self._data: bytes | None = data
        self._parking: Parking | None = None
        self._held = False  # counted against the parking's memory
        self._offset: int | None = None  # in the parking's spool
        self._size = len(data)
        self._taken = False
        self._lock = threading.Lock()

    def park(self, parking: Parking) -> None:
        """Unless its claim already took them, the bytes wait in the parking's memory or its spool."""
        with self._lock:
            if self._taken or self._data is None:
                return
            self._parking = parking
            if parking.hold(self._size):
                self._held = True
                return
            try:
                self._offset = parking.spool.append(self._data)
            except OSError:  # no room in the temp dir: they wait in memory instead
                return
            self._data = None

    def take(self) -> bytes:
        with self._lock:
            self._taken = True
            data, self._data = self._data, None
            parking = self._parking
            if data is None:
                assert parking is not None and self._offset is not None, "an image is taken once"
                data = parking.spool.read(self._offset, self._size)
                parking.spool.release(self._offset, self._size)
                self._offset = None
            elif self._held:
                assert parking is not None
                parking.let_go(self._size)
                self._held = False
            return data


@dataclass
class Pipeline:
    """The per-item work, shared by every thread of one chunk. run_chunk opens `layout` in the
    chunk's temp dir, starts `claims` and gives waiting images `parking` there. `budget`, when given,
    is what every decode reserves against (memory.py)."""

    spec: ChunkSpec
    fetcher: Fetcher
    deduper: Deduper
    storage: Storage
    layout: Layout | None = None
    budget: MemoryBudget | None = None
    claims: ClaimSequencer[Accepted] | None = None
    parking: Parking | None = None
    refused: RefusedSampler = field(default_factory=RefusedSampler)
    released: queue.SimpleQueue[Claimed[Accepted]] = field(default_factory=queue.SimpleQueue)
    pixel_work: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(pixel_slots()))

    def process(self, position: int, item: Item) -> ManifestLine | None:
        """The item's line, or None while its claim waits for a lower position: `finish` makes the
        line once a later item's claim releases it (into `released`)."""
        assert self.claims is not None and self.parking is not None, "run_chunk starts the claims"
        submitted = False
        try:
            outcome = self._process(position, item)
            submitted = True
            if isinstance(outcome, ManifestLine):
                self._release(self.claims.submit(position, None))
                return outcome
            mine = self._release(self.claims.submit(position, outcome.info, outcome), position)
            if mine is None:
                outcome.park(self.parking)
                return None
            return self.finish(mine)[1]
        except ChunkError:
            raise
        except Exception:  # a storage outage ends the chunk (above); anything else is one bad item
            log.exception("item failed unexpectedly", extra=fields(url=redact_url(item.url)))
            if not submitted:
                self._release(self.claims.submit(position, None))
            return ManifestLine(url=redact_url(item.url), label=item.label, status="failed", reason="internal_error")

    def finish(self, claimed: Claimed[Accepted]) -> tuple[int, ManifestLine]:
        """Store the image its claim kept, or record the duplicate the claim found."""
        accepted = claimed.payload
        try:
            if claimed.verdict:
                line = ManifestLine(status="duplicate", reason=str(getattr(claimed.verdict, "value", claimed.verdict)),
                                    **accepted.described)
                self.refused.offer(line, accepted.take())
                return claimed.position, line
            assert self.layout is not None, "run_chunk opens the layout"
            return claimed.position, self.layout.add(accepted.line, accepted.take())
        except ChunkError:
            raise
        except Exception:
            log.exception("item failed unexpectedly", extra=fields(url=accepted.line.url))
            return claimed.position, ManifestLine(url=accepted.line.url, label=accepted.line.label, status="failed",
                                                  reason="internal_error")

    def _release(self, made: list[Claimed[Accepted]], position: int | None = None) -> Claimed[Accepted] | None:
        """Queues the claims made for other positions for any free thread; returns `position`'s own."""
        mine = None
        for claimed in made:
            if claimed.position == position:
                mine = claimed
            else:
                self.released.put(claimed)
        return mine

    def _process(self, position: int, item: Item) -> ManifestLine | Accepted:
        """Policy first (licence, class: no byte is fetched for an item the job cannot keep), then fetch,
        validate, transform; the image then goes to its claim."""
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
            return ManifestLine(status=status_for_fetch_failure(reason), reason=reason, opt_out=fetched.opt_out,
                                **known)
        data = fetched.data
        slot = self.budget.slot() if self.budget is not None else None
        with self.pixel_work, slot or nullcontext():  # the decode's memory, reserved before its first pixel, held until encoded
            try:
                info, decoded = validate_decoded(data, rules, partial(pixels_for, self.spec.transform), slot)
            except Rejected as rejected:
                line = ManifestLine(status="rejected", reason=rejected.reason, bytes=len(data), **known)
                self.refused.offer(line, data)
                return line
            try:  # the decoded image (one per item in flight) lives until its transform, not a moment longer
                described = dict(known, sha256=info.sha256, phash=info.phash_hex, width=info.width, height=info.height,
                                 original_width=info.original_width, original_height=info.original_height,
                                 bytes=info.bytes, format=info.format)
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
                                   format=stored.format, stored_sha256=stored_sha256(data, info.sha256, stored.data)))
        return Accepted(info, described, line, stored.data)


def stored_sha256(downloaded: bytes, downloaded_sha256: str, stored: bytes) -> str:
    """The hash a download of the dataset checks: the download's own when the bytes were kept."""
    return downloaded_sha256 if stored is downloaded else hashlib.sha256(stored).hexdigest()


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
    """Yields (position, line) as items finish. `threads` long-lived threads each store a released
    claim or else take the next item when they are free, so at most `threads` items are in memory:
    bounded by threads x byte cap, never by the chunk's size (parked images wait on disk). A thread
    leaves when no item and no released claim is left; the one that releases claims drains them
    before it leaves. A ChunkError in any thread ends the chunk."""
    source = enumerate(items)
    take = threading.Lock()
    stop = threading.Event()
    results: queue.SimpleQueue[tuple[int, ManifestLine] | BaseException | None] = queue.SimpleQueue()

    def work() -> None:
        try:
            while not stop.is_set():
                try:
                    claimed = pipeline.released.get_nowait()
                except queue.Empty:
                    claimed = None
                if claimed is not None:
                    results.put(pipeline.finish(claimed))
                    continue
                with take:
                    position, item = next(source, (None, None))
                if item is None:
                    return
                line = pipeline.process(position, item)
                if line is not None:
                    results.put((position, line))
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
    """The manifest is assembled in a per-chunk temp dir and written to the output last, just after
    the chunk's run record (when it ran, a few refused thumbnails) for the report."""
    started = time.monotonic()
    started_at = datetime.now(timezone.utc)
    tmp = Path(tempfile.mkdtemp(prefix=f"pixcrawler-chunk-{spec.chunk:05d}-", dir=tmp_root))
    parking = Parking(tmp)
    try:
        pipeline.storage.check()
        samples = tmp / "samples"
        samples.mkdir()
        pipeline = replace(pipeline, layout=open_layout(spec, pipeline.storage, samples), parking=parking,
                           claims=ClaimSequencer(pipeline.deduper, partial(item_owner, spec.chunk)),
                           released=queue.SimpleQueue(), refused=RefusedSampler())
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
        run = ChunkRun(chunk=spec.chunk, attempt=spec.attempt, started_at=started_at,
                       finished_at=datetime.now(timezone.utc), seconds=round(time.monotonic() - started, 3),
                       refused=pipeline.refused.samples())
        pipeline.storage.put_manifest(run_name(spec.chunk), run.model_dump_json(exclude_none=True).encode())
        pipeline.storage.put_manifest(name, manifest)
        summary = ChunkSummary(spec.job, spec.chunk, name, dict(tally.counts), time.monotonic() - started)
        log.info("chunk done", extra=fields(job=spec.job, chunk=spec.chunk, seconds=round(summary.seconds, 3),
                                           **summary.counts))
        return summary
    finally:
        parking.close()
        shutil.rmtree(tmp, ignore_errors=True)
