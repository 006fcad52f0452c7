"""What a decode reserves covers what it really takes: each case is validated and transformed in a
fresh process, whose peak RSS above its starting point must stay within the reservation."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from PIL import Image

SIDE = 2000

MEASURE = """
import json, sys
from functools import partial
from chunk_worker.contract import Transform, Validation
from chunk_worker.memory import MemoryBudget
from chunk_worker.transform import pixels_for, transform_image
from chunk_worker.validate import validate_decoded

data = open(sys.argv[1], "rb").read()
transform = Transform.model_validate(json.loads(sys.argv[2]))
rules = Validation(minWidth=1, minHeight=1, maxBytes=1 << 29)
budget = MemoryBudget(1 << 40)
def status(field):  # kB; VmHWM starts afresh at exec, unlike ru_maxrss, which keeps the forking parent's
    line = next(line for line in open("/proc/self/status") if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024
resident = status("VmRSS")
with budget.slot() as slot:
    info, decoded = validate_decoded(data, rules, partial(pixels_for, transform), slot)
    transform_image(data, info, transform, decoded)
    if decoded is not None:
        decoded.close()
peak = status("VmHWM")
print(json.dumps({"used": peak - resident, "reserved": budget.peak}))
"""


def _saved(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _frames(mode: str, colours: list) -> list[Image.Image]:
    return [Image.new(mode, (SIDE, SIDE), colour) for colour in colours]


SOURCES = {
    "png-rgba": lambda: _saved(Image.new("RGBA", (SIDE, SIDE), (1, 2, 3, 100)), "PNG"),
    "png-palette": lambda: _saved(Image.new("P", (SIDE, SIDE), 1), "PNG"),
    "png-16-bit": lambda: _saved(Image.new("I;16", (SIDE, SIDE), 1000), "PNG"),
    "webp-lossless": lambda: _saved(Image.new("RGB", (SIDE, SIDE)), "WEBP", lossless=True, method=0),
    "webp-animated": lambda: _saved(*_frames("RGB", [(0, 0, 0)]), "WEBP", save_all=True, lossless=True, method=0,
                                    append_images=_frames("RGB", [(90, 90, 90), (200, 200, 200)])),
    "jpeg-baseline": lambda: _saved(Image.new("RGB", (SIDE, SIDE)), "JPEG", quality=50),
    "jpeg-progressive-cmyk": lambda: _saved(Image.new("CMYK", (SIDE, SIDE)), "JPEG", quality=5, progressive=True),
    "gif-animated": lambda: _saved(*_frames("P", [0]), "GIF", save_all=True, append_images=_frames("P", [1, 2])),
}
TRANSFORMS = {
    "untouched": {},
    "home": {"resize": {"mode": "keep_ratio", "size": 512}, "encode": {"format": "jpeg", "quality": 90}},
    "full-size-webp": {"encode": {"format": "webp"}},
    "border-png": {"resize": {"mode": "border", "size": 4096}, "encode": {"format": "png"}},
}


@pytest.fixture(scope="module")
def source_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sources")
    paths = {}
    for name, make in SOURCES.items():
        paths[name] = folder / name
        paths[name].write_bytes(make())
    return paths


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("source", SOURCES)
def test_a_decode_takes_no_more_than_it_reserved(source_files, source, transform):
    argv = [sys.executable, "-c", MEASURE, str(source_files[source]), json.dumps(TRANSFORMS[transform])]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    assert measured["reserved"] > 0
    assert measured["used"] <= measured["reserved"], measured
