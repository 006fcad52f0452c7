"""A chunk's refused thumbnails: a few per reason, the same ones whatever order items end in."""

import io
import random

from PIL import Image

from chunk_worker.contract import THUMBNAIL_MAX_CHARS, ManifestLine, RefusedSample
from chunk_worker.report.refused import PER_REASON, RefusedSampler


def jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), (seed % 256, 40, 90)).save(buffer, "JPEG")
    return buffer.getvalue()


def refused(n: int, reason: str) -> ManifestLine:
    return ManifestLine(url=f"http://x/{reason}/{n}.jpg", label="cat", status="rejected", reason=reason)


def chosen_urls(order: list[int], reason: str = "too_small") -> list[str]:
    sampler = RefusedSampler()
    for n in order:
        sampler.offer(refused(n, reason), jpeg(n))
    return [sample.url for sample in sampler.samples()]


def test_keeps_a_few_per_reason_the_same_whatever_the_order():
    order = list(range(50))
    first = chosen_urls(order)
    random.Random(3).shuffle(order)
    assert chosen_urls(order) == first
    assert len(first) == PER_REASON


def test_reasons_without_decoded_bytes_keep_nothing():
    sampler = RefusedSampler()
    for reason in ("timeout", "http_404", "not_an_image"):
        sampler.offer(refused(1, reason), jpeg(1))
    assert sampler.samples() == []


def test_each_sample_is_a_small_jpeg_thumbnail_with_its_item():
    sampler = RefusedSampler()
    sampler.offer(refused(1, "near_duplicate").model_copy(update={"sha256": "a" * 64, "phash": "0" * 16}), jpeg(1))
    (sample,) = sampler.samples()
    assert isinstance(sample, RefusedSample)
    assert (sample.reason, sample.sha256, sample.label) == ("near_duplicate", "a" * 64, "cat")
    assert sample.thumbnail.startswith("data:image/jpeg;base64,") and len(sample.thumbnail) <= THUMBNAIL_MAX_CHARS


def test_bytes_that_do_not_decode_are_skipped():
    sampler = RefusedSampler()
    sampler.offer(refused(1, "too_small"), b"not an image at all")
    assert sampler.samples() == []
