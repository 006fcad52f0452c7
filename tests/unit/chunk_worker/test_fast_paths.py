"""The worker's faster ways to the same pixels and bytes: TurboJPEG for full-scale JPEG decodes
(validate.whole_jpeg) and Pillow's encoder writing to a file descriptor (transform._encode)."""

import io
from functools import partial

import numpy
import pytest
from PIL import Image

from chunk_worker import transform as transform_module
from chunk_worker import validate as validate_module
from chunk_worker.contract import Reason, Transform, Validation
from chunk_worker.transform import pixels_for, transform_image
from chunk_worker.validate import Rejected, validate_decoded, whole_jpeg

pytest.importorskip("simplejpeg")
HOME = Transform.model_validate({"resize": {"mode": "keep_ratio", "size": 512, "onlyIfBigger": True},
                                 "encode": {"format": "jpeg", "quality": 90}})


def photo(width: int, height: int, seed: int = 0, mode: str = "RGB", quality: int = 85, **params) -> bytes:
    rng = numpy.random.default_rng(seed)
    y, x = numpy.mgrid[0:height, 0:width]
    base = numpy.stack([(x * 255 // width), (y * 255 // height), ((x + y) * 127 // (width + height))], axis=-1)
    pixels = numpy.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(numpy.uint8)
    image = Image.fromarray(pixels).convert(mode)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, **params)
    return out.getvalue()


def sideways() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6
    return exif


def store(data: bytes, spec: Transform = HOME):
    info, decoded = validate_decoded(data, Validation(), partial(pixels_for, spec))
    try:
        return info, transform_image(data, info, spec, decoded)
    finally:
        if decoded is not None:
            decoded.close()


@pytest.mark.parametrize("params", [{}, {"progressive": True}, {"subsampling": 0}, {"subsampling": 1}])
def test_turbojpeg_pixels_are_pillows(params):
    data = photo(333, 250, **params)
    header = Image.open(io.BytesIO(data))
    fast = whole_jpeg(data, header)
    assert fast is not None and fast.mode == "RGBX"
    with Image.open(io.BytesIO(data)) as pillow:
        assert numpy.array_equal(numpy.asarray(fast.convert("RGB")), numpy.asarray(pillow.convert("RGB")))


@pytest.mark.parametrize("size", [(640, 480), (800, 600), (300, 700)])
@pytest.mark.parametrize("params", [{}, {"progressive": True}])
def test_stored_bytes_and_hashes_are_the_same_with_or_without_turbojpeg(monkeypatch, size, params):
    data = photo(*size, seed=size[0], **params)
    info, stored = store(data)
    monkeypatch.setattr(validate_module, "simplejpeg", None)
    slow_info, slow = store(data)
    assert (info, stored) == (slow_info, slow)


def test_icc_profile_is_kept_on_the_fast_path(monkeypatch):
    profile = b"\0" * 128 + b"not a real profile but kept as bytes"
    data = photo(640, 480, icc_profile=profile)
    _, stored = store(data)
    assert Image.open(io.BytesIO(stored.data)).info.get("icc_profile") == profile
    monkeypatch.setattr(validate_module, "simplejpeg", None)
    assert store(data)[1] == stored


@pytest.mark.parametrize("make", [
    lambda: photo(200, 150, mode="L"),  # greyscale
    lambda: photo(200, 150, mode="CMYK"),
    lambda: photo(200, 150, exif=sideways()),  # Pillow turns it upright
])
def test_what_turbojpeg_does_not_decode_goes_to_pillow(make):
    data = make()
    assert whole_jpeg(data, Image.open(io.BytesIO(data))) is None
    info, stored = store(data)
    assert stored.format == "JPEG" and info.sha256


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_a_truncated_jpeg_is_still_rejected_as_truncated(cut):
    data = photo(640, 480)
    with pytest.raises(Rejected) as caught:
        store(data[:int(len(data) * cut)])
    assert caught.value.reason is Reason.TRUNCATED


@pytest.mark.parametrize("image_format", ["JPEG", "PNG"])
def test_encoding_through_a_file_descriptor_gives_the_bytes_a_bytesio_gets(monkeypatch, image_format):
    image = Image.open(io.BytesIO(photo(300, 200))).convert("RGB")
    via_fd = transform_module._encode(image.copy(), image_format, 90, None)
    monkeypatch.setattr(transform_module, "_gil_free_buffer", io.BytesIO)
    assert transform_module._encode(image.copy(), image_format, 90, None) == via_fd
