"""The memory budget: what a decode needs, what the pod allows, and reservations that wait their turn."""

from __future__ import annotations

import threading
import time

import pytest

from chunk_worker.memory import (
    BODY_COPIES,
    MIN_DECODE_BYTES,
    PROCESS_BYTES,
    Header,
    MemoryBudget,
    MiB,
    NeverFits,
    cgroup_paths,
    decode_need,
    parse_limit,
    plan_memory,
    pod_memory_limit,
)

GiB = 1024 * MiB


# --- decode_need ------------------------------------------------------------------------------


def test_need_grows_with_bands_and_sample_depth():
    grey = decode_need(Header("PNG", "L", (2000, 2000)))
    rgba = decode_need(Header("PNG", "RGBA", (2000, 2000)))
    wide = decode_need(Header("PNG", "I;16", (2000, 2000)))
    assert grey < rgba
    assert grey < wide
    assert rgba - grey >= 3 * 2000 * 2000


def test_need_covers_at_least_the_decoded_pixels():
    assert decode_need(Header("PNG", "RGBA", (9400, 9400))) > 9400 * 9400 * 4


def test_a_lossless_webp_needs_more_than_a_png_of_the_same_pixels():
    assert decode_need(Header("WEBP", "RGB", (9400, 9400))) > decode_need(Header("PNG", "RGB", (9400, 9400)))


def test_a_jpeg_decoded_at_a_dct_scale_needs_less():
    full = decode_need(Header("JPEG", "RGB", (8000, 6000)))
    eighth = decode_need(Header("JPEG", "RGB", (8000, 6000), decoded=(1000, 750)))
    assert eighth * 10 < full


def test_a_progressive_jpeg_pays_for_its_coefficients_whatever_the_scale():
    baseline = decode_need(Header("JPEG", "RGB", (9400, 9400), decoded=(1175, 1175)))
    progressive = decode_need(Header("JPEG", "RGB", (9400, 9400), decoded=(1175, 1175), progressive=True))
    assert progressive - baseline >= 2 * 3 * 9400 * 9400


def test_an_animation_needs_its_canvas_beside_the_frame():
    still = decode_need(Header("GIF", "P", (3000, 3000)))
    animated = decode_need(Header("GIF", "P", (3000, 3000), animated=True))
    assert animated > still


def test_re_encoding_adds_the_output_buffers():
    untouched = decode_need(Header("PNG", "RGB", (4000, 3000)))
    bordered = decode_need(Header("PNG", "RGB", (4000, 3000), output=(8192, 6144)))
    assert bordered - untouched >= 8192 * 8192 * 4


# --- cgroup limits ----------------------------------------------------------------------------


@pytest.mark.parametrize("text, limit", [
    ("max\n", None),
    ("9223372036854771712\n", None),  # v1's "unlimited"
    ("1073741824\n", 1073741824),
    ("", None),
])
def test_parse_limit(text, limit):
    assert parse_limit(text) == limit


def test_cgroup_paths_of_a_hybrid_host():
    text = "9:name=systemd:/\n4:memory:/kubepods/pod1/abc\n1:cpu,cpuacct:/\n0::/kubepods/pod1/abc\n"
    assert cgroup_paths(text) == ("/kubepods/pod1/abc", "/kubepods/pod1/abc")


def test_cgroup_paths_with_memory_joined_to_other_controllers():
    assert cgroup_paths("3:cpuacct,memory:/a\n") == (None, "/a")


def _cgroup_file(tmp_path, text):
    proc = tmp_path / "cgroup"
    proc.write_text(text)
    return proc


def test_v2_limit_is_read_from_memory_max(tmp_path):
    group = tmp_path / "fs" / "kubepods" / "pod1"
    group.mkdir(parents=True)
    (group / "memory.max").write_text("1073741824\n")
    (tmp_path / "fs" / "kubepods" / "memory.max").write_text("max\n")
    assert pod_memory_limit(tmp_path / "fs", _cgroup_file(tmp_path, "0::/kubepods/pod1\n")) == GiB


def test_v1_limit_is_read_from_limit_in_bytes(tmp_path):
    group = tmp_path / "fs" / "memory" / "pod1"
    group.mkdir(parents=True)
    (group / "memory.limit_in_bytes").write_text("536870912\n")
    (tmp_path / "fs" / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert pod_memory_limit(tmp_path / "fs", _cgroup_file(tmp_path, "4:memory:/pod1\n")) == 512 * MiB


def test_a_parent_limit_tighter_than_the_own_one_wins(tmp_path):
    group = tmp_path / "fs" / "parent" / "child"
    group.mkdir(parents=True)
    (group / "memory.max").write_text("max\n")
    (tmp_path / "fs" / "parent" / "memory.max").write_text("268435456\n")
    assert pod_memory_limit(tmp_path / "fs", _cgroup_file(tmp_path, "0::/parent/child\n")) == 256 * MiB


def test_a_cgroup_namespace_shows_the_limit_at_its_root(tmp_path):
    (tmp_path / "fs").mkdir()
    (tmp_path / "fs" / "memory.max").write_text("2147483648\n")
    assert pod_memory_limit(tmp_path / "fs", _cgroup_file(tmp_path, "0::/\n")) == 2 * GiB


def test_no_limit_anywhere(tmp_path):
    (tmp_path / "fs").mkdir()
    assert pod_memory_limit(tmp_path / "fs", _cgroup_file(tmp_path, "0::/\n")) is None
    assert pod_memory_limit(tmp_path / "fs", tmp_path / "absent") is None


# --- plan_memory ------------------------------------------------------------------------------


def test_the_budget_is_what_the_limit_leaves_after_the_process_and_the_bodies():
    plan = plan_memory(2 * GiB, threads=32, max_bytes=20 * MiB)
    assert plan.threads == 32
    assert plan.capacity == 2 * GiB - PROCESS_BYTES - 32 * BODY_COPIES * 20 * MiB


def test_threads_are_lowered_when_their_bodies_would_not_fit():
    plan = plan_memory(1 * GiB, threads=32, max_bytes=20 * MiB)
    assert plan.threads < 32
    assert PROCESS_BYTES + plan.threads * BODY_COPIES * 20 * MiB + plan.capacity <= 1 * GiB
    assert plan.capacity >= MIN_DECODE_BYTES


def test_without_a_limit_the_machine_is_the_limit():
    plan = plan_memory(None, threads=32, max_bytes=20 * MiB, machine=8 * GiB)
    assert plan.capacity == 8 * GiB - PROCESS_BYTES - 32 * BODY_COPIES * 20 * MiB


def test_an_override_is_taken_as_given():
    plan = plan_memory(1 * GiB, threads=32, max_bytes=20 * MiB, override=300 * MiB)
    assert (plan.capacity, plan.threads) == (300 * MiB, 32)


# --- MemoryBudget -----------------------------------------------------------------------------


def test_a_need_above_the_capacity_is_impossible_and_raises_at_once():
    budget = MemoryBudget(100)
    assert budget.impossible(101) and not budget.impossible(100)
    with pytest.raises(NeverFits):
        with budget.reserve(101):
            pass
    assert budget.in_use == 0


def test_reservations_are_released_on_exit_even_after_an_error():
    budget = MemoryBudget(100)
    with pytest.raises(RuntimeError):
        with budget.reserve(60):
            assert budget.in_use == 60
            raise RuntimeError("decode failed")
    assert budget.in_use == 0


def test_a_slot_holds_nothing_until_taken_and_releases_what_it_took():
    budget = MemoryBudget(100)
    with budget.slot() as slot:
        assert budget.in_use == 0
        slot.take(80)
        assert budget.in_use == 80
        with pytest.raises(RuntimeError):
            slot.take(10)
    assert budget.in_use == 0


def test_a_slot_refuses_a_need_that_can_never_fit():
    budget = MemoryBudget(100)
    with budget.slot() as slot:
        with pytest.raises(NeverFits):
            slot.take(101)
    assert budget.in_use == 0


def test_releasing_twice_releases_once():
    budget = MemoryBudget(100)
    held = budget.reserve(40).acquire()
    other = budget.reserve(30).acquire()
    held.release()
    held.release()
    assert budget.in_use == 30
    other.release()


def _wait_until(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


def test_a_reservation_that_does_not_fit_waits_until_room_is_released():
    budget = MemoryBudget(100)
    first = budget.reserve(70).acquire()
    entered = threading.Event()

    def second():
        with budget.reserve(50):
            entered.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert not entered.wait(0.2)
    first.release()
    assert entered.wait(5)
    thread.join(5)
    assert budget.in_use == 0


def test_never_more_than_the_capacity_at_once():
    budget = MemoryBudget(1000)
    errors = []

    def work(need):
        try:
            for _ in range(50):
                with budget.reserve(need):
                    assert budget.in_use <= budget.capacity
        except AssertionError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(need,)) for need in (100, 300, 450, 700, 1000, 50, 250, 600)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert budget.in_use == 0
    assert budget.peak <= budget.capacity


def test_a_large_waiter_is_not_overtaken_by_later_small_ones():
    budget = MemoryBudget(100)
    held = budget.reserve(60).acquire()
    order = []

    def take(name, need):
        with budget.reserve(need):
            order.append(name)

    large = threading.Thread(target=take, args=("large", 90))
    large.start()
    _wait_until(lambda: budget.waiting == 1)
    small = threading.Thread(target=take, args=("small", 10))  # would fit now, but arrived later
    small.start()
    _wait_until(lambda: budget.waiting == 2)
    assert order == []
    held.release()
    large.join(5)
    small.join(5)
    assert order == ["large", "small"]
