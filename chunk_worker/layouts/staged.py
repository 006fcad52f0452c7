"""Accepted samples kept on local disk until a shard is committed: memory holds their metadata
records, never their image bytes, so a chunk's footprint is bounded by its disk, not its RAM. The
bytes of all of them wait in one scratch file (spool.Spool), not in a file each."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chunk_worker import errors
from chunk_worker.contract import EXTENSIONS, ManifestLine
from chunk_worker.layouts.records import record_of
from chunk_worker.spool import Spool

_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_sample(line: ManifestLine) -> None:
    """What every layout needs of an accepted line; a violation is the caller's bug, named here."""
    if line.status != "ok":
        raise ValueError(f"{line.url}: only accepted samples are stored, this one is {line.status}")
    if line.sha256 is None or line.format is None:
        raise ValueError(f"{line.url}: an accepted sample needs its sha256 and stored format")


def check_key(line: ManifestLine) -> str:
    """Keys become member names: WebDataset splits them at the first dot, and tar (USTAR) caps names."""
    if line.key is None or not _KEY.match(line.key):
        raise ValueError(f"{line.url}: sample key {line.key!r} must be 1-64 letters, digits, '-' or '_' (no dots)")
    return line.key


def scratch_unavailable(exc: OSError) -> errors.StorageUnavailable:
    return errors.StorageUnavailable(f"cannot write the chunk's scratch files: {exc}")


@dataclass(frozen=True)
class StagedSample:
    key: str
    extension: str
    record: dict[str, Any]
    offset: int  # where its image bytes are in the StagedSamples' spool
    size: int

    @property
    def member(self) -> str:
        return f"{self.key}.{self.extension}"


class StagedSamples:
    """Thread-safe: the bytes go to one spool file at offsets of their own; only the index is shared."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.spool = Spool(directory / "spool")
        self._lock = threading.Lock()
        self._samples: dict[str, StagedSample | None] = {}  # None: being written

    def add(self, line: ManifestLine, data: bytes, blob: str) -> ManifestLine:
        check_sample(line)
        key = check_key(line)
        stored = line.model_copy(update={"blob": blob})
        extension = EXTENSIONS[line.format]
        with self._lock:
            if key in self._samples:
                raise ValueError(f"{line.url}: sample key {key} was already added to this chunk")
            self._samples[key] = None
        try:
            offset = self.spool.append(data)
        except OSError as exc:  # a full scratch disk ends the chunk (retried elsewhere), not just this item
            with self._lock:
                del self._samples[key]
            raise scratch_unavailable(exc) from exc
        with self._lock:
            self._samples[key] = StagedSample(key, extension, record_of(stored), offset, len(data))
        return stored

    def sorted(self) -> list[StagedSample]:
        with self._lock:
            return [sample for _, sample in sorted(self._samples.items()) if sample is not None]

    def read(self, sample: StagedSample) -> bytes:
        return self.spool.read(sample.offset, sample.size)

    def release(self, sample: StagedSample) -> None:
        """Its bytes are in the shard now: the scratch space they took goes back."""
        self.spool.release(sample.offset, sample.size)

    def close(self) -> None:
        """Removes the spool (after the commit, or when the chunk ends without one)."""
        self.spool.close()
