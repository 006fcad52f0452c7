"""What a finished chunk Job means for its chunk: done, retry after a backoff, or failed for good. Pure."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

Outcome = Literal["active", "succeeded", "failed", "failed_permanent"]
Step = Literal["wait", "succeed", "retry", "fail"]


def _true_conditions(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    conditions = (job.get("status") or {}).get("conditions") or []
    return {c["type"]: c for c in conditions if c.get("status") == "True"}


def classify(job: dict[str, Any]) -> Outcome:
    """Exit code 2 trips the Job's podFailurePolicy (reason PodFailurePolicy): the spec itself is unusable."""
    conditions = _true_conditions(job)
    if "Complete" in conditions:
        return "succeeded"
    if "Failed" in conditions:
        return "failed_permanent" if conditions["Failed"].get("reason") == "PodFailurePolicy" else "failed"
    return "active"


def failure_message(job: dict[str, Any]) -> str:
    failed = _true_conditions(job).get("Failed") or {}
    return f"{failed.get('reason', 'Failed')}: {failed.get('message', '')}".strip()


@dataclass(frozen=True)
class Decision:
    step: Step
    delay: float = 0.0


def next_step(outcome: Outcome, attempt: int, max_attempts: int, base: float, cap: float,
              rand: random.Random | None = None) -> Decision:
    if outcome == "active":
        return Decision("wait")
    if outcome == "succeeded":
        return Decision("succeed")
    if outcome == "failed_permanent" or attempt >= max_attempts:
        return Decision("fail")
    return Decision("retry", backoff_seconds(attempt, base, cap, rand))


def backoff_seconds(attempt: int, base: float, cap: float, rand: random.Random | None = None) -> float:
    """Exponential with full jitter in the upper half: retries of many chunks do not land together."""
    ceiling = min(cap, base * (2 ** max(attempt - 1, 0)))
    return ceiling * (0.5 + 0.5 * (rand or random).random())
