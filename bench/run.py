"""`make bench`: every benchmark in one run, each printing its figures and its ratio to the goal or peer.

    python bench/run.py                 all of them
    python bench/run.py worker queue    only these (names below)
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

BENCHMARKS = {
    "worker": "worker_vs_img2dataset",  # chunk worker vs img2dataset: files and home (resize + webdataset) configs
    "queue": "chunkqueue",              # enqueue 10M images, admission cycle at 100k chunks, Redis bytes per chunk
    "apiserver": "apiserver",           # Jobs created per second against the real API server
    "operator": "operator_rss",         # operator RSS with 1,000 DatasetJobs
    "finalize": "finalize_memory",      # finalize's peak RSS at 100,000 and 1,000,000 index rows
    "report": "report_cost",            # report.html of a 10,000-image output: seconds, peak RSS, bytes
    "node": "pod_startup",              # apply -> first worker pod Running on the real local node
}


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    sys.path[:0] = [str(here), str(here.parent / "hack")]
    chosen = argv or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    failed = []
    for name in chosen:
        print(f"\n=== {name} ===", flush=True)
        started = time.monotonic()
        try:
            importlib.import_module(BENCHMARKS[name]).main()
        except Exception as exc:  # one broken benchmark should not hide the others' figures
            failed.append(name)
            print(f"{name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"({name}: {time.monotonic() - started:.0f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
