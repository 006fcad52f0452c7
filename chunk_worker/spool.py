"""One scratch file holding many byte strings, each at the offset it was given: what a chunk's
accepted images wait in (for their claim, for the commit) instead of a file each.

A file per image cost more than the bytes themselves: on ext4, creating and removing thousands of
small files in one directory makes every new inode a search past the recently deleted ones (0.7 ms
of CPU per image on a `home` chunk, more than its sha256, pHash and resample together). Here every
image is one `pwrite` at an offset reserved under a lock, read back with one `pread`, or copied
into a shard by the kernel (`copy_to`, copy_file_range); space that is done with is handed back to
the file system (a punched hole), so the file never holds more than what still waits in it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import threading
from pathlib import Path

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_COPY_CHUNK = 1 << 30


def _fallocate():
    if platform.system() != "Linux":
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long)
    function.restype = ctypes.c_int
    return function


_FALLOCATE = _fallocate()


class Spool:
    """Thread-safe. The file is made on the first `append` and removed by `close`. A failed append
    (a full disk) raises OSError and leaves nothing of its bytes counted: the file is cut back when
    they were the last written, else their range is released."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._end = 0
        self._holes = _FALLOCATE is not None

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        return self._fd

    def append(self, data: bytes) -> int:
        """Writes `data`; returns the offset to read it back at."""
        size = len(data)
        with self._lock:
            fd = self._open()
            offset, self._end = self._end, self._end + size
        try:
            view = memoryview(data)
            done = 0
            while done < size:
                done += os.pwrite(fd, view[done:], offset + done)
        except OSError:
            with self._lock:
                if self._end == offset + size:
                    self._end = offset
                    try:
                        os.ftruncate(fd, offset)
                    except OSError:
                        pass
                else:
                    self.release(offset, size)
            raise
        return offset

    def read(self, offset: int, size: int) -> bytes:
        assert self._fd is not None, "read only what was appended"
        parts = []
        while size > 0:
            part = os.pread(self._fd, size, offset)
            if not part:
                raise OSError(errno.EIO, f"{self.path}: {size} bytes missing at offset {offset}")
            parts.append(part)
            offset += len(part)
            size -= len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def copy_to(self, offset: int, size: int, out_fd: int) -> None:
        """Appends `size` bytes from `offset` to `out_fd` at its position, copied in the kernel
        (copy_file_range) where it can, else through a buffer."""
        assert self._fd is not None, "copy only what was appended"
        while size > 0:
            try:
                copied = os.copy_file_range(self._fd, out_fd, min(size, _COPY_CHUNK), offset)
            except (AttributeError, OSError) as exc:
                if isinstance(exc, OSError) and exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL,
                                                                  errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM):
                    raise
                copied = 0
            if copied == 0:  # not supported here (or nothing copied): plain read and write
                data = self.read(offset, size)
                view = memoryview(data)
                while view:
                    view = view[os.write(out_fd, view):]
                return
            offset += copied
            size -= copied

    def release(self, offset: int, size: int) -> None:
        """The range is no longer needed: its disk space goes back to the file system (best effort)."""
        if not self._holes or self._fd is None or size <= 0:
            return
        if _FALLOCATE(self._fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, size) != 0:
            self._holes = False  # not supported by this file system: the space is freed at close

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
            self.path.unlink(missing_ok=True)
