"""Validation decides from the bytes alone, cheapest check first, and never decodes a bomb."""

import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy
import pytest
from PIL import Image, ImageDraw, ImageFile, ImageOps

from chunk_worker.contract import Reason, Validation
from chunk_worker.dedup import NEAR_DISTANCE, hamming
from chunk_worker.validate import ImageInfo, Rejected, validate, validate_decoded

RULES = Validation(min_width=32, min_height=32, max_bytes=1024 * 1024)


def picture(width: int = 160, height: int = 120, seed: int = 0) -> Image.Image:
    """A deterministic picture with enough structure for a perceptual hash to mean something."""
    image = Image.new("RGB", (width, height), (30 + seed * 40 % 200, 90, 160))
    draw = ImageDraw.Draw(image)
    for i in range(6):
        x = (i * 37 + seed * 53) % width
        y = (i * 23 + seed * 71) % height
        draw.ellipse((x, y, x + width // 3, y + height // 3), fill=((i * 50 + seed * 90) % 256, 200 - i * 20, i * 40))
    draw.rectangle((width // 2, 0, width // 2 + 10 + seed * 7 % 30, height), fill=(250, 250, 250))
    return image


def encode(image: Image.Image, image_format: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **params)
    return buffer.getvalue()


def rejection(data: bytes, rules: Validation = RULES) -> Reason:
    with pytest.raises(Rejected) as caught:
        validate(data, rules)
    return caught.value.reason


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height, with a token amount of pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "GIF"])
def test_each_allowed_format_is_accepted_and_described(image_format):
    data = encode(picture(), image_format)
    info = validate(data, RULES)
    assert isinstance(info, ImageInfo)
    assert (info.format, info.width, info.height, info.bytes) == (image_format, 160, 120, len(data))
    assert len(info.sha256) == 64 and len(info.phash_hex) == 16
    assert 0 <= info.phash < 2**64


def test_same_bytes_give_the_same_sha256_and_phash():
    data = encode(picture(), "PNG")
    assert validate(data, RULES) == validate(data, RULES)


def test_bytes_over_the_cap_are_too_large_before_anything_else():
    assert rejection(b"not even an image" * 100, Validation(max_bytes=1024)) is Reason.TOO_LARGE


def test_html_is_not_an_image():
    assert rejection(b"<!doctype html><html><body>404 Not Found</body></html>") is Reason.NOT_AN_IMAGE


def test_empty_body_is_not_an_image():
    assert rejection(b"") is Reason.NOT_AN_IMAGE


def test_png_bytes_are_a_png_whatever_the_name_claims():
    # The fetcher may have been told "image/jpeg" and "a.jpg"; the bytes win.
    assert validate(encode(picture(), "PNG"), RULES).format == "PNG"


def test_format_outside_the_allow_list_is_refused():
    rules = Validation(min_width=32, min_height=32, formats=["JPEG", "PNG"])
    assert rejection(encode(picture(), "GIF"), rules) is Reason.FORMAT_NOT_ALLOWED


def test_known_image_format_outside_the_contract_is_format_not_allowed():
    assert rejection(encode(picture(), "BMP")) is Reason.FORMAT_NOT_ALLOWED


def test_magic_bytes_with_a_garbage_header_are_not_an_image():
    assert rejection(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20) is Reason.NOT_AN_IMAGE


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "GIF"])
def test_truncated_file_is_refused(image_format):
    data = encode(picture(), image_format)
    assert rejection(data[: len(data) // 2]) is Reason.TRUNCATED


def test_truncated_images_stay_refused_process_wide():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_decompression_bomb_is_refused_from_the_header_without_decoding(monkeypatch):
    def refuse(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    assert rejection(png_header_only(30000, 30000)) is Reason.TOO_MANY_PIXELS


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_bomb_just_over_pillows_limit_is_refused_as_the_worker_runs():
    # The worker turns Pillow's warning (between MAX_IMAGE_PIXELS and twice that) into an error.
    assert rejection(png_header_only(10000, 9000)) is Reason.TOO_MANY_PIXELS


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bomb_just_over_pillows_limit_is_refused_even_if_warnings_are_ignored():
    assert rejection(png_header_only(10000, 9000)) is Reason.TOO_MANY_PIXELS


def test_the_jobs_own_pixel_cap_applies():
    rules = Validation(min_width=32, min_height=32, max_pixels=100 * 100)
    assert rejection(encode(picture(101, 100), "PNG"), rules) is Reason.TOO_MANY_PIXELS


@pytest.mark.parametrize("size", [(31, 100), (100, 31)])
def test_image_below_the_minimum_size_is_too_small(size):
    assert rejection(encode(picture(*size), "PNG")) is Reason.TOO_SMALL


def test_animated_gif_is_hashed_by_its_first_frame():
    first, second = picture(seed=1), picture(seed=2)
    animated = encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    assert validate(animated, RULES).phash == validate(encode(first, "GIF"), RULES).phash


def animation(image_format: str, frames: int = 4, size: tuple[int, int] = (160, 120)) -> bytes:
    """An animation of `frames` different pictures (APNG for PNG)."""
    pictures = [picture(*size, seed=n) for n in range(frames)]
    return encode(pictures[0], image_format, save_all=True, append_images=pictures[1:], duration=100, loop=0)


@pytest.mark.parametrize("image_format", ["GIF", "PNG"])  # libwebp refuses a cut animation on opening it
def test_an_animation_cut_short_in_a_later_frame_is_truncated(image_format):
    data = animation(image_format)
    with Image.open(io.BytesIO(data[: len(data) * 2 // 3])) as cut:
        cut.load()  # the first frame alone still decodes: only the later ones show the cut
    assert rejection(data[: len(data) * 2 // 3]) is Reason.TRUNCATED


def test_a_gif_cut_where_a_frame_ends_is_truncated():
    data = animation("GIF", frames=3)
    with Image.open(io.BytesIO(data)) as whole:
        whole.seek(2)
    assert rejection(data[: data.rindex(b"\x21\xf9")]) is Reason.TRUNCATED  # before the last frame's extension


def test_every_frame_counts_against_the_pixel_cap():
    rules = Validation(min_width=32, min_height=32, max_pixels=160 * 120 * 3)
    assert isinstance(validate(animation("GIF", frames=3), rules), ImageInfo)
    assert rejection(animation("GIF", frames=4), rules) is Reason.TOO_MANY_PIXELS


@pytest.mark.parametrize("image_format", ["GIF", "PNG", "WEBP"])
def test_a_whole_animation_is_described_by_its_first_frame(image_format):
    info = validate(animation(image_format), RULES)
    still = validate(encode(picture(seed=0), image_format), RULES)
    assert (info.width, info.height) == (160, 120)
    assert hamming(info.phash, still.phash) <= NEAR_DISTANCE


def test_a_palette_png_whose_palette_chunk_is_broken_is_refused():
    data = encode(picture().convert("P", palette=Image.Palette.ADAPTIVE), "PNG", transparency=0)
    at = data.index(b"PLTE")
    length = struct.unpack(">I", data[at - 4:at])[0]
    renamed = b"PLTf" + data[at + 4:at + 4 + length]  # an unknown chunk to Pillow: the image has no palette left
    broken = data[:at] + renamed + struct.pack(">I", zlib.crc32(renamed)) + data[at + 8 + length:]
    assert rejection(broken) is Reason.TRUNCATED


def test_reencoded_jpeg_is_a_near_duplicate():
    original = validate(encode(picture(), "JPEG", quality=92), RULES)
    recompressed = validate(encode(picture(), "JPEG", quality=55), RULES)
    assert original.sha256 != recompressed.sha256
    assert hamming(original.phash, recompressed.phash) <= 3


def test_slightly_resized_jpeg_is_a_near_duplicate():
    original = validate(encode(picture(), "JPEG", quality=90), RULES)
    resized = validate(encode(picture().resize((150, 112), Image.LANCZOS), "JPEG", quality=90), RULES)
    assert hamming(original.phash, resized.phash) <= 3


def test_a_different_picture_is_not_a_near_duplicate():
    one = validate(encode(picture(seed=0), "JPEG"), RULES)
    other = validate(encode(picture(seed=3), "JPEG"), RULES)
    assert hamming(one.phash, other.phash) > 3


def test_concurrent_validation_gives_the_same_answers_as_sequential():
    samples = [encode(picture(seed=s), f) for s in range(3) for f in ("JPEG", "PNG", "WEBP", "GIF")]
    samples += [png_header_only(30000, 30000), b"<html>"]

    def outcome(data):
        try:
            return validate(data, RULES)
        except Rejected as exc:
            return exc.reason

    expected = [outcome(d) for d in samples]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(outcome, samples * 3)) == expected * 3


def test_perceptual_hash_is_bit_for_bit_imagehash_phash():
    import imagehash

    from chunk_worker.validate import HASH_SIDE, perceptual_hash

    for seed in range(12):
        image = Image.effect_mandelbrot((96 + seed * 7, 80 + seed * 5), (-2 + seed / 10, -1.2, 1, 1.2), 40 + seed)
        image = image.convert("RGB")
        thumbnail = image.resize((HASH_SIDE, HASH_SIDE), Image.Resampling.LANCZOS, reducing_gap=3.0).convert("L")
        assert perceptual_hash(image) == int(str(imagehash.phash(thumbnail)), 16)


def sideways(image: Image.Image, image_format: str, orientation: int = 6) -> bytes:
    """`image` as a phone stores it: turned a quarter, with the EXIF tag that turns it back."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = image.transpose(Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270)
    return encode(stored, image_format, exif=exif.tobytes())


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
def test_a_sideways_image_is_described_as_displayed_and_as_stored(image_format):
    info = validate(sideways(picture(160, 120), image_format), RULES)
    assert (info.width, info.height, info.orientation) == (160, 120, 6)
    assert (info.original_width, info.original_height) == (120, 160)


def test_an_upright_image_is_stored_as_displayed():
    info = validate(encode(picture(160, 120), "JPEG"), RULES)
    assert (info.orientation, info.original_width, info.original_height) == (1, 160, 120)


@pytest.mark.parametrize("orientation", [6, 8])
def test_the_phash_is_of_the_upright_picture(orientation):
    upright = validate(encode(picture(160, 120), "PNG"), RULES)
    assert validate(sideways(picture(160, 120), "PNG", orientation), RULES).phash == upright.phash


def test_a_sideways_jpeg_is_a_near_duplicate_of_the_upright_one():
    upright = validate(encode(picture(), "JPEG", quality=92), RULES)
    assert hamming(validate(sideways(picture(), "JPEG"), RULES).phash, upright.phash) <= 3


@pytest.mark.parametrize("value", [0, 9, 255])
def test_an_orientation_outside_1_to_8_counts_as_upright(value):
    exif = Image.Exif()
    exif[0x0112] = value
    info = validate(encode(picture(160, 120), "JPEG", exif=exif.tobytes()), RULES)
    assert (info.orientation, info.width, info.height) == (1, 160, 120)


def test_unreadable_exif_on_good_pixels_is_not_a_rejection():
    data = encode(picture(160, 120), "JPEG")
    broken = b"Exif\x00\x00MM\x00*\xff\xff\xff\xff" + b"\x00" * 20
    segment = b"\xff\xe1" + struct.pack(">H", len(broken) + 2) + broken
    info = validate(data[:2] + segment + data[2:], RULES)
    assert (info.orientation, info.width, info.height) == (1, 160, 120)


# --- decoded once: validation hands its pixels to the transform ---------------------------------

def whole(width: int, height: int) -> tuple[int, int]:
    """A transform that re-encodes at the source size (no resize)."""
    return width, height


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "GIF"])
def test_pixels_kept_for_the_transform_are_the_upright_picture(image_format):
    """GIF has no EXIF orientation: it is stored upright."""
    data = encode(picture(160, 120), "GIF") if image_format == "GIF" else sideways(picture(160, 120), image_format)
    info, image = validate_decoded(data, RULES, whole)
    assert image.size == (info.width, info.height) == (160, 120)
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    assert numpy.array_equal(numpy.asarray(image.convert("RGB")), numpy.asarray(upright.convert("RGB")))


@pytest.mark.parametrize("wanted, decoded", [((1600, 1200), (1600, 1200)), ((683, 512), (800, 600)),
                                              ((400, 300), (400, 300)), ((100, 75), (200, 150))])
def test_a_jpeg_is_decoded_at_the_smallest_dct_scale_still_as_large_as_wanted(wanted, decoded):
    """1/8 at the least, whatever is wanted: the hash's own scale (200x150 here)."""
    _, image = validate_decoded(encode(picture(1600, 1200), "JPEG"), RULES, lambda width, height: wanted)
    assert image.size == decoded


def test_a_sideways_jpeg_is_decoded_at_the_scale_of_its_upright_target():
    _, image = validate_decoded(sideways(picture(1600, 1200), "JPEG"), RULES, lambda width, height: (800, 600))
    assert image.size == (800, 600)


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_a_jpegs_phash_hardly_depends_on_the_scale_it_is_decoded_at(scale):
    data = encode(picture(1600, 1200, seed=2), "JPEG", quality=90)
    info, _ = validate_decoded(data, RULES, lambda width, height: (width // scale, height // scale))
    assert hamming(info.phash, validate(data, RULES).phash) <= NEAR_DISTANCE


def test_near_duplicates_of_different_sizes_still_match_when_decoded_for_a_transform():
    def target(width: int, height: int) -> tuple[int, int]:
        return (width * 512 // min(width, height), height * 512 // min(width, height))
    big = picture(1600, 1200)
    small = big.resize((800, 600), Image.Resampling.LANCZOS)
    big, _ = validate_decoded(encode(big, "JPEG", quality=90), RULES, target)
    small, _ = validate_decoded(encode(small, "JPEG", quality=75), RULES, target)
    assert hamming(big.phash, small.phash) <= NEAR_DISTANCE


@pytest.mark.parametrize("image_format", ["PNG", "WEBP", "GIF"])
def test_formats_without_dct_scaling_hash_the_same_pixels_either_way(image_format):
    data = encode(picture(), image_format)
    assert validate_decoded(data, RULES, whole)[0] == validate(data, RULES)


@pytest.mark.parametrize("image_format", ["JPEG", "PNG"])
def test_no_pixels_wanted_gives_no_image_and_validates_exactly_as_usual(image_format):
    data = encode(picture(), image_format)
    assert validate_decoded(data, RULES, lambda width, height: None) == (validate(data, RULES), None)


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "GIF"])
def test_a_truncated_file_is_refused_when_its_pixels_are_wanted_too(image_format):
    data = encode(picture(), image_format)
    with pytest.raises(Rejected) as caught:
        validate_decoded(data[: len(data) // 2], RULES, whole)
    assert caught.value.reason is Reason.TRUNCATED
