"""Band splitting, distance, and the in-memory deduper standalone workers use."""

import random
from concurrent.futures import ThreadPoolExecutor

from chunk_worker.contract import Reason
from chunk_worker.dedup import MemoryDeduper, bands, hamming, make_deduper
from chunk_worker.validate import ImageInfo


def info(sha: str, phash: int) -> ImageInfo:
    return ImageInfo(format="PNG", width=64, height=64, bytes=100, sha256=sha * 64, phash=phash)


def flip(value: int, *bits: int) -> int:
    for bit in bits:
        value ^= 1 << bit
    return value


def test_hamming_counts_differing_bits():
    assert hamming(0b1011, 0b0001) == 2
    assert hamming(2**64 - 1, 0) == 64


def test_bands_are_four_16_bit_pieces_most_significant_first():
    assert bands(0x1234_5678_9ABC_DEF0) == [(0, 0x1234), (1, 0x5678), (2, 0x9ABC), (3, 0xDEF0)]


def test_any_pair_within_distance_three_shares_a_band():
    rng = random.Random(7)
    for _ in range(2000):
        a = rng.getrandbits(64)
        b = flip(a, *rng.sample(range(64), rng.randint(0, 3)))
        assert set(bands(a)) & set(bands(b))


def test_new_image_is_kept_and_exact_copy_from_another_chunk_is_a_duplicate():
    deduper = MemoryDeduper("exact")
    assert deduper.claim(info("a", 1), "00000") is None
    assert deduper.claim(info("a", 1), "00001") == Reason.DUPLICATE


def test_retry_of_the_same_chunk_keeps_its_own_images():
    deduper = MemoryDeduper("near")
    assert deduper.claim(info("a", 0xF0F0), "00002") is None
    assert deduper.claim(info("a", 0xF0F0), "00002") is None


def test_near_mode_rejects_a_close_hash_and_keeps_a_far_one():
    deduper = MemoryDeduper("near")
    base = 0xDEAD_BEEF_0123_4567
    assert deduper.claim(info("a", base), "00000") is None
    assert deduper.claim(info("b", flip(base, 0, 20, 40)), "00001") == Reason.NEAR_DUPLICATE
    assert deduper.claim(info("c", flip(base, 0, 20, 40, 60)), "00001") is None


def test_exact_mode_ignores_close_hashes():
    deduper = MemoryDeduper("exact")
    assert deduper.claim(info("a", 5), "00000") is None
    assert deduper.claim(info("b", 5), "00001") is None


def test_mode_none_keeps_everything():
    deduper = make_deduper("none")
    assert deduper.claim(info("a", 1), "00000") is None
    assert deduper.claim(info("a", 1), "00001") is None


def test_concurrent_claims_of_one_image_have_exactly_one_winner():
    deduper = MemoryDeduper("near")
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda n: deduper.claim(info("z", 42), f"{n:05d}"), range(16)))
    assert outcomes.count(None) == 1
