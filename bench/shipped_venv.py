"""A Python environment holding what the operator image installs (`.[operator]` and nothing of the dev
extras), so a benchmark measures the operator as shipped: with the dev venv, kopf also imports the
synchronous `kubernetes` client (its adopt helpers look for it), which the image does not have.

The venv is cached under $PIXCRAWLER_CACHE/venvs/, keyed by the dependency list; the repo's own
packages come from the work tree on PYTHONPATH, so a code change needs no reinstall."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from pinned import cache_dir

ROOT = Path(__file__).resolve().parent.parent
SELF = "pixcrawler-operator"


def requirements(extra: str, pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The project's dependencies plus `extra`'s, with its references to its own extras expanded."""
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project["optional-dependencies"]
    wanted, seen, pending = list(project["dependencies"]), set(), [extra]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for requirement in extras[name]:
            own = re.fullmatch(rf"{SELF}\[(.+)\]", requirement)
            if own:
                pending += [part.strip() for part in own.group(1).split(",")]
            else:
                wanted.append(requirement)
    return sorted(set(wanted))


def shipped_python(extra: str = "operator") -> Path:
    """The venv's python, made (once per dependency list) when missing."""
    wanted = requirements(extra)
    digest = hashlib.sha256("\n".join([sys.version, *wanted]).encode()).hexdigest()[:16]
    venv = cache_dir() / "venvs" / f"{extra}-{digest}"
    python = venv / "bin" / "python"
    if (venv / ".installed").exists():
        return python
    print(f"making the {extra} image's environment in {venv} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *wanted], check=True)
    (venv / ".installed").touch()
    return python


def shipped_pythonpath() -> str:
    """The work tree's packages: chunk_worker at the root, dataset_operator under operator/."""
    return f"{ROOT / 'operator'}:{ROOT}"
