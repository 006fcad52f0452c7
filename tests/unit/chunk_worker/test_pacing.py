"""The token bucket's arithmetic (no I/O, no clock): what a provider is sent over time."""

from __future__ import annotations

import pytest

from chunk_worker.errors import SourceUnavailable
from chunk_worker.pacing import LocalPacer, Rate, hold, reserve


def grants(rate: Rate, times: list[float], max_wait: float = 1e9) -> list[float]:
    """When each reservation, asked at `times`, may send its request."""
    state, sent = None, []
    for now in times:
        grant = reserve(state, rate, now, max_wait)
        assert grant.granted
        state = grant.state
        sent.append(now + grant.wait)
    return sent


def test_a_new_bucket_grants_its_burst_at_once():
    assert grants(Rate(1.0, burst=3), [0.0, 0.0, 0.0]) == [0.0, 0.0, 0.0]


def test_requests_beyond_the_burst_are_spaced_at_the_rate():
    assert grants(Rate(2.0, burst=1), [0.0] * 5) == [0.0, 0.5, 1.0, 1.5, 2.0]


@pytest.mark.parametrize("rate", [Rate(1.0), Rate(5.0, burst=2), Rate(20 / 60)])
def test_any_window_holds_at_most_burst_plus_rate_times_its_length(rate):
    sent = grants(rate, [0.0] * 40 + [30.0] * 40)
    for window in (1.0, 3.0, 10.0):
        worst = max(sum(1 for t in sent if start <= t < start + window) for start in sent)
        assert worst <= rate.burst + rate.per_second * window + 1e-9


def test_an_idle_bucket_refills_only_up_to_its_burst():
    state = reserve(None, Rate(1.0, burst=2), 0.0, 0.0).state
    later = grants(Rate(1.0, burst=2), [100.0, 100.0, 100.0])
    assert reserve(state, Rate(1.0, burst=2), 100.0, 0.0).wait == 0.0
    assert later == [100.0, 100.0, 101.0]


def test_a_reservation_that_would_wait_too_long_takes_nothing():
    rate = Rate(1.0)
    state = reserve(None, rate, 0.0, 0.0).state  # the only token
    refused = reserve(state, rate, 0.0, max_wait=0.5)
    assert (refused.granted, refused.wait) == (False, 1.0)
    assert reserve(refused.state, rate, 0.0, max_wait=1.0).wait == 1.0  # nobody lost a turn to it


def test_hold_makes_the_next_request_wait_that_long_and_later_ones_follow_at_the_rate():
    rate = Rate(1.0, burst=5)
    state = hold(None, rate, 10.0, 30.0)  # Retry-After: 30 at t=10
    sent = []
    for _ in range(3):
        grant = reserve(state, rate, 10.0, 1e9)
        state = grant.state
        sent.append(10.0 + grant.wait)
    assert sent == [40.0, 41.0, 42.0]


def test_hold_never_shortens_a_longer_wait():
    rate = Rate(1.0)
    state = hold(None, rate, 0.0, 60.0)
    assert reserve(hold(state, rate, 0.0, 5.0), rate, 0.0, 1e9).wait == 60.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_local_pacer_sleeps_what_the_bucket_says():
    clock = FakeClock()
    pacer = LocalPacer(clock, clock.sleep)
    for _ in range(3):
        pacer.acquire("p", Rate(4.0), deadline=100.0)
    assert clock.slept == [0.25, 0.25]


def test_local_pacer_refuses_a_wait_past_the_deadline_without_sleeping():
    clock = FakeClock()
    pacer = LocalPacer(clock, clock.sleep)
    pacer.hold("p", Rate(1.0), 120.0)
    with pytest.raises(SourceUnavailable, match="PIXCRAWLER_LIST_DEADLINE_SECONDS"):
        pacer.acquire("p", Rate(1.0), deadline=60.0)
    assert clock.slept == []


def test_buckets_are_separate_per_name():
    clock = FakeClock()
    pacer = LocalPacer(clock, clock.sleep)
    pacer.acquire("a", Rate(1.0), 10.0)
    pacer.acquire("b", Rate(1.0), 10.0)
    assert clock.slept == []
