"""The dataset index: every accepted image of a finished DatasetJob in one JSON-lines file next to
the images, assembled from the chunks' manifests (which the workers wrote last)."""

from __future__ import annotations

import json

from chunk_worker.contract import ManifestLine, manifest_name
from chunk_worker.storage import Storage

INDEX_NAME = "index.jsonl"


def index_lines(manifest: bytes) -> list[str]:
    lines = []
    for raw in manifest.splitlines():
        if not raw.strip():
            continue
        line = ManifestLine.model_validate_json(raw)
        if line.status == "ok":
            lines.append(json.dumps({"blob": line.blob, "label": line.label, "sha256": line.sha256,
                                     "bytes": line.bytes, "width": line.width, "height": line.height,
                                     "format": line.format, "url": line.url}))
    return lines


def write_index(storage: Storage, chunks: list[int]) -> tuple[int, list[int]]:
    """Returns (images indexed, chunks whose manifest was missing)."""
    out: list[str] = []
    missing = []
    for index in sorted(chunks):
        manifest = storage.read(manifest_name(index))
        if manifest is None:
            missing.append(index)
            continue
        out.extend(index_lines(manifest))
    storage.put_manifest(INDEX_NAME, ("\n".join(out) + "\n").encode() if out else b"")
    return len(out), missing
