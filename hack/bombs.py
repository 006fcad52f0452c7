"""Decompression bombs in every format the worker accepts: a few bytes to a few hundred KiB on the
wire, hundreds of MiB to GiB once decoded. Served by hack/imageserver.py under /bomb/<name>.

Each is a valid image below the default `maxPixels` (89,478,485) unless its name says it is above:
the pixel cap alone lets them through, so only the worker's memory budget stands between them and
the pod's limit. Generated deterministically and cached; nothing is read from disk.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from dataclasses import dataclass
from typing import Callable

from PIL import Image

SIDE = 9400  # 88,360,000 pixels: just below the default maxPixels
CAP_SIDE = 9459  # 89,472,681 pixels: the largest square the default maxPixels allows
ABOVE_CAP_SIDE = 9500  # 90,250,000 pixels: just above it
ANIMATED_FRAMES = 32


@dataclass(frozen=True)
class Bomb:
    name: str
    format: str  # JPEG | PNG | WEBP | GIF
    width: int
    height: int
    frames: int
    make: Callable[[], bytes]

    @property
    def path(self) -> str:
        return f"/bomb/{self.name}"

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _saved(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png(side: int, colour_type: int, channels: int) -> bytes:
    """An all-zero 8-bit PNG written row by row (Pillow would build the whole image first)."""
    row = b"\x00" * (1 + side * channels)
    packer = zlib.compressobj(9)
    parts = [packer.compress(row) for _ in range(side)]
    parts.append(packer.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", b"".join(parts))
            + _png_chunk(b"IEND", b""))


def webp_lossless() -> bytes:
    """The issue's 38-byte lossless WebP: one colour, so the entropy code is empty."""
    return _saved(Image.new("RGB", (SIDE, SIDE)), "WEBP", lossless=True, method=0)


def png_rgba() -> bytes:
    return _png(SIDE, 6, 4)


def png_above_cap() -> bytes:
    return _png(ABOVE_CAP_SIDE, 2, 3)


def gif_canvas() -> bytes:
    """A one-pixel frame on a SIDE x SIDE logical screen: Pillow decodes onto the whole screen."""
    frame = _saved(Image.new("P", (1, 1)), "GIF")
    screen = struct.pack("<HH", SIDE, SIDE)
    return frame[:6] + screen + frame[10:]


def gif_full() -> bytes:
    return _saved(Image.new("P", (SIDE, SIDE)), "GIF")


def jpeg_progressive() -> bytes:
    """Progressive CMYK at the pixel cap: libjpeg keeps every DCT coefficient of the image (2 bytes
    a sample, four samples a pixel) whatever scale it is asked to decode at."""
    return _saved(Image.new("CMYK", (CAP_SIDE, CAP_SIDE)), "JPEG", progressive=True, quality=5)


def _riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, offset = [], 12
    while offset < len(data):
        kind, size = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
        chunks.append((kind, data[offset + 8:offset + 8 + size]))
        offset += 8 + size + (size & 1)
    return chunks


def _riff(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(kind + struct.pack("<I", len(payload)) + payload + b"\x00" * (len(payload) & 1)
                    for kind, payload in chunks)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def gif_animated() -> bytes:
    """ANIMATED_FRAMES full-screen frames: one encoded frame, its image block repeated."""
    single = gif_full()
    start = single.index(b"\x2c\x00\x00\x00\x00" + struct.pack("<HH", SIDE, SIDE))
    return single[:start] + single[start:-1] * ANIMATED_FRAMES + b"\x3b"


def webp_animated() -> bytes:
    """ANIMATED_FRAMES full-canvas lossless frames: two encoded frames, their ANMF chunks repeated."""
    frames = [Image.new("RGB", (SIDE, SIDE), colour) for colour in ((0, 0, 0), (255, 255, 255))]
    encoded = _saved(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=40, lossless=True, method=0)
    chunks = _riff_chunks(encoded)
    head = [chunk for chunk in chunks if chunk[0] != b"ANMF"]
    anmf = [chunk for chunk in chunks if chunk[0] == b"ANMF"]
    return _riff(head + anmf * (ANIMATED_FRAMES // len(anmf)))


BOMBS = {bomb.name: bomb for bomb in (
    Bomb("webp-lossless.webp", "WEBP", SIDE, SIDE, 1, webp_lossless),
    Bomb("png-rgba.png", "PNG", SIDE, SIDE, 1, png_rgba),
    Bomb("png-above-cap.png", "PNG", ABOVE_CAP_SIDE, ABOVE_CAP_SIDE, 1, png_above_cap),
    Bomb("gif-canvas.gif", "GIF", SIDE, SIDE, 1, gif_canvas),
    Bomb("gif-full.gif", "GIF", SIDE, SIDE, 1, gif_full),
    Bomb("jpeg-progressive.jpg", "JPEG", CAP_SIDE, CAP_SIDE, 1, jpeg_progressive),
    Bomb("gif-animated.gif", "GIF", SIDE, SIDE, ANIMATED_FRAMES, gif_animated),
    Bomb("webp-animated.webp", "WEBP", SIDE, SIDE, ANIMATED_FRAMES, webp_animated),
)}
"""name -> Bomb, every allowed format; `png-above-cap.png` is the one the pixel cap refuses."""


@functools.lru_cache(maxsize=None)
def bomb_bytes(name: str) -> bytes:
    return BOMBS[name].make()
