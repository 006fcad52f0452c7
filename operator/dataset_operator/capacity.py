"""Node capacity from the node agents' reports: slots = min over disk and memory of
(free - reserve) / per-chunk need, summed over nodes with a fresh report, minus chunks
admitted whose pods have not started yet (they will take that room)."""

from __future__ import annotations

from dataclasses import dataclass

from dataset_operator.admission import Capacity


@dataclass(frozen=True)
class NodeReport:
    node: str
    disk_free: int
    memory_available: int
    at: float


@dataclass(frozen=True)
class ChunkNeeds:
    disk: int
    memory: int
    disk_reserve: int
    memory_reserve: int


def node_slots(report: NodeReport, needs: ChunkNeeds) -> tuple[int, int]:
    """(slots by disk, slots by memory) for one node."""
    by_disk = max(report.disk_free - needs.disk_reserve, 0) // needs.disk
    by_memory = max(report.memory_available - needs.memory_reserve, 0) // needs.memory
    return int(by_disk), int(by_memory)


def fresh(reports: list[NodeReport], now: float, max_age: float) -> list[NodeReport]:
    return [report for report in reports if now - report.at <= max_age]


def capacity(reports: list[NodeReport], needs: ChunkNeeds, starting: int, from_reports: bool = True) -> Capacity:
    """Reports are taken at face value: a chunk already running has already used its room, but an
    admitted chunk whose pod has not started (`starting`) has not, so it is subtracted."""
    per_node = [node_slots(report, needs) for report in reports]
    slots = sum(min(by_disk, by_memory) for by_disk, by_memory in per_node)  # one chunk needs both on one node
    limited_by = "disk" if sum(d for d, _ in per_node) <= sum(m for _, m in per_node) else "memory"
    return Capacity(max(slots - starting, 0), limited_by, from_reports)
