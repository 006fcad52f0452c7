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

import os
import tarfile
from pathlib import Path

from chunk_worker.contract import ManifestLine, shard_metadata_name, shard_name
from chunk_worker.layouts.records import record_json, records_table
from chunk_worker.layouts.staged import StagedSample, StagedSamples, scratch_unavailable
from chunk_worker.storage import Storage

TAR_CONTENT_TYPE = "application/x-tar"
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"


def sample_members(sample: StagedSample, json: bytes | None = None) -> list[tuple[str, bytes | None]]:
    """(member name, payload) in the fixed order; None is the image, copied from the spool. `json`:
    the record's `record_json`, when already made."""
    record = sample.record
    members: list[tuple[str, bytes | None]] = [(f"{sample.key}.json", json or record_json(record))]
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


def _octal(value: int, digits: int) -> bytes:
    return b"%0*o\0" % (digits - 1, value)


# Everything of a member's header but its name, size and checksum is the same for every member:
# taken from the header tarfile itself writes, so this Python's tarfile is followed field for field.
_TEMPLATE = _member("x", 0).tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
_HEAD = _TEMPLATE[100:124]  # mode, uid, gid
_MTIME = _TEMPLATE[136:148]
_TAIL = _TEMPLATE[156:]  # type, linkname, magic, version, uname, gname, devmajor, devminor, prefix, padding
_CHECKSUM_BLANK = b" " * 8
_TAIL_SUM = sum(_TAIL)
_NAME_LIMIT = 100


def member_header(name: str, size: int) -> bytes:
    """The USTAR header tarfile writes for `_member(name, size)` (a test holds them byte-equal),
    built directly: tarfile's generic header code was most of a commit's CPU. Names that need
    USTAR's prefix field (over 100 bytes) or are not ASCII go through tarfile itself."""
    encoded = name.encode("ascii", "surrogateescape") if name.isascii() else b""
    if not encoded or len(encoded) > _NAME_LIMIT - 1 or size >= 8 ** 11:
        return _member(name, size).tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
    front = encoded.ljust(_NAME_LIMIT, b"\0") + _HEAD + _octal(size, 12) + _MTIME
    checksum = sum(front) + sum(_CHECKSUM_BLANK) + _TAIL_SUM
    return front + b"%06o\0 " % checksum + _TAIL


def _padding(size: int) -> bytes:
    remainder = size % tarfile.BLOCKSIZE
    return b"\0" * (tarfile.BLOCKSIZE - remainder) if remainder else b""


def write_tar(path: Path, samples: list[StagedSample], staged: StagedSamples,
              jsons: list[bytes] | None = None) -> None:
    """Writes the shard as `tarfile` would (USTAR, members in `samples` order, two zero blocks, then
    padded to a whole record), each image copied from the spool by the kernel and its scratch space
    released as it goes, so the chunk holds its bytes on disk about once."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        written = 0
        pending = bytearray()  # headers and small members, written together before each image
        for index, sample in enumerate(samples):
            for name, payload in sample_members(sample, jsons[index] if jsons is not None else None):
                if payload is not None:
                    pending += member_header(name, len(payload))
                    pending += payload
                    pending += _padding(len(payload))
                    continue
                pending += member_header(name, sample.size)
                _write_all(fd, pending)
                written += len(pending)
                pending.clear()
                staged.spool.copy_to(sample.offset, sample.size, fd)
                staged.release(sample)
                written += sample.size
                pending += _padding(sample.size)
        pending += b"\0" * (2 * tarfile.BLOCKSIZE)
        written += len(pending)
        remainder = written % tarfile.RECORDSIZE
        if remainder:
            pending += b"\0" * (tarfile.RECORDSIZE - remainder)
        _write_all(fd, pending)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


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
            jsons = [record_json(sample.record) for sample in samples]  # the .json members and the sidecar's rows
            pq.write_table(records_table([sample.record for sample in samples], jsons), metadata)
            write_tar(shard, samples, self.samples, jsons)
        except OSError as exc:
            raise scratch_unavailable(exc) from exc
        finally:
            self.samples.close()
        self.storage.put_file(shard_metadata_name(self.chunk), metadata, PARQUET_CONTENT_TYPE)
        self.storage.put_file(shard_name(self.chunk), shard, TAR_CONTENT_TYPE)
