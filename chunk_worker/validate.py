"""Decide whether downloaded bytes are an image the dataset accepts, and describe it.

The checks run cheapest first and never trust anything but the bytes: a size cap,
the magic bytes (never the Content-Type or the URL's extension), the header's
dimensions (a decompression bomb is refused before a single pixel is decoded), then a
full decode (truncated files fail here; `verify()` alone would let them through) of
every frame of an animation, not only of the first one the dataset keeps.
Nothing here touches process-wide Pillow settings per call, so many threads may
validate at once.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy
from PIL import ImageOps
from PIL import GifImagePlugin, Image, JpegImagePlugin, PngImagePlugin, WebPImagePlugin  # noqa: F401 (registers)

from chunk_worker.contract import Reason, Validation
from chunk_worker.memory import Header, NeverFits, Reservation, decode_need

simplejpeg: Any = True  # libjpeg-turbo's TurboJPEG API, imported on first use (_turbojpeg); None: not there

# Pillow warns (rather than fails) between MAX_IMAGE_PIXELS and twice that. The limit
# that matters is ours (checked from the header below), so the warning can only ever
# precede a rejection; making it an error keeps it off stderr. Set once at import,
# never toggled, so no thread sees a half-applied filter.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)

PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, MemoryError)
FRAME_ERRORS = (*PILLOW_ERRORS, struct.error)  # a GIF frame header cut short fails to unpack
ANIMATED = ("GIF", "PNG", "WEBP")  # the formats whose files may hold more than one frame (APNG for PNG)
HASH_SIDE = 32  # pHash works on a 32x32 greyscale image
ORIENTATION = 0x0112  # the EXIF tag; 5..8 mean the stored image is sideways


PixelsFor = Callable[[int, int], "tuple[int, int] | None"]
"""Given an image's upright width and height, the upright size a caller will work from (None: it
needs no pixels). A JPEG is then decoded at the smallest DCT scale still at least that large."""


class Rejected(Exception):
    """The bytes are not an image this job accepts; `reason` is a contract.Reason value."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ImageInfo:
    """What the downloaded bytes are. `width`/`height` are as displayed (EXIF orientation applied);
    `original_width`/`original_height` as stored in the file (they default to the displayed size
    turned back by `orientation`, so callers describing an upright image may leave them out)."""

    format: str  # JPEG | PNG | WEBP | GIF
    width: int
    height: int
    bytes: int
    sha256: str
    phash: int  # 64-bit perceptual hash (pHash, 8x8 DCT frequencies) of the upright image
    orientation: int = 1  # EXIF orientation 1..8 (1: upright as stored; anything invalid counts as 1)
    original_width: int = 0
    original_height: int = 0

    def __post_init__(self) -> None:
        if not self.original_width or not self.original_height:
            sideways = self.orientation >= 5
            object.__setattr__(self, "original_width", self.height if sideways else self.width)
            object.__setattr__(self, "original_height", self.width if sideways else self.height)

    @property
    def phash_hex(self) -> str:
        return f"{self.phash:016x}"


def sniff(data: bytes) -> str | None:
    """The image format the magic bytes announce: one of ours, 'OTHER' for a known image format, else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if _is_other_image(data):
        return "OTHER"
    return None


def _is_other_image(data: bytes) -> bool:
    """Common image formats outside the contract: rejected as 'format_not_allowed', not 'not_an_image'."""
    return (
        data[:2] == b"BM"  # BMP
        or data[:4] in (b"II*\x00", b"MM\x00*")  # TIFF
        or data[:4] == b"\x00\x00\x01\x00"  # ICO
        or data[:2] == b"\xff\x0a"  # JPEG XL codestream
        or data[:12] == b"\x00\x00\x00\x0cJXL \x0d\x0a\x87\x0a"  # JPEG XL container
        or (data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1"))
        or data[:4] == b"8BPS"  # Photoshop
    )


def pixel_limit(rules: Validation) -> int:
    """The effective pixel cap: the job's, never above what Pillow itself is set to tolerate."""
    pillow = Image.MAX_IMAGE_PIXELS
    return rules.max_pixels if pillow is None else min(rules.max_pixels, int(pillow))


def check_dimensions(width: int, height: int, rules: Validation) -> None:
    """Header-only decision, before any decoding: too many pixels, then too small."""
    if width * height > pixel_limit(rules):
        raise Rejected(Reason.TOO_MANY_PIXELS, f"{width}x{height}")
    if width < rules.min_width or height < rules.min_height:
        raise Rejected(Reason.TOO_SMALL, f"{width}x{height} < {rules.min_width}x{rules.min_height}")


# DCT-II as a matrix (scipy's unnormalised convention), so dct(x) along both axes is D @ x @ D.T.
_DCT = 2 * numpy.cos(numpy.pi * numpy.outer(numpy.arange(HASH_SIDE), 2 * numpy.arange(HASH_SIDE) + 1)
                     / (2 * HASH_SIDE))


def perceptual_hash(image: Image.Image) -> int:
    """The 64-bit pHash (the hackerfactor algorithm, bit for bit what imagehash.phash computes; a test
    holds the two equal): the 8x8 lowest DCT frequencies of a 32x32 greyscale thumbnail against their
    median. Done in numpy here because imagehash imports scipy on first use, ~1 s per chunk process.
    The thumbnail is made with a reducing gap so a large image is not resampled at full size."""
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    thumbnail = image.resize((HASH_SIDE, HASH_SIDE), Image.Resampling.LANCZOS, reducing_gap=3.0).convert("L")
    pixels = numpy.asarray(thumbnail, dtype=numpy.float64)
    low = numpy.round((_DCT @ pixels @ _DCT.T)[:8, :8], 6)  # symmetric images give exact zeros, as in scipy
    bits = numpy.packbits(low > numpy.median(low))
    return int.from_bytes(bits.tobytes(), "big")


def validate(data: bytes, rules: Validation, memory: Reservation | None = None) -> ImageInfo:
    """Return what the image is, or raise Rejected(reason). `memory`: see validate_decoded."""
    info, _ = _inspect(data, rules, None, memory)
    return info


def validate_decoded(data: bytes, rules: Validation, pixels_for: PixelsFor,
                     memory: Reservation | None = None) -> tuple[ImageInfo, Image.Image | None]:
    """As `validate`, and also the upright decoded image when `pixels_for` asks for pixels, so a
    transform re-encoding the image does not decode it a second time. The caller owns the image
    (one per item in flight): close it once used. The pHash does not depend on the decode scale:
    a JPEG's hash pixels are box-reduced to the 1/8 DCT scale `validate` decodes at.

    `memory`, an empty slot of the worker's MemoryBudget, is filled with what this image holds at
    its peak (the decode, and the transform's buffers when pixels are asked for) before a pixel is
    decoded: the call waits until that fits, and an image that never can is rejected
    (`too_large_to_decode`). The caller releases it once the returned image is done with."""
    return _inspect(data, rules, pixels_for, memory)


def _inspect(data: bytes, rules: Validation, pixels_for: PixelsFor | None,
             memory: Reservation | None) -> tuple[ImageInfo, Image.Image | None]:
    if len(data) > rules.max_bytes:
        raise Rejected(Reason.TOO_LARGE, f"{len(data)} bytes > {rules.max_bytes}")
    image_format = sniff(data)
    if image_format is None:
        raise Rejected(Reason.NOT_AN_IMAGE)
    if image_format not in rules.formats:
        raise Rejected(Reason.FORMAT_NOT_ALLOWED, image_format)
    try:
        image = Image.open(io.BytesIO(data), formats=[image_format])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Rejected(Reason.TOO_MANY_PIXELS, str(exc)) from None
    except PILLOW_ERRORS as exc:  # the magic bytes lied: no readable header behind them
        raise Rejected(Reason.NOT_AN_IMAGE, f"{type(exc).__name__}: {exc}") from None
    kept = False
    try:
        check_dimensions(image.width, image.height, rules)
        width, height = image.width, image.height
        try:
            keep = pixels_for is not None
            reduce_by = 1
            whole = False  # a JPEG wanted at full scale, which TurboJPEG may decode (whole_jpeg)
            if image_format == "JPEG":
                # libjpeg's DCT scaling: every byte of the stream is still decoded (truncation and
                # corruption are caught), but pixels come out at 1/8 scale, all the hash looks at,
                # or at the larger scale the caller's pixels need; the hash's are then box-reduced.
                hash_size = (max(width // 8, HASH_SIDE), max(height // 8, HASH_SIDE))
                request = hash_size
                if pixels_for is not None:  # EXIF sits in the JPEG header: the orientation is known here
                    sideways = exif_orientation(image) >= 5
                    wanted = pixels_for(height if sideways else width, width if sideways else height)
                    keep = wanted is not None
                    if wanted is not None:
                        stored = (wanted[1], wanted[0]) if sideways else wanted
                        request = (max(hash_size[0], stored[0]), max(hash_size[1], stored[1]))
                drafted = image.draft("RGB", request)
                if keep and drafted is not None:
                    reduce_by = max(1, dct_scale((width, height), hash_size) // round(width / drafted[1][2]))
                whole = keep and drafted is not None and image.size == (width, height)  # no DCT scaling
            if memory is not None:
                reserve_decode(memory, image, image_format, (width, height),
                               pixels_for(width, height) if pixels_for is not None else None)
            if image_format in ANIMATED:  # after any reservation: the frames are walked, then closed, before frame 0
                decode_later_frames(data, image_format, rules)
            fast = whole_jpeg(data, image) if whole else None
            if fast is not None:
                image.close()
                image = fast
            else:
                image.load()
            if image.width * image.height > pixel_limit(rules):  # a GIF frame may outgrow the header
                raise Rejected(Reason.TOO_MANY_PIXELS, f"{image.width}x{image.height}")
            if image.mode in ("P", "PA") and image.palette is None:  # a PNG whose PLTE chunk is broken
                raise Rejected(Reason.TRUNCATED, "palette image without a palette")
            orientation = 1 if fast is not None else exif_orientation(image)  # whole_jpeg: upright as stored
            if orientation != 1:  # the hash describes what a viewer shows, so a rotated copy matches
                ImageOps.exif_transpose(image, in_place=True)
            phash = perceptual_hash(image.reduce(reduce_by) if reduce_by > 1 else image)
            if keep and image_format != "JPEG":  # decoded whole: only whether to keep it is asked
                sideways = orientation >= 5
                keep = pixels_for(height if sideways else width, width if sideways else height) is not None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise Rejected(Reason.TOO_MANY_PIXELS, str(exc)) from None
        except PILLOW_ERRORS as exc:
            raise Rejected(Reason.TRUNCATED, f"{type(exc).__name__}: {exc}") from None
        kept = keep
    finally:
        if not kept:
            image.close()
    sideways = orientation >= 5
    info = ImageInfo(
        format=image_format,
        width=height if sideways else width,
        height=width if sideways else height,
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        phash=phash,
        orientation=orientation,
        original_width=width,
        original_height=height,
    )
    return info, image if kept else None


def whole_jpeg(data: bytes, header: Image.Image) -> Image.Image | None:
    """The JPEG decoded at full scale by TurboJPEG, as an RGBX image (Pillow's own layout of RGB
    pixels, so resampling and JPEG encoding treat it exactly as the RGB image Pillow would decode;
    the pixels are the same, a test holds them equal), or None to let Pillow decode it: a file
    that is not plain YCbCr (greyscale, CMYK), or is upright only after EXIF orientation, and any
    file libjpeg warns about (strict: truncated or corrupt data), which Pillow then judges as always.
    The header image's info (ICC profile, EXIF) travels with the pixels."""
    if header.mode != "RGB" or exif_orientation(header) != 1:
        return None
    turbojpeg = _turbojpeg()
    if turbojpeg is None:
        return None
    try:
        pixels = turbojpeg.decode_jpeg(data, colorspace="RGBX", strict=True)
    except ValueError:
        return None
    if pixels.shape[:2] != (header.height, header.width):
        return None
    decoded = Image.frombuffer("RGBX", header.size, pixels, "raw", "RGBX", 0, 1)
    decoded.info = dict(header.info)
    return decoded


def _turbojpeg() -> Any:
    """simplejpeg, imported the first time a JPEG needs it: merely importing it raised a fresh
    process's later peak RSS by 16 MiB (glibc's heap thresholds), which a chunk that never decodes
    a JPEG at full scale should not pay. None when it is not installed (Pillow decodes everything)."""
    global simplejpeg
    if simplejpeg is True:
        try:
            import simplejpeg as module
        except ImportError:  # pragma: no cover - a worker dependency
            module = None
        simplejpeg = module
    return simplejpeg


def decode_later_frames(data: bytes, image_format: str, rules: Validation) -> None:
    """Decode every frame of an animation after the first, which the caller decodes: a file cut
    short in a later frame, or a GIF cut where a frame ends, is truncated, not a shorter animation.
    The frames' pixels together count against the pixel cap, so a file of thousands of frames costs
    no more than one image at the cap. The frames are walked on an image of their own, closed before
    the caller decodes: the two never hold pixels at once, and the caller's first frame is decoded
    exactly as a still image's."""
    frame = 1
    try:
        with Image.open(io.BytesIO(data), formats=[image_format]) as frames:
            if not getattr(frames, "is_animated", False):
                return
            # APNG and WebP state their frame count in the header; a GIF's is found frame by frame
            # (counting first would rewind the reader and lose where it stopped, see gif_trailer_read).
            count = 2 if image_format == "GIF" else frames.n_frames
            if count * frames.width * frames.height > pixel_limit(rules):
                at_least = "at least " if image_format == "GIF" else ""
                raise Rejected(Reason.TOO_MANY_PIXELS, f"{at_least}{count} frames of {frames.width}x{frames.height}: "
                               f"more than {pixel_limit(rules)} pixels in all")
            pixels = frames.width * frames.height
            while True:
                try:
                    frames.seek(frame)
                except EOFError:  # past the last frame (a frame cut short fails in its load below)
                    if image_format == "GIF" and not gif_trailer_read(frames, data):
                        raise Rejected(Reason.TRUNCATED, f"no GIF trailer after frame {frame}") from None
                    return
                pixels += frames.width * frames.height  # a GIF frame may grow the canvas
                if pixels > pixel_limit(rules):
                    raise Rejected(Reason.TOO_MANY_PIXELS, f"{frame + 1} frames of up to {frames.width}x"
                                   f"{frames.height}: more than {pixel_limit(rules)} pixels in all")
                frames.load()
                frame += 1
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Rejected(Reason.TOO_MANY_PIXELS, str(exc)) from None
    except FRAME_ERRORS as exc:
        raise Rejected(Reason.TRUNCATED, f"frame {frame}: {type(exc).__name__}: {exc}") from None


def gif_trailer_read(image: Image.Image, data: bytes) -> bool:
    """Whether the GIF reader, having found no further frame, stopped at the trailer (';') rather
    than at the end of the bytes: a GIF cut where a frame ends would otherwise pass as a shorter
    animation."""
    position = image.fp.tell() if image.fp is not None else 0
    return data[position - 1:position] == b";"


def reserve_decode(memory: Reservation, image: Image.Image, image_format: str, stored: tuple[int, int],
                   output: tuple[int, int] | None) -> None:
    """Wait for the memory decoding `image` (header read, DCT scale chosen, `stored` its size in the
    file) and then encoding `output` will hold, or reject it when the whole budget is too small.
    Which way up the output is does not matter to its buffers."""
    try:
        animated = bool(getattr(image, "is_animated", False))
    except PILLOW_ERRORS:  # a GIF's second frame is looked for in its bytes: broken ones count as animated
        animated = True
    header = Header(image_format, image.mode, stored, decoded=image.size, animated=animated,
                    progressive=bool(image.info.get("progressive") or image.info.get("progression")), output=output)
    try:
        memory.take(decode_need(header))
    except NeverFits as exc:
        raise Rejected(Reason.TOO_LARGE_TO_DECODE, str(exc)) from None


def dct_scale(size: tuple[int, int], request: tuple[int, int]) -> int:
    """The JPEG DCT scale (1, 2, 4 or 8) Pillow's `draft` picks for `request`: the largest not
    above the smaller of the two whole ratios."""
    ratio = min(size[0] // request[0], size[1] // request[1])
    return next(scale for scale in (8, 4, 2, 1) if ratio >= scale or scale == 1)


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation tag as Pillow's exif_transpose reads it; 1 when absent, out of range or
    unreadable (broken metadata on good pixels is no reason to refuse the image)."""
    try:
        value = image.getexif().get(ORIENTATION, 1)
    except PILLOW_ERRORS:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1
