"""What report.html costs on a 10,000-image dataset: a synthetic `files` output on file:// (10,000
real JPEGs of 400x300 stored through FilesLayout, 20 manifests of 500 lines with 10 labels and three
splits, and each chunk's run record with its refused thumbnails), then the real finalize.

Printed: the seconds of the report step alone (finalize's call of chunk_worker.report.build.write,
timed in the finalize process) and of the whole finalize, the finalize process's peak RSS (psutil,
sampled every 20 ms), the report's bytes and its thumbnails. `--images N` for another size.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy
from PIL import Image

from chunk_worker.contract import ChunkRun, ManifestLine, RefusedSample, Split, manifest_name, run_name, sample_key
from chunk_worker.layouts.files import FilesLayout
from chunk_worker.report.thumbnails import thumbnail_uri
from chunk_worker.splits import split_of
from chunk_worker.storage import open_storage
from peakrss import PeakRss

ROOT = Path(__file__).resolve().parent.parent
PER_CHUNK = 500
LABELS = [f"label-{n}" for n in range(10)]
SPLIT = Split(val=0.1, test=0.1)
MIB = 1024 * 1024


def jpeg(seed: int) -> bytes:
    """A photo-like JPEG: smooth colour blobs (an 8x6 random grid, upscaled), about 15 KB."""
    grid = numpy.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=numpy.uint8)
    image = Image.fromarray(grid).resize((400, 300), Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def build(root: Path, images: int) -> None:
    storage = open_storage(root.as_uri())
    layout = FilesLayout(storage)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    refused_thumbnail = thumbnail_uri(jpeg(10**9)) or ""
    for chunk in range((images + PER_CHUNK - 1) // PER_CHUNK):
        lines = []
        for position in range(min(PER_CHUNK, images - chunk * PER_CHUNK)):
            seed = chunk * PER_CHUNK + position
            data = jpeg(seed)
            sha = hashlib.sha256(data).hexdigest()
            line = ManifestLine(url=f"https://images.example.org/{seed}.jpg", label=LABELS[seed % len(LABELS)],
                                status="ok", key=sample_key(chunk, position), split=split_of(sha, SPLIT), sha256=sha,
                                phash=sha[:16], width=400, height=300, bytes=len(data), format="JPEG", license="by",
                                license_url="https://creativecommons.org/licenses/by/4.0/")
            lines.append(layout.add(line, data))
        lines += [ManifestLine(url=f"https://images.example.org/small-{chunk}-{n}.jpg", label=LABELS[0],
                               status="rejected", reason="too_small") for n in range(4)]
        run = ChunkRun(chunk=chunk, started_at=start + timedelta(seconds=chunk * 7),
                       finished_at=start + timedelta(seconds=chunk * 7 + 30), seconds=30.0,
                       refused=[RefusedSample(url=line.url, label=line.label, reason="too_small",
                                              thumbnail=refused_thumbnail) for line in lines[-4:]])
        storage.put_manifest(run_name(chunk), run.model_dump_json().encode())
        storage.put_manifest(manifest_name(chunk), b"".join(line.model_dump_json(exclude_none=True).encode() + b"\n"
                                                            for line in lines))
    storage.close()


def child(root: Path) -> None:
    """In the finalize process: finalize as the CLI runs it, with the report step timed."""
    from chunk_worker import finalize
    from chunk_worker.contract import FinalizeSpec
    from chunk_worker.report import build as report

    timed = {}
    original = report.write

    def write(*args, **kwargs):
        started = time.monotonic()
        original(*args, **kwargs)
        timed["report"] = time.monotonic() - started

    report.write = write
    storage = open_storage(root.as_uri())
    summary = finalize.finalize(storage, FinalizeSpec(job="bench/report", split=SPLIT), root.as_uri())
    storage.close()
    print(json.dumps({"report_seconds": timed["report"], "finalize_seconds": summary.seconds,
                      "images": summary.counts.accepted}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv or [])
    if args.child:
        return child(args.child)
    with tempfile.TemporaryDirectory(prefix="pixcrawler-bench-report-") as tmp:
        root = Path(tmp) / "out"
        started = time.monotonic()
        build(root, args.images)
        print(f"built {args.images} stored images in {time.monotonic() - started:.1f} s", flush=True)
        with PeakRss() as peak:
            process = subprocess.Popen([sys.executable, __file__, "--child", str(root)], cwd=ROOT,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                       env={**os.environ, "PYTHONPATH": str(ROOT / "bench")})
            peak.watch(process.pid)
            stdout, stderr = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"finalize failed: {stderr[-2000:]}")
        result = json.loads(stdout)
        html = (root / "report.html").read_text()
        thumbs = html.count('class="thumb"')
        print(f"{result['images']} images: report step {result['report_seconds']:.2f} s of finalize's "
              f"{result['finalize_seconds']:.2f} s; finalize peak RSS {peak.bytes / MIB:.1f} MiB; report.html "
              f"{len(html.encode()) / MIB:.2f} MiB with {thumbs} contact-sheet thumbnails")


if __name__ == "__main__":
    main(sys.argv[1:])
