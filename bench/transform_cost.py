"""CPU cost per image of the worker's validate and transform, against Pillow used plainly.

    .venv/bin/python bench/transform_cost.py [--images 20] [--size 512] [--quality 90]

For each source size it generates distinct photo-like JPEGs (a smooth colour field, shapes,
sensor-like noise), then prints the median CPU milliseconds per image (one core, process time,
so a busy machine changes little) of: `validate` (the header checks, the decode at 1/8 scale the
pHash needs, sha256), `transform_image` with img2dataset's home configuration (keep_ratio `size`
only-if-bigger, JPEG `quality`), and the plain floor a naive pipeline pays: a full decode, a
LANCZOS resize and the same encode. The PSNR column compares the worker's output with the
plain one (for scale: re-encoding the plain output once more at quality 90 differs by ~47 dB).
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import time
from pathlib import Path

import numpy
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chunk_worker.contract import Transform, Validation  # noqa: E402
from chunk_worker.transform import transform_image  # noqa: E402
from chunk_worker.validate import validate  # noqa: E402

SOURCES = [(1024, 768), (1600, 1200), (2048, 1536), (4000, 3000)]


def photo(width: int, height: int, seed: int) -> bytes:
    rng = random.Random(seed)
    grid = Image.new("RGB", (8, 6))
    grid.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(48)])
    image = grid.resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        box = (x0, y0, x0 + rng.randrange(10, width // 3), y0 + rng.randrange(10, height // 3))
        draw.ellipse(box, fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    noise = numpy.random.default_rng(seed).normal(0, 10, (height, width, 1))
    pixels = numpy.clip(numpy.asarray(image, dtype=numpy.float32) + noise, 0, 255).astype(numpy.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def plain(data: bytes, size: int, quality: int) -> bytes:
    """What a pipeline without shrink-on-load does: decode everything, resample everything."""
    image = Image.open(io.BytesIO(data))
    image.load()
    scale = size / min(image.size)
    if scale < 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def cpu_ms(work) -> float:
    started = time.process_time()
    work()
    return (time.process_time() - started) * 1000


def psnr(one: bytes, other: bytes) -> float:
    a = numpy.asarray(Image.open(io.BytesIO(one)).convert("RGB"), dtype=numpy.float64)
    b = numpy.asarray(Image.open(io.BytesIO(other)).convert("RGB"), dtype=numpy.float64)
    if a.shape != b.shape:
        return float("nan")
    error = ((a - b) ** 2).mean()
    return float("inf") if error == 0 else 10 * numpy.log10(255**2 / error)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20, help="distinct images per source size")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--quality", type=int, default=90)
    args = parser.parse_args(argv)
    spec = Transform.model_validate({"resize": {"mode": "keep_ratio", "size": args.size, "onlyIfBigger": True},
                                     "encode": {"format": "jpeg", "quality": args.quality}})
    rules = Validation()
    print(f"keep_ratio {args.size} only-if-bigger, JPEG quality {args.quality}; median CPU ms per image, "
          f"{args.images} images per size")
    print(f"{'source':>11} {'KiB':>5} {'validate':>9} {'transform':>10} {'worker':>7} {'plain':>7} {'PSNR dB':>8}")
    for width, height in SOURCES:
        images = [photo(width, height, seed) for seed in range(args.images)]
        infos = [validate(data, rules) for data in images]
        checks = [cpu_ms(lambda d=data: validate(d, rules)) for data in images]
        transforms = [cpu_ms(lambda d=data, i=info: transform_image(d, i, spec)) for data, info in zip(images, infos)]
        plains = [cpu_ms(lambda d=data: plain(d, args.size, args.quality)) for data in images]
        quality = statistics.median(psnr(transform_image(d, i, spec).data, plain(d, args.size, args.quality))
                                    for d, i in zip(images[:3], infos[:3]))
        check, shrink, floor = (statistics.median(x) for x in (checks, transforms, plains))
        kib = statistics.median(len(d) for d in images) / 1024
        print(f"{width:>5}x{height:<5} {kib:5.0f} {check:9.1f} {shrink:10.1f} {check + shrink:7.1f} {floor:7.1f} "
              f"{quality:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
