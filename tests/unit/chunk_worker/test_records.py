"""The one metadata record: which fields, in which order, and that every encoding of it agrees."""

import json

import pytest

from chunk_worker.contract import ManifestLine
from chunk_worker.layouts.records import (
    RECORD_FIELDS,
    hf_value_features,
    record_json,
    record_of,
    record_schema,
    records_table,
)

ACCEPTED = ManifestLine(
    url="https://example.org/a.jpg", label="cat", status="ok", blob="shards/00003.tar", key="000030007",
    split="validation", cls=1, sha256="ab" * 32, phash="0f" * 8, width=512, height=384, original_width=4032,
    original_height=3024, bytes=81234, format="JPEG", license="by-sa", creator="Zoë", caption="Un chat · noir",
)


def test_record_has_the_fields_in_record_order_with_the_lines_values():
    record = record_of(ACCEPTED)
    assert list(record) == list(RECORD_FIELDS)
    assert record["key"] == "000030007" and record["cls"] == 1 and record["original_width"] == 4032
    assert record["landing_url"] is None


def test_record_leaves_out_what_only_a_manifest_needs():
    assert "status" not in RECORD_FIELDS and "reason" not in RECORD_FIELDS


def test_every_record_field_is_a_manifest_line_field():
    assert set(RECORD_FIELDS) <= set(ManifestLine.model_fields)


@pytest.mark.parametrize("status", ["rejected", "failed", "duplicate"])
def test_only_accepted_lines_have_a_record(status):
    with pytest.raises(ValueError, match=status):
        record_of(ManifestLine(url="https://example.org/b.png", status=status))


def test_record_json_is_compact_utf8_in_record_order():
    encoded = record_json(record_of(ACCEPTED))
    assert encoded.startswith(b'{"key":"000030007","blob":"shards/00003.tar","url":')
    assert '"creator":"Zoë"'.encode() in encoded
    assert list(json.loads(encoded)) == list(RECORD_FIELDS)


def test_arrow_schema_names_the_record_fields_in_order():
    assert record_schema().names == list(RECORD_FIELDS)


def test_table_holds_records_unchanged():
    records = [record_of(ACCEPTED), record_of(ACCEPTED.model_copy(update={"key": "000030008", "cls": None}))]
    assert records_table(records).to_pylist() == records


def test_hugging_face_features_cover_every_record_field():
    features = hf_value_features()
    assert list(features) == list(RECORD_FIELDS)
    assert features["cls"] == {"dtype": "int64", "_type": "Value"}
    assert features["label"] == {"dtype": "string", "_type": "Value"}


def test_table_is_the_one_arrow_builds_from_the_records_themselves():
    import pyarrow as pa

    records = [record_of(ACCEPTED.model_copy(update={"key": f"0000300{n:02d}", "cls": n % 3 or None,
                                                    "caption": "ü\n\"quoted\"\t" * n or None}))
               for n in range(40)]
    records.append(record_of(ACCEPTED.model_copy(update={"key": "000030099", "caption": "x" * (3 << 20)})))
    assert records_table(records).equals(pa.Table.from_pylist(records, schema=record_schema()))


def test_no_records_give_an_empty_table_of_the_record_schema():
    table = records_table([])
    assert table.num_rows == 0 and table.schema == record_schema()
