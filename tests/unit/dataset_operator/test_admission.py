"""Admission arithmetic: how many chunks start now, and the one reason the rest wait."""

import itertools

from dataset_operator.admission import (
    WAITING_FOR_NODE_DISK,
    WAITING_FOR_NODE_MEMORY,
    WAITING_FOR_QUOTA,
    Capacity,
    decide,
    job_slots,
)
from dataset_operator.capacity import ChunkNeeds, NodeReport, capacity

GIB = 1024**3
NEEDS = ChunkNeeds(disk=GIB, memory=GIB, disk_reserve=0, memory_reserve=0)


def test_admission_never_exceeds_quota_minus_running():
    for quota, running, slots, queued in itertools.product([0, 1, 5, 35], [0, 1, 5, 35, 40], [0, 3, 100], [0, 1, 50]):
        decision = decide(quota, running, Capacity(slots, "disk", True), queued)
        assert 0 <= decision.admit <= max(quota - running, 0)
        assert decision.admit <= min(slots, queued)


def test_admits_everything_queued_when_it_fits_and_gives_no_reason():
    decision = decide(35, 10, Capacity(100, "disk", True), 7)
    assert (decision.admit, decision.reason) == (7, None)


def test_reason_is_waiting_for_quota_when_the_quota_binds():
    decision = decide(35, 33, Capacity(100, "disk", True), 10)
    assert (decision.admit, decision.reason) == (2, WAITING_FOR_QUOTA)


def test_lowered_quota_below_running_admits_nothing():
    decision = decide(5, 8, Capacity(100, "memory", True), 3)
    assert (decision.admit, decision.reason) == (0, WAITING_FOR_QUOTA)


def test_reason_is_waiting_for_node_disk_when_disk_binds():
    low_disk = NodeReport("node-a", disk_free=2 * GIB, memory_available=64 * GIB, at=0)
    decision = decide(35, 0, capacity([low_disk], NEEDS, starting=0), 10)
    assert (decision.admit, decision.reason) == (2, WAITING_FOR_NODE_DISK)


def test_reason_is_waiting_for_node_memory_when_memory_binds():
    low_memory = NodeReport("node-a", disk_free=64 * GIB, memory_available=3 * GIB, at=0)
    decision = decide(35, 0, capacity([low_memory], NEEDS, starting=0), 10)
    assert (decision.admit, decision.reason) == (3, WAITING_FOR_NODE_MEMORY)


def test_suspended_job_gets_zero_slots_even_with_a_cap():
    slots = job_slots({"a": 4}, {"a": 1}, suspended={"a", "b"})
    assert slots == {"a": 0, "b": 0}


def test_capped_job_gets_its_parallelism_minus_running_never_below_zero():
    slots = job_slots({"a": 4, "b": 2, "c": None}, {"a": 1, "b": 5}, suspended=set())
    assert slots == {"a": 3, "b": 0}
