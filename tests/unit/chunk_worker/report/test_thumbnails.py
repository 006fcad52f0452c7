"""Thumbnails: small, upright in size, flattened to JPEG; nothing for bytes that are not an image."""

import base64
import io

import pytest
from PIL import Image

from chunk_worker.report.thumbnails import SIDE, thumbnail_uri


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def decoded(uri: str) -> Image.Image:
    assert uri.startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def test_a_large_photo_shrinks_to_fit_the_side_keeping_its_ratio():
    image = decoded(thumbnail_uri(encoded(Image.new("RGB", (2000, 1000), "red"), "JPEG")))
    assert image.size == (SIDE, SIDE // 2) and image.format == "JPEG"


def test_transparent_and_palette_images_become_jpeg_on_white():
    clear = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    assert decoded(thumbnail_uri(encoded(clear, "PNG"))).getpixel((20, 20)) >= (250, 250, 250)
    assert decoded(thumbnail_uri(encoded(Image.new("P", (30, 30), 3), "GIF"))).size == (30, 30)


def test_what_is_not_an_image_gives_none():
    assert thumbnail_uri(b"<html>no</html>") is None
    assert thumbnail_uri(encoded(Image.new("RGB", (64, 64)), "PNG")[:60]) is None  # cut short


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")  # as in the worker (validate.py)
def test_a_header_claiming_too_many_pixels_is_not_decoded():
    import bombs  # hack/bombs.py: the decompression bombs the worker's tests use

    assert thumbnail_uri(bombs.bomb_bytes("png-above-cap.png")) is None


def test_a_big_jpeg_is_decoded_small_but_a_big_png_is_not_decoded():
    big = Image.new("RGB", (4200, 4200), "blue")
    assert decoded(thumbnail_uri(encoded(big, "JPEG"), max_decoded=1024 * 1024)).size == (SIDE, SIDE)
    assert thumbnail_uri(encoded(big, "PNG"), max_decoded=1024 * 1024) is None
