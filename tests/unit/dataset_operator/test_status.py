"""DatasetJob status from facts: phase, one actionable reason, conditions, compact chunk ranges."""

import random

from dataset_operator.pod_trouble import Trouble
from dataset_operator.status import (
    Facts,
    build_status,
    compact_ranges,
    differs,
    parse_ranges,
    set_condition,
)

T1, T2 = "2025-06-01T10:00:00Z", "2025-06-01T10:05:00Z"


def facts(**overrides) -> Facts:
    values = dict(total=4, done=set(), failed=set(), running=0, counters={}, queue_position=None,
                  waiting_reason=None, suspended=False)
    return Facts(**(values | overrides))


def condition(status: dict, kind: str) -> dict:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_compact_ranges_example():
    assert compact_ranges([10, 0, 1, 2, 3, 7, 9, 3]) == "0-3,7,9-10"
    assert compact_ranges([]) == ""


def test_compact_and_parse_ranges_round_trip():
    rand = random.Random(7)
    for _ in range(200):
        indices = {rand.randrange(60) for _ in range(rand.randrange(40))}
        assert parse_ranges(compact_ranges(indices)) == indices
    assert parse_ranges(None) == set()


def test_complete_condition_true_only_when_all_chunks_succeeded():
    almost = build_status(facts(done={0, 1, 2}, running=1), T1)
    done = build_status(facts(done={0, 1, 2, 3}, finalize_state="succeeded"), T1)
    assert condition(almost, "Complete")["status"] == "False"
    assert (done["phase"], condition(done, "Complete")["status"], condition(done, "Failed")["status"]) == (
        "Succeeded", "True", "False")
    assert done["completionTime"] == T1


def test_a_chunk_failed_for_good_ends_in_failed_not_complete():
    status = build_status(facts(done={0, 1, 2}, failed={3}, finalize_state="succeeded"), T1)
    assert status["phase"] == "Failed"
    assert (condition(status, "Complete")["status"], condition(status, "Failed")["status"]) == ("False", "True")
    assert (status["finishedChunks"], status["failedChunks"]) == ("0-2", "3")


def test_last_transition_time_kept_when_status_unchanged():
    first = build_status(facts(running=2, done={0}), T1)
    second = build_status(facts(running=1, done={0, 1}, conditions=first["conditions"], start_time=first["startTime"]),
                          T2)
    assert condition(second, "Progressing")["lastTransitionTime"] == T1
    assert condition(second, "Admitted")["lastTransitionTime"] == T1


def test_last_transition_time_moves_when_status_flips():
    running = build_status(facts(running=1, done={0, 1, 2}), T1)
    done = build_status(facts(done={0, 1, 2, 3}, finalize_state="succeeded", conditions=running["conditions"]), T2)
    assert condition(done, "Complete")["lastTransitionTime"] == T2
    assert condition(done, "Progressing")["status"] == "False"


def test_unchanged_facts_are_not_written_again():
    first = build_status(facts(waiting_reason="WaitingForQuota", queue_position=3), T1)
    again = build_status(facts(waiting_reason="WaitingForQuota", queue_position=3, conditions=first["conditions"]), T2)
    assert not differs(first, again)
    moved = build_status(facts(waiting_reason="WaitingForQuota", queue_position=2, conditions=first["conditions"]), T2)
    assert differs(first, moved)


def test_waiting_job_shows_the_admission_reason():
    status = build_status(facts(waiting_reason="WaitingForNodeDisk"), T1)
    assert (status["phase"], status["reason"]) == ("Queued", "WaitingForNodeDisk")
    assert "disk" in status["message"]


def test_suspended_job_with_nothing_running_says_suspended():
    status = build_status(facts(suspended=True, done={0}), T1)
    assert (status["phase"], status["reason"]) == ("Suspended", "Suspended")


def test_job_whose_remaining_chunks_all_back_off_says_backoff():
    status = build_status(facts(done={0, 1}, backoff=2, waiting_reason="WaitingForQuota"), T1)
    assert (status["phase"], status["reason"]) == ("Queued", "Backoff")


def test_chunk_counts_add_up():
    status = build_status(facts(total=10, done={0, 1, 2}, failed={3}, running=2), T1)
    assert status["chunks"] == {"total": 10, "queued": 4, "running": 2, "succeeded": 3, "failed": 1}
    assert status["progress"] == "4/10"


def test_set_condition_adds_a_missing_condition_with_generation():
    result = set_condition([], "Admitted", True, "ChunksAdmitted", "", 3, T1)
    assert result == [{"type": "Admitted", "status": "True", "reason": "ChunksAdmitted", "message": "",
                       "lastTransitionTime": T1, "observedGeneration": 3}]


def test_settled_chunks_wait_for_the_finalize_job_before_complete():
    status = build_status(facts(done={0, 1, 2, 3}, finalize_state="running", finalize_message="writing the card"), T1)
    assert (status["phase"], status["reason"], status["message"]) == ("Running", "Finalizing", "writing the card")
    assert condition(status, "Complete")["status"] == "False"
    assert status["completionTime"] is None


def test_a_finalize_job_failed_for_good_fails_the_job_with_its_reason():
    status = build_status(facts(done={0, 1, 2, 3}, finalize_state="failed", finalize_message="exit 1 three times"), T1)
    assert (status["phase"], status["reason"]) == ("Failed", "FinalizeFailed")
    assert condition(status, "Failed")["reason"] == "FinalizeFailed"


def test_output_names_the_index_and_card_once_finalized():
    outputs = {"index": "file:///d/index.parquet", "card": "file:///d/README.md"}
    status = build_status(facts(done={0, 1, 2, 3}, finalize_state="succeeded", location="file:///d",
                                format="webdataset", outputs=outputs), T1)
    assert status["output"] == {"location": "file:///d", "format": "webdataset", **outputs}


OOM = {"chunk": 2, "attempt": 1, "reason": "WorkerOOMKilled", "time": T1,
       "message": "pod x: the worker was killed at its memory limit of 64Mi (exit 137)"}


def test_backoff_after_a_named_failure_says_that_failure():
    status = build_status(facts(done={0, 1}, backoff=2, last_failure=OOM), T1)
    assert (status["phase"], status["reason"]) == ("Queued", "WorkerOOMKilled")
    assert "chunk 2 attempt 1" in status["message"] and "64Mi" in status["message"]
    assert status["lastFailure"] == OOM


def test_chunks_failed_for_good_name_the_last_failure():
    status = build_status(facts(done={0, 1, 3}, failed={2}, finalize_state="succeeded", last_failure=OOM), T1)
    assert (status["phase"], status["reason"]) == ("Failed", "WorkerOOMKilled")
    assert condition(status, "Failed")["reason"] == "WorkerOOMKilled"
    assert status["message"].startswith("1 of 4 chunks failed for good; last failure: chunk 2")


def test_running_job_with_a_stuck_pod_names_the_trouble():
    stuck = Trouble("WorkerImageUnavailable", "pod p: image '127.0.0.1:1/w:0' cannot be pulled (ImagePullBackOff)")
    status = build_status(facts(running=1, trouble=stuck), T1)
    assert (status["phase"], status["reason"]) == ("Running", "WorkerImageUnavailable")
    assert "127.0.0.1:1/w:0" in status["message"]


def test_a_waiting_message_replaces_the_reasons_usual_one():
    status = build_status(facts(waiting_reason="WorkerServiceAccountMissing",
                                waiting_message='ServiceAccount "pixcrawler-worker" not found'), T1)
    assert (status["phase"], status["reason"]) == ("Queued", "WorkerServiceAccountMissing")
    assert status["message"] == 'ServiceAccount "pixcrawler-worker" not found'
    assert status["lastFailure"] is None


def test_a_job_whose_every_chunk_failed_ends_failed_without_finalizing():
    status = build_status(facts(total=2, failed={0, 1}, last_failure=OOM), T1)
    assert (status["phase"], status["reason"]) == ("Failed", "WorkerOOMKilled")
    assert status["message"].startswith("all 2 chunks failed for good")
