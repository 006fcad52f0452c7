"""The floor under any tool's resize configuration: the codecs alone, one core, nothing but the pixels.

Per image: a full decode, a resize to the geometry the configuration asks for (the worker's pure
`geometry`, which follows img2dataset's rules) and a JPEG encode. No download, no checks, no
hashing, no storage: what neither tool can go below per image on one core. Two floors: Pillow's
libjpeg and resampler (`pillow`), and the fastest codec path installed here (`turbojpeg`:
TurboJPEG's decode and encode through simplejpeg, Pillow's resampler between them), the lowest
any tool built on these libraries reaches. CPU time is the process's, yet on a shared virtual
machine it still moves with the host (3.3 to 6.4 ms for the same images on different days), so a
floor is compared only with the tools' CPU measured in the same run.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy
import simplejpeg
from PIL import Image

from chunk_worker.transform import RESAMPLE, geometry


@dataclass(frozen=True)
class Floor:
    images: int
    cpu_seconds: float

    @property
    def ms_per_image(self) -> float:
        return self.cpu_seconds * 1000 / self.images

    @property
    def images_per_core_second(self) -> float:
        return self.images / self.cpu_seconds


def decode_resize_encode(data: bytes, size: int, quality: int, only_if_bigger: bool = True) -> bytes:
    """keep_ratio `size`: full decode (no shrink-on-load), one resample, baseline JPEG at `quality`."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        plan = geometry("keep_ratio", image.width, image.height, size, only_if_bigger)
        pixels = image.convert("RGB") if image.mode != "RGB" else image
        if plan.resized != plan.source:
            pixels = pixels.resize(plan.resized, RESAMPLE)
        out = io.BytesIO()
        pixels.save(out, "JPEG", quality=quality)
    return out.getvalue()


def turbojpeg_decode_resize_encode(data: bytes, size: int, quality: int, only_if_bigger: bool = True) -> bytes:
    """The same work with TurboJPEG's own decode and encode (4:2:0, accurate DCT, as Pillow's): no
    row-by-row unpacking into Pillow's storage on either side."""
    pixels = simplejpeg.decode_jpeg(data, colorspace="RGB")
    height, width = pixels.shape[:2]
    plan = geometry("keep_ratio", width, height, size, only_if_bigger)
    if plan.resized != plan.source:
        resized = Image.fromarray(pixels).resize(plan.resized, RESAMPLE)
        pixels = numpy.asarray(resized)
    return simplejpeg.encode_jpeg(pixels, quality=quality, colorsubsampling="420")


CODECS = {"pillow": decode_resize_encode, "turbojpeg": turbojpeg_decode_resize_encode}


def measure(paths: list[Path], size: int = 512, quality: int = 90, codec: str = "pillow") -> Floor:
    """Files are read before the clock starts; only decode + resize + encode are timed."""
    blobs = [path.read_bytes() for path in paths]
    work = CODECS[codec]
    started = time.process_time()
    for data in blobs:
        work(data, size, quality)
    return Floor(len(blobs), time.process_time() - started)
