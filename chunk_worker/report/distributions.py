"""Distributions the report charts, kept as counts in fixed bins: memory is the same for ten images
or ten million."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field


def power_edges(first: int, last: int) -> list[int]:
    """Bin edges first, 2*first, ... up to last (powers of two apart)."""
    edges = [first]
    while edges[-1] < last:
        edges.append(edges[-1] * 2)
    return edges


def short_bytes(value: int) -> str:
    """4K, 8M: short enough for a bin's tick."""
    for unit, size in (("M", 1 << 20), ("K", 1 << 10)):
        if value >= size:
            return f"{value // size}{unit}"
    return f"{value}B"


@dataclass
class Histogram:
    """Counts of values in [edge_i, edge_i+1), plus one bin below the first edge and one from the last."""

    edges: list[int]
    counts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.edges) + 1)

    def add(self, value: int) -> None:
        self.counts[bisect_right(self.edges, value)] += 1

    def labels(self, name=str) -> list[str]:
        """One name per bin: `<first`, `a-b`, ..., `>=last`."""
        names = [f"<{name(self.edges[0])}"]
        names += [f"{name(low)}-{name(high)}" for low, high in zip(self.edges, self.edges[1:])]
        return names + [f">={name(self.edges[-1])}"]

    @property
    def total(self) -> int:
        return sum(self.counts)


def pixel_histogram() -> Histogram:
    return Histogram(power_edges(32, 4096))


def bytes_histogram() -> Histogram:
    return Histogram(power_edges(4 * 1024, 8 * 1024 * 1024))
