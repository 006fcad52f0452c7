"""The operator's health and metrics endpoints, as Kubernetes probes and Prometheus see them."""

from __future__ import annotations

import re

import pytest

from tests.cluster.conftest import wait_for

pytestmark = pytest.mark.cluster


def gauge(metrics: str, name: str) -> float | None:
    match = re.search(rf"^{name} ([0-9.e+-]+)$", metrics, re.MULTILINE)
    return float(match.group(1)) if match else None


def leader(process) -> float | None:
    """The process's pixcrawler_leader gauge, or None while its HTTP server is not up yet."""
    try:
        return gauge(process.metrics(), "pixcrawler_leader")
    except OSError:
        return None


def test_leader_and_standby_report_themselves_in_metrics_and_both_are_healthy(operator):
    first = operator.start(PIXCRAWLER_IDENTITY="first")
    wait_for(lambda: leader(first) == 1.0, what="first to lead")
    second = operator.start(PIXCRAWLER_IDENTITY="second")
    wait_for(lambda: leader(second) == 0.0, what="second to serve metrics as a standby")
    assert (first.healthz(), second.healthz()) == (200, 200)
    metrics = first.metrics()
    assert gauge(metrics, "pixcrawler_quota_chunks") == 35.0
    assert "pixcrawler_scheduler_cycle_seconds_count" in metrics


def test_healthz_fails_when_the_scheduler_has_not_cycled_for_the_stale_limit(operator):
    process = operator.start(PIXCRAWLER_SCHEDULER_INTERVAL_SECONDS="4", PIXCRAWLER_HEALTH_STALE_SECONDS="1")
    wait_for(lambda: leader(process) == 1.0, what="the operator to lead")
    wait_for(lambda: process.healthz() == 503, timeout=30, what="/healthz to fail between slow cycles")
    wait_for(lambda: process.healthz() == 200, timeout=30, what="/healthz to recover after a cycle")
