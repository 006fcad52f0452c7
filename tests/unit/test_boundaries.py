"""The package boundaries the design promises, read from the source: the worker never imports the
operator, the operator never imports what fetches user-given URLs (it asks a Job instead), and only
ChunkQueue touches the queue's Redis client and keys."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FETCHING = {"chunk_worker.fetch", "chunk_worker.connections", "chunk_worker.sitefiles", "chunk_worker.sources",
            "chunk_worker.search", "chunk_worker.list_count", "chunk_worker.providers"}


def imports(package: Path) -> dict[str, set[str]]:
    found = {}
    for path in package.rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        found[str(path.relative_to(ROOT))] = names
    return found


def test_the_worker_never_imports_the_operator():
    offending = {path: sorted(n for n in names if n.split(".")[0] == "dataset_operator")
                 for path, names in imports(ROOT / "chunk_worker").items()}
    assert not {path: names for path, names in offending.items() if names}


def test_the_operator_never_imports_a_fetcher_of_user_given_urls():
    offending = {path: sorted(n for n in names if any(n == f or n.startswith(f + ".") for f in FETCHING))
                 for path, names in imports(ROOT / "operator" / "dataset_operator").items()}
    assert not {path: names for path, names in offending.items() if names}


def test_the_operator_process_loads_no_fetcher():
    import subprocess
    import sys

    probe = ("import sys, dataset_operator.app; print(sorted(m for m in sys.modules if m.split('.')[:2] in "
             f"[p.split('.')[:2] for p in {sorted(FETCHING)!r}]))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert loaded.stdout.strip() == "[]"


def test_only_the_chunk_queue_reaches_its_redis_client_and_keys():
    """ChunkQueue owns its keyspace: everything else asks it by a named method."""
    owners = {"operator/dataset_operator/queue.py"}
    found = {}
    for path in [*(ROOT / "operator" / "dataset_operator").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]:
        relative = str(path.relative_to(ROOT))
        if relative in owners:
            continue
        reaches = []
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            if node.attr in ("_client", "_keys"):
                reaches.append(f"{node.lineno}: .{node.attr}")
            elif node.attr in ("client", "keys") and "queue" in ast.unparse(node.value).lower():
                reaches.append(f"{node.lineno}: {ast.unparse(node)}")
        if reaches:
            found[relative] = reaches
    assert not found
