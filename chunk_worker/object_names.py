"""Names of objects under an output, shared by every storage backend: what a valid name is, what a
listing prefix may be, and which names listings hide."""

from __future__ import annotations

from pathlib import PurePosixPath


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
    """The staging dir (".staging/...") and probes (".probe") are hidden from listings."""
    return not any(part.startswith(".") for part in name.split("/"))
