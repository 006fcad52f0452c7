"""The benchmark's workload: a few thousand distinct, web-sized JPEGs, generated once into a cache dir.

Each picture is a smooth random colour field with random shapes and sensor-like noise, saved at a
random JPEG quality: 480-800 px a side and about 50-165 KB, like photos on the web. Every image
is checked with the worker's own validation and near-duplicate rules before the set is accepted, so
a run that keeps fewer than all of them is a real rejection, never an artefact of the workload.
"""

from __future__ import annotations

import io
import json
import os
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

VERSION = 1  # bump when the drawing changes, so a stale cache is not reused
SIZES = [(640, 480), (640, 427), (600, 450), (720, 480), (512, 512), (800, 533), (480, 640)]


def cache_root() -> Path:
    """Outside the repo: ${PIXCRAWLER_CACHE:-~/.cache/pixcrawler-operator}/bench."""
    base = os.environ.get("PIXCRAWLER_CACHE") or Path.home() / ".cache" / "pixcrawler-operator"
    return Path(base) / "bench"


def draw_jpeg(seed: int) -> bytes:
    """A picture unique to `seed`: the 8x6 colour field gives each a distinct perceptual hash."""
    rng = random.Random(seed)
    width, height = rng.choice(SIZES)
    grid = Image.new("RGB", (8, 6))
    grid.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(48)])
    image = grid.resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randrange(6, 16)):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        box = (x0, y0, x0 + rng.randrange(10, width // 3), y0 + rng.randrange(10, height // 3))
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    noise = np.random.default_rng(seed).normal(0, rng.uniform(7, 14), (height, width, 1))
    pixels = np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=rng.randrange(75, 92))
    return out.getvalue()


def _write(path: Path, seed: int) -> tuple[str, int, str, int]:
    """Draws, writes and describes one image with the worker's own validation: (name, seed, sha256, phash)."""
    from chunk_worker.contract import Validation
    from chunk_worker.validate import validate

    data = draw_jpeg(seed)
    info = validate(data, Validation())
    path.write_bytes(data)
    return path.name, seed, info.sha256, info.phash


@dataclass(frozen=True)
class Workload:
    directory: Path  # served as the web root
    names: list[str]  # files under directory/images
    total_bytes: int

    def urls(self, base: str) -> list[str]:
        return [f"{base}/images/{name}" for name in self.names]


def _distinct(described: dict[str, tuple[int, str, int]]) -> list[str]:
    """Names that the worker's near-dedup would collapse into an earlier image (same rules, same code)."""
    from chunk_worker.dedup import MemoryDeduper
    from chunk_worker.validate import ImageInfo

    deduper = MemoryDeduper("near")
    clashes = []
    for name in sorted(described):
        _, sha256, phash = described[name]
        info = ImageInfo(format="JPEG", width=1, height=1, bytes=1, sha256=sha256, phash=phash)
        if deduper.claim(info, name):
            clashes.append(name)
    return clashes


def ensure_workload(count: int, root: Path | None = None, processes: int = 2) -> Workload:
    """Generates the images once (about 15 ms each per core) and reuses them on later runs."""
    directory = (root or cache_root()) / f"workload-v{VERSION}-{count}"
    images = directory / "images"
    done = directory / "complete.json"
    names = [f"img-{n:05d}.jpg" for n in range(count)]
    if done.exists() and all((images / name).exists() for name in names):
        return Workload(directory, names, json.loads(done.read_text())["bytes"])
    images.mkdir(parents=True, exist_ok=True)
    print(f"bench: generating {count} JPEGs in {images} (once)", flush=True)
    seeds = {name: n for n, name in enumerate(names)}
    described: dict[str, tuple[int, str, int]] = {}
    pending = names
    with ProcessPoolExecutor(max_workers=processes) as pool:
        while pending:
            paths = [images / name for name in pending]
            for name, seed, sha256, phash in pool.map(_write, paths, [seeds[n] for n in pending], chunksize=50):
                described[name] = (seed, sha256, phash)
            pending = _distinct(described)
            for name in pending:
                seeds[name] += count * 7919  # a fresh seed, far from any other image's
    total = sum((images / name).stat().st_size for name in names)
    done.write_text(json.dumps({"count": count, "bytes": total, "seeds": seeds}))
    return Workload(directory, names, total)
