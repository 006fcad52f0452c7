"""The `parquet` layout: data/<split>-<chunk>.parquet, the Hugging Face Image struct
`image: {bytes, path}` followed by the record columns, with the `huggingface` schema metadata, so
`datasets.load_dataset("parquet", ...)` decodes the images and the Hub viewer shows them.

Every split the job's fractions can produce gets a file from every chunk, empty when the chunk has
no sample in it: the set of names is then fixed per job, so a retry always replaces each of them
and never leaves an earlier attempt's file (with samples the final manifest lacks) behind.
Rows are sorted by key and grouped deterministically, so the same samples give the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from chunk_worker.contract import ManifestLine, Split, SplitName, parquet_name
from chunk_worker.layouts.records import hf_value_features, record_schema
from chunk_worker.layouts.staged import StagedSample, StagedSamples, scratch_unavailable
from chunk_worker.layouts.webdataset import PARQUET_CONTENT_TYPE
from chunk_worker.storage import Storage

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
ROW_GROUP_ROWS = 100
"""The Hub's advice for image datasets (small row groups page well in its viewer); also what bounds memory."""
ROW_GROUP_BYTES = 64 * 1024 * 1024


def possible_splits(split: Split) -> tuple[SplitName, ...]:
    """train always (the fractions leave it a share), validation and test when their fraction is set."""
    return ("train",) + (("validation",) if split.val > 0 else ()) + (("test",) if split.test > 0 else ())


def image_schema() -> pa.Schema:
    features = {"image": {"_type": "Image"}, **hf_value_features()}
    return pa.schema([pa.field("image", IMAGE_TYPE), *record_schema()]).with_metadata(
        {"huggingface": json.dumps({"info": {"features": features}})})


def row_groups(samples: list[StagedSample]) -> Iterator[list[StagedSample]]:
    """At most ROW_GROUP_ROWS rows and, past the first row, ROW_GROUP_BYTES of images per group."""
    group: list[StagedSample] = []
    size = 0
    for sample in samples:
        sample_size = sample.size
        if group and (len(group) == ROW_GROUP_ROWS or size + sample_size > ROW_GROUP_BYTES):
            yield group
            group, size = [], 0
        group.append(sample)
        size += sample_size
    if group:
        yield group


def write_parquet(path: Path, samples: list[StagedSample], staged: StagedSamples) -> None:
    """One row group in memory at a time; each staged image's scratch space is released once written."""
    schema = image_schema()
    with pq.ParquetWriter(path, schema) as writer:
        for group in row_groups(samples):
            rows = [{"image": {"bytes": staged.read(sample), "path": sample.member}, **sample.record}
                    for sample in group]
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
            for sample in group:
                staged.release(sample)


class ParquetLayout:
    def __init__(self, chunk: int, split: Split, storage: Storage, tmp_dir: Path) -> None:
        self.chunk = chunk
        self.splits = possible_splits(split)
        self.storage = storage
        self.tmp_dir = tmp_dir
        self.samples = StagedSamples(tmp_dir / "samples")

    def add(self, line: ManifestLine, data: bytes) -> ManifestLine:
        if line.split not in self.splits:
            raise ValueError(f"{line.url}: split {line.split!r} is not one of this job's {list(self.splits)}")
        return self.samples.add(line, data, parquet_name(line.split, self.chunk))

    def commit(self) -> None:
        """Once per chunk (it consumes the staged images)."""
        samples = self.samples.sorted()
        try:
            for split in self.splits:
                path = self.tmp_dir / f"{split}.parquet"
                try:
                    write_parquet(path, [sample for sample in samples if sample.record["split"] == split],
                                  self.samples)
                except OSError as exc:
                    raise scratch_unavailable(exc) from exc
                self.storage.put_file(parquet_name(split, self.chunk), path, PARQUET_CONTENT_TYPE)
                path.unlink()
        finally:
            self.samples.close()
