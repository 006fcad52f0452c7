"""The DatasetJob status as a function of what Redis and the live Jobs say. Pure: the status
task gathers the facts and writes the result only when it changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from chunk_worker.contract import COUNTERS
from dataset_operator.pod_trouble import Trouble

SUSPENDED = "Suspended"
BACKOFF = "Backoff"
INVALID_SPEC = "InvalidSpec"
COUNTING_URL_LISTS = "CountingUrlLists"
FINALIZING = "Finalizing"
FINALIZE_FAILED = "FinalizeFailed"
CHUNKS_FAILED = "ChunksFailed"


def planned(job_status: dict[str, Any]) -> bool:
    """Whether the job was ever queued (a phase past Pending): then a missing queue means Redis lost it."""
    return job_status.get("phase") not in (None, "Pending")


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def compact_ranges(indices: Iterable[int]) -> str:
    """{0,1,2,3,7,9,10} -> "0-3,7,9-10": the record of finished chunks stays small."""
    ordered = sorted(set(indices))
    parts: list[str] = []
    start = previous = None
    for value in ordered:
        if previous is not None and value == previous + 1:
            previous = value
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = value
    if start is not None:
        parts.append(str(start) if start == previous else f"{start}-{previous}")
    return ",".join(parts)


def parse_ranges(text: str | None) -> set[int]:
    result: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        result.update(range(int(low), int(high or low) + 1))
    return result


@dataclass
class Facts:
    """What the operator knows about one DatasetJob at one moment."""

    total: int
    done: set[int]
    failed: set[int]
    running: int
    counters: dict[str, int]  # settled chunks' totals plus live running chunks
    queue_position: int | None
    waiting_reason: str | None  # from admission: WaitingForQuota, WaitingForNode*, ...
    suspended: bool
    waiting_message: str = ""  # replaces the waiting reason's usual message when set
    trouble: Trouble | None = None  # a chunk pod that cannot be made, placed or started, now
    last_failure: dict[str, Any] | None = None  # the latest failed attempt: chunk, attempt, reason, message, time
    backoff: int = 0  # chunks waiting out a retry backoff
    generation: int | None = None
    extra_message: str = ""
    location: str | None = None
    format: str | None = None
    finalize_state: str | None = None  # running | backoff | succeeded | failed, once every chunk settled
    finalize_message: str = ""
    outputs: dict[str, str] = field(default_factory=dict)  # index, card, attribution: set once finalized
    conditions: list[dict[str, Any]] = field(default_factory=list)
    start_time: str | None = None
    completion_time: str | None = None


def set_condition(conditions: list[dict[str, Any]], kind: str, status: bool, reason: str, message: str,
                  generation: int | None, now: str) -> list[dict[str, Any]]:
    """Replaces one condition, keeping lastTransitionTime when its status did not change."""
    value = "True" if status else "False"
    result = []
    found = False
    for condition in conditions:
        if condition.get("type") == kind:
            found = True
            changed = condition.get("status") != value
            condition = {"type": kind, "status": value, "reason": reason, "message": message,
                         "lastTransitionTime": now if changed else condition.get("lastTransitionTime", now)}
            if generation is not None:
                condition["observedGeneration"] = generation
        result.append(condition)
    if not found:
        condition = {"type": kind, "status": value, "reason": reason, "message": message, "lastTransitionTime": now}
        if generation is not None:
            condition["observedGeneration"] = generation
        result.append(condition)
    return result


def _last_failure(facts: Facts) -> str:
    failure = facts.last_failure
    if not failure:
        return ""
    return (f"; last failure: chunk {failure.get('chunk')} attempt {failure.get('attempt')}, "
            f"{failure.get('reason')}: {failure.get('message', '')}")


def phase_and_reason(facts: Facts) -> tuple[str, str | None, str]:
    """One actionable reason: a named pod trouble (WorkerOOMKilled, WorkerImageUnavailable, ...) wins
    over the generic Backoff and ChunksFailed, so the status says what to fix."""
    finished = len(facts.done) + len(facts.failed)
    failure_reason = (facts.last_failure or {}).get("reason")
    if facts.total and finished >= facts.total:
        if not facts.done:  # nothing to finalize: the chunks' failure is the news
            return ("Failed", failure_reason or CHUNKS_FAILED,
                    f"all {facts.total} chunks failed for good{_last_failure(facts)}")
        if facts.finalize_state == "failed":
            return "Failed", FINALIZE_FAILED, facts.finalize_message
        if facts.finalize_state != "succeeded":
            return "Running", FINALIZING, facts.finalize_message or "every chunk settled; the dataset is being finalized"
        if facts.failed:
            return ("Failed", failure_reason or CHUNKS_FAILED,
                    f"{len(facts.failed)} of {facts.total} chunks failed for good{_last_failure(facts)}")
        return "Succeeded", None, f"all {facts.total} chunks succeeded"
    if facts.suspended and facts.running == 0:
        return "Suspended", SUSPENDED, "spec.suspend is true; set it to false to resume"
    if facts.running > 0 and facts.trouble is not None:
        return "Running", facts.trouble.reason, f"{facts.running} chunks running; {facts.trouble.message}"
    if facts.running > 0:
        waiting = f"; {facts.backoff} wait out a retry backoff{_last_failure(facts)}" if facts.backoff else ""
        return "Running", None, f"{facts.running} chunks running{waiting}"
    if facts.backoff and facts.backoff >= facts.total - finished:
        return ("Queued", failure_reason or BACKOFF,
                f"{facts.backoff} chunks wait out a retry backoff{_last_failure(facts)}")
    reason = facts.waiting_reason
    messages = {
        "WaitingForQuota": "the cluster's concurrent chunk quota is in use",
        "WaitingForNodeDisk": "nodes report too little free disk for another chunk",
        "WaitingForNodeMemory": "nodes report too little available memory for another chunk",
    }
    return "Queued", reason, facts.waiting_message or messages.get(reason or "", "waiting for admission")


def build_status(facts: Facts, now: str | None = None) -> dict[str, Any]:
    now = now or now_iso()
    phase, reason, message = phase_and_reason(facts)
    if facts.extra_message:
        message = f"{message}; {facts.extra_message}"
    finished = len(facts.done) + len(facts.failed)
    admitted = facts.running > 0 or finished > 0
    conditions = facts.conditions
    conditions = set_condition(conditions, "Admitted", admitted, "ChunksAdmitted" if admitted else (reason or "Queued"),
                               "at least one chunk was admitted" if admitted else message, facts.generation, now)
    conditions = set_condition(conditions, "Progressing", phase == "Running", reason or phase, message,
                               facts.generation, now)
    conditions = set_condition(conditions, "Complete", phase == "Succeeded", "AllChunksSucceeded"
                               if phase == "Succeeded" else phase, message if phase == "Succeeded" else "",
                               facts.generation, now)
    conditions = set_condition(conditions, "Failed", phase == "Failed", (reason or "Failed") if phase == "Failed" else phase,
                               message if phase == "Failed" else "", facts.generation, now)
    images = {name: int(facts.counters.get(name, 0)) for name in COUNTERS if name != "bytes_uploaded"}
    status: dict[str, Any] = {
        "phase": phase,
        "reason": reason,
        "message": message,
        "queuePosition": facts.queue_position,
        "progress": f"{finished}/{facts.total}",
        "chunks": {
            "total": facts.total,
            "queued": max(facts.total - finished - facts.running, 0),
            "running": facts.running,
            "succeeded": len(facts.done),
            "failed": len(facts.failed),
        },
        "finishedChunks": compact_ranges(facts.done),
        "failedChunks": compact_ranges(facts.failed),
        "images": images,
        "bytesUploaded": int(facts.counters.get("bytes_uploaded", 0)),
        "conditions": conditions,
        "startTime": facts.start_time or (now if admitted else None),
        "completionTime": facts.completion_time or (now if phase in ("Succeeded", "Failed") else None),
        "observedGeneration": facts.generation,
        "output": {"location": facts.location, "format": facts.format, **facts.outputs},
        "lastFailure": facts.last_failure,
    }
    return status


def differs(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Only a real change is written; timestamps of unchanged conditions are kept by set_condition."""
    return any(old.get(key) != value for key, value in new.items())
