"""The numbered lines of a URL list, from its raw bytes.

Pure: no I/O. Every line the list has comes out, in order, with its 1-based number: a line that
cannot be text (invalid UTF-8, a NUL byte, longer than any URL we want) comes out with a problem
instead of text, so the parser above can reject that line alone and the numbering never drifts.
"""

from __future__ import annotations

import re
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
    after_cr = False  # the last chunk ended in CR: an LF first in this one belongs to it
    number = 0
    for chunk in chunks:
        if not chunk:
            continue
        start = 1 if after_cr and chunk[:1] == b"\n" else 0
        after_cr = False
        for end in _EOL.finditer(chunk, start):
            if not overlong:
                pending += chunk[start:end.start()]
            number += 1
            yield _line(number, pending, overlong, max_line)
            pending.clear()
            overlong = False
            start = end.end()
            after_cr = start == len(chunk) and end.group() == b"\r"
        if not overlong:
            pending += chunk[start:]
            if len(pending) > max_line:
                pending.clear()
                overlong = True
    if pending or overlong:
        yield _line(number + 1, pending, overlong, max_line)


_EOL = re.compile(rb"\r\n|\r|\n")


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
