"""Where a chunk's items come from: the spec's inline items, then its slices of URL lists and searches."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Iterator
from itertools import islice

from pydantic import ValidationError

from chunk_worker import licenses
from chunk_worker.contract import ChunkSpec, Item, MetadataColumns, SourceSlice, UrlList
from chunk_worker.errors import SpecError
from chunk_worker.fetch import Fetcher
from chunk_worker.search import get_provider

log = logging.getLogger(__name__)


def resolve_items(spec: ChunkSpec, fetcher: Fetcher) -> Iterator[Item]:
    """Inline items first, then each source slice in order.

    A remote slice is read whole before its first item is yielded: it is one chunk's worth, and
    reading it up front closes the list's connection (and stops its deadline) before the
    downloads that consume the items begin. An allow-list naming something that is no licence
    makes the spec unusable (before any item is yielded); a search that can filter by licence is
    asked for allowed ones only."""
    try:
        allowed = licenses.normalise_allow_list(spec.validation.licenses)
    except licenses.UnknownLicense as exc:
        raise SpecError(f"validation.licenses: {exc}") from None
    yield from spec.items
    for source in spec.sources:
        yield from slice_items(source, fetcher, allowed)


def slice_items(source: SourceSlice, fetcher: Fetcher, allowed: frozenset[str] | None = None) -> list[Item]:
    if source.url_list is not None:
        lines = fetcher.open_lines(source.url_list.url)
        try:
            return list(islice(list_items(lines, source.url_list, source.label), source.start, source.start + source.count))
        finally:
            lines.close()  # stop reading: the rest of a huge list is never transferred
    assert source.search is not None
    search = source.search
    count = min(source.count, search.limit - source.start)
    if count <= 0:
        return []
    provider = get_provider(search.provider, fetcher, search.endpoint)
    return [item.model_copy(update={"label": source.label})
            for item in provider.search(search.query, source.start, count, allowed)]


def list_items(lines: Iterable[str], url_list: UrlList, label: str) -> Iterator[Item]:
    """Items of a URL list, one record per line; malformed records are skipped and counted, and
    do not take an index (so `start` counts usable items). csv/jsonl records carry the licence and
    credit their `metadata_columns` name; txt lists have none."""
    parse = {"txt": _txt, "csv": _csv, "jsonl": _jsonl}[url_list.format]
    skipped = 0
    try:
        for record in parse(lines, url_list):
            if record is None:
                skipped += 1
                continue
            url, record_label, credit = record
            try:
                yield Item(url=url, label=record_label or label, **credit)
            except ValidationError:
                skipped += 1
    finally:
        if skipped:
            log.warning("skipped %d malformed lines of %s", skipped, url_list.url)


Record = tuple[str, str | None, dict[str, str | None]] | None


def _txt(lines: Iterable[str], _: UrlList) -> Iterator[Record]:
    for line in lines:
        text = line.strip()
        if text and not text.startswith("#"):
            yield text, None, {}


def _csv(lines: Iterable[str], url_list: UrlList) -> Iterator[Record]:
    """Each line parsed on its own, so one stray quote cannot swallow the rest of the list."""
    header: list[str] | None = None
    for line in lines:
        if not line.strip():
            continue
        row = next(csv.reader([line]), [])
        if header is None:
            header = [name.strip() for name in row]
            if url_list.column not in header:
                raise SpecError(f"URL list {url_list.url} has no column {url_list.column!r} (header: {header})")
            missing = [f"{name}={column!r}" for name, column in _metadata(url_list.metadata_columns)
                       if column not in header]
            if missing:
                raise SpecError(f"URL list {url_list.url} has no column for metadataColumns "
                                f"{', '.join(missing)} (header: {header})")
            continue
        if len(row) != len(header):
            yield None
            continue
        fields = dict(zip(header, row))
        yield _record(fields, url_list)


def _jsonl(lines: Iterable[str], url_list: UrlList) -> Iterator[Record]:
    for line in lines:
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
        except ValueError:
            yield None
            continue
        yield _record(fields, url_list) if isinstance(fields, dict) else None


def _record(fields: dict, url_list: UrlList) -> Record:
    url = fields.get(url_list.column)
    if not isinstance(url, str) or not url.strip():
        return None
    label = fields.get(url_list.label_column) if url_list.label_column else None
    return url.strip(), label.strip() if isinstance(label, str) and label.strip() else None, _credit(fields, url_list)


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

