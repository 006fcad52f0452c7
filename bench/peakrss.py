"""Peak memory of process trees: the summed RSS of every live process in them, sampled by psutil.

A sum over forked processes counts shared pages once per process, so it is an upper bound; both
tools are measured the same way, which is what a comparison needs.
"""

from __future__ import annotations

import threading

import psutil


def tree_rss(root: psutil.Process) -> int:
    try:
        members = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in members:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total


class PeakRss:
    """`with PeakRss() as peak: peak.watch(pid) ...`; `peak.bytes` is the highest sum seen over all trees."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.bytes = 0
        self._roots: list[psutil.Process] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)

    def watch(self, pid: int) -> None:
        try:
            self._roots.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.bytes = max(self.bytes, sum(tree_rss(root) for root in list(self._roots)))
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
