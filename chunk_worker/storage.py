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
import fcntl
import itertools
import os
import re
import secrets
import shutil
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import unquote, urlsplit

from chunk_worker import errors
from chunk_worker.object_names import is_listed, name_prefix, object_name

DEFAULT_POOL_SIZE = 32
COPY_BUFFER = 1024 * 1024
STAGING_DIR = ".staging"
"""FileStorage's temp files: `<root>/.staging/<host>.<pid>.<random>/`, one directory per open storage
(so per chunk), on the output's own file system (a rename or hard link into place never copies) and
hidden from listings. It holds a lock file its owner keeps locked for its lifetime."""
LOCK_NAME = ".lock"
FOREIGN_GRACE_SECONDS = 600.0
"""Another host's unlocked staging dir is swept only once this old: its lock might not be visible here."""
UNLOCKED_STALE_SECONDS = 24 * 3600.0
"""A staging dir whose lock cannot be tested (no lock file, or a file system without locks) is swept
once this old: longer than any chunk runs."""

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
        not grow with the file's size. The caller may remove `path` afterwards but must not change
        it: FileStorage hard-links it into place when both are on one file system."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Names under the output (relative to its root) starting with `prefix`, sorted. Names with a
        part starting with "." are the storage's own temp and probe files and are never listed."""
        ...

    def open(self, name: str, offset: int = 0) -> BinaryIO | None:
        """A streaming reader of the object from byte `offset` on (bounded memory whatever its size; at
        or past the end it reads nothing), or None if there is none."""
        ...

    def exists(self, name: str) -> bool: ...

    def read(self, name: str) -> bytes | None:
        """The object's bytes, or None if there is none (the operator reads manifests to build the index)."""
        ...

    def delete_all(self) -> int:
        """Removes everything under this output (a DatasetJob deleted with retainPolicy Delete)."""
        ...

    def delete_tree(self, prefix: str) -> int:
        """Removes every object under `prefix/`, hidden names included (a job's list pages); returns how
        many. Nothing there is no error, so a repeated call finds nothing."""
        ...

    def close(self) -> None: ...


def owner_host(staging_name: str) -> str:
    """The host part of a staging dir's name, `<host>.<pid>.<random>` (a host name may have dots)."""
    return staging_name.rsplit(".", 2)[0]


def staging_is_stale(owner: str, this_host: str, age_seconds: float, lock: str) -> bool:
    """Whether a staging dir's writer is gone. `lock`: "held" (its owner lives), "free" (we could take
    it: the owner exited or was killed), "unknown" (no lock file yet, or locks unsupported).
    A free lock on this host is proof; on another host (a network file system) it is trusted only
    after a grace period, and an untestable one only after a day."""
    if lock == "held":
        return False
    if lock == "free":
        return owner == this_host or age_seconds > FOREIGN_GRACE_SECONDS
    return age_seconds > UNLOCKED_STALE_SECONDS


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
    """A local (or mounted) directory. Writes go to a temp file in this storage's staging dir first
    (STAGING_DIR), then are renamed or linked into place, so a crash never leaves a half-written file
    under a final name. close() removes the staging dir, and the first write of the next storage on
    the output (check() at a chunk's start) sweeps those whose writer was killed: no signal leaves a
    temp file behind for longer than it takes the retry to start."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: set[Path] = set()
        self._unsynced = False
        self._guard = threading.Lock()
        self._staging: Path | None = None  # named before it is made: close() removes what a signal left of it
        self._ready: Path | None = None  # the same, once made and locked
        self._lock_fd: int | None = None
        self._closed = False
        self._serial = itertools.count()

    def check(self) -> None:
        """Making the staging dir is the write probe, and sweeps what killed writers left."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._stage()
        except OSError as exc:
            raise errors.StorageUnavailable(f"cannot write to {self.root}: {exc}") from exc

    def _path(self, name: str) -> Path:
        return self.root / object_name(name)

    def _stage(self) -> Path:
        with self._guard:
            if self._closed:  # a thread still running after close() (SIGTERM) must not make a new one
                raise errors.StorageUnavailable(f"{self.root}: storage closed")
            if self._ready is None:
                self._ready = self._open_staging(self.root / STAGING_DIR)
                sweep_staging(self.root / STAGING_DIR, keep=self._ready.name)
            return self._ready

    def _open_staging(self, parent: Path) -> Path:
        """A new staging dir with its lock taken. The lock file is locked before it gets its name, so a
        sweeper that finds LOCK_NAME unlocked knows the owner is gone, never that it has not locked yet."""
        for attempt in range(3):
            parent.mkdir(parents=True, exist_ok=True)
            self._staging = parent / f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(6)}"
            try:
                os.mkdir(self._staging)
                break
            except (FileNotFoundError, FileExistsError):  # another storage's close() removed the parent
                if attempt == 2:
                    raise
        self._lock_fd = os.open(self._staging / ".lock.new", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # no locks on this file system: sweepers fall back to the dir's age
            pass
        os.rename(self._staging / ".lock.new", self._staging / LOCK_NAME)
        return self._staging

    def _temp_for(self, final: Path) -> Path:
        return self._stage() / f".{final.name}.{next(self._serial)}.tmp"  # hidden, like every temp name

    def _write_temp(self, final: Path, data: bytes, durable: bool) -> str:
        if final.parent not in self._made:
            final.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(final.parent)
        temp = str(self._temp_for(final))
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
        except BaseException:
            Path(temp).unlink(missing_ok=True)
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
        """Hard-linked (same file system: no byte is copied) or else copied to a temp file in the
        staging dir, fsynced, then renamed over the final name: a reader sees the old file or the new
        one, never part of one. The temp name is removed on any error."""
        final = self._path(name)
        with open(path, "rb") as source:  # a missing source is the caller's bug, not an outage
            try:
                if final.parent not in self._made:
                    final.parent.mkdir(parents=True, exist_ok=True)
                    self._made.add(final.parent)
                temp = self._temp_for(final)
                try:
                    if stat.S_ISREG(os.fstat(source.fileno()).st_mode) and self._link(path, temp):
                        os.fsync(source.fileno())  # the same inode: its bytes are on disk before the rename
                    else:
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

    @staticmethod
    def _link(path: Path, temp: Path) -> bool:
        """Whether `path` could be linked as `temp`; False where it must be copied (another file
        system, or one without hard links)."""
        try:
            os.link(path, temp)
            return True
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                return False
            raise

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

    def open(self, name: str, offset: int = 0) -> BinaryIO | None:
        try:
            reader = open(self._path(name), "rb")
        except (FileNotFoundError, IsADirectoryError):
            return None
        except OSError as exc:
            raise errors.StorageUnavailable(f"cannot read {name}: {exc}") from exc
        reader.seek(offset)
        return reader

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

    def delete_tree(self, prefix: str) -> int:
        tree = self._path(prefix.removesuffix("/"))
        try:
            count = sum(1 for path in tree.rglob("*") if path.is_file())
            shutil.rmtree(tree)
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise errors.StorageUnavailable(f"cannot delete {tree}: {exc}") from exc
        return count

    def close(self) -> None:
        """Removes the staging dir. It is renamed first, so a thread still writing (the chunk was
        stopped) cannot add a file to it while it is being removed; later writes fail."""
        with self._guard:
            self._closed = True
            staging, lock_fd, self._staging, self._ready, self._lock_fd = self._staging, self._lock_fd, None, None, None
        if staging is None:
            return
        doomed = staging.with_name(staging.name + "-closed")
        try:
            os.rename(staging, doomed)
        except OSError:
            doomed = staging
        shutil.rmtree(doomed, ignore_errors=True)
        if lock_fd is not None:
            os.close(lock_fd)
        try:
            os.rmdir(staging.parent)  # only when no other writer has a staging dir there
        except OSError:
            pass


def sweep_staging(parent: Path, keep: str) -> int:
    """Removes the staging dirs under `parent` whose writers are gone (see staging_is_stale), all but
    `keep`; returns how many. Each is removed while its lock is held, so two sweepers never race."""
    this_host = socket.gethostname()
    removed = 0
    try:
        entries = [entry for entry in os.scandir(parent) if entry.name != keep and entry.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            age = time.time() - entry.stat(follow_symlinks=False).st_mtime
        except OSError:  # gone already
            continue
        try:
            fd: int | None = os.open(os.path.join(entry.path, LOCK_NAME), os.O_RDWR)
        except FileNotFoundError:
            fd = None
        except OSError:
            continue
        lock = "unknown"
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                lock = "free"
            except BlockingIOError:
                lock = "held"
            except OSError:
                pass
        try:
            if os.path.isdir(entry.path) and staging_is_stale(owner_host(entry.name), this_host, age, lock):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
        finally:
            if fd is not None:
                os.close(fd)
    return removed
