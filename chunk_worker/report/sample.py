"""Which images the report shows: a bounded choice by rank, so a re-run over the same manifests shows
the same images whatever the dataset's size or the order its chunks finished in."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")


def url_rank(url: str) -> str:
    """A rank for an item without a content hash: the sha256 of its URL."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()


class Lowest(Generic[Item]):
    """The `size` items of lowest rank offered so far (ties broken by the order given in the rank
    itself, e.g. a (sha256, key) tuple). Memory holds at most 2 x size items: past that the list is
    sorted and cut back to `size`, and the cut-off rank refuses later items without storing them."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a sample needs room for at least one item, not {size}")
        self.size = size
        self.seen = 0
        self._entries: list[tuple[object, Item]] = []
        self._cutoff: object | None = None

    def would_keep(self, rank: object) -> bool:
        """Whether an item of this rank would be kept now (lets a caller skip costly work for it)."""
        return self._cutoff is None or rank < self._cutoff  # type: ignore[operator]

    def offer(self, rank: object, item: Item) -> None:
        self.offer_made(rank, lambda: item)

    def offer_made(self, rank: object, make: Callable[[], Item]) -> None:
        """As offer, with the item made only when it is kept (most are not, in a large dataset)."""
        self.seen += 1
        if not self.would_keep(rank):
            return
        self._entries.append((rank, make()))
        if len(self._entries) >= 2 * self.size:
            self._trim()

    def shrink(self, size: int) -> None:
        """Keep only the `size` lowest from now on (never grows back)."""
        if size < self.size:
            self.size = max(size, 1)
            self._cutoff = None
            self._trim()

    def _trim(self) -> None:
        self._entries.sort(key=lambda entry: entry[0])
        del self._entries[self.size:]
        if len(self._entries) == self.size:
            self._cutoff = self._entries[-1][0]  # only lower ranks can enter from now on

    def chosen(self, limit: int | None = None) -> list[Item]:
        """The kept items, lowest rank first; at most `limit` of them when given."""
        self._trim()
        entries = self._entries if limit is None else self._entries[:limit]
        return [item for _, item in entries]


def share(groups: int, per_group: int, total: int) -> int:
    """Thumbnails per group when `groups` share at most `total`: `per_group`, fewer when there are
    many groups, never less than one."""
    if groups <= 0:
        return per_group
    return max(1, min(per_group, total // groups))
