"""Saving a finished dataset to a directory: each object streamed to `<name>.part` (resumed from its size
after an interruption), its images' sha256 checked against the index, then renamed into place. A file
already in place is checked, not fetched again, so a re-run after Ctrl-C or a lost connection only
fetches what is missing."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from chunk_worker.contract import INDEX_JSONL
from chunk_worker.storage import Storage
from kubectl_pixcrawler.dataset_files import Wanted

PIECE = 1 << 20


@dataclass
class DownloadSummary:
    fetched: int = 0
    already_there: int = 0
    images_verified: int = 0
    bytes_fetched: int = 0
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched


def index_rows(storage: Storage) -> Iterator[dict]:
    """The index, one row at a time (its size grows with the dataset; memory here does not)."""
    reader = storage.open(INDEX_JSONL)
    if reader is None:
        raise FileNotFoundError(f"the output has no {INDEX_JSONL}")
    with reader:
        for line in reader:
            if line.strip():
                yield json.loads(line)


def _sha256(reader: BinaryIO) -> str:
    digest = hashlib.sha256()
    while piece := reader.read(PIECE):
        digest.update(piece)
    return digest.hexdigest()


def image_hashes(path: Path, kind: str) -> dict[str, str]:
    """sha256 of each image the local file holds, by where it sits ("" for a whole file)."""
    if kind == "file":
        with path.open("rb") as reader:
            return {"": _sha256(reader)}
    if kind == "tar":
        found = {}
        with tarfile.open(path, mode="r|") as tar:  # a stream: one member in memory at a time
            for member in tar:
                extracted = tar.extractfile(member) if member.isfile() else None
                if extracted is not None:
                    found[member.name] = _sha256(extracted)
        return found
    import pyarrow.parquet as pq

    found = {}
    for batch in pq.ParquetFile(path).iter_batches(batch_size=64, columns=["key", "image"]):
        for key, image in zip(batch.column("key").to_pylist(), batch.column("image").to_pylist()):
            found[key] = hashlib.sha256(image["bytes"]).hexdigest()
    return found


def problems(path: Path, wanted: Wanted) -> list[str]:
    """What is wrong with a local copy: images missing from it or with other bytes than the index says."""
    if not wanted.images:
        return []
    try:
        found = image_hashes(path, wanted.kind)
    except (OSError, tarfile.TarError, ValueError) as exc:
        return [f"{wanted.name}: unreadable ({exc})"]
    wrong = []
    for where, expected in sorted(wanted.images.items()):
        label = f"{wanted.name}:{where}" if where else wanted.name
        if where not in found:
            wrong.append(f"{label}: missing")
        elif found[where] != expected:
            wrong.append(f"{label}: sha256 {found[where]} is not the index's {expected}")
    return wrong


def _append(storage: Storage, name: str, part: Path, on_bytes: Callable[[int], None]) -> bool:
    """Streams the object into `part` from its current size on; False if the object does not exist."""
    offset = part.stat().st_size if part.exists() else 0
    reader = storage.open(name, offset)
    if reader is None:
        return False
    with reader, part.open("ab") as out:
        while piece := reader.read(PIECE):
            out.write(piece)
            on_bytes(len(piece))
        out.flush()
        os.fsync(out.fileno())
    return True


def save(storage: Storage, wanted: Wanted, directory: Path, summary: DownloadSummary,
         on_bytes: Callable[[int], None] = lambda n: None) -> None:
    """One object into `directory`, checked; a bad copy in place or a bad resumed part is fetched anew once."""
    final = directory / wanted.local_name
    if final.exists() and not problems(final, wanted):
        summary.already_there += 1
        summary.images_verified += len(wanted.images)
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    for attempt in range(2):
        if attempt == 1:
            part.unlink(missing_ok=True)
        before = part.stat().st_size if part.exists() else 0
        if not _append(storage, wanted.name, part, on_bytes):
            part.unlink(missing_ok=True)
            if not wanted.optional:
                summary.missing.append(wanted.name)
            return
        summary.bytes_fetched += part.stat().st_size - before
        wrong = problems(part, wanted)
        if not wrong:
            part.replace(final)
            summary.fetched += 1
            summary.images_verified += len(wanted.images)
            return
        if attempt == 1 or before == 0:
            part.unlink(missing_ok=True)
            summary.mismatched.extend(wrong)
            return
