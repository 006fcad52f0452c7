"""What `kubectl pixcrawler watch` shows of a DatasetJob and how it ends. Pure: the CLI polls the object."""

from __future__ import annotations

from typing import Any

EXIT_SUCCEEDED, EXIT_FAILED = 0, 1
MESSAGE_CHARS = 240


def one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    """A status message on one line (a worker's last log lines have newlines), cut to `limit`."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def progress_line(body: dict[str, Any]) -> str:
    """One line: phase, chunks done/total, images stored and refused, the reason and queue position."""
    status = body.get("status") or {}
    chunks = status.get("chunks") or {}
    images = status.get("images") or {}
    parts = [status.get("phase") or "Pending",
             f"chunks {chunks.get('succeeded', 0) + chunks.get('failed', 0)}/{chunks.get('total', '?')}",
             f"images {images.get('uploaded', 0)} stored, {images.get('rejected', 0)} rejected, "
             f"{images.get('failed', 0)} failed, {images.get('duplicates', 0)} duplicates"]
    if status.get("queuePosition") is not None:
        parts.append(f"queue position {status['queuePosition']}")
    if status.get("reason"):
        parts.append(f"{status['reason']}: {one_line(status.get('message') or '')}".rstrip(": "))
    return " | ".join(parts)


def exit_code(body: dict[str, Any]) -> int | None:
    """0 once Succeeded, 1 once Failed, None while the job still runs."""
    phase = (body.get("status") or {}).get("phase")
    if phase == "Succeeded":
        return EXIT_SUCCEEDED
    if phase == "Failed":
        return EXIT_FAILED
    return None


def chunk_counts(body: dict[str, Any]) -> tuple[int, int | None]:
    """(chunks finished, chunks in all) for a progress bar; the total is None until planned."""
    chunks = (body.get("status") or {}).get("chunks") or {}
    return chunks.get("succeeded", 0) + chunks.get("failed", 0), chunks.get("total")
