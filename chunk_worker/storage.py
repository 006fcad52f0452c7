"""Where a chunk's images and manifest go: a local directory or an Azure Blob container.

Images are content-addressed (contract.image_blob_name), so a write that finds the name
already taken is a success, never an overwrite: a retried chunk or a duplicate costs
nothing and can never replace good bytes with bad. Manifests are written last and may
be replaced by a retry. Shards and Parquet files are streamed from local files with put_file
and, like manifests, appear under their final name only once complete. Failures a later attempt may get past raise
errors.StorageUnavailable; an output URL that can never work raises errors.SpecError.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol
from urllib.parse import unquote, urlsplit

from chunk_worker import errors

DEFAULT_POOL_SIZE = 32
COPY_BUFFER = 1024 * 1024

_CONTAINER_NAME = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


class Storage(Protocol):
    def check(self) -> None:
        """Probe that the output can be written; raise errors.StorageUnavailable if not."""
        ...

    def put_image(self, name: str, data: bytes, content_type: str) -> bool:
        """True if written now, False if the name already existed (which is just as good)."""
        ...

    def put_manifest(self, name: str, data: bytes) -> None: ...

    def put_file(self, name: str, path: Path, content_type: str) -> None:
        """Streams a local file to `name`, replacing what is there; nothing is visible under `name`
        until the whole file is (a crash mid-way leaves the previous object or none). Memory does
        not grow with the file's size."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Names under the output (relative to its root) starting with `prefix`, sorted. Names with a
        part starting with "." are the storage's own temp and probe files and are never listed."""
        ...

    def open(self, name: str) -> BinaryIO | None:
        """A streaming reader of the object (bounded memory whatever its size), or None if there is none."""
        ...

    def exists(self, name: str) -> bool: ...

    def read(self, name: str) -> bytes | None:
        """The object's bytes, or None if there is none (the operator reads manifests to build the index)."""
        ...

    def delete_all(self) -> int:
        """Removes everything under this output (a DatasetJob deleted with retainPolicy Delete)."""
        ...

    def close(self) -> None: ...


def object_name(name: str) -> str:
    """A relative, normalised name that cannot climb out of the output ("..", absolute paths)."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or any(part in ("", ".", "..") for part in name.split("/")):
        raise ValueError(f"not a storage object name: {name!r}")
    return str(path)


def name_prefix(prefix: str) -> str:
    """A listing prefix: empty, or an object name that may end in "/" or in part of a name."""
    if prefix:
        object_name(prefix.removesuffix("/"))
    return prefix


def is_listed(name: str) -> bool:
    """Temp files (".<name>.<pid>...tmp") and probes (".probe-...") are hidden from listings."""
    return not any(part.startswith(".") for part in name.split("/"))


def open_storage(url: str, pool_size: int = DEFAULT_POOL_SIZE) -> Storage:
    """`file:///dir` or `azure://<container>/<prefix>`."""
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise errors.SpecError(f"output URL {url!r}: no query or fragment allowed")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise errors.SpecError(f"output URL {url!r}: expected file:///absolute/dir")
        return FileStorage(Path(unquote(parts.path)))
    if parts.scheme == "azure":
        container = parts.netloc
        if not _CONTAINER_NAME.match(container):
            raise errors.SpecError(
                f"output URL {url!r}: expected azure://<container>/<prefix> with a valid container name "
                "(3-63 lowercase letters, digits and single hyphens)"
            )
        from chunk_worker.azureblob import AzureStorage  # the SDK takes ~0.4 s to import; file:// never needs it

        return AzureStorage(container, unquote(parts.path).strip("/"), pool_size)
    raise errors.SpecError(f"output URL {url!r}: the scheme must be file:// or azure://")


class FileStorage:
    """A local (or mounted) directory. Writes go to a temp name first, so a crash never leaves
    a half-written file under a final name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: set[Path] = set()
        self._unsynced = False

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-"):
                pass
        except OSError as exc:
            raise errors.StorageUnavailable(f"cannot write to {self.root}: {exc}") from exc

    def _path(self, name: str) -> Path:
        return self.root / object_name(name)

    def _write_temp(self, final: Path, data: bytes, durable: bool) -> str:
        if final.parent not in self._made:
            final.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(final.parent)
        temp = str(final.parent / f".{final.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
        except BaseException:
            os.unlink(temp)
            raise
        return temp

    def put_image(self, name: str, data: bytes, content_type: str) -> bool:
        """Images are not fsynced one by one: put_manifest syncs them all at once before it writes
        the manifest that declares them. A file a crash left short is found by its size and redone."""
        final = self._path(name)
        try:
            try:
                if final.stat().st_size == len(data):
                    return False
            except FileNotFoundError:
                pass
            temp = self._write_temp(final, data, durable=False)
            self._unsynced = True
            try:
                os.link(temp, final)
                return True
            except FileExistsError:
                os.replace(temp, final)  # same name, same content: only a short leftover is replaced
                return False
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                # No hard links here (some network file systems): replacing is safe too,
                # because whoever won wrote the very same bytes under this content address.
                os.replace(temp, final)
                return True
            finally:
                if os.path.lexists(temp):
                    os.unlink(temp)
        except OSError as exc:
            raise errors.StorageUnavailable(f"cannot write {final}: {exc}") from exc

    def put_manifest(self, name: str, data: bytes) -> None:
        final = self._path(name)
        try:
            if self._unsynced:
                os.sync()  # every image this chunk wrote is on disk before the manifest says so
                self._unsynced = False
            os.replace(self._write_temp(final, data, durable=True), final)
        except OSError as exc:
            raise errors.StorageUnavailable(f"cannot write {final}: {exc}") from exc

    def put_file(self, name: str, path: Path, content_type: str) -> None:
        """Copied to a temp name beside the final one, fsynced, then renamed over it: a reader sees
        the old file or the new one, never part of one. The temp file is removed on any error."""
        final = self._path(name)
        with open(path, "rb") as source:  # a missing source is the caller's bug, not an outage
            try:
                if final.parent not in self._made:
                    final.parent.mkdir(parents=True, exist_ok=True)
                    self._made.add(final.parent)
                temp = final.parent / f".{final.name}.{os.getpid()}.{threading.get_ident()}.tmp"
                try:
                    with open(temp, "wb") as handle:
                        shutil.copyfileobj(source, handle, COPY_BUFFER)
                        handle.flush()
                        os.fsync(handle.fileno())
                    os.replace(temp, final)
                except BaseException:
                    temp.unlink(missing_ok=True)
                    raise
                directory = os.open(final.parent, os.O_RDONLY)
                try:
                    os.fsync(directory)  # the rename itself survives a power cut
                finally:
                    os.close(directory)
            except OSError as exc:
                raise errors.StorageUnavailable(f"cannot write {final}: {exc}") from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        """Lazy, and only into directories the prefix can match. Entries are visited in the order of
        their full names: a directory sorts as "<name>/", which is where all its contents fall."""
        prefix = name_prefix(prefix)
        try:
            yield from self._walk(self.root, "", prefix)
        except OSError as exc:
            raise errors.StorageUnavailable(f"cannot list {self.root}: {exc}") from exc

    def _walk(self, directory: Path, relative: str, prefix: str) -> Iterator[str]:
        try:
            entries = sorted(relative + entry.name + ("/" if entry.is_dir(follow_symlinks=False) else "")
                             for entry in os.scandir(directory) if is_listed(entry.name))
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in entries:
            if not name.endswith("/"):
                if name.startswith(prefix):
                    yield name
            elif name.startswith(prefix) or prefix.startswith(name):
                yield from self._walk(directory / name.rsplit("/", 2)[-2], name, prefix)

    def open(self, name: str) -> BinaryIO | None:
        try:
            return open(self._path(name), "rb")
        except (FileNotFoundError, IsADirectoryError):
            return None
        except OSError as exc:
            raise errors.StorageUnavailable(f"cannot read {name}: {exc}") from exc

    def exists(self, name: str) -> bool:
        return self._path(name).exists()

    def read(self, name: str) -> bytes | None:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise errors.StorageUnavailable(f"cannot read {name}: {exc}") from exc

    def delete_all(self) -> int:
        count = sum(1 for path in self.root.rglob("*") if path.is_file())
        shutil.rmtree(self.root, ignore_errors=True)
        return count

    def close(self) -> None:
        pass
