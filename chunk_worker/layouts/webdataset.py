"""The `webdataset` layout: one tar shard per chunk, shards/<chunk>.tar, with a Parquet of the same
metadata records beside it (img2dataset's convention), both committed whole.

Each sample is `<key>.json` (its record), `<key>.cls` (class index, ASCII digits, when it has one),
`<key>.txt` (caption, else label) and `<key>.<ext>` (the image). The tar is deterministic (samples
by key, members in that order, mtime 0, uid/gid 0, no user names, mode 0644, USTAR), so a retried
chunk that accepts the same samples yields a byte-identical shard.

A chunk with no accepted samples still writes an (empty, valid) tar and Parquet: every chunk has
its shard, so `shards/{00000..00041}.tar` names the whole dataset, and a retry that accepts
nothing replaces whatever an earlier attempt left under those names.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import BinaryIO

from chunk_worker.contract import ManifestLine, shard_metadata_name, shard_name
from chunk_worker.layouts.records import record_json, records_table
from chunk_worker.layouts.staged import StagedSample, StagedSamples, scratch_unavailable
from chunk_worker.storage import Storage

TAR_CONTENT_TYPE = "application/x-tar"
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"


def sample_members(sample: StagedSample) -> list[tuple[str, bytes | None]]:
    """(member name, payload) in the fixed order; None is the image, streamed from its staged file."""
    record = sample.record
    members: list[tuple[str, bytes | None]] = [(f"{sample.key}.json", record_json(record))]
    if record["cls"] is not None:
        members.append((f"{sample.key}.cls", str(record["cls"]).encode()))
    members.append((f"{sample.key}.txt", (record["caption"] or record["label"]).encode()))
    members.append((sample.member, None))
    return members


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write_tar(path: Path, samples: list[StagedSample]) -> None:
    """Streams each staged image into the tar and removes it, so the chunk holds its bytes on disk once."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for sample in samples:
            for name, payload in sample_members(sample):
                source: BinaryIO
                if payload is None:
                    source = open(sample.path, "rb")
                    size = sample.path.stat().st_size
                else:
                    source, size = io.BytesIO(payload), len(payload)
                with source:
                    tar.addfile(_member(name, size), source)
            sample.path.unlink()


class WebDatasetLayout:
    def __init__(self, chunk: int, storage: Storage, tmp_dir: Path) -> None:
        self.chunk = chunk
        self.storage = storage
        self.tmp_dir = tmp_dir
        self.samples = StagedSamples(tmp_dir / "samples")

    def add(self, line: ManifestLine, data: bytes) -> ManifestLine:
        return self.samples.add(line, data, shard_name(self.chunk))

    def commit(self) -> None:
        """Once per chunk (it consumes the staged images). The sidecar goes first, so a shard under
        its final name always has its metadata beside it."""
        import pyarrow.parquet as pq  # here, not at import: only a commit writes Parquet

        samples = self.samples.sorted()
        metadata = self.tmp_dir / "shard.parquet"
        shard = self.tmp_dir / "shard.tar"
        try:
            pq.write_table(records_table([sample.record for sample in samples]), metadata)
            write_tar(shard, samples)
        except OSError as exc:
            raise scratch_unavailable(exc) from exc
        self.storage.put_file(shard_metadata_name(self.chunk), metadata, PARQUET_CONTENT_TYPE)
        self.storage.put_file(shard_name(self.chunk), shard, TAR_CONTENT_TYPE)
