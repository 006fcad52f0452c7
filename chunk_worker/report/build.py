"""The report's I/O: the chosen samples' thumbnails read from storage one at a time, the page
rendered to a local file that finalize commits like the card."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chunk_worker.card import DatasetCounts
from chunk_worker.contract import FinalizeSpec, OutputFormat
from chunk_worker.report import page
from chunk_worker.report.collect import ReportData
from chunk_worker.report.thumbnails import stored_bytes, thumbnail_uri
from chunk_worker.storage import Storage


def index_records(path: Path) -> Iterator[dict[str, Any]]:
    """The index.jsonl finalize just wrote, streamed (the second pass that finds duplicates' originals)."""
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def thumbnails(storage: Storage, fmt: OutputFormat, data: ReportData, workdir: Path) -> page.Thumbnails:
    wanted = [record for _, _, _, records in data.sheets() for record in records]
    wanted += [example.original for examples in data.refused_examples().values() for example in examples
               if example.original is not None]
    made: page.Thumbnails = {}
    for record, stored in stored_bytes(storage, fmt, wanted, workdir):
        uri = thumbnail_uri(stored)
        if uri is not None:
            made[page.thumbnail_key(record)] = uri
    return made


def write(path: Path, storage: Storage, spec: FinalizeSpec, fmt: OutputFormat, counts: DatasetCounts,
          data: ReportData, output: str, location: str, index_jsonl: Path) -> None:
    data.find_originals(index_records(index_jsonl))
    made = thumbnails(storage, fmt, data, path.parent)
    path.write_text(page.render(spec, fmt, counts, data, output, location, made), encoding="utf-8")
