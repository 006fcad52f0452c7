"""Turn an accepted image into what the dataset stores: resized, upright, in the target format.

Two layers. `geometry` is the pure decision, img2dataset's resize modes on whole pixels:

- keep_ratio: the smaller side becomes `size`, the aspect ratio is kept;
- keep_ratio_largest: the larger side becomes `size`;
- center_crop: as keep_ratio, then the centre size x size is cut out;
- border: as keep_ratio_largest, then pasted in the centre of a size x size canvas, padded with
  white (img2dataset pads with [255, 255, 255]; an image that keeps its alpha is padded with
  transparent white, which flattens to the same white);
- only_if_bigger: nothing at all happens (no resize, no crop, no padding) unless the side the mode
  fits is larger than `size`: the smaller side for keep_ratio and center_crop, the larger side
  for keep_ratio_largest and border (img2dataset's `resize_only_if_bigger`).

The side the mode fits becomes exactly `size`; the other side is the exact rational
`other * size / side` rounded half to even (Python's `round`, which albumentations applies for
img2dataset), and at least 1. Crop and paste offsets are floored, so an odd remainder puts the
extra pixel at the right/bottom, as albumentations' center_crop and pad do. Geometry is on the
upright image: EXIF orientation is applied before anything else.

`transform_image` does the pixels, cheapest path first: untouched bytes when nothing changes;
JPEG shrink-on-load (`draft`, libjpeg's DCT scaling) and `reducing_gap` for big downscales;
the crop done by the resize itself (`box`), so cropped-away pixels are never resampled.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO

import numpy
from PIL import Image, ImageOps

from chunk_worker.contract import ImageFormat, Reason, ResizeMode, Transform
from chunk_worker.memory import Reservation
from chunk_worker.validate import PILLOW_ERRORS, ImageInfo, Rejected, reserve_decode

# The resample is the biggest cost per image, so BICUBIC: 20-30% less CPU than LANCZOS, and its
# output is within 53-56 dB PSNR of LANCZOS's on smooth content (JPEG quality 90 re-encoding alone
# is ~47 dB); on per-pixel sensor noise it is ~38 dB, LANCZOS keeping the noise a little sharper.
# (img2dataset downscales with OpenCV's INTER_AREA, softer than either.) A JPEG is decoded at the
# smallest DCT scale (1/2, 1/4, 1/8) still at least the target size: libjpeg's scaled IDCT is a
# proper downsample, within 46-52 dB of a full decode + LANCZOS at 2-3x the speed (measured on
# 1536x1152 to 4000x3000 sources shrunk to 512; bench/transform_cost.py prints the costs). The
# remaining stretch uses reducing_gap 2.0 (Pillow's thumbnail() default): whole-factor
# Image.reduce first while at least twice the target remains, which matters for PNG and WebP.
RESAMPLE = Image.Resampling.BICUBIC
REDUCING_GAP = 2.0
# An output this large is refused rather than allocated (keep_ratio on a 64 x 8192 strip at
# size 8192 would be 8 gigapixels). Pillow's own decompression-bomb threshold.
MAX_OUTPUT_PIXELS = 89_478_485
# Encoder effort, measured on a 512x384 photo-like image: WebP method 2 encodes in 8 ms against
# 23 ms for the default 4 (methods 3+ add rate-distortion passes), same size within 5%; PNG zlib
# level 1 in 18 ms against 67 ms for the default 6; JPEG's optimize would add 0.9 ms to 0.5 ms
# for 4% smaller files, so it stays off (baseline, not progressive, default 4:2:0 subsampling).
WEBP_METHOD = 2
PNG_COMPRESS_LEVEL = 1
WHITE = 255


@dataclass(frozen=True)
class Geometry:
    """What a resize does to an upright `source` image: resample to `resized`, then cut `crop`
    (left, top, right, bottom, in resized pixels) out of it, or paste it at `offset` on a blank
    `canvas`. At most one of crop and canvas is set; neither is set when it would change nothing."""

    source: tuple[int, int]
    resized: tuple[int, int]
    crop: tuple[int, int, int, int] | None = None
    canvas: tuple[int, int] | None = None
    offset: tuple[int, int] = (0, 0)

    @property
    def size(self) -> tuple[int, int]:
        """The stored image's width and height."""
        if self.crop is not None:
            return self.crop[2] - self.crop[0], self.crop[3] - self.crop[1]
        return self.canvas or self.resized

    @property
    def changes_pixels(self) -> bool:
        return self.resized != self.source or self.crop is not None or self.canvas is not None


def _fit(width: int, height: int, side: int, size: int) -> tuple[int, int]:
    """Scale so that `side` (one of width, height) becomes `size`; the other side rounded half to even."""
    if side == width:
        return size, max(1, round(Fraction(height * size, width)))
    return max(1, round(Fraction(width * size, height))), size


def geometry(mode: ResizeMode, width: int, height: int, size: int, only_if_bigger: bool) -> Geometry:
    """The target of img2dataset's resize `mode` for an upright width x height image (see module doc)."""
    if width < 1 or height < 1 or size < 1:
        raise ValueError(f"sizes must be positive: {width}x{height} to {size}")
    source = (width, height)
    if mode == "none":
        return Geometry(source, source)
    if mode in ("keep_ratio", "center_crop"):
        fitted = min(width, height)
    elif mode in ("keep_ratio_largest", "border"):
        fitted = max(width, height)
    else:
        raise ValueError(f"unknown resize mode {mode!r}")
    if only_if_bigger and fitted <= size:
        return Geometry(source, source)
    resized = _fit(width, height, width if fitted == width else height, size)
    if mode == "center_crop" and resized != (size, size):
        left, top = (resized[0] - size) // 2, (resized[1] - size) // 2
        return Geometry(source, resized, crop=(left, top, left + size, top + size))
    if mode == "border" and resized != (size, size):
        offset = ((size - resized[0]) // 2, (size - resized[1]) // 2)
        return Geometry(source, resized, canvas=(size, size), offset=offset)
    return Geometry(source, resized)


@dataclass(frozen=True)
class Transformed:
    """The bytes to store and what they are. `data` is the downloaded object itself when nothing changed."""

    data: bytes
    format: ImageFormat
    width: int
    height: int


def target_format(info: ImageInfo, transform: Transform) -> ImageFormat:
    """`keep` stores the source format (a GIF stays a GIF); otherwise the one asked for."""
    chosen = transform.encode.format
    return info.format if chosen == "keep" else {"jpeg": "JPEG", "webp": "WEBP", "png": "PNG"}[chosen]


def pixels_for(transform: Transform, width: int, height: int) -> tuple[int, int] | None:
    """The upright size `transform_image` works from for an upright width x height source (the
    resize target, else the source itself), or None when it returns the bytes untouched. Handed to
    `validate.validate_decoded`, so validation decodes once at the scale the transform needs."""
    resize = transform.resize
    plan = geometry(resize.mode, width, height, resize.size, resize.only_if_bigger)
    if transform.encode.format == "keep" and not plan.changes_pixels:
        return None
    return plan.resized


def transform_image(data: bytes, info: ImageInfo, transform: Transform,
                    decoded: Image.Image | None = None, memory: Reservation | None = None) -> Transformed:
    """Resize, orient and encode `data` (already validated into `info`) as `transform` says.

    The original bytes come back untouched when `encode.format` is keep and no resize applies,
    EXIF orientation tag and all (viewers and `ImageOps.exif_transpose` still show them upright):
    asking for nothing changes nothing. Any explicit format re-encodes every image, so a dataset asked
    for as JPEG quality 90 holds nothing else (and no camera metadata). Pixels that are re-encoded
    are always upright (EXIF orientation applied, the tag not written). An animated GIF that is
    re-encoded keeps its first frame only. Same bytes and transform give the same output bytes.
    `decoded`, when given, is the upright image `validate_decoded` made of `data` with `pixels_for`
    (at least the target size): it is used instead of decoding `data` again, and may be changed.
    `memory`, an empty slot of the worker's MemoryBudget, is filled before `data` is decoded here
    (as `validate_decoded` does), so this decode too waits its turn or is `too_large_to_decode`."""
    resize = transform.resize
    plan = geometry(resize.mode, info.width, info.height, resize.size, resize.only_if_bigger)
    if transform.encode.format == "keep" and not plan.changes_pixels:
        return Transformed(data, info.format, info.width, info.height)
    if plan.resized[0] * plan.resized[1] > MAX_OUTPUT_PIXELS and plan.crop is None:
        width, height = plan.resized
        raise Rejected(Reason.TRANSFORM_FAILED, f"{resize.mode} {resize.size} would make {width}x{height}")
    image_format = target_format(info, transform)
    try:
        if decoded is not None:
            encoded = _convert(decoded, decoded.mode, decoded.info.get("icc_profile"), image_format, plan,
                               transform.encode.quality)
        else:
            with Image.open(io.BytesIO(data), formats=[info.format]) as image:
                source_mode, icc_profile = image.mode, image.info.get("icc_profile")
                encoded = _convert(_decode_upright(image, info, plan, memory), source_mode, icc_profile, image_format,
                                   plan, transform.encode.quality)
    except (*PILLOW_ERRORS, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Rejected(Reason.TRANSFORM_FAILED, f"{type(exc).__name__}: {exc}") from None
    width, height = plan.size
    return Transformed(encoded, image_format, width, height)


def _convert(upright: Image.Image, source_mode: str, icc_profile: bytes | None, image_format: ImageFormat,
             plan: Geometry, quality: int) -> bytes:
    """Resample the decoded pixels and encode them, with the source's ICC profile while the pixels
    are still in its colour space."""
    source_space = _colour_space(source_mode)
    pixels = _resample(_working_mode(upright, image_format), plan)
    pixels = _target_mode(pixels, image_format)
    if _colour_space(pixels.mode) != source_space or image_format == "GIF":
        icc_profile = None
    return _encode(pixels, image_format, quality, icc_profile)


def _decode_upright(image: Image.Image, info: ImageInfo, plan: Geometry, memory: Reservation | None) -> Image.Image:
    """Decode, at a JPEG's shrink-on-load scale when the target is much smaller, and turn upright."""
    stored = image.size
    if info.format == "JPEG" and plan.resized != plan.source:
        width, height = plan.resized
        if info.orientation >= 5:  # stored sideways: the file's axes are the output's swapped
            width, height = height, width
        image.draft(None, (width, height))
    if memory is not None:
        reserve_decode(memory, image, info.format, stored, plan.resized)
    image.load()
    if info.orientation != 1:
        ImageOps.exif_transpose(image, in_place=True)
    return image


def _colour_space(mode: str) -> str:
    """Which ICC profile class fits `mode`: a profile only travels with pixels still in its space."""
    if mode == "CMYK":
        return "CMYK"
    if mode in ("1", "L", "LA", "La", "I", "F") or mode.startswith("I;16"):
        return "GRAY"
    return "RGB"


def _working_mode(image: Image.Image, image_format: ImageFormat) -> Image.Image:
    """A mode that resamples correctly (palettes, bilevel and 16-bit do not) and keeps any alpha."""
    mode = image.mode
    if mode == "I" or mode.startswith("I;16"):
        return _eight_bit(image)
    transparent = "transparency" in image.info
    if mode in ("P", "PA"):
        return image.convert("RGBA" if transparent or mode == "PA" else "RGB")
    if mode in ("L", "RGB") and transparent:  # a PNG tRNS colour key
        return image.convert("LA" if mode == "L" else "RGBA")
    if mode == "1":
        return image.convert("L")
    if mode == "L" and image_format in ("WEBP", "GIF"):
        return image.convert("RGB")
    if mode == "LA" and image_format in ("WEBP", "GIF"):
        return image.convert("RGBA")
    if mode in ("L", "LA", "RGB", "RGBA") or (mode == "RGBX" and image_format == "JPEG"):
        return image  # RGBX: validate.whole_jpeg's pixels, which Pillow stores and encodes as RGB
    return image.convert("RGB")  # CMYK, YCbCr, ...


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit greyscale to 8-bit by v * 255 / 65535, rounded (Pillow's convert('L') clips to 255)."""
    values = numpy.asarray(image).astype(numpy.uint32)
    return Image.fromarray(((values * 255 + 32767) // 65535).astype(numpy.uint8))


def _resample(image: Image.Image, plan: Geometry) -> Image.Image:
    """Resize (cropping in the same pass) and pad. Works from whatever size decoding gave."""
    if plan.crop is not None and image.size == plan.resized:
        image = image.crop(plan.crop)
    elif plan.crop is not None:
        scale_x, scale_y = image.width / plan.resized[0], image.height / plan.resized[1]
        left, top, right, bottom = plan.crop
        box = (left * scale_x, top * scale_y, right * scale_x, bottom * scale_y)
        image = image.resize(plan.size, RESAMPLE, box=box, reducing_gap=REDUCING_GAP)
    elif image.size != plan.resized:
        image = image.resize(plan.resized, RESAMPLE, reducing_gap=REDUCING_GAP)
    if plan.canvas is not None:
        fill = {"L": WHITE, "LA": (WHITE, 0), "RGB": (WHITE,) * 3, "RGBA": (WHITE, WHITE, WHITE, 0)}[image.mode]
        canvas = Image.new(image.mode, plan.canvas, fill)
        canvas.paste(image, plan.offset)
        image = canvas
    return image


def _target_mode(image: Image.Image, image_format: ImageFormat) -> Image.Image:
    """JPEG has no alpha: flatten onto white, as img2dataset does. The other formats keep it."""
    if image_format != "JPEG" or image.mode not in ("LA", "RGBA"):
        return image
    opaque = image.mode[:-1]
    background = Image.new(opaque, image.size, WHITE if opaque == "L" else (WHITE,) * 3)
    background.paste(image.convert(opaque), mask=image.getchannel("A"))
    return background


def _encode(image: Image.Image, image_format: ImageFormat, quality: int, icc_profile: bytes | None) -> bytes:
    """Encoder settings chosen for speed; none of them varies between runs, so output is reproducible.
    JPEG and PNG are encoded into an in-memory file (`_gil_free_buffer`), the same bytes as into a
    BytesIO, because Pillow's encoder lets other threads run only while it writes to a file descriptor."""
    image.info = {}  # nothing of the source's metadata (EXIF, comments, colour keys) is written
    buffer = _gil_free_buffer() if image_format in ("JPEG", "PNG") else io.BytesIO()
    with buffer:
        _save(image, buffer, image_format, quality, icc_profile)
        if isinstance(buffer, io.BytesIO):
            return buffer.getvalue()
        buffer.seek(0)
        return buffer.read()


def _gil_free_buffer() -> io.BufferedRandom | io.BytesIO:
    """A memfd (Linux): Pillow's `ImageFile._save` encodes to anything with a `fileno` through
    `encode_to_file`, which releases the GIL for the whole encode; into a BytesIO it encodes block by
    block holding it, so 32 item threads of one process took turns at the encoder (1.2 ms per image,
    the largest single hold of the GIL in a chunk). Elsewhere a BytesIO."""
    try:
        fd = os.memfd_create("pixcrawler-encode", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        return io.BytesIO()
    return os.fdopen(fd, "w+b")


def _save(image: Image.Image, buffer: BinaryIO, image_format: ImageFormat, quality: int,
          icc_profile: bytes | None) -> None:
    if image_format == "JPEG":
        image.save(buffer, "JPEG", quality=quality, optimize=False, progressive=False, icc_profile=icc_profile)
    elif image_format == "WEBP":
        image.save(buffer, "WEBP", quality=quality, method=WEBP_METHOD, icc_profile=icc_profile)
    elif image_format == "PNG":
        image.save(buffer, "PNG", compress_level=PNG_COMPRESS_LEVEL, icc_profile=icc_profile)
    else:
        image.save(buffer, "GIF")
