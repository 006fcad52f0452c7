"""What runs, read from the Job watch's snapshot without I/O: only chunk Jobs count, a finished or
deleting Job is not active, a chunk claimed without a listed Job runs too; and each DatasetJob shows
the trouble of its lowest-index stuck chunk."""

from __future__ import annotations

from dataset_operator import jobs
from dataset_operator.chunk_outcomes import note_troubles
from dataset_operator.pod_trouble import Trouble
from dataset_operator.queue import Claimed
from dataset_operator.registry import JobRef, Registry
from dataset_operator.running_chunks import RunningChunks, live_jobs


def job(chunk: str | None, condition: str | None = None, deleting: bool = False) -> dict:
    meta: dict = {"name": f"job-{chunk}", "annotations": {jobs.ANNOTATION_CHUNK_ID: chunk} if chunk else {},
                  "labels": {jobs.LABEL_ATTEMPT: "1"}}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    status = {"conditions": [{"type": condition, "status": "True"}]} if condition else {}
    return {"metadata": meta, "status": status}


def test_chunk_jobs_are_sorted_into_active_and_finished_and_others_are_left_out():
    listed = [job("u1-0"), job("u1-1", "Complete"), job("u2-0", "Failed"), job("u2-1", deleting=True), job(None)]
    live = live_jobs(listed)
    assert sorted(live.active) == ["u1-0"]
    assert sorted(jobs.chunk_of(j)[0] for j in live.finished) == ["u1-1", "u2-0", "u2-1"]


def test_claimed_chunks_without_a_listed_job_run_too():
    running = RunningChunks(queue=None)
    running.live = live_jobs([job("u1-0"), job("u2-3")])
    running.claimed([Claimed("u1-4", "u1", 4, 1)])
    assert {uid: sorted(members) for uid, members in running.by_job().items()} == {
        "u1": ["u1-0", "u1-4"], "u2": ["u2-3"]}
    assert running.indices_of("u1") == {0, 4} and running.running_of("u3") == []


def ref(uid: str) -> JobRef:
    return JobRef(uid=uid, namespace="ns", name=uid, spec={}, status={}, generation=1, created="")


def test_each_job_shows_the_trouble_of_its_lowest_index_stuck_chunk_and_the_others_none():
    registry = Registry({"a": ref("a"), "b": ref("b")})
    registry.jobs["b"].trouble = Trouble("Old", "gone since")
    high, low = Trouble("WorkerImageUnavailable", "chunk 10"), Trouble("Unschedulable", "chunk 2")
    note_troubles(registry, {"a-10": high, "a-2": low, "zz-1": high})
    assert (registry.jobs["a"].trouble, registry.jobs["b"].trouble) == (low, None)
