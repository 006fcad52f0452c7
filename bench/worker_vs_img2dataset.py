"""Benchmark: the chunk worker against img2dataset on one local workload, in one run.

Both tools download the same URL list of generated web-sized JPEGs from nginx on loopback, with
the same number of processes and threads, in two configurations:

- `files`: store each image as downloaded, one file per image (no resize, no re-encode);
- `home`: img2dataset's home configuration, keep_ratio 512 only-if-bigger, JPEG quality 90,
  webdataset tar shards (one shard per process).

Each run is timed from process start to exit, with the peak RSS summed over its processes and
the bytes of every file it wrote. Prints a table, the ratios worker / img2dataset against the
goals, and the codec floors (decode + resize + encode per image on one core, Pillow and TurboJPEG).

    .venv/bin/python bench/worker_vs_img2dataset.py [--configs files home] [--processes 1 2] [--rounds 2]

The worker does its full validation (magic bytes, Pillow header checks, a decode, sha256, 64-bit
perceptual hash, near-dedup) with its default rules. img2dataset (pinned, in its own venv) gets
the checks it has that match ours (decode, min size, pixel cap, sha256, X-Robots-Tag); its work we
do not do is switched off (EXIF extraction; in `files`, re-encoding an unresized JPEG), so neither
tool is charged for work the other skips.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

for _path in (Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent,
              Path(__file__).resolve().parent.parent / "hack"):
    if str(_path) not in sys.path:  # run directly: find the siblings, the worker and hack/ (bench/run.py sets them)
        sys.path.insert(0, str(_path))

from PIL import Image  # noqa: E402

import codec_floor  # noqa: E402
from peakrss import PeakRss  # noqa: E402
from staticserver import StaticServer  # noqa: E402
from workload import Workload, cache_root, ensure_workload  # noqa: E402

IMG2DATASET_VERSION = "1.47.0"
REPO = Path(__file__).resolve().parent.parent
JOB = "bench/worker-vs-img2dataset"
HOME_SIZE, HOME_QUALITY = 512, 90


@dataclass(frozen=True)
class Config:
    """One configuration, said once for each tool, and the goals the worker has in it."""

    name: str
    img2dataset_flags: tuple[str, ...]
    worker_spec: dict
    speed_goals: dict[int, float]  # processes -> the images/s ratio worker / img2dataset to reach
    rss_goal: float = 1 / 3  # worker peak RSS / img2dataset's, at most


CONFIGS = {
    "files": Config(
        "files",
        # An unresized JPEG is stored as downloaded, as the worker stores it.
        ("--output_format=files", "--resize_mode=no", "--skip_reencode=True"),
        {},
        {1: 1.5, 2: 1.5},
    ),
    "home": Config(
        "home",
        # img2dataset re-encodes every image here (skip_reencode stays False), as the worker does
        # when a format is asked for; only_if_bigger: resized only when the smaller side > 512.
        ("--output_format=webdataset", "--resize_mode=keep_ratio", f"--image_size={HOME_SIZE}",
         "--resize_only_if_bigger=True", "--encode_format=jpg", f"--encode_quality={HOME_QUALITY}"),
        {"format": "webdataset",
         "transform": {"resize": {"mode": "keep_ratio", "size": HOME_SIZE, "onlyIfBigger": True},
                       "encode": {"format": "jpeg", "quality": HOME_QUALITY}}},
        {1: 1.5, 2: 2.0},
    ),
}


@dataclass
class Result:
    tool: str
    config: str
    processes: int
    threads: int
    ok: int
    seconds: float
    peak_rss: int
    cpu_seconds: float
    output_bytes: int  # every file the tool wrote
    data_bytes: int  # the images (files) or the tar shards (webdataset)
    detail: str = ""
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)  # url -> stored width, height

    @property
    def images_per_second(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_image(self) -> float:
        return self.cpu_seconds * 1000 / max(self.ok, 1)

    @property
    def setup(self) -> str:
        return f"{self.processes} proc x {self.threads} threads"


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


def tree_bytes(root: Path, pattern: str = "**/*") -> int:
    return sum(path.stat().st_size for path in root.glob(pattern) if path.is_file())


def image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:  # the header only
        return image.size


def tar_samples(tars: list[Path]) -> dict[str, tuple[int, int]]:
    """url -> (width, height) of the image stored in each sample of the shards: what a loader gets."""
    sizes = {}
    for path in tars:
        samples: dict[str, dict] = {}
        with tarfile.open(path) as tar:
            for member in tar:
                key, _, ext = member.name.partition(".")
                if ext in ("json", "jpg"):
                    samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
        for key, sample in samples.items():
            if "jpg" in sample:
                sizes[json.loads(sample["json"])["url"]] = image_size(sample["jpg"])
    return sizes


def file_samples(pairs: list[tuple[Path, Path]]) -> dict[str, tuple[int, int]]:
    """url -> (width, height) from (image, sidecar json) pairs."""
    return {json.loads(meta.read_text())["url"]: image_size(image.read_bytes()) for image, meta in pairs}


def run_img2dataset(venv: Path, config: Config, url_file: Path, count: int, processes: int, threads: int,
                    out: Path) -> Result:
    from chunk_worker.contract import Validation

    rules = Validation()
    command = [
        str(venv / "bin" / "img2dataset"),
        f"--url_list={url_file}", "--input_format=txt", f"--output_folder={out}",
        f"--processes_count={processes}", f"--thread_count={threads}",
        # One shard per process, as the worker gets one chunk per process.
        f"--number_sample_per_shard={math.ceil(count / processes)}",
        *config.img2dataset_flags, "--extract_exif=False",
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
    if config.name == "files":
        images = sorted(out.glob("*/*.jpg"))
        sizes = file_samples([(image, image.with_suffix(".json")) for image in images])
        data = sum(image.stat().st_size for image in images)
    else:
        tars = sorted(out.glob("*.tar"))
        sizes = tar_samples(tars)
        data = sum(tar.stat().st_size for tar in tars)
    detail = f"{len(sizes)} samples stored, {failed} failed"
    return Result("img2dataset", config.name, processes, threads, ok, timing.seconds, timing.peak_rss,
                  timing.cpu_seconds, tree_bytes(out), data, detail, sizes)


def run_worker(config: Config, urls: list[str], processes: int, threads: int, out: Path, specs: Path) -> Result:
    """One chunk per process, started together into one output: how the operator runs a job's chunks."""
    commands = []
    for index, chunk in enumerate(split(urls, processes)):
        spec = specs / f"chunk-{index}.json"
        spec.write_text(json.dumps({"job": JOB, "chunk": index, "items": [{"url": url} for url in chunk],
                                    **config.worker_spec}))
        command = [project_python(), "-m", "chunk_worker", "run", "--spec", str(spec), "--output", f"file://{out}",
                   "--allow-network", "127.0.0.1/32", "--threads", str(threads), "--progress", "none",
                   "--log-format", "json"]
        commands.append((command, dict(cwd=REPO)))
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
    if config.name == "files":
        images = sorted((out / "images").glob("*/*.jpg"))
        sizes = {line["url"]: (line["width"], line["height"])
                 for manifest in out.rglob("*.jsonl") for line in map(json.loads, manifest.read_text().splitlines())
                 if line.get("status") == "ok" and line.get("width") is not None}
        data = sum(image.stat().st_size for image in images)
        stored = len(images)
    else:
        tars = sorted((out / "shards").glob("*.tar"))
        sizes = tar_samples(tars)
        data = sum(tar.stat().st_size for tar in tars)
        stored = len(sizes)
    detail = f"{stored} samples stored, {rejected} not kept, {inside:.1f} s inside the slowest chunk"
    return Result("chunk_worker", config.name, processes, threads, ok, timing.seconds, timing.peak_rss,
                  timing.cpu_seconds, tree_bytes(out), data, detail, sizes)


def warm(workload: Workload) -> None:
    """Reads every image once so both tools meet the same page cache, whoever goes first."""
    for name in workload.names:
        (workload.directory / "images" / name).read_bytes()


def best_of(results: list[Result], order: list[str]) -> list[Result]:
    """The fastest run of each (config, processes, tool): on a shared machine the best run is the least disturbed."""
    best: dict[tuple[str, int, str], Result] = {}
    for result in results:
        key = (result.config, result.processes, result.tool)
        if key not in best or result.images_per_second > best[key].images_per_second:
            best[key] = result
    return [best[key] for key in sorted(best, key=lambda k: (order.index(k[0]), k[1], k[2] != "img2dataset"))]


def table(results: list[Result]) -> str:
    rows = [("tool", "config", "setup", "images ok", "seconds", "images/s", "peak RSS MiB", "CPU s", "CPU ms/image",
             "output MiB", "data MiB", "notes")]
    for r in results:
        rows.append((r.tool, r.config, r.setup, str(r.ok), f"{r.seconds:.2f}", f"{r.images_per_second:.0f}",
                     f"{r.peak_rss / 2**20:.0f}", f"{r.cpu_seconds:.1f}", f"{r.cpu_ms_per_image:.1f}",
                     f"{r.output_bytes / 2**20:.1f}", f"{r.data_bytes / 2**20:.1f}", r.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def pairs(results: list[Result]) -> list[tuple[Config, int, Result, Result]]:
    """(config, processes, worker, img2dataset) for every configuration both tools ran."""
    found = []
    for config in dict.fromkeys(r.config for r in results):
        for processes in sorted({r.processes for r in results if r.config == config}):
            pair = {r.tool: r for r in results if r.config == config and r.processes == processes}
            if {"chunk_worker", "img2dataset"} <= pair.keys():
                found.append((CONFIGS[config], processes, pair["chunk_worker"], pair["img2dataset"]))
    return found


def ratios(results: list[Result]) -> list[str]:
    lines = []
    for config, processes, worker, other in pairs(results):
        speed = worker.images_per_second / other.images_per_second if other.images_per_second else 0.0
        memory = worker.peak_rss / other.peak_rss if other.peak_rss else 0.0
        speed_goal = config.speed_goals.get(processes)
        speed_verdict = (f" ({'meets' if speed >= speed_goal else 'misses'} the {speed_goal}x goal)"
                         if speed_goal else "")
        memory_verdict = "meets" if memory <= config.rss_goal else "misses"
        lines.append(f"{config.name}, {processes} process(es): "
                     f"images/s worker/img2dataset {speed:.2f}x{speed_verdict}; "
                     f"peak RSS {memory:.2f}x ({memory_verdict} the <= {config.rss_goal:.2f}x goal); "
                     f"CPU ms/image {worker.cpu_ms_per_image:.1f} vs "
                     f"{other.cpu_ms_per_image:.1f}; "
                     f"output bytes {worker.output_bytes / max(other.output_bytes, 1):.2f}x")
    return lines


def cpu_budget_ms(goal: float, other_images_per_second: float, cpus: int) -> float:
    """The CPU ms per image, everything included, at which `cpus` cores kept fully busy reach `goal`
    times img2dataset's images/s: no tool doing more CPU work per image can meet the goal here."""
    return cpus * 1000 / (goal * other_images_per_second) if other_images_per_second else float("inf")


def budgets(results: list[Result], floors: dict[str, "codec_floor.Floor"], cpus: int) -> list[str]:
    """For each speed goal, the CPU per image it allows on this machine against the codec floors."""
    lines = []
    for config, processes, worker, other in pairs(results):
        goal = config.speed_goals.get(processes)
        if not goal or not floors:
            continue
        budget = cpu_budget_ms(goal, other.images_per_second, cpus)
        below = ", ".join(f"{name} floor {floor.ms_per_image:.2f} "
                          f"({'below' if floor.ms_per_image < budget else 'above'})" for name, floor in floors.items())
        lines.append(f"{config.name}, {processes} process(es): {goal}x img2dataset's {other.images_per_second:.0f} "
                     f"images/s is {goal * other.images_per_second:.0f} images/s, at most {budget:.2f} CPU ms/image "
                     f"on {cpus} fully busy cores; worker {worker.cpu_ms_per_image:.2f}, {below}")
    return lines


def agreement(results: list[Result]) -> list[str]:
    """Do both tools keep the same images, at the same stored sizes? Said per configuration."""
    lines = []
    for config, processes, worker, other in pairs(results):
        only_worker = worker.sizes.keys() - other.sizes.keys()
        only_other = other.sizes.keys() - worker.sizes.keys()
        differ = sum(1 for url in worker.sizes.keys() & other.sizes.keys() if worker.sizes[url] != other.sizes[url])
        same = not (only_worker or only_other or differ)
        lines.append(f"{config.name}, {processes} process(es): {len(worker.sizes)} vs {len(other.sizes)} samples; "
                     + ("the same images at the same sizes" if same else
                        f"{len(only_worker)} only the worker kept, {len(only_other)} only img2dataset kept, "
                        f"{differ} stored at different sizes"))
        for url in sorted(only_worker | only_other)[:5]:
            lines.append(f"  kept by {'the worker' if url in only_worker else 'img2dataset'} only: {url}")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3000, help="images in the workload (default 3000)")
    parser.add_argument("--threads", type=int, default=32,
                        help="download threads per process, the same for both tools (default 32, the worker's default)")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2],
                        help="process counts to compare, one run of each tool per count (default: 1 2)")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS),
                        help="configurations to compare (default: files home)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="runs of every tool and config; the best is reported (default 2)")
    parser.add_argument("--floor-images", type=int, default=600,
                        help="workload images the codec floors are measured on, spread over the set (default 600)")
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
    floors: dict[str, codec_floor.Floor] = {}
    if "home" in args.configs:
        step = max(1, len(workload.names) // max(1, args.floor_images))
        sample = [workload.directory / "images" / name for name in workload.names[::step][:args.floor_images]]
        floors = {codec: codec_floor.measure(sample, HOME_SIZE, HOME_QUALITY, codec) for codec in codec_floor.CODECS}
    with StaticServer(workload.directory) as server, tempfile.TemporaryDirectory(prefix="pixcrawler-bench-") as tmp:
        urls = workload.urls(server.base)
        url_file = Path(tmp) / "urls.txt"
        url_file.write_text("\n".join(urls) + "\n")
        for round_index in range(args.rounds):
            for name in args.configs:
                config = CONFIGS[name]
                for processes in args.processes:
                    # Alternate who goes first, so neither tool always meets the warmer (or busier) machine.
                    tools = ("img2dataset", "chunk_worker") if round_index % 2 == 0 else ("chunk_worker", "img2dataset")
                    for tool in tools:
                        out = Path(tmp) / f"{tool}-{name}-{processes}-{round_index}"
                        out.mkdir()
                        if tool == "img2dataset":
                            result = run_img2dataset(venv, config, url_file, len(urls), processes, args.threads, out)
                        else:
                            result = run_worker(config, urls, processes, args.threads, out, Path(tmp))
                        print(f"bench: round {round_index + 1}: {result.tool} {name} {result.setup}: {result.ok} ok "
                              f"in {result.seconds:.2f} s ({result.images_per_second:.0f} images/s, "
                              f"{result.cpu_ms_per_image:.1f} CPU ms/image)", flush=True)
                        results.append(result)
                        shutil.rmtree(out)
    results = best_of(results, args.configs)
    print(f"bench: best of {args.rounds} round(s) per tool, config and setup; load average now "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print()
    print(table(results))
    print()
    for line in ratios(results):
        print(line)
    for line in agreement(results):
        print(line)
    for codec, floor in floors.items():
        print(f"floor ({codec} alone, one core: full decode, keep_ratio {HOME_SIZE} only-if-bigger, "
              f"JPEG q{HOME_QUALITY}; "
              f"{floor.images} images): {floor.ms_per_image:.2f} ms/image = "
              f"{floor.images_per_core_second:.0f} images/s per core")
    for line in budgets(results, floors, os.cpu_count() or 1):
        print(line)
    if args.json:
        payload = [dict({k: v for k, v in vars(r).items() if k != "sizes"}, images_per_second=r.images_per_second)
                   for r in results]
        payload += [{"tool": f"{codec}_floor", "images": floor.images, "ms_per_image": floor.ms_per_image}
                    for codec, floor in floors.items()]
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
