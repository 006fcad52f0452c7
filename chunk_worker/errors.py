"""Failures that end a chunk, each mapped to the exit code the contract gives it."""

from chunk_worker.contract import ExitCode


class ChunkError(Exception):
    exit_code: ExitCode = ExitCode.RETRYABLE


class SpecError(ChunkError):
    """The chunk spec cannot be run as written: retrying will not help."""

    exit_code = ExitCode.PERMANENT


class SourceUnavailable(ChunkError):
    """A URL list or search provider could not be read; a later attempt may succeed."""


class ListPagesUnavailable(ChunkError):
    """A page of a URL list, written when the job was planned, is missing or unreadable under the
    output; a later attempt may find it (an output briefly unreachable, a page being rewritten)."""


class StorageUnavailable(ChunkError):
    """The output could not be written; a later attempt may succeed."""


class ProgressUnavailable(ChunkError):
    """Redis could not be reached to load the chunk or record its progress."""
