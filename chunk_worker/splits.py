"""Which split an image belongs to, and which class index its label has. Pure decisions.

The split is a function of the image's sha256 alone: a re-run, a retry or a later chunk that meets
the same bytes always puts them in the same split, and no coordination between chunks is needed.
"""

from __future__ import annotations

from chunk_worker.contract import Split, SplitName

_SCALE = float(1 << 64)


def split_of(sha256_hex: str, split: Split) -> SplitName:
    """The first 64 bits of the hash, read as a fraction in [0, 1): below `test` is test, below
    `test + val` validation, the rest train. Hash bits are uniform, so the fractions hold in
    expectation (within a few tenths of a percent at a few thousand images)."""
    position = int(sha256_hex[:16], 16) / _SCALE
    if position < split.test:
        return "test"
    if position < split.test + split.val:
        return "validation"
    return "train"


def class_index(label: str, classes: list[str]) -> int | None:
    """The label's position in the job's class list; None when the list does not name it."""
    try:
        return classes.index(label)
    except ValueError:
        return None
