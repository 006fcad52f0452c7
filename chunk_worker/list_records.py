"""Parsed list items as bytes: one kind-prefixed JSON line each (`I` an Item, `R` a RejectedLine).
The one format both a chunk's spool of its slice and a URL list's pages (list_pages.py) hold, so a
slice read back from either gives the very items the parser gave."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO

from chunk_worker.contract import Item


class RejectedLine(Item):
    """A list line that gives no item. It keeps its index; the runner writes it to the manifest as
    rejected without fetching anything. `url` is `<list URL>#L<line>` (1-based, as editors count)."""

    url: str  # the list's own URL may be longer than an image URL may be
    line: int
    problem: str


def record(item: Item) -> bytes:
    kind = b"R" if isinstance(item, RejectedLine) else b"I"
    return kind + item.model_dump_json(exclude_none=True).encode() + b"\n"


def write_records(items: Iterable[Item], out: IO[bytes]) -> int:
    """Writes every item; returns how many."""
    written = 0
    for item in items:
        out.write(record(item))
        written += 1
    return written


def parse_record(line: bytes) -> Item:
    """Raises ValueError (pydantic's ValidationError is one) for a line that is no record."""
    kind, body = line[:1], line[1:]
    if kind not in (b"I", b"R"):
        raise ValueError(f"no record kind ({kind!r})")
    return (RejectedLine if kind == b"R" else Item).model_validate_json(body)


def read_records(lines: Iterable[bytes]) -> Iterator[Item]:
    for line in lines:
        yield parse_record(line)
