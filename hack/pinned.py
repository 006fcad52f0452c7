"""What hack/versions.env pins, and where built or downloaded tools are cached (outside the repo)."""

from __future__ import annotations

import os
from pathlib import Path

VERSIONS_FILE = Path(__file__).resolve().parent / "versions.env"


def cache_dir() -> Path:
    return Path(os.environ.get("PIXCRAWLER_CACHE") or Path.home() / ".cache" / "pixcrawler-operator")


def versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """KEY=VALUE lines of hack/versions.env (the one place versions are pinned)."""
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pairs[key.strip()] = value.strip().strip('"')
    return pairs
