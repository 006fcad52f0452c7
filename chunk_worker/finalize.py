"""Finalize a dataset: stream every chunk's manifest into the index, the split metadata, the attribution
file, the HTML report and the dataset card, with memory flat in the number of images.

One pass over the manifests (sorted by name, lines in file order) feeds every output at once: rows go
straight to temp files (Parquet row groups as they fill), and only counters bounded by labels x splits,
reasons and licences stay in memory, with the report's fixed-size samples and binned distributions
(chunk_worker.report). Each output is committed whole with Storage.put_file, the card last, so a
reader that finds the card finds everything it names; after it, the job's URL list pages
(`.pixcrawler/lists/<uid>/`, never listed, so never read here) are removed: they are not part of the
dataset, and a re-run finds none to remove. Nothing depends on the clock (the report's
times are the chunks' own run records), so a re-run over the same manifests writes the same bytes.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from chunk_worker import card, licenses, specs
from chunk_worker.card import DatasetCounts
from chunk_worker.contract import (
    ATTRIBUTION_NAME, CARD_NAME, INDEX_JSONL, INDEX_PARQUET, MANIFESTS_PREFIX, REPORT_NAME, SPLITS, ChunkRun,
    ExitCode, FinalizeSpec, ManifestLine, OutputFormat, run_name,
)
from chunk_worker.errors import ChunkError, SpecError
from chunk_worker.layouts.records import RECORD_FIELDS, record_json, record_of, record_schema
from chunk_worker.report import build as report
from chunk_worker.report.collect import ReportData
from chunk_worker.storage import Storage

MANIFEST = re.compile(r"^manifests/chunk-(\d{5})\.jsonl$")
ROW_GROUP_ROWS = 10_000
"""Rows buffered per Parquet row group, whatever the dataset's size: about 30 MiB of RSS (5,000 rows
measured 28 MiB less, 20,000 rows 31 MiB more; bench/finalize_memory.py)."""

JSONL_TYPE = "application/x-ndjson"
METADATA_COLUMNS = ("key", "label", "split", "sha256", "width", "height", "bytes", "format", "url")
"""imagefolder metadata besides file_name (and cls when the records have one): columns every accepted
record fills. datasets takes a metadata file's types from its first 10 MB and requires every split's
file to agree, so a column that may be null (licence, creator: those are in the index) would break
loading as soon as its first rows are null in one file and set in another."""


class ManifestInvalid(ChunkError):
    """A manifest line is not a ManifestLine: the output is damaged, and a retry would read the same bytes."""

    exit_code = ExitCode.PERMANENT


@dataclass
class FinalizeSummary:
    format: OutputFormat
    counts: DatasetCounts
    outputs: list[str]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        counts = self.counts
        return {"format": self.format, "images": counts.accepted, "splits": counts.split_totals(),
                "labels": dict(sorted(_label_totals(counts).items())),
                "statuses": dict(sorted(counts.statuses.items())),
                "reasons": dict(sorted(counts.reasons.items())), "attributed": counts.attributed,
                "chunks": len(counts.chunks), "missingChunks": counts.missing_chunks, "outputs": self.outputs,
                "seconds": round(self.seconds, 3)}


def _label_totals(counts: DatasetCounts) -> dict[str, int]:
    totals: dict[str, int] = {}
    for (label, _), count in counts.samples.items():
        totals[label] = totals.get(label, 0) + count
    return totals


def detect_format(storage: Storage) -> OutputFormat:
    """The layout chunks wrote: tar shards, Parquet data files, or plain image files."""
    if next(iter(storage.list("shards/")), None) is not None:
        return "webdataset"
    if next(iter(storage.list("data/")), None) is not None:
        return "parquet"
    return "files"


def manifest_chunks(storage: Storage) -> Iterator[tuple[int, str]]:
    for name in storage.list(MANIFESTS_PREFIX):
        match = MANIFEST.match(name)
        if match:
            yield int(match.group(1)), name


def missing_chunks(found: list[int], expected: int | None) -> list[int]:
    if expected is None:
        return []
    present = set(found)
    return [index for index in range(expected) if index not in present]


def read_manifest(storage: Storage, name: str) -> Iterator[ManifestLine]:
    reader = storage.open(name)
    if reader is None:  # listed a moment ago: replaced or removed under us, which a retry may get past
        raise ChunkError(f"manifest {name} disappeared while finalizing")
    with io.TextIOWrapper(reader, encoding="utf-8") as text:
        for number, line in enumerate(text, 1):
            if not line.strip():
                continue
            try:
                yield ManifestLine.model_validate_json(line)
            except ValidationError as exc:
                raise _invalid(f"{name} line {number}", exc, "(line)") from exc


def _invalid(where: str, exc: ValidationError, whole: str) -> ManifestInvalid:
    """The first problem pydantic found, as `<where>: <field>: <message>`."""
    problem = exc.errors()[0]
    field = ".".join(str(part) for part in problem["loc"]) or whole
    return ManifestInvalid(f"{where}: {field}: {problem['msg']}")


def read_run(storage: Storage, chunk: int) -> ChunkRun | None:
    """The chunk's run record (timings, refused thumbnails), or None for a chunk written without one."""
    name = run_name(chunk)
    text = storage.read(name)
    if text is None:
        return None
    try:
        return ChunkRun.model_validate_json(text)
    except ValidationError as exc:
        raise _invalid(name, exc, "(record)") from exc


def count_line(counts: DatasetCounts, line: ManifestLine) -> None:
    counts.statuses[line.status] += 1
    if line.status == "ok":
        counts.samples[(line.label, line.split or "train")] += 1
        counts.licences[(line.license, line.license_url)] += 1
    else:
        counts.reasons[line.reason or line.status] += 1


def metadata_row(record: dict[str, Any], with_cls: bool) -> dict[str, Any]:
    """One imagefolder metadata line: `file_name` is the image's path relative to the output's root,
    where the metadata files sit."""
    row: dict[str, Any] = {"file_name": record["blob"]}
    for column in METADATA_COLUMNS:
        row[column] = record[column] if column != "split" else record["split"] or "train"
    if with_cls:
        row["cls"] = record["cls"]
    return row


def _md(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def attribution_line(record: dict[str, Any]) -> str:
    """The source's own credit line when it gives one, else one built from title, creator and licence."""
    if record["attribution"]:
        return record["attribution"]
    parsed = licenses.parse(record["license_url"])
    version = f" {parsed.version}" if parsed and parsed.version and parsed.id == record["license"] else ""
    title = f"\"{record['caption']}\"" if record["caption"] else "This image"
    creator = f" by {record['creator']}" if record["creator"] else ""
    return f"{title}{creator} is licensed under CC {record['license'].upper()}{version}."


def attribution_row(record: dict[str, Any]) -> str | None:
    """A table row of ATTRIBUTION.md, or None when the image's licence asks for no credit."""
    if not licenses.requires_attribution(record["license"]):
        return None
    licence = _md(record["license"])
    if record["license_url"]:
        licence = f"[{licence}]({_md(record['license_url'])})"
    landing = _md(record["landing_url"]) if record["landing_url"] else "-"
    return (f"| {_md(record['key'] or record['sha256'])} | {_md(record['creator'] or '-')} | {licence} "
            f"| {landing} | {_md(attribution_line(record))} |\n")


def attribution_header(spec: FinalizeSpec) -> str:
    return (f"# Attribution\n\nImages of {spec.job or 'this dataset'} whose licence requires credit, in index "
            "order. Keys name the sample (see index.parquet for its file and URL).\n\n"
            "| key | creator | licence | landing page | attribution |\n|---|---|---|---|---|\n")


class _ParquetSink:
    """index.parquet, one row group per ROW_GROUP_ROWS records, buffered as columns."""

    def __init__(self, path: Path) -> None:
        self.schema = record_schema()
        self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self.columns: dict[str, list[Any]] = {name: [] for name in RECORD_FIELDS}
        self.rows = 0

    def add(self, record: dict[str, Any]) -> None:
        for name in RECORD_FIELDS:
            self.columns[name].append(record[name])
        self.rows += 1
        if self.rows == ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write_table(pa.Table.from_pydict(self.columns, schema=self.schema))
            for values in self.columns.values():
                values.clear()
            self.rows = 0

    def close(self) -> None:
        self.flush()
        self.writer.close()


class _Outputs:
    """Every file finalize writes, as temp files in one directory, committed in a fixed order."""

    def __init__(self, workdir: Path, fmt: OutputFormat, spec: FinalizeSpec) -> None:
        self.workdir = workdir
        self.fmt = fmt
        self.with_cls: bool | None = True if spec.classes else None  # else: as the first record says
        self.index = _ParquetSink(workdir / INDEX_PARQUET)
        self.handles: dict[str, BinaryIO] = {}
        self._open(INDEX_JSONL)
        self._open(ATTRIBUTION_NAME).write(attribution_header(spec).encode())
        if fmt == "files":
            self._open(card.METADATA_ALL)
            for split in SPLITS:
                self._open(card.split_metadata_name(split))

    def _open(self, name: str) -> BinaryIO:
        self.handles[name] = open(self.workdir / name, "wb", buffering=1024 * 1024)
        return self.handles[name]

    def add(self, line: ManifestLine, counts: DatasetCounts) -> None:
        record = record_of(line)
        self.index.add(record)
        self.handles[INDEX_JSONL].write(record_json(record) + b"\n")
        row = attribution_row(record)
        if row is not None:
            self.handles[ATTRIBUTION_NAME].write(row.encode())
            counts.attributed += 1
        if self.fmt == "files":
            if self.with_cls is None:  # classes are job-wide: every record has a class index or none does
                self.with_cls = record["cls"] is not None
            meta = json.dumps(metadata_row(record, self.with_cls), ensure_ascii=False, separators=(",", ":")).encode()
            self.handles[card.METADATA_ALL].write(meta + b"\n")
            self.handles[card.split_metadata_name(record["split"] or "train")].write(meta + b"\n")

    def close(self) -> None:
        self.index.close()
        for handle in self.handles.values():
            handle.close()

    def abandon(self) -> None:
        self.index.writer.close()
        for handle in self.handles.values():
            handle.close()

    def commit(self, storage: Storage, counts: DatasetCounts) -> list[str]:
        """Index first, the card last. Per-split metadata of empty splits is not written: the card's
        configs name only splits that have images."""
        names = [INDEX_PARQUET, INDEX_JSONL, ATTRIBUTION_NAME]
        if self.fmt == "files":
            names.append(card.METADATA_ALL)
            names += [card.split_metadata_name(split) for split in card.card_splits(counts)]
        for name in names:
            storage.put_file(name, self.workdir / name, _content_type(name))
        return names


def _content_type(name: str) -> str:
    if name.endswith(".parquet"):
        return "application/vnd.apache.parquet"
    if name.endswith(".md"):
        return "text/markdown; charset=utf-8"
    if name.endswith(".html"):
        return "text/html; charset=utf-8"
    return JSONL_TYPE


def local_location(output: str) -> str:
    """What the card's loading snippets open: the directory of a file:// output, else the dataset's
    name for a local copy of it."""
    if output.startswith("file://"):
        return unquote(urlsplit(output).path).rstrip("/") or "/"
    return output.rstrip("/").rsplit("/", 1)[-1]


def finalize(storage: Storage, spec: FinalizeSpec, output: str, tmp_dir: str | None = None) -> FinalizeSummary:
    started = time.monotonic()
    fmt = spec.format or detect_format(storage)
    counts = DatasetCounts()
    collected = ReportData()
    with tempfile.TemporaryDirectory(prefix="pixcrawler-finalize-", dir=tmp_dir) as workdir:
        outputs = _Outputs(Path(workdir), fmt, spec)
        try:
            for chunk, name in manifest_chunks(storage):
                counts.chunks.append(chunk)
                for line in read_manifest(storage, name):
                    count_line(counts, line)
                    collected.add_line(line)
                    if line.status == "ok":
                        outputs.add(line, counts)
                run = read_run(storage, chunk)
                if run is not None:
                    collected.add_run(run)
        except BaseException:  # SIGTERM may land mid-row: drop the partial row group, commit nothing
            outputs.abandon()
            raise
        outputs.close()
        counts.missing_chunks = missing_chunks(counts.chunks, spec.chunks)
        written = outputs.commit(storage, counts)
        location = local_location(output)
        report_path = Path(workdir) / REPORT_NAME
        report.write(report_path, storage, spec, fmt, counts, collected, output, location,
                     Path(workdir) / INDEX_JSONL)
        storage.put_file(REPORT_NAME, report_path, _content_type(REPORT_NAME))
        card_path = Path(workdir) / CARD_NAME
        card_path.write_text(card.render(spec, fmt, counts, location), encoding="utf-8")
        storage.put_file(CARD_NAME, card_path, _content_type(CARD_NAME))
    if spec.list_pages:
        storage.delete_tree(spec.list_pages)
    return FinalizeSummary(fmt, counts, written + [REPORT_NAME, CARD_NAME], time.monotonic() - started)


def check_output(spec: FinalizeSpec, override: str | None) -> str:
    output = override or spec.output
    if not output:
        raise SpecError("output: no output; give --output or set `output` in the finalize spec")
    return output


def load_spec(path: Path | None, text: str | None) -> FinalizeSpec:
    """From --spec FILE or --spec-json; neither gives the defaults (a hand run needs only --output)."""
    if text is not None:
        return specs.parse(FinalizeSpec, text, "--spec-json", "finalize spec")
    if path is not None:
        return specs.read(FinalizeSpec, path, "finalize spec")
    return FinalizeSpec()
