"""Accepted samples kept on local disk until a shard is committed: memory holds their metadata
records, never their image bytes, so a chunk's footprint is bounded by its disk, not its RAM."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chunk_worker import errors
from chunk_worker.contract import EXTENSIONS, ManifestLine
from chunk_worker.layouts.records import record_of

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
    path: Path

    @property
    def member(self) -> str:
        return f"{self.key}.{self.extension}"


class StagedSamples:
    """Thread-safe: each sample is written to its own file; only the index is shared."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._samples: dict[str, StagedSample] = {}

    def add(self, line: ManifestLine, data: bytes, blob: str) -> ManifestLine:
        check_sample(line)
        key = check_key(line)
        stored = line.model_copy(update={"blob": blob})
        extension = EXTENSIONS[line.format]
        path = self.directory / f"{key}.{extension}"
        try:
            with open(path, "xb") as handle:
                handle.write(data)
        except FileExistsError:
            raise ValueError(f"{line.url}: sample key {key} was already added to this chunk") from None
        except OSError as exc:  # a full scratch disk ends the chunk (retried elsewhere), not just this item
            path.unlink(missing_ok=True)
            raise scratch_unavailable(exc) from exc
        with self._lock:
            self._samples[key] = StagedSample(key, extension, record_of(stored), path)
        return stored

    def sorted(self) -> list[StagedSample]:
        with self._lock:
            return [self._samples[key] for key in sorted(self._samples)]
