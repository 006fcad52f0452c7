"""Prometheus metrics (prefix pixcrawler_), one registry served on /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from chunk_worker.contract import metric_reasons
from dataset_operator import pod_trouble
from dataset_operator.priority import TIER_RANK

REGISTRY = CollectorRegistry(auto_describe=True)

PENDING_CHUNKS = Gauge("pixcrawler_pending_chunks", "Chunks waiting in the queue, by tier and why they wait.",
                       ["tier", "reason"], registry=REGISTRY)
RUNNING_CHUNKS = Gauge("pixcrawler_running_chunks", "Chunk Jobs running, by tier.", ["tier"], registry=REGISTRY)
QUOTA_USED = Gauge("pixcrawler_quota_used_chunks",
                             "Chunks counted against the quota (live Jobs plus claimed chunks without one).",
                             registry=REGISTRY)
QUOTA = Gauge("pixcrawler_quota_chunks", "The concurrent chunk quota.", registry=REGISTRY)
NODE_SLOTS = Gauge("pixcrawler_node_slots", "Chunk slots the nodes report room for.", registry=REGISTRY)
ADMISSION_ATTEMPTS = Counter("pixcrawler_admission_attempts", "Admission cycles that tried to admit, by result.",
                             ["result"], registry=REGISTRY)
ADMISSION_WAIT = Histogram("pixcrawler_admission_wait_seconds", "Time from submission to a chunk's admission.",
                           ["tier"], buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
                           registry=REGISTRY)
CHUNKS_FINISHED = Counter("pixcrawler_chunks_finished", "Chunk Jobs that ended, by result "
                          "(succeeded, failed, retried).", ["result"], registry=REGISTRY)
IMAGES = Counter("pixcrawler_images", "Images of settled chunks, by status.", ["status"], registry=REGISTRY)
IMAGES_NOT_STORED = Counter("pixcrawler_images_not_stored", "Images of settled chunks that were not stored, by "
                            "reason (manifest reasons; HTTP statuses by class).", ["reason"], registry=REGISTRY)
CHUNK_ATTEMPTS_FAILED = Counter("pixcrawler_chunk_attempts_failed", "Failed chunk attempts, by the reason their "
                                "pod gave (WorkerOOMKilled, WorkerImageUnavailable, ...).", ["reason"],
                                registry=REGISTRY)
JOB_ERRORS = Counter("pixcrawler_job_errors", "Errors met while handling one DatasetJob, by loop (status, "
                     "settle, planning); the other jobs go on.", ["loop"], registry=REGISTRY)
DATASETJOBS = Gauge("pixcrawler_datasetjobs", "DatasetJobs by phase.", ["phase"], registry=REGISTRY)
LEADER = Gauge("pixcrawler_leader", "1 on the leader, 0 on a standby.", registry=REGISTRY)
SCHEDULER_CYCLE = Histogram("pixcrawler_scheduler_cycle_seconds", "Duration of one scheduler cycle.",
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=REGISTRY)


def _initialise() -> None:
    """Every label value of the counters exists from the start at 0: `rate()` sees the first increase,
    and a dashboard panel has a series before anything happened."""
    for result in ("admitted", "empty", "no_slot"):
        ADMISSION_ATTEMPTS.labels(result=result)
    for result in ("succeeded", "failed", "retried"):
        CHUNKS_FINISHED.labels(result=result)
    for status in ("uploaded", "rejected", "failed", "duplicates"):
        IMAGES.labels(status=status)
    for reason in metric_reasons():
        IMAGES_NOT_STORED.labels(reason=reason)
    for reason in (*pod_trouble.STUCK_REASONS, *pod_trouble.ENDED_REASONS):
        CHUNK_ATTEMPTS_FAILED.labels(reason=reason)
    for loop in ("status", "settle", "planning"):
        JOB_ERRORS.labels(loop=loop)
    for tier in TIER_RANK:
        ADMISSION_WAIT.labels(tier=tier)


_initialise()
