"""The worker process caps glibc's malloc arenas, so 32 item threads do not each keep their own heap."""

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's")

THREADS_ALLOCATING = """
import ctypes, sys, threading
from chunk_worker.arenas import limit_malloc_arenas

print(limit_malloc_arenas() if sys.argv[1] == "limit" else None, flush=True)
barrier = threading.Barrier(8)
kept = []

def work():
    barrier.wait()  # all 8 threads allocate at once, as item threads decoding images do
    kept.append([bytearray(20000) for _ in range(50)])
    barrier.wait()

threads = [threading.Thread(target=work) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
ctypes.CDLL(None).malloc_stats()  # one "Arena N:" block per arena, on stderr
"""


def arenas(mode: str, **env: str) -> tuple[str, int]:
    result = subprocess.run([sys.executable, "-c", THREADS_ALLOCATING, mode], capture_output=True, text=True,
                            check=True, env={key: value for key, value in os.environ.items()
                                             if key != "MALLOC_ARENA_MAX"} | env)
    return result.stdout.strip(), sum(line.startswith("Arena ") for line in result.stderr.splitlines())


def test_concurrent_threads_share_two_arenas_once_capped():
    assert arenas("limit") == ("True", 2)


def test_without_the_cap_each_concurrent_thread_gets_an_arena():
    assert arenas("none")[1] > 2


def test_an_explicit_malloc_arena_max_in_the_environment_is_left_to_rule():
    assert arenas("limit", MALLOC_ARENA_MAX="4") == ("False", 4)


FRAGMENTED_HEAP = """
import sys
from chunk_worker.arenas import release_free_heap

def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096

big, pinned = [], []
for _ in range(1000):  # 100 MB of images' worth, each followed by a small record that stays
    big.append(bytearray(100_000))
    pinned.append(bytearray(1000))
big.clear()  # free, but between pinned records: glibc keeps it all resident
before = rss()
if sys.argv[1] == "release":
    release_free_heap()
print((before - rss()) // 2**20)
"""


def freed_mib(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", FRAGMENTED_HEAP, mode], capture_output=True, text=True, check=True)
    return int(result.stdout)


def test_free_heap_between_live_objects_goes_back_to_the_kernel_when_released():
    assert freed_mib("release") >= 80


def test_free_heap_between_live_objects_stays_resident_unless_released():
    assert freed_mib("keep") <= 10


ARROW_POOL = """
import sys
from chunk_worker.arenas import arrow_on_glibc_heap

print(arrow_on_glibc_heap() if sys.argv[1] == "system" else None)
import pyarrow

pyarrow.array([1, 2, 3])
print(pyarrow.default_memory_pool().backend_name)
"""


def arrow_pool(mode: str, **env: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", ARROW_POOL, mode], capture_output=True, text=True, check=True,
                            env={key: value for key, value in os.environ.items()
                                 if key != "ARROW_DEFAULT_MEMORY_POOL"} | env)
    return result.stdout.split()


def test_arrow_allocates_from_the_glibc_heap_once_asked():
    assert arrow_pool("system") == ["True", "system"]


def test_arrow_keeps_its_own_allocator_unless_asked():
    assert arrow_pool("none")[1] != "system"


def test_an_explicit_arrow_memory_pool_in_the_environment_is_left_to_rule():
    assert arrow_pool("system", ARROW_DEFAULT_MEMORY_POOL="mimalloc") == ["False", "mimalloc"]
