"""Split assignment from the content hash, and class indices from the job's class list."""

import hashlib

import pytest

from chunk_worker.contract import Split
from chunk_worker.splits import class_index, split_of


def sha(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def test_no_fractions_put_everything_in_train():
    assert {split_of(sha(n), Split()) for n in range(500)} == {"train"}


def test_the_same_hash_always_lands_in_the_same_split():
    rules = Split(val=0.2, test=0.1)
    assert [split_of(sha(n), rules) for n in range(300)] == [split_of(sha(n), rules) for n in range(300)]


def test_fractions_hold_over_many_images():
    rules = Split(val=0.1, test=0.05)
    splits = [split_of(sha(n), rules) for n in range(20_000)]
    assert splits.count("validation") / len(splits) == pytest.approx(0.10, abs=0.01)
    assert splits.count("test") / len(splits) == pytest.approx(0.05, abs=0.01)


def test_growing_the_validation_fraction_only_moves_train_images():
    """Test keeps the lowest hash positions whatever val is, so raising val never reshuffles test."""
    small, large = Split(val=0.05, test=0.05), Split(val=0.2, test=0.05)
    for n in range(5000):
        before, after = split_of(sha(n), small), split_of(sha(n), large)
        assert before == after or (before, after) == ("train", "validation")


def test_boundaries_are_half_open():
    assert split_of("0" * 64, Split(test=0.5)) == "test"
    assert split_of("8" + "0" * 63, Split(test=0.5)) == "train"
    assert split_of("8" + "0" * 63, Split(test=0.5, val=0.01)) == "validation"


def test_class_index_is_the_position_in_the_class_list():
    assert class_index("dog", ["cat", "dog"]) == 1
    assert class_index("bird", ["cat", "dog"]) is None
