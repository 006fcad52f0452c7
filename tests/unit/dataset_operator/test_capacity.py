"""Node capacity from the node agents' reports."""

from dataset_operator.capacity import ChunkNeeds, NodeReport, capacity, fresh, node_slots

MIB = 1024**2
NEEDS = ChunkNeeds(disk=300 * MIB, memory=512 * MIB, disk_reserve=2048 * MIB, memory_reserve=1024 * MIB)


def report(node: str, disk_mib: int, memory_mib: int, at: float = 100.0) -> NodeReport:
    return NodeReport(node, disk_free=disk_mib * MIB, memory_available=memory_mib * MIB, at=at)


def test_node_slots_are_free_minus_reserve_over_need():
    assert node_slots(report("a", 2048 + 3 * 300 + 299, 1024 + 5 * 512), NEEDS) == (3, 5)


def test_a_node_below_its_reserve_has_no_slots():
    assert node_slots(report("a", 1000, 500), NEEDS) == (0, 0)


def test_only_fresh_reports_count():
    reports = [report("a", 9000, 9000, at=95.0), report("b", 9000, 9000, at=30.0)]
    assert [r.node for r in fresh(reports, now=100.0, max_age=60.0)] == ["a"]


def test_slots_sum_over_nodes_and_name_the_binding_resource():
    nodes = [report("a", 2048 + 10 * 300, 1024 + 2 * 512), report("b", 2048 + 10 * 300, 1024 + 3 * 512)]
    result = capacity(nodes, NEEDS, starting=0)
    assert (result.slots, result.limited_by, result.from_reports) == (5, "memory", True)


def test_a_chunk_needs_disk_and_memory_on_the_same_node():
    """Disk free on one node and memory free on another do not make a slot."""
    disk_only = report("a", 2048 + 10 * 300, 0)
    memory_only = report("b", 0, 1024 + 10 * 512)
    assert capacity([disk_only, memory_only], NEEDS, starting=0).slots == 0


def test_admitted_chunks_not_started_take_their_room_and_slots_never_go_negative():
    nodes = [report("a", 2048 + 4 * 300, 1024 + 8 * 512)]
    assert capacity(nodes, NEEDS, starting=3).slots == 1
    assert capacity(nodes, NEEDS, starting=9).slots == 0


def test_no_report_means_no_slots():
    assert capacity([], NEEDS, starting=0).slots == 0
