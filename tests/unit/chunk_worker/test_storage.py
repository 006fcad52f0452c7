"""Pure storage decisions: which staging dirs a sweep may remove, and whose they are."""

import pytest

from chunk_worker.storage import FOREIGN_GRACE_SECONDS, UNLOCKED_STALE_SECONDS, owner_host, staging_is_stale


@pytest.mark.parametrize(("owner", "age", "lock", "stale"), [
    ("this", 0.0, "held", False),
    ("this", 10 * UNLOCKED_STALE_SECONDS, "held", False),
    ("this", 0.0, "free", True),
    ("other", 0.0, "free", False),
    ("other", FOREIGN_GRACE_SECONDS + 1, "free", True),
    ("this", 0.0, "unknown", False),
    ("other", UNLOCKED_STALE_SECONDS + 1, "unknown", True),
])
def test_which_staging_dirs_are_stale(owner, age, lock, stale):
    assert staging_is_stale(owner, "this", age, lock) is stale


def test_owner_host_keeps_the_dots_of_a_host_name():
    assert owner_host("node-1.example.com.4242.ab_c9z") == "node-1.example.com"
    assert owner_host("node-1.example.com.4242.ab_c9z-closed") == "node-1.example.com"
