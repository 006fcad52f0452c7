"""The worker's glibc heap: fewer malloc arenas, Arrow's allocations on it too, and free pages handed back.

glibc gives each thread that meets a locked arena a new one, up to 8 per core, and an arena keeps
the memory it once held: a chunk's 32 item threads each decode and encode images of a few MiB, so
every thread ends up with its own arena holding its own high-water mark. Two arenas took a home
chunk's peak RSS from 232 to 193 MiB; decoding and encoding run in libjpeg outside malloc's locks,
so the threads hardly contend for them. Freed image buffers that lie between allocations still in
use (records, manifest lines) stay resident until `release_free_heap`. Arrow (a shard's Parquet
sidecar, finalize's index) allocates from the same heap instead of mimalloc's own reservations.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_ARENA_MAX = -8  # glibc's malloc.h
WORKER_ARENAS = 2
ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"


def limit_malloc_arenas(count: int = WORKER_ARENAS) -> bool:
    """Caps the process at `count` malloc arenas (glibc's mallopt(M_ARENA_MAX)); call before any
    thread starts. True when the cap was set; False on a C library other than glibc (musl's malloc
    has no per-thread arenas), or when MALLOC_ARENA_MAX is set in the environment, which then rules."""
    if platform.libc_ver()[0] != "glibc" or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(M_ARENA_MAX, count) == 1


def arrow_on_glibc_heap() -> bool:
    """Makes Arrow's default memory pool the `system` one (malloc) rather than mimalloc; call before
    pyarrow first allocates. mimalloc's arenas held about 20 MiB more at a home chunk's commit, where
    a shard's Parquet sidecar of 1,500 rows is the only Arrow data (peak RSS 137 -> 117 MiB). True when
    set; False when ARROW_DEFAULT_MEMORY_POOL is set in the environment, which then rules."""
    if ARROW_POOL_VARIABLE in os.environ:
        return False
    os.environ[ARROW_POOL_VARIABLE] = "system"
    return True


def release_free_heap() -> None:
    """Hands the heap's free pages back to the kernel (glibc's malloc_trim): called once the items
    are done, so the memory their images held is not still counted when the commit loads pyarrow."""
    if platform.libc_ver()[0] != "glibc":
        return
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim.argtypes = (ctypes.c_size_t,)
    trim(0)
