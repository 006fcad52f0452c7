"""Shared fixtures. Each real part the suite starts has its own plugin module in tests/fixtures/."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "hack"))

pytest_plugins = [
    "tests.fixtures.redis_server",
    "tests.fixtures.azurite",
    "tests.fixtures.imageserver",
    "tests.fixtures.list_server",
    "tests.fixtures.provider_server",
    "tests.fixtures.cluster",
    "tests.fixtures.memory_cgroup",
    "tests.fixtures.node_services",
    "tests.fixtures.dataset_outputs",
]
