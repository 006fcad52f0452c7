"""How many chunks may start now, and why the rest wait. Pure arithmetic, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

WAITING_FOR_QUOTA = "WaitingForQuota"
WAITING_FOR_NODE_DISK = "WaitingForNodeDisk"
WAITING_FOR_NODE_MEMORY = "WaitingForNodeMemory"


@dataclass(frozen=True)
class Capacity:
    """Chunk slots the nodes can still take, and which resource limits them."""

    slots: int
    limited_by: str  # "disk" | "memory"
    from_reports: bool  # False: no fresh node report, the operator's own node was measured


@dataclass(frozen=True)
class Decision:
    admit: int
    reason: str | None  # why chunks beyond `admit` wait; None when nothing waits


def job_slots(parallelism: dict[str, int | None], running_by_job: dict[str, int], suspended: set[str]) -> dict[str, int]:
    """Slots left per job that has a cap: suspended jobs get 0, capped jobs their cap minus running."""
    slots = {uid: 0 for uid in suspended}
    for uid, cap in parallelism.items():
        if cap is not None and uid not in suspended:
            slots[uid] = max(cap - running_by_job.get(uid, 0), 0)
    return slots


def decide(quota: int, running: int, capacity: Capacity, queued: int) -> Decision:
    """n = min(quota - running, node slots); `running` counts live Jobs and claimed chunks without one."""
    by_quota = max(quota - running, 0)
    admit = min(by_quota, max(capacity.slots, 0), queued)
    if admit >= queued:
        return Decision(admit, None)
    if by_quota <= capacity.slots:
        return Decision(admit, WAITING_FOR_QUOTA)
    return Decision(admit, WAITING_FOR_NODE_DISK if capacity.limited_by == "disk" else WAITING_FOR_NODE_MEMORY)
