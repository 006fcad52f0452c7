"""The worker's memory budget: decodes wait for room instead of outgrowing the pod's limit.

A 38-byte WebP can declare 9400 x 9400 pixels and take 1.4 GB to decode; `maxPixels` alone does not
stop it, and a few such at once OOM-kill any pod. So every decode first reserves, against one
budget per process, what it will hold at its peak (computed from the header, before a pixel is
decoded); an image whose need exceeds the whole budget is refused at once, the others wait their
turn. The budget is what the pod's memory limit (cgroup v2 `memory.max` or v1
`memory.limit_in_bytes`) leaves after the process itself and the download buffers of every
thread; PIXCRAWLER_MEMORY_BUDGET_BYTES overrides it.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from PIL import Image

log = logging.getLogger(__name__)

MiB = 1024 * 1024
UNLIMITED_FROM = 1 << 60  # cgroup v1 writes "no limit" as a page-rounded 2**63 - 1
PROCESS_BYTES = 160 * MiB  # the worker without any image: interpreter, libraries, layout buffers (~100 MiB measured)
BODY_COPIES = 2  # a download is held twice at its end: the read buffer and the bytes handed on
MIN_DECODE_BYTES = 64 * MiB  # the smallest budget worth running with; fewer threads before less than this
DECODE_OVERHEAD_BYTES = 8 * MiB  # a decoder's fixed tables and the interpreter's objects around one image

# Bytes per pixel beyond the decoded image itself, measured with bench-like runs of validate and
# transform on 3000 x 3000 sources (tests/integration/chunk_worker/test_memory_need.py holds the
# estimate above what decoding really takes, format by format):
WEBP_DECODER_COPIES = 3  # libwebp's canvas, its previous canvas, and the frame Pillow copies out (RGBA)
JPEG_COEFFICIENT_BYTES = 2  # a progressive JPEG keeps every DCT coefficient (int16) at full size
WORKING_BYTES = 5  # RGB(A) copies: the pHash's and the transform's mode conversions, a reduce's output
HASH_BYTES = 1.5  # the pHash's reducing resample
WIDE_SAMPLE_BYTES = 4  # 16-bit pixels are scaled to 8 bits through a uint32 array
ANIMATION_CANVAS_BYTES = 4  # an animation composites onto an RGBA canvas beside the frame it decodes
OUTPUT_BYTES = 18  # per output pixel: resampled, flattened and encoded (WebP's ARGB and YUV planes)


class NeverFits(Exception):
    """The decode would need more than the whole budget: waiting would never help."""

    def __init__(self, need: int, capacity: int) -> None:
        super().__init__(f"decoding needs {need // MiB} MiB, the worker's whole budget is {capacity // MiB} MiB")
        self.need = need
        self.capacity = capacity


# --- how much a decode holds at its peak (pure) -----------------------------------------------


def bytes_per_sample(mode: str) -> int:
    if mode in ("I", "F"):
        return 4
    return 2 if mode.startswith("I;16") else 1


def bands(mode: str) -> int:
    return Image.getmodebands(mode)


@dataclass(frozen=True)
class Header:
    """What an image's header says about the decode to come. `decoded` is the size pixels come out
    at (a JPEG's DCT scale applied), `size` the size stored in the file; `output` the size the
    transform encodes (None: the bytes are stored untouched)."""

    format: str
    mode: str
    size: tuple[int, int]
    decoded: tuple[int, int] | None = None
    animated: bool = False
    progressive: bool = False
    output: tuple[int, int] | None = None


def decode_need(header: Header) -> int:
    """Bytes one image holds at its peak, from validation's decode to the transform's encode: the
    decoded pixels (width x height x bands x bytes per sample), the decoder's own buffers, the
    working copies, and the encoded output's buffers. Deliberately an upper bound. An animation
    counts the frames held at once (Pillow decodes frame after frame onto one canvas, keeping the
    previous one for disposal), not all of its frames: no decode here holds them all."""
    width, height = header.size
    stored = width * height
    decoded_width, decoded_height = header.decoded or header.size
    pixels = decoded_width * decoded_height
    sample = bytes_per_sample(header.mode)
    need = pixels * bands(header.mode) * sample
    if header.format == "WEBP":
        need += WEBP_DECODER_COPIES * 4 * stored
    if header.format == "JPEG" and header.progressive:
        need += JPEG_COEFFICIENT_BYTES * bands(header.mode) * stored
    if header.animated:
        need += ANIMATION_CANVAS_BYTES * pixels
    need += int(pixels * (WORKING_BYTES + HASH_BYTES))
    if sample > 1:
        need += WIDE_SAMPLE_BYTES * pixels
    if header.output is not None:
        side = max(header.output)  # a border or a crop works on the square of the longer side
        need += OUTPUT_BYTES * side * side
    return need + DECODE_OVERHEAD_BYTES


# --- what the pod allows (pure decisions, then the cgroup files) --------------------------------


def parse_limit(text: str) -> int | None:
    """A cgroup memory limit file's value; None for no limit ("max" in v2, ~2**63 in v1)."""
    value = text.strip()
    if not value or value == "max":
        return None
    number = int(value)
    return None if number >= UNLIMITED_FROM else number


def cgroup_paths(proc_self_cgroup: str) -> tuple[str | None, str | None]:
    """This process's (v2 unified, v1 memory) cgroup paths from /proc/self/cgroup's text."""
    unified = memory = None
    for line in proc_self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            unified = path
        elif "memory" in controllers.split(","):
            memory = path
    return unified, memory


def _limits_up(mount: Path, path: str | None, name: str) -> list[int]:
    """Limits of the cgroup at `path` under `mount` and of its ancestors (each one binds)."""
    found = []
    parts = [part for part in (path or "/").split("/") if part]
    for depth in range(len(parts), -1, -1):
        file = mount.joinpath(*parts[:depth], name)
        try:
            limit = parse_limit(file.read_text())
        except (OSError, ValueError):
            continue
        if limit is not None:
            found.append(limit)
    return found


def pod_memory_limit(root: Path = Path("/sys/fs/cgroup"),
                     proc_self_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """The tightest memory limit over this process's cgroup and its ancestors, v2 or v1; None when
    none is set (or the files cannot be read: not Linux, no cgroup file system)."""
    try:
        unified, memory = cgroup_paths(proc_self_cgroup.read_text())
    except OSError:
        return None
    limits = []
    if unified is not None:
        limits += _limits_up(root, unified, "memory.max")
        limits += _limits_up(root / "unified", unified, "memory.max")  # hybrid hierarchies mount v2 there
    if memory is not None:
        limits += _limits_up(root / "memory", memory, "memory.limit_in_bytes")
        limits += _limits_up(root / "memory", "/", "memory.limit_in_bytes")  # a cgroup namespace shows its own root
    return min(limits) if limits else None


@dataclass(frozen=True)
class MemoryPlan:
    """How a worker process spends its pod's memory: the budget decodes reserve against, and the
    download threads whose bodies the budget leaves room for."""

    capacity: int
    threads: int
    limit: int | None
    reason: str


def plan_memory(limit: int | None, threads: int, max_bytes: int, override: int | None = None,
                machine: int = 4096 * MiB) -> MemoryPlan:
    """limit = process + threads x (bodies held at once) + decode budget. Fewer threads when the
    limit cannot hold them beside MIN_DECODE_BYTES of budget (never fewer than one); an override
    is taken as given. Without any limit, the machine's memory is the limit."""
    if override is not None:
        return MemoryPlan(override, threads, limit, "PIXCRAWLER_MEMORY_BUDGET_BYTES")
    effective = limit if limit is not None else machine
    body = BODY_COPIES * max_bytes
    fitting = max(1, (effective - PROCESS_BYTES - MIN_DECODE_BYTES) // body)
    chosen = min(threads, fitting)
    capacity = max(MIN_DECODE_BYTES, effective - PROCESS_BYTES - chosen * body)
    source = "the pod's memory limit" if limit is not None else f"no memory limit: the machine's {machine // MiB} MiB"
    return MemoryPlan(capacity, chosen, limit, source)


# --- the budget ------------------------------------------------------------------------------


class MemoryBudget:
    """Bytes reserved by in-flight decodes, never more than `capacity` at once. Waiters are served
    in arrival order, so a large image is not starved by a stream of small ones."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a memory budget needs a positive capacity, not {capacity}")
        self.capacity = capacity
        self._in_use = 0
        self._peak = 0
        self._waiting: collections.deque[object] = collections.deque()
        self._changed = threading.Condition(threading.Lock())  # never re-entered: a plain lock is cheaper

    @property
    def in_use(self) -> int:
        with self._changed:
            return self._in_use

    @property
    def peak(self) -> int:
        """The most ever reserved at once."""
        with self._changed:
            return self._peak

    @property
    def waiting(self) -> int:
        """Reservations blocked until room is released."""
        with self._changed:
            return len(self._waiting)

    def impossible(self, need: int) -> bool:
        """True when `need` bytes can never be reserved, however long one waits."""
        return need > self.capacity

    def reserve(self, need: int) -> Reservation:
        """A context manager holding `need` bytes from entry (blocking until they fit) to exit;
        raises NeverFits at once when they never will."""
        return Reservation(self, max(0, need))

    def slot(self) -> Reservation:
        """An empty reservation to scope a decode whose need is known only once its header is read."""
        return Reservation(self, None)

    def _acquire(self, need: int) -> None:
        if self.impossible(need):
            raise NeverFits(need, self.capacity)
        with self._changed:
            if not self._waiting and self._in_use + need <= self.capacity:  # the usual case: nobody queued, it fits
                self._in_use += need
                self._peak = max(self._peak, self._in_use)
                return
            ticket = object()
            self._waiting.append(ticket)
            try:
                self._changed.wait_for(lambda: self._waiting[0] is ticket and self._in_use + need <= self.capacity)
            finally:
                self._waiting.remove(ticket)
                self._changed.notify_all()
            self._in_use += need
            self._peak = max(self._peak, self._in_use)

    def _release(self, need: int) -> None:
        with self._changed:
            self._in_use -= need
            if self._waiting:  # waking nobody is not free: every release of every item came here
                self._changed.notify_all()


class Reservation:
    """Bytes of a MemoryBudget, held from `acquire()` (or entering the `with` block) to `release()`
    (or leaving it). A slot (`MemoryBudget.slot()`) starts empty and is filled once by `take(need)`,
    when the need is known: the caller scopes the reservation, the decoder sizes it. One
    reservation per item, never grown, so no thread ever waits while holding memory."""

    def __init__(self, budget: MemoryBudget, need: int | None) -> None:
        self.budget = budget
        self.need = need
        self._held = False

    def take(self, need: int) -> Reservation:
        """Fill a slot: block until `need` bytes fit (NeverFits when they never will)."""
        if self._held:
            raise RuntimeError("a reservation is taken once")
        self.need = max(0, need)
        return self.acquire()

    def acquire(self) -> Reservation:
        if not self._held and self.need is not None:
            self.budget._acquire(self.need)
            self._held = True
        return self

    def release(self) -> None:
        if self._held:
            self._held = False
            self.budget._release(self.need or 0)

    def __enter__(self) -> Reservation:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()


def machine_memory() -> int:
    """Physical memory, the limit of a worker no cgroup limits (4 GiB where the system cannot tell)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 4096 * MiB


def budget_for(threads: int, max_bytes: int, override: int | None = None) -> tuple[MemoryBudget, MemoryPlan]:
    """The budget of this process, from its cgroup's limit (or `override`), and the threads it allows."""
    plan = plan_memory(pod_memory_limit(), threads, max_bytes, override, machine_memory())
    if plan.threads < threads:
        log.warning("memory limit %d MiB holds the bodies of %d download threads, not %d: using %d",
                    (plan.limit or 0) // MiB, plan.threads, threads, plan.threads)
    log.info("memory budget %d MiB (%s)", plan.capacity // MiB, plan.reason)
    return MemoryBudget(plan.capacity), plan
