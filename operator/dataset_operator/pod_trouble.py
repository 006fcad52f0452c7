"""Why a chunk's pod does not run, or why it ended, read from the Job, its pods and its events. Pure:
the inspector gathers those objects (as the API server's JSON) and these functions name the trouble,
so a DatasetJob says `WorkerImageUnavailable` instead of sitting at 0/3 with no reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from dataset_operator.jobs import CONTAINER

SERVICE_ACCOUNT_MISSING = "WorkerServiceAccountMissing"
PODS_NOT_CREATED = "WorkerPodsNotCreated"
IMAGE_UNAVAILABLE = "WorkerImageUnavailable"
CANNOT_START = "WorkerCannotStart"
UNSCHEDULABLE = "Unschedulable"
OOM_KILLED = "WorkerOOMKilled"
WORKER_FAILED = "WorkerFailed"
DEADLINE_EXCEEDED = "ChunkDeadlineExceeded"

STUCK_REASONS = (SERVICE_ACCOUNT_MISSING, PODS_NOT_CREATED, IMAGE_UNAVAILABLE, CANNOT_START, UNSCHEDULABLE)
ENDED_REASONS = (OOM_KILLED, WORKER_FAILED, DEADLINE_EXCEEDED)

IMAGE_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"})
START_WAITING = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError"})


@dataclass(frozen=True)
class Trouble:
    reason: str
    message: str
    since: float | None = None  # when it began (epoch seconds), for the grace period of a stuck Job

    def describe(self) -> str:
        return f"{self.reason}: {self.message}"


def timestamp(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _worker_status(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return next((s for s in statuses if s.get("name") == CONTAINER), statuses[0] if statuses else {})


def _image_of(pod: dict[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    return next((c.get("image", "") for c in containers if c.get("name") == CONTAINER), "")


def _memory_limit(pod: dict[str, Any]) -> str | None:
    containers = (pod.get("spec") or {}).get("containers") or []
    for container in containers:
        if container.get("name") == CONTAINER:
            return ((container.get("resources") or {}).get("limits") or {}).get("memory")
    return None


def stuck(pods: Iterable[dict[str, Any]], events: Iterable[dict[str, Any]], job_created: float | None
          ) -> Trouble | None:
    """An active Job whose pod cannot be made, placed or started. None while nothing is wrong (a pod
    that is pulling or starting normally is not trouble)."""
    pods = list(pods)
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "?")
        created = timestamp((pod.get("metadata") or {}).get("creationTimestamp"))
        waiting = (_worker_status(pod).get("state") or {}).get("waiting") or {}
        why = waiting.get("reason")
        detail = (waiting.get("message") or "").strip()
        if why in IMAGE_WAITING:
            return Trouble(IMAGE_UNAVAILABLE, f"pod {name}: image {_image_of(pod)!r} cannot be pulled ({why})"
                           + (f": {detail}" if detail else ""), created)
        if why in START_WAITING:
            return Trouble(CANNOT_START, f"pod {name}: the worker container cannot start ({why})"
                           + (f": {detail}" if detail else ""), created)
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if (condition.get("type"), condition.get("status"), condition.get("reason")) == (
                    "PodScheduled", "False", "Unschedulable"):
                return Trouble(UNSCHEDULABLE, f"pod {name} cannot be scheduled: {condition.get('message', '')}".strip(),
                               timestamp(condition.get("lastTransitionTime")) or created)
    if pods:
        return None
    refused = [event for event in events if event.get("reason") == "FailedCreate"]
    if not refused:
        return None
    latest = max(refused, key=lambda event: _event_time(event) or 0.0)
    message = (latest.get("message") or "").strip()
    first = min((_event_time(event) for event in refused if _event_time(event)), default=None)
    if "serviceaccount" in message and "not found" in message:
        return Trouble(SERVICE_ACCOUNT_MISSING, f"the Job cannot create its pod: {message}", first or job_created)
    return Trouble(PODS_NOT_CREATED, f"the Job cannot create its pod: {message}", first or job_created)


def _event_time(event: dict[str, Any]) -> float | None:
    return timestamp(event.get("firstTimestamp") or event.get("eventTime") or event.get("lastTimestamp")
                     or (event.get("metadata") or {}).get("creationTimestamp"))


def ended(job: dict[str, Any], pods: Iterable[dict[str, Any]]) -> Trouble:
    """Why a failed Job failed: the worker's own termination says more than the Job's condition
    (`BackoffLimitExceeded` is all the Job knows of an OOM kill)."""
    conditions = (job.get("status") or {}).get("conditions") or []
    failed = next((c for c in conditions if c.get("type") == "Failed" and c.get("status") == "True"), {})
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "?")
        terminated = (_worker_status(pod).get("state") or {}).get("terminated") or {}
        if not terminated:
            continue
        code = terminated.get("exitCode")
        if terminated.get("reason") == "OOMKilled":
            limit = _memory_limit(pod)
            at = f" of {limit}" if limit else ""
            return Trouble(OOM_KILLED, f"pod {name}: the worker was killed at its memory limit{at} (exit {code})")
        if code not in (None, 0):
            said = (terminated.get("message") or "").strip()
            return Trouble(WORKER_FAILED, f"pod {name}: the worker exited with code {code}"
                           + (f": {said[-400:]}" if said else ""))
    if failed.get("reason") == "DeadlineExceeded":
        return Trouble(DEADLINE_EXCEEDED, f"the chunk ran past its Job's activeDeadlineSeconds: {failed.get('message', '')}")
    return Trouble(WORKER_FAILED, f"{failed.get('reason', 'Failed')}: {failed.get('message', '')}".strip())


def grace(trouble: Trouble, stuck_seconds: float, unschedulable_seconds: float) -> float:
    """How long a stuck Job may wait: longer when no node fits, so an autoscaler can add one."""
    return unschedulable_seconds if trouble.reason == UNSCHEDULABLE else stuck_seconds


def given_up(trouble: Trouble, after: float) -> Trouble:
    return Trouble(trouble.reason, f"{trouble.message} (given up after {after:.0f}s)", trouble.since)


def gives_up(trouble: Trouble, now: float, grace: float) -> bool:
    """A stuck Job is given up (deleted, its chunk retried by the retry policy) once its trouble has
    lasted `grace` seconds, so it stops holding a quota slot."""
    return trouble.since is not None and now - trouble.since >= grace
