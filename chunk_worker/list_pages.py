"""A URL list split once into pages under the job's output, so that each chunk reads its own slice
instead of streaming the list from line 0 (quadratic in the list's length over all chunks) and
requesting the user's URL again.

The list-count Job writes source n's items as `<pages>/source-<n>/page-<p 06d>.jsonl` (names from
contract.source_pages), `page_size` items each (the job's chunkSize, so a slice touches at most two
pages), in list_records' format, each page committed whole by Storage.put_file: a page is visible
complete or not at all. Items carry the label of their own label column only; the source's label is
applied when a chunk reads them, as when a list is streamed. The same list gives the same bytes, so
a retried Job rewrites identical pages."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from pydantic import ValidationError

from chunk_worker.contract import Item
from chunk_worker.errors import ListPagesUnavailable
from chunk_worker.list_records import parse_record, write_records
from chunk_worker.storage import Storage

PAGE_CONTENT_TYPE = "application/x-ndjson"


def page_name(prefix: str, page: int) -> str:
    return f"{prefix}/page-{page:06d}.jsonl"


@dataclass(frozen=True)
class PageRead:
    """Of page `page`: skip its first `skip` items, then take `take`."""

    page: int
    skip: int
    take: int


def pages_for(start: int, count: int, page_size: int) -> list[PageRead]:
    """What items [start, start+count) of a list need from its pages, in order."""
    if start < 0 or count < 0 or page_size < 1:
        raise ValueError(f"no slice [{start}, {start}+{count}) of pages of {page_size}")
    reads = []
    position, end = start, start + count
    while position < end:
        page, skip = divmod(position, page_size)
        take = min(page_size - skip, end - position)
        reads.append(PageRead(page, skip, take))
        position += take
    return reads


def write_pages(items: Iterable[Item], storage: Storage, prefix: str, page_size: int,
                tmp_dir: str | None = None) -> int:
    """Writes the items as pages (a partial last page, none when there are no items); returns how many
    items. Each page is assembled in a local temp file first, so memory stays flat in the page size."""
    stream = iter(items)
    total = 0
    page = 0
    while True:
        with tempfile.NamedTemporaryFile(dir=tmp_dir, prefix="pixcrawler-page-", suffix=".jsonl") as local:
            written = write_records(islice(stream, page_size), local)
            if not written:
                return total
            local.flush()
            storage.put_file(page_name(prefix, page), Path(local.name), PAGE_CONTENT_TYPE)
        total += written
        if written < page_size:
            return total
        page += 1


def read_slice(storage: Storage, prefix: str, page_size: int, start: int, count: int) -> Iterator[Item]:
    """Items [start, start+count) of the list, from the one or two pages holding them. A page that is
    missing, short or damaged ends the chunk as ListPagesUnavailable naming it (retryable)."""
    for read in pages_for(start, count, page_size):
        name = page_name(prefix, read.page)
        reader = storage.open(name)
        if reader is None:
            raise ListPagesUnavailable(f"URL list page {name} is missing from the output "
                                       "(the list-count Job writes it before the job is planned)")
        try:
            yield from _page_items(reader, name, read)
        finally:
            reader.close()


def _page_items(lines: Iterable[bytes], name: str, read: PageRead) -> Iterator[Item]:
    taken = 0
    for number, line in enumerate(islice(lines, read.skip + read.take), 1):
        if number <= read.skip:
            continue
        try:
            item = parse_record(line)
        except ValueError as exc:
            problem = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            raise ListPagesUnavailable(f"URL list page {name} line {number} is unreadable: {problem}") from None
        taken += 1
        yield item
    if taken < read.take:
        raise ListPagesUnavailable(f"URL list page {name} holds {read.skip + taken} items; "
                                   f"this slice needs {read.skip + read.take}")
