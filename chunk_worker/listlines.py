"""The numbered lines of a URL list, from its raw bytes.

Pure: no I/O. Every line the list has comes out, in order, with its 1-based number: a line that
cannot be text (invalid UTF-8, a NUL byte, longer than any URL we want) comes out with a problem
instead of text, so the parser above can reject that line alone and the numbering never drifts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

MAX_LINE = 64 * 1024
"""Bytes a line may have; a longer one is consumed without being held and rejected."""

BOM = "\ufeff"


class Line(NamedTuple):
    number: int
    text: str | None
    problem: str | None = None


def split_lines(chunks: Iterable[bytes], max_line: int = MAX_LINE) -> Iterator[Line]:
    """Lines end at LF, CRLF or a lone CR (old Mac and Excel exports), even when a CRLF is split
    across two chunks. At most one line (of at most `max_line` bytes) is held at a time. A byte
    order mark at the start of the list is dropped."""
    pending = bytearray()
    overlong = False
    after_cr = False  # the previous line ended in CR: an LF first in this chunk belongs to it
    number = 0
    for chunk in chunks:
        start = 0
        if after_cr and chunk:
            after_cr = False
            if chunk[:1] == b"\n":
                start = 1
        while True:
            end = _line_end(chunk, start)
            if end < 0:
                if not overlong:
                    pending += chunk[start:]
                    if len(pending) > max_line:
                        pending.clear()
                        overlong = True
                break
            if not overlong:
                pending += chunk[start:end]
            number += 1
            yield _line(number, pending, overlong, max_line)
            pending.clear()
            overlong = False
            if chunk[end:end + 1] == b"\r":
                if end + 1 == len(chunk):
                    after_cr = True
                    start = end + 1
                    break
                start = end + 2 if chunk[end + 1:end + 2] == b"\n" else end + 1
            else:
                start = end + 1
    if pending or overlong:
        yield _line(number + 1, pending, overlong, max_line)


def _line_end(chunk: bytes, start: int) -> int:
    """Index of the first CR or LF at or after `start`, or -1."""
    cr, lf = chunk.find(b"\r", start), chunk.find(b"\n", start)
    if cr < 0 or lf < 0:
        return max(cr, lf)
    return min(cr, lf)


def _line(number: int, raw: bytearray, overlong: bool, max_line: int) -> Line:
    if overlong or len(raw) > max_line:
        return Line(number, None, f"longer than {max_line} bytes")
    if b"\0" in raw:
        return Line(number, None, "contains a NUL byte")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Line(number, None, f"not UTF-8 (byte {exc.start + 1})")
    return Line(number, text[1:] if number == 1 and text.startswith(BOM) else text)
