"""Band splitting, distance, the in-memory deduper standalone workers use, and the claim order within a chunk."""

import random
from concurrent.futures import ThreadPoolExecutor

from chunk_worker.contract import Reason
import pytest

from chunk_worker.dedup import ClaimSequencer, MemoryDeduper, bands, hamming, make_deduper
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


def owner(position: int) -> str:
    return f"00000.{position:05d}"


def chunk_of_copies(rng: random.Random, count: int) -> list[ImageInfo | None]:
    """`count` positions: originals, exact and near copies of earlier ones (anywhere in the chunk),
    and items that gave no image."""
    images: list[ImageInfo | None] = []
    for position in range(count):
        earlier = [image for image in images if image is not None]
        roll = rng.random()
        if roll < 0.15:
            images.append(None)
        elif earlier and roll < 0.35:
            images.append(rng.choice(earlier))
        elif earlier and roll < 0.6:
            base = rng.choice(earlier)
            images.append(info(f"{position:x}", flip(base.phash, *rng.sample(range(64), rng.randint(1, 3)))))
        else:
            images.append(info(f"{position:x}", rng.getrandbits(64)))
    return images


def verdicts(images: list[ImageInfo | None], order: list[int], mode: str = "near") -> dict[int, str | None]:
    sequencer = ClaimSequencer(MemoryDeduper(mode), owner)
    made = [claim for position in order for claim in sequencer.submit(position, images[position], position)]
    assert sequencer.parked == 0
    assert all(claim.payload == claim.position for claim in made)
    return {claim.position: claim.verdict for claim in made}


@pytest.mark.parametrize("mode", ["exact", "near"])
def test_whatever_order_items_finish_in_the_same_copies_are_kept(mode):
    rng = random.Random(11)
    for _ in range(200):
        images = chunk_of_copies(rng, rng.randint(2, 40))
        in_order = verdicts(images, list(range(len(images))), mode)
        shuffled = list(range(len(images)))
        rng.shuffle(shuffled)
        assert verdicts(images, shuffled, mode) == in_order


def test_the_lower_position_of_a_near_duplicate_pair_wins():
    base = 0xDEAD_BEEF_0123_4567
    images = [None, info("b", flip(base, 5)), None, info("a", base)]
    assert verdicts(images, [3, 2, 1, 0]) == {1: None, 3: Reason.NEAR_DUPLICATE}


def test_a_claim_waits_for_every_lower_position_and_comes_back_with_the_last_of_them():
    sequencer = ClaimSequencer(MemoryDeduper("near"), owner)
    assert sequencer.submit(2, info("c", 3), "two") == []
    assert sequencer.submit(1, None) == []
    assert sequencer.parked == 1
    released = sequencer.submit(0, info("a", 0xFFFF_FFFF_0000_0000), "zero")
    assert [(claim.position, claim.payload, claim.verdict) for claim in released] == [(0, "zero", None),
                                                                                      (2, "two", None)]
    assert sequencer.parked == 0


def test_without_dedup_nothing_waits():
    sequencer = ClaimSequencer(make_deduper("none"), owner)
    [claim] = sequencer.submit(5, info("a", 1), "five")
    assert (claim.position, claim.verdict) == (5, None)


def test_a_position_cannot_claim_twice():
    sequencer = ClaimSequencer(MemoryDeduper("exact"), owner)
    sequencer.submit(0, info("a", 1))
    with pytest.raises(ValueError, match="position 0"):
        sequencer.submit(0, info("b", 2))
