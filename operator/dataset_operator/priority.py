"""Queue order as one sortable number (a Redis sorted-set score, lowest first).

    rank (2 bits) | chunk index within its job (20 bits) | enqueue second since 2025 (31 bits)

Rank is strict: promoted < new-user < enterprise < free. Within a rank, chunk k of every job
comes before chunk k+1 of any job (round-robin between jobs), then older submissions first.
The whole fits the 53-bit integer range a double holds exactly.
"""

from __future__ import annotations

EPOCH = 1_735_689_600  # 2025-01-01T00:00:00Z
PROMOTED = 0
TIER_RANK = {"new-user": 1, "enterprise": 2, "free": 3}
INDEX_BITS = 20
TIME_BITS = 31
MAX_CHUNKS = (1 << INDEX_BITS) - 1


def score(tier: str, index: int, enqueued_at: float, promoted: bool = False) -> float:
    rank = PROMOTED if promoted else TIER_RANK[tier]
    if not 0 <= index <= MAX_CHUNKS:
        raise ValueError(f"chunk index {index} outside 0..{MAX_CHUNKS}")
    seconds = min(max(int(enqueued_at) - EPOCH, 0), (1 << TIME_BITS) - 1)
    return float((rank << (INDEX_BITS + TIME_BITS)) | (index << TIME_BITS) | seconds)


def decode(value: float) -> tuple[int, int, int]:
    """(rank, index, enqueue time) back from a score."""
    number = int(value)
    return (
        number >> (INDEX_BITS + TIME_BITS),
        (number >> TIME_BITS) & MAX_CHUNKS,
        (number & ((1 << TIME_BITS) - 1)) + EPOCH,
    )


def tier_of_rank(rank: int) -> str:
    for tier, tier_rank in TIER_RANK.items():
        if tier_rank == rank:
            return tier
    return "promoted"
