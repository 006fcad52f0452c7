"""Where a chunk's items come from: the spec's inline items, then its slices of URL lists and searches.
A URL list slice planned by the operator is read from the list's pages under the output
(list_pages.py, written once by the list-count Job); one in a spec written by hand, without pages,
streams the list itself up to its slice.

How a URL list is indexed (`start`/`count` of a slice, and the operator's count of a list, which
uses this same parser): every line that is not blank, not a txt comment (`#`) and not the csv
header takes the next index, from 0. A line that gives a usable record is an `Item`; any other
(not UTF-8, a NUL byte, overlong, not CSV or JSON, wrong field count, no URL) is a `RejectedLine`
that names its line number and reaches the manifest as rejected (`bad_list_line`), so one bad
line costs one item and the counts stay exact. Only a csv header lacking a named column makes
the whole list unusable (SpecError).
"""

from __future__ import annotations

import csv
import json
import logging
import tempfile
from collections.abc import Iterable, Iterator
from itertools import islice

from pydantic import ValidationError

from chunk_worker import licenses, list_pages
from chunk_worker.contract import ChunkSpec, Item, MetadataColumns, SourceSlice, UrlList
from chunk_worker.errors import SpecError
from chunk_worker.fetch import Fetcher
from chunk_worker.list_records import RejectedLine, read_records, write_records
from chunk_worker.listlines import Line, split_lines
from chunk_worker.redaction import redact_url
from chunk_worker.pacing import Pacer
from chunk_worker.providers.protocol import SearchContext
from chunk_worker.search import search_items
from chunk_worker.storage import Storage

log = logging.getLogger(__name__)


def resolve_items(spec: ChunkSpec, fetcher: Fetcher, pacer: Pacer | None = None,
                  storage: Storage | None = None) -> Iterator[Item]:
    """Inline items first, then each source slice in order. An allow-list naming something that
    is no licence makes the spec unusable (before any item is yielded); a search that can filter
    by licence is asked for allowed ones only. `pacer` paces search providers (the cluster's
    bucket in Redis; without one, a bucket in this process). `storage` is the chunk's output, where
    slices with `pages` are read from."""
    try:
        allowed = licenses.normalise_allow_list(spec.validation.licenses)
    except licenses.UnknownLicense as exc:
        raise SpecError(f"validation.licenses: {exc}") from None
    yield from spec.items
    for source in spec.sources:
        yield from slice_items(source, fetcher, allowed, pacer, storage)


def slice_items(source: SourceSlice, fetcher: Fetcher, allowed: frozenset[str] | None = None,
                pacer: Pacer | None = None, storage: Storage | None = None) -> Iterator[Item]:
    """The slice's items, spooled to an unnamed temp file before the first is yielded: the list's
    connection is closed (and its deadline stopped) before the downloads that consume the items
    begin, yet the slice is never held in memory (a parsed item costs about 2 KB)."""
    with tempfile.TemporaryFile(dir=fetcher.settings.tmp_dir) as spool:
        write_records(_remote_items(source, fetcher, allowed, pacer, storage), spool)
        spool.seek(0)
        yield from read_records(spool)


def _remote_items(source: SourceSlice, fetcher: Fetcher, allowed: frozenset[str] | None,
                  pacer: Pacer | None, storage: Storage | None) -> Iterator[Item]:
    if source.pages is not None:
        if storage is None:
            raise SpecError("a URL list slice with pages is read from the output: no output storage given")
        assert source.page_size is not None
        for item in list_pages.read_slice(storage, source.pages, source.page_size, source.start, source.count):
            yield item if item.label else item.model_copy(update={"label": source.label})
        return
    if source.url_list is not None:
        stream = fetcher.open_lines(source.url_list.url)
        try:
            items = list_items(stream, source.url_list, source.label)
            yield from islice(items, source.start, source.start + source.count)
        finally:
            stream.close()  # stop reading: the rest of a huge list is never transferred
        return
    assert source.search is not None
    context = SearchContext.start(fetcher, pacer)
    for item in search_items(source.search, source.start, source.count, context, allowed):
        yield item.model_copy(update={"label": source.label})


def list_items(stream: Iterable[bytes], url_list: UrlList, label: str) -> Iterator[Item]:
    """Items of a URL list, one per indexed line (see the module's docstring). csv/jsonl records
    carry the licence and credit their `metadata_columns` name; txt lists have none."""
    parse = {"txt": _txt, "csv": _csv, "jsonl": _jsonl}[url_list.format]
    marker = redact_url(url_list.url.split("#", 1)[0])
    rejected = 0
    examples: list[str] = []  # the first few, for the log: the operator counts whole lists
    try:
        for number, record in parse(split_lines(stream), url_list):
            if isinstance(record, tuple):
                url, record_label, credit = record
                try:
                    yield Item(url=url, label=record_label or label, **credit)
                    continue
                except ValidationError as exc:
                    record = "unusable record: " + "; ".join(error["msg"] for error in exc.errors())
            rejected += 1
            if len(examples) < 3:
                examples.append(f"line {number}: {record}")
            yield RejectedLine(url=f"{marker}#L{number}", label=label, line=number, problem=record)
    finally:
        if rejected:
            log.warning("rejected %d lines of %s (%s)", rejected, marker, ", ".join(examples))


Record = tuple[str, str | None, dict[str, str | None]]
Parsed = tuple[int, Record | str]
"""(line number, the record or what is wrong with the line)."""


def _txt(lines: Iterable[Line], _: UrlList) -> Iterator[Parsed]:
    for number, text, problem in lines:
        if text is None:
            yield number, problem or "unreadable"
            continue
        url = text.strip()
        if url and not url.startswith("#"):
            yield number, _checked_url(url) or (url, None, {})


def _csv(lines: Iterable[Line], url_list: UrlList) -> Iterator[Parsed]:
    """Each line parsed on its own, so one stray quote cannot swallow the rest of the list; a quoted
    field left open at the end of its line (a line break inside it) makes that line unusable."""
    header: list[str] | None = None
    for number, text, problem in lines:
        if text is not None and not text.strip():
            continue
        if header is None:
            header = _header(number, text, problem, url_list)
            continue
        if text is None:
            yield number, problem or "unreadable"
            continue
        try:
            row = next(csv.reader([text], strict=True), [])
        except csv.Error as exc:
            yield number, f"not CSV ({exc})"
            continue
        if len(row) != len(header):
            yield number, f"{len(row)} fields, the header has {len(header)}"
            continue
        yield number, _record(dict(zip(header, row)), url_list)


def _header(number: int, text: str | None, problem: str | None, url_list: UrlList) -> list[str]:
    where = f"URL list {redact_url(url_list.url)}"
    if text is None:
        raise SpecError(f"{where}: its header (line {number}) is {problem}")
    try:
        header = [name.strip() for name in next(csv.reader([text]), [])]
    except csv.Error as exc:
        raise SpecError(f"{where}: its header (line {number}) is not CSV ({exc})") from None
    if url_list.column not in header:
        raise SpecError(f"{where} has no column {url_list.column!r} (header: {header})")
    missing = [f"{name}={column!r}" for name, column in _metadata(url_list.metadata_columns) if column not in header]
    if missing:
        raise SpecError(f"{where} has no column for metadataColumns {', '.join(missing)} (header: {header})")
    return header


def _jsonl(lines: Iterable[Line], url_list: UrlList) -> Iterator[Parsed]:
    for number, text, problem in lines:
        if text is None:
            yield number, problem or "unreadable"
            continue
        if not text.strip():
            continue
        try:
            fields = json.loads(text)
        except RecursionError:
            yield number, "JSON nested too deep"
            continue
        except ValueError as exc:
            yield number, f"not JSON ({exc})"
            continue
        yield number, _record(fields, url_list) if isinstance(fields, dict) else "not a JSON object"


def _record(fields: dict, url_list: UrlList) -> Record | str:
    url = fields.get(url_list.column)
    if not isinstance(url, str) or not url.strip():
        return f"no URL in {url_list.column!r}"
    rejected = _checked_url(url.strip())
    if rejected:
        return rejected
    label = fields.get(url_list.label_column) if url_list.label_column else None
    return url.strip(), label.strip() if isinstance(label, str) and label.strip() else None, _credit(fields, url_list)


def _checked_url(url: str) -> str | None:
    """What makes a URL unusable before any policy looks at it: text that was never valid UTF-8."""
    return "not UTF-8 (U+FFFD in the URL)" if "\ufffd" in url else None


def _metadata(columns: MetadataColumns) -> list[tuple[str, str]]:
    """(Item field, list column) for each column the list maps."""
    return [(name, column) for name, column in columns.model_dump().items() if column]


def _credit(fields: dict, url_list: UrlList) -> dict[str, str | None]:
    """A record's licence and credit fields. The licence is normalised (from the licence column,
    or from a licence URL, which is kept as `license_url`); text that is empty or not a string
    counts as absent."""
    values = {name: _text(fields.get(column)) for name, column in _metadata(url_list.metadata_columns)}
    if not values:
        return {}
    license_id, license_url = licenses.resolve(values.get("license"), values.get("license_url"))
    return {**values, "license": license_id, "license_url": license_url}


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None
