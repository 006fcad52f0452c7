"""The metadata record of one accepted sample: which ManifestLine fields, in which order, with which
Arrow types. The one definition behind a WebDataset sample's .json, the Parquet beside each shard,
the parquet layout's columns and the dataset's index.parquet, so they can never disagree.

pyarrow is imported only by the functions that build Arrow objects, so a `files` chunk never
loads it (about 50 MiB of a chunk process)."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

from chunk_worker.contract import ManifestLine

if TYPE_CHECKING:
    import pyarrow as pa

_STRING = "string"
_INT = "int64"

RECORD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("key", _STRING),
    ("blob", _STRING),
    ("url", _STRING),
    ("label", _STRING),
    ("cls", _INT),
    ("split", _STRING),
    ("sha256", _STRING),
    ("stored_sha256", _STRING),
    ("phash", _STRING),
    ("width", _INT),
    ("height", _INT),
    ("original_width", _INT),
    ("original_height", _INT),
    ("bytes", _INT),
    ("format", _STRING),
    ("license", _STRING),
    ("license_url", _STRING),
    ("creator", _STRING),
    ("attribution", _STRING),
    ("landing_url", _STRING),
    ("caption", _STRING),
)
"""status and reason are left out: every record is an accepted ("ok") sample. Types are named as
Arrow (`pa.type_for_alias`) and Hugging Face `datasets` (Value dtype) both name them."""

RECORD_FIELDS: tuple[str, ...] = tuple(name for name, _ in RECORD_COLUMNS)


def record_of(line: ManifestLine) -> dict[str, Any]:
    """The record of an accepted manifest line, fields in RECORD_FIELDS order (missing ones None)."""
    if line.status != "ok":
        raise ValueError(f"only accepted samples have a record; {line.url} is {line.status}")
    return {name: getattr(line, name) for name in RECORD_FIELDS}


def record_json(record: dict[str, Any]) -> bytes:
    """A WebDataset sample's .json member: compact, fields in record order, UTF-8."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def record_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([pa.field(name, pa.type_for_alias(kind)) for name, kind in RECORD_COLUMNS])


def records_table(records: list[dict[str, Any]], jsons: list[bytes] | None = None) -> pa.Table:
    """Read by pyarrow's JSON reader from the records' `record_json` lines (what each sample's .json
    member holds), not built with `Table.from_pylist`: that imports pandas whenever it is installed,
    about 50 MiB more in a chunk process. The table is the same, and so are the Parquet bytes.
    `jsons`, when given, are those lines already made (`record_json` of each record, in order)."""
    import pyarrow.json

    schema = record_schema()
    if not records:
        return schema.empty_table()
    lines = b"\n".join(jsons if jsons is not None else (record_json(record) for record in records))
    return pyarrow.json.read_json(
        io.BytesIO(lines),
        read_options=pyarrow.json.ReadOptions(use_threads=False, block_size=len(lines) + 1),  # one block
        parse_options=pyarrow.json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error"))


def hf_value_features() -> dict[str, dict[str, str]]:
    """The record columns as Hugging Face `datasets` features (Value types), for schema metadata."""
    return {name: {"dtype": kind, "_type": "Value"} for name, kind in RECORD_COLUMNS}
