"""Benchmark: the chunk worker against img2dataset on one local workload, in one run.

Both tools download the same URL list of generated web-sized JPEGs from nginx on loopback and
store them as files, with the same number of processes and threads; each run is timed from
process start to exit, with the peak RSS summed over its processes. Prints a table and the
throughput ratio worker / img2dataset for each configuration.

    .venv/bin/python bench/worker_vs_img2dataset.py [--count 3000] [--threads 32] [--processes 1 2]

The worker does its full validation (magic bytes, Pillow header checks, full decode, sha256,
64-bit perceptual hash, near-dedup) with its default rules. img2dataset (pinned, in its own venv)
runs with output_format files, resize_mode no, and the checks it has that match ours (decode,
min size, pixel cap, sha256, X-Robots-Tag); its work we do not do is switched off (re-encoding
an unresized JPEG, EXIF extraction), so neither tool is charged for work the other skips.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

for _path in (Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent / "hack"):
    if str(_path) not in sys.path:  # run directly: find the siblings and hack/ (bench/run.py sets both)
        sys.path.insert(0, str(_path))

from peakrss import PeakRss  # noqa: E402
from staticserver import StaticServer  # noqa: E402
from workload import Workload, cache_root, ensure_workload  # noqa: E402

IMG2DATASET_VERSION = "1.47.0"
REPO = Path(__file__).resolve().parent.parent
JOB = "bench/worker-vs-img2dataset"


@dataclass
class Result:
    tool: str
    config: str
    processes: int
    ok: int
    seconds: float
    peak_rss: int
    cpu_seconds: float
    detail: str = ""

    @property
    def images_per_second(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0


def project_python() -> str:
    """The worker runs from the project's venv (where `make bench` put it), whichever Python runs this."""
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def img2dataset_venv(root: Path) -> Path:
    """img2dataset in a venv of its own (its pins would fight ours), installed once per version."""
    venv = root / f"img2dataset-{IMG2DATASET_VERSION}"
    ready = venv / ".installed"
    if not ready.exists():
        print(f"bench: installing img2dataset=={IMG2DATASET_VERSION} into {venv} (once)", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"img2dataset=={IMG2DATASET_VERSION}"],
                       check=True)
        ready.touch()
    return venv


def split(urls: list[str], parts: int) -> list[list[str]]:
    size = math.ceil(len(urls) / parts)
    return [urls[i:i + size] for i in range(0, len(urls), size)]


@dataclass
class Timing:
    seconds: float  # from the first start to the last exit
    peak_rss: int  # bytes, summed over the process trees
    cpu_seconds: float  # user + system of every process in the trees: steadier than wall time on a busy machine
    finished: list[subprocess.CompletedProcess]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(commands: list[tuple[list[str], dict]]) -> Timing:
    """Starts every command at once and waits for them all. Output goes to files, not pipes, so a
    chatty process never stalls on a full pipe while another one is being waited for."""
    cpu = children_cpu()
    with PeakRss(interval=0.05) as peak:
        started = time.monotonic()
        running = []
        for command, options in commands:
            stdout, stderr = tempfile.TemporaryFile(), tempfile.TemporaryFile()
            process = subprocess.Popen(command, stdout=stdout, stderr=stderr, **options)
            peak.watch(process.pid)
            running.append((command, process, stdout, stderr))
        for _, process, _, _ in running:
            process.wait()
        seconds = time.monotonic() - started
    finished = []
    for command, process, stdout, stderr in running:
        outputs = []
        for handle in (stdout, stderr):
            with handle:
                handle.seek(0)
                outputs.append(handle.read())
        finished.append(subprocess.CompletedProcess(command, process.returncode, *outputs))
    return Timing(seconds, peak.bytes, children_cpu() - cpu, finished)


def run_img2dataset(venv: Path, url_file: Path, count: int, processes: int, threads: int, out: Path) -> Result:
    from chunk_worker.contract import Validation

    rules = Validation()
    command = [
        str(venv / "bin" / "img2dataset"),
        f"--url_list={url_file}", "--input_format=txt", "--output_format=files", f"--output_folder={out}",
        f"--processes_count={processes}", f"--thread_count={threads}",
        # One shard per process, as the worker gets one chunk per process.
        f"--number_sample_per_shard={math.ceil(count / processes)}",
        "--resize_mode=no", "--skip_reencode=True", "--extract_exif=False",
        f"--min_image_size={min(rules.min_width, rules.min_height)}", f"--max_image_area={rules.max_pixels}",
        "--compute_hash=sha256", "--timeout=30", "--retries=2", "--enable_wandb=False",
    ]
    timing = timed([(command, dict(cwd=out.parent))])
    (done,) = timing.finished
    if done.returncode != 0:
        raise RuntimeError(f"img2dataset exited {done.returncode}: {done.stderr.decode(errors='replace')[-2000:]}")
    stats = [json.loads(path.read_text()) for path in out.glob("*_stats.json")]
    ok = sum(s["successes"] for s in stats)
    failed = sum(s["failed_to_download"] + s["failed_to_resize"] for s in stats)
    files = sum(1 for _ in out.glob("*/*.jpg"))
    detail = f"{files} files, {failed} failed"
    return Result("img2dataset", f"{processes} proc x {threads} threads", processes, ok, timing.seconds,
                  timing.peak_rss, timing.cpu_seconds, detail)


def run_worker(urls: list[str], processes: int, threads: int, out: Path, specs: Path) -> Result:
    """One chunk per process, started together into one output: how the operator runs a job's chunks."""
    commands = []
    for index, chunk in enumerate(split(urls, processes)):
        spec = specs / f"chunk-{index}.json"
        spec.write_text(json.dumps({"job": JOB, "chunk": index, "items": [{"url": url} for url in chunk]}))
        command = [project_python(), "-m", "chunk_worker", "run", "--spec", str(spec), "--output", f"file://{out}",
                   "--allow-network", "127.0.0.1/32", "--threads", str(threads), "--progress", "none",
                   "--log-format", "json"]
        commands.append((command, {}))
    timing = timed(commands)
    ok, inside, rejected = 0, 0.0, 0
    for done in timing.finished:
        if done.returncode != 0:
            raise RuntimeError(f"worker exited {done.returncode}: {done.stderr.decode(errors='replace')[-2000:]}")
        summary = json.loads(done.stdout.decode().strip().splitlines()[-1])
        counts = summary["counts"]
        ok += counts.get("uploaded", 0)
        rejected += counts.get("requested", 0) - counts.get("uploaded", 0)
        inside = max(inside, summary["seconds"])
    files = sum(1 for _ in (out / "images").glob("*/*.jpg"))
    detail = f"{files} files, {rejected} not kept, {inside:.1f} s inside the slowest chunk"
    return Result("chunk_worker", f"{processes} proc x {threads} threads", processes, ok, timing.seconds,
                  timing.peak_rss, timing.cpu_seconds, detail)


def warm(workload: Workload) -> None:
    """Reads every image once so both tools meet the same page cache, whoever goes first."""
    for name in workload.names:
        (workload.directory / "images" / name).read_bytes()


def best_of(results: list[Result]) -> list[Result]:
    """The fastest run of each (tool, processes): on a shared machine the best run is the least disturbed."""
    best: dict[tuple[int, str], Result] = {}
    for result in results:
        key = (result.processes, result.tool)
        if key not in best or result.images_per_second > best[key].images_per_second:
            best[key] = result
    return [best[key] for key in sorted(best, key=lambda k: (k[0], k[1] != "img2dataset"))]


def table(results: list[Result]) -> str:
    rows = [("tool", "config", "images ok", "seconds", "images/s", "peak RSS MiB", "CPU s", "CPU ms/image", "notes")]
    for r in results:
        rows.append((r.tool, r.config, str(r.ok), f"{r.seconds:.2f}", f"{r.images_per_second:.0f}",
                     f"{r.peak_rss / 2**20:.0f}", f"{r.cpu_seconds:.1f}", f"{r.cpu_seconds * 1000 / max(r.ok, 1):.1f}",
                     r.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def ratios(results: list[Result], goal: float) -> list[str]:
    lines = []
    for processes in sorted({r.processes for r in results}):
        pair = {r.tool: r for r in results if r.processes == processes}
        if {"chunk_worker", "img2dataset"} <= pair.keys() and pair["img2dataset"].images_per_second > 0:
            ratio = pair["chunk_worker"].images_per_second / pair["img2dataset"].images_per_second
            verdict = "meets" if ratio >= goal else "misses"
            lines.append(f"ratio worker/img2dataset, {processes} process(es): {ratio:.2f}x ({verdict} the {goal}x goal)")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3000, help="images in the workload (default 3000)")
    parser.add_argument("--threads", type=int, default=32,
                        help="download threads per process, the same for both tools (default 32, the worker's default)")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2],
                        help="process counts to compare, one run of each tool per count (default: 1 2)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="runs of every tool and config; the best is reported (default 2)")
    parser.add_argument("--goal", type=float, default=1.5, help="the ratio the worker should reach (default 1.5)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON to FILE")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """`argv` None means the defaults (bench/run.py calls `main()` with its own command line in sys.argv)."""
    args = parse_args(argv or [])
    root = cache_root()
    workload = ensure_workload(args.count, root)
    venv = img2dataset_venv(root)
    warm(workload)
    results: list[Result] = []
    print(f"bench: {len(workload.names)} JPEGs, {workload.total_bytes / 2**20:.0f} MiB, served by nginx on loopback; "
          f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f}), Python {platform.python_version()}, "
          f"img2dataset {IMG2DATASET_VERSION}", flush=True)
    with StaticServer(workload.directory) as server, tempfile.TemporaryDirectory(prefix="pixcrawler-bench-") as tmp:
        urls = workload.urls(server.base)
        url_file = Path(tmp) / "urls.txt"
        url_file.write_text("\n".join(urls) + "\n")
        for round_index in range(args.rounds):
            for processes in args.processes:
                # Alternate who goes first, so neither tool always meets the warmer (or busier) machine.
                tools = ("img2dataset", "chunk_worker") if round_index % 2 == 0 else ("chunk_worker", "img2dataset")
                for tool in tools:
                    out = Path(tmp) / f"{tool}-{processes}-{round_index}"
                    out.mkdir()
                    if tool == "img2dataset":
                        result = run_img2dataset(venv, url_file, len(urls), processes, args.threads, out)
                    else:
                        result = run_worker(urls, processes, args.threads, out, Path(tmp))
                    print(f"bench: round {round_index + 1}: {result.tool} {result.config}: {result.ok} ok in "
                          f"{result.seconds:.2f} s ({result.images_per_second:.0f} images/s)", flush=True)
                    results.append(result)
                    shutil.rmtree(out)
    results = best_of(results)
    print(f"bench: best of {args.rounds} round(s) per tool and config; load average now "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print()
    print(table(results))
    print()
    for line in ratios(results, args.goal):
        print(line)
    if args.json:
        args.json.write_text(json.dumps([dict(vars(r), images_per_second=r.images_per_second) for r in results],
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
