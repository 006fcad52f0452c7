"""Fuzzing validation and the transform with mutated JPEG, PNG, WebP and GIF files.

Every case is a valid seed file broken in a seeded, reproducible way (flipped bytes, a cut, an
inserted, deleted or repeated range, a header field set to an awkward value with the PNG CRCs
recomputed so the damage reaches the decoders). Each must end as a Rejected or an ImageInfo whose
resize then gives a readable image or a Rejected: never any other exception. The cases run in a
child process that aborts under faulthandler when one case outlives DEADLINE_SECONDS (a hang is
reported with its case number and traceback, never measured by the clock here), and that reports
its peak RSS, held to what the pixel cap allows.

Reproduce one case: `python -m tests.integration.chunk_worker.test_validate_fuzz <case> <case+1>`.
"""

from __future__ import annotations

import faulthandler
import io
import json
import random
import resource
import struct
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

from PIL import Image, ImageDraw

from chunk_worker.contract import Encode, Resize, Transform, Validation
from chunk_worker.transform import pixels_for, transform_image
from chunk_worker.validate import Rejected, validate, validate_decoded

ROOT = Path(__file__).resolve().parents[3]
CASES = 20_000
SEED = 14
DEADLINE_SECONDS = 20
MAX_PIXELS = 1 << 22
RULES = Validation(min_width=8, min_height=8, max_pixels=MAX_PIXELS)
PEAK_ALLOWANCE = 6 * MAX_PIXELS * 4 + (64 << 20)
"""Peak RSS above the child's warmed-up baseline: six RGBA images at the pixel cap (the decode,
its upright copy, a converted copy, the resize's work, a frame walked, the encode's buffer) plus
64 MiB of decoder and allocator slack."""
TRANSFORMS = [
    Transform(resize=Resize(mode="keep_ratio", size=48), encode=Encode(format="jpeg", quality=80)),
    Transform(resize=Resize(mode="center_crop", size=40)),
    Transform(resize=Resize(mode="border", size=64), encode=Encode(format="webp")),
    Transform(resize=Resize(mode="keep_ratio_largest", size=32), encode=Encode(format="png")),
]


def _picture(seed: int, size: tuple[int, int]) -> Image.Image:
    rng = random.Random(seed)
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        draw.ellipse((x, y, x + rng.randrange(4, 40), y + rng.randrange(4, 40)),
                     fill=tuple(rng.randrange(256) for _ in range(3)))
    return image


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _frames(count: int, size: tuple[int, int]) -> list[Image.Image]:
    return [_picture(100 + n, size) for n in range(count)]


def seeds() -> list[tuple[str, bytes]]:
    """Small valid files of every allowed format, in the modes and variants the decoders branch on."""
    rgb = _picture(1, (80, 60))
    oriented = Image.Exif()
    oriented[0x0112] = 6
    gif_frames = [frame.convert("P", palette=Image.Palette.ADAPTIVE) for frame in _frames(4, (72, 56))]
    return [
        ("jpeg-baseline", _save(rgb, "JPEG", quality=90)),
        ("jpeg-progressive", _save(rgb, "JPEG", quality=75, progressive=True)),
        ("jpeg-grey", _save(rgb.convert("L"), "JPEG")),
        ("jpeg-cmyk", _save(rgb.convert("CMYK"), "JPEG")),
        ("jpeg-exif-6", _save(rgb, "JPEG", exif=oriented.tobytes())),
        ("png-rgb", _save(rgb, "PNG")),
        ("png-rgba", _save(rgb.convert("RGBA"), "PNG")),
        ("png-palette-trns", _save(rgb.convert("P", palette=Image.Palette.ADAPTIVE), "PNG", transparency=0)),
        ("png-16-bit", _save(rgb.convert("L").convert("I;16"), "PNG")),
        ("png-interlaced", _save(rgb, "PNG", interlace=1)),
        ("png-animated", _save(_frames(3, (64, 48))[0], "PNG", save_all=True,
                               append_images=_frames(3, (64, 48))[1:], duration=50)),
        ("webp-lossy", _save(rgb, "WEBP", quality=80)),
        ("webp-lossless-rgba", _save(rgb.convert("RGBA"), "WEBP", lossless=True)),
        ("webp-animated", _save(_frames(3, (64, 48))[0], "WEBP", save_all=True,
                                append_images=_frames(3, (64, 48))[1:], duration=50)),
        ("gif-still", _save(rgb.convert("P", palette=Image.Palette.ADAPTIVE), "GIF")),
        ("gif-animated", _save(gif_frames[0], "GIF", save_all=True, append_images=gif_frames[1:],
                               duration=40, loop=0)),
        ("gif-interlaced", _save(rgb.convert("P", palette=Image.Palette.ADAPTIVE), "GIF", interlace=True)),
    ]


AWKWARD = (0, 1, 2, 7, 8, 255, 256, 0x7FFF, 0x8000, 0xFFFF)


def _awkward(rng: random.Random, original: int, top: int) -> int:
    """A header value a decoder may mishandle: a boundary, a multiple of the original, or random."""
    choice = rng.random()
    if choice < 0.5:
        return min(top, rng.choice(AWKWARD))
    if choice < 0.8:
        return min(top, max(0, original * rng.choice((2, 3, 16)) + rng.choice((-1, 0, 1))))
    return rng.randrange(top + 1)


def _fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk CRC that still lies within the file, so the damage gets past Pillow's CRC check."""
    out, offset = bytearray(data[:8]), 8
    while offset + 12 <= len(data):
        length = struct.unpack(">I", data[offset:offset + 4])[0]
        end = offset + 12 + length
        if end > len(data):
            break
        body = data[offset + 4:end - 4]
        out += data[offset:offset + 4] + body + struct.pack(">I", zlib.crc32(body))
        offset = end
    return bytes(out + data[offset:])


def _find_fields(fmt: str, data: bytes) -> list[tuple[int, int]]:
    """(offset, byte width) of the header fields worth setting awkwardly: dimensions, depths, counts."""
    fields: list[tuple[int, int]] = []
    if fmt == "PNG":
        fields = [(16, 4), (20, 4), (24, 1), (25, 1), (28, 1)]  # IHDR width, height, depth, colour, interlace
        for chunk in (b"acTL", b"fcTL"):
            at = data.find(chunk)
            if at > 0:
                fields += [(at + 4, 4), (at + 8, 4)]
    elif fmt == "JPEG":
        for marker in (b"\xff\xc0", b"\xff\xc2", b"\xff\xdb", b"\xff\xc4", b"\xff\xda", b"\xff\xe1"):
            at = data.find(marker, 2)
            if at > 0:
                fields += [(at + 2, 2), (at + 4, 1), (at + 5, 2), (at + 7, 2), (at + 9, 1)]
    elif fmt == "GIF":
        fields = [(6, 2), (8, 2), (10, 1)]  # logical screen width, height, flags
        at = data.find(b",", 13)
        while at > 0 and len(fields) < 24:
            fields += [(at + 1, 2), (at + 3, 2), (at + 5, 2), (at + 7, 2), (at + 9, 1)]
            at = data.find(b",", at + 10)
    elif fmt == "WEBP":
        fields = [(4, 4)]  # RIFF size
        for chunk, spots in ((b"VP8 ", ((14, 2), (16, 2))), (b"VP8L", ((9, 4),)), (b"VP8X", ((12, 3), (15, 3))),
                             (b"ANMF", ((8, 3), (14, 3), (17, 3))), (b"ALPH", ((8, 1),))):
            at = data.find(chunk, 12)
            if at > 0:
                fields += [(at + spot, width) for spot, width in spots]
                fields.append((at + 4, 4))  # the chunk's length
    return [(offset, width) for offset, width in fields if offset + width <= len(data)]


def _set_field(rng: random.Random, fmt: str, data: bytearray) -> None:
    fields = _find_fields(fmt, bytes(data))
    if not fields:
        return
    offset, width = rng.choice(fields)
    order = "little" if fmt in ("GIF", "WEBP") else "big"
    original = int.from_bytes(data[offset:offset + width], order)
    data[offset:offset + width] = _awkward(rng, original, (1 << (8 * width)) - 1).to_bytes(width, order)


def mutate(rng: random.Random, fmt: str, data: bytes) -> tuple[bytes, list[str]]:
    """One to three mutations of `data`; returns the bytes and what was done, for the failure report."""
    out = bytearray(data)
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        kind = rng.choice(("flip", "flip", "field", "field", "cut", "insert", "delete", "repeat"))
        size = len(out)
        if size < 2:
            break
        at = rng.randrange(min(size, 96)) if rng.random() < 0.5 else rng.randrange(size)  # headers more often
        if kind == "flip":
            for _ in range(rng.randint(1, 8)):
                spot = min(size - 1, at + rng.randrange(16))
                out[spot] ^= rng.randrange(1, 256)
        elif kind == "field":
            _set_field(rng, fmt, out)
        elif kind == "cut":
            del out[at:]
        elif kind == "insert":
            out[at:at] = rng.randbytes(rng.randint(1, 64))
        elif kind == "delete":
            del out[at:at + rng.randint(1, 64)]
        else:
            span = out[at:at + rng.randint(1, 256)]
            spot = rng.randrange(size)
            out[spot:spot] = span
        done.append(f"{kind}@{at}")
    if fmt == "PNG" and rng.random() < 0.7:
        out = bytearray(_fix_png_crcs(bytes(out)))
        done.append("crc")
    return bytes(out), done


def case(number: int, corpus: list[tuple[str, bytes]]) -> tuple[str, bytes, list[str], Transform]:
    """Case `number`: the same seed file, mutations and transform on every run."""
    rng = random.Random(SEED * 1_000_003 + number)
    name, data = corpus[number % len(corpus)]
    fmt = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF"}[name.split("-")[0]]
    mutated, done = mutate(rng, fmt, data)
    return name, mutated, done, TRANSFORMS[number % len(TRANSFORMS)]


def outcome(data: bytes, transform: Transform, decode_once: bool) -> str:
    """'rejected:<reason>' or 'ok:<reason or size>'; any other exception propagates."""
    try:
        if decode_once:  # as the runner does: validation hands the transform its pixels
            info, decoded = validate_decoded(data, RULES, partial(pixels_for, transform))
        else:
            info, decoded = validate(data, RULES), None
    except Rejected as rejected:
        return f"rejected:{rejected.reason.value}"
    try:
        stored = transform_image(data, info, transform, decoded)
    except Rejected as rejected:
        return f"transform-rejected:{rejected.reason.value}"
    finally:
        if decoded is not None:
            decoded.close()
    with Image.open(io.BytesIO(stored.data)) as written:
        written.load()
        if written.size != (stored.width, stored.height):
            raise AssertionError(f"stored {written.size}, reported {stored.width}x{stored.height}")
    return "ok"


def run_cases(first: int, stop: int, emit: Callable[[dict], None]) -> None:
    """The child's loop: one report per case, then the peak RSS; a hang ends the process."""
    corpus = seeds()
    for _, data in corpus:  # warm up, so the baseline holds the libraries' own allocations
        outcome(data, TRANSFORMS[0], True)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for number in range(first, stop):
        name, data, done, transform = case(number, corpus)
        faulthandler.dump_traceback_later(DEADLINE_SECONDS, exit=True)
        try:
            result = outcome(data, transform, decode_once=number % 2 == 0)
        except Exception as exc:  # noqa: BLE001 - what the test is looking for
            result = f"crash:{type(exc).__name__}: {exc}"
        finally:
            faulthandler.cancel_dump_traceback_later()
        emit({"case": number, "seed": name, "mutations": done, "outcome": result})
    emit({"baseline": baseline, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024})


def _child(first: int, stop: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.integration.chunk_worker.test_validate_fuzz",
                           str(first), str(stop)], cwd=ROOT, capture_output=True, text=True)


def test_mutated_images_are_rejected_or_described_without_crash_hang_or_memory_blowup():
    result = _child(0, CASES)
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    cases = [report for report in reports if "case" in report]
    if len(cases) < CASES:
        hung = cases[-1]["case"] + 1 if cases else 0
        raise AssertionError(f"case {hung} did not finish within {DEADLINE_SECONDS} s or the child died "
                             f"(exit {result.returncode}):\n{result.stderr[-4000:]}")
    assert result.returncode == 0, result.stderr
    crashes = [report for report in cases if report["outcome"].startswith("crash:")]
    assert not crashes, json.dumps(crashes[:10], indent=1)
    tally = Counter(report["outcome"] for report in cases)
    assert tally["ok"] and sum(n for key, n in tally.items() if key.startswith("rejected:")), tally
    memory = reports[-1]
    assert memory["peak"] - memory["baseline"] <= PEAK_ALLOWANCE, memory


def test_files_cut_short_are_refused():
    """Every seed cut to a quarter, a half or three quarters of its length (into its pixel data or a
    later frame of an animation) is rejected."""
    kept = []
    for name, data in seeds():
        for cut in (len(data) // 4, len(data) // 2, len(data) * 3 // 4):
            try:
                validate(data[:cut], RULES)
            except Rejected:
                continue
            kept.append(f"{name} cut to {cut} of {len(data)} bytes")
    assert not kept


if __name__ == "__main__":
    run_cases(int(sys.argv[1]), int(sys.argv[2]), lambda report: print(json.dumps(report), flush=True))
