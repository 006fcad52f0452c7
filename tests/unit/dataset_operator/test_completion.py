"""What a finished chunk Job means: done, retry after a jittered backoff, or failed for good."""

import random

import pytest

from dataset_operator.completion import backoff_seconds, classify, failure_message, next_step


def job(*conditions: tuple[str, str, str]) -> dict:
    return {"status": {"conditions": [{"type": kind, "status": status, "reason": reason, "message": "m"}
                                      for kind, status, reason in conditions]}}


def test_exit_code_2_fails_the_chunk_without_retry():
    outcome = classify(job(("FailureTarget", "True", "PodFailurePolicy"), ("Failed", "True", "PodFailurePolicy")))
    assert outcome == "failed_permanent"
    assert next_step(outcome, attempt=1, max_attempts=3, base=10, cap=600).step == "fail"


def test_other_failure_with_attempts_left_retries_after_a_delay():
    outcome = classify(job(("Failed", "True", "BackoffLimitExceeded")))
    decision = next_step(outcome, attempt=1, max_attempts=3, base=10, cap=600, rand=random.Random(1))
    assert outcome == "failed" and decision.step == "retry" and 5 <= decision.delay <= 10


def test_attempts_exhausted_fails_the_chunk():
    assert next_step("failed", attempt=3, max_attempts=3, base=10, cap=600).step == "fail"


def test_complete_job_succeeds_and_unfinished_job_waits():
    assert next_step(classify(job(("Complete", "True", ""))), 1, 3, 10, 600).step == "succeed"
    assert classify(job(("Failed", "False", "BackoffLimitExceeded"))) == "active"
    assert classify({"status": {}}) == "active"
    assert next_step("active", 1, 3, 10, 600).step == "wait"


@pytest.mark.parametrize("attempt, ceiling", [(1, 10), (2, 20), (3, 40), (4, 80), (9, 600)])
def test_backoff_grows_and_is_jittered_within_bounds(attempt, ceiling):
    rand = random.Random(attempt)
    delays = [backoff_seconds(attempt, base=10, cap=600, rand=rand) for _ in range(200)]
    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert max(delays) - min(delays) > ceiling / 4  # spread, so retries of many chunks do not land together


def test_failure_message_names_the_reason():
    assert failure_message(job(("Failed", "True", "DeadlineExceeded"))) == "DeadlineExceeded: m"
