"""Finalize's memory is flat in the number of images: the real `python -m chunk_worker finalize` over
file:// outputs of 100,000 and 1,000,000 accepted images (200 and 2,000 manifests of 500 lines).

The manifests are generated (ManifestLine JSON with labels, splits, classes, licences and credit, like
a searched Openverse job in the `files` format), so no image is fetched or stored: finalize reads only
manifests. Printed per size: peak RSS of the finalize process (psutil, sampled every 20 ms), wall
seconds, rows/s, the output bytes, and the ratio of the two peaks (flat means close to 1).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chunk_worker.contract import ManifestLine, Split, manifest_name, sample_key
from chunk_worker.splits import split_of
from peakrss import PeakRss

ROOT = Path(__file__).resolve().parent.parent
LINES_PER_MANIFEST = 500
SIZES = (100_000, 1_000_000)
CLASSES = [f"class-{n:02d}" for n in range(20)]
SPLIT = Split(val=0.05, test=0.05)
LICENCES = [("by", "https://creativecommons.org/licenses/by/2.0/"),
            ("cc0", "https://creativecommons.org/publicdomain/zero/1.0/"),
            ("by-sa", "https://creativecommons.org/licenses/by-sa/4.0/"), ("pdm", None)]
MIB = 1024 * 1024


def manifest_line(chunk: int, position: int) -> bytes:
    seed = chunk * LINES_PER_MANIFEST + position
    sha = hashlib.sha256(seed.to_bytes(8, "big")).hexdigest()
    label = CLASSES[seed % len(CLASSES)]
    licence, url = LICENCES[seed % len(LICENCES)]
    return ManifestLine(
        url=f"https://images.example.org/{sha[:16]}.jpg", label=label, status="ok", key=sample_key(chunk, position),
        split=split_of(sha, SPLIT), cls=CLASSES.index(label), sha256=sha, phash=sha[:16], width=512, height=384,
        original_width=1024, original_height=768, bytes=60_000 + seed % 5000, format="JPEG",
        blob=f"images/{sha[:2]}/{sha}.jpg", license=licence, license_url=url, creator=f"Photographer {seed % 997}",
        landing_url=f"https://www.example.org/photos/{seed}", caption=f"A photo of a {label}",
    ).model_dump_json(exclude_none=True).encode() + b"\n"


def write_manifests(root: Path, chunks: int) -> None:
    (root / "manifests").mkdir(parents=True, exist_ok=True)
    for chunk in range(chunks):
        (root / manifest_name(chunk)).write_bytes(b"".join(manifest_line(chunk, p) for p in range(LINES_PER_MANIFEST)))


def run_finalize(root: Path) -> dict[str, float]:
    spec = json.dumps({"job": "bench/finalize", "format": "files", "chunks": len(list((root / "manifests").iterdir())),
                       "classes": CLASSES, "split": {"val": SPLIT.val, "test": SPLIT.test}, "dedup": "near"})
    started = time.monotonic()
    with PeakRss() as peak:
        process = subprocess.Popen([sys.executable, "-m", "chunk_worker", "finalize", "--output", root.as_uri(),
                                    "--spec-json", spec, "--log-format", "text"], cwd=ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak.watch(process.pid)
        stdout, stderr = process.communicate()
    seconds = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError(f"finalize exited {process.returncode}: {stderr[-2000:]}")
    summary = json.loads(stdout)
    outputs = sum((root / name).stat().st_size for name in summary["outputs"])
    return {"rows": summary["images"], "seconds": seconds, "peak_mib": peak.bytes / MIB, "output_mib": outputs / MIB}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="accepted images per run")
    args = parser.parse_args(argv or [])
    results = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="pixcrawler-bench-finalize-") as scratch:
            root = Path(scratch) / "out"
            write_manifests(root, -(-size // LINES_PER_MANIFEST))
            results.append(run_finalize(root))
            shutil.rmtree(root)
    print(f"{'rows':>10}  {'manifests':>9}  {'seconds':>8}  {'rows/s':>8}  {'peak RSS MiB':>12}  {'output MiB':>10}")
    for result in results:
        print(f"{result['rows']:>10}  {result['rows'] // LINES_PER_MANIFEST:>9}  {result['seconds']:>8.1f}  "
              f"{result['rows'] / result['seconds']:>8.0f}  {result['peak_mib']:>12.1f}  {result['output_mib']:>10.1f}")
    if len(results) > 1:
        first, last = results[0], results[-1]
        print(f"\npeak RSS at {last['rows']:,} rows / at {first['rows']:,} rows: "
              f"{last['peak_mib'] / first['peak_mib']:.2f}x for {last['rows'] / first['rows']:.0f}x the rows")


if __name__ == "__main__":
    main(sys.argv[1:])
