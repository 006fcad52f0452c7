"""How a chunk's accepted samples become objects in the output, one module per `format`.

The runner calls `add` from its item threads as samples are accepted and `commit` once, after the
last one and before the manifest: whatever a layout writes is whole under its final name by then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from chunk_worker.contract import ChunkSpec, ManifestLine
from chunk_worker.layouts.files import FilesLayout
from chunk_worker.storage import Storage


class Layout(Protocol):
    def add(self, line: ManifestLine, data: bytes) -> ManifestLine:
        """Stores one accepted sample (status "ok", with key, split, cls, sha256, stored format,
        dimensions, licence fields); returns the line with `blob` set. Thread-safe."""
        ...

    def commit(self) -> None:
        """Makes every added sample visible under final names, whole; called once, before the manifest."""
        ...


def open_layout(spec: ChunkSpec, storage: Storage, tmp_dir: Path) -> Layout:
    """`tmp_dir` is the chunk's own scratch directory (removed by the runner): staged images live there."""
    if spec.format == "webdataset":
        from chunk_worker.layouts.webdataset import WebDatasetLayout

        return WebDatasetLayout(spec.chunk, storage, tmp_dir)
    if spec.format == "parquet":  # imports pyarrow: only the formats that write Parquet load it
        from chunk_worker.layouts.parquet import ParquetLayout

        return ParquetLayout(spec.chunk, spec.split, storage, tmp_dir)
    return FilesLayout(storage)
