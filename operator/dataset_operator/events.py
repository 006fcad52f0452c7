"""Kubernetes Events about a DatasetJob (`kubectl describe` and `kubectl get events` show them),
posted by the loops that run outside kopf's handlers, and their once-per-error reports of a job's failures."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from dataset_operator import jobs, metrics, status
from dataset_operator.registry import JobRef

log = logging.getLogger(__name__)


async def post_event(core: client.CoreV1Api, ref: JobRef, reason: str, message: str, kind: str) -> None:
    """Best effort: an event that cannot be posted is not worth failing the step that had it to say."""
    now = status.now_iso()
    body = {
        "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
        "involvedObject": {"apiVersion": f"{jobs.GROUP}/{jobs.VERSION}", "kind": "DatasetJob",
                           "name": ref.name, "namespace": ref.namespace, "uid": ref.uid},
        "reason": reason,
        "message": message[:1024],
        "type": kind,
        "source": {"component": jobs.MANAGED_BY},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        await core.create_namespaced_event(ref.namespace, body)
    except ApiException as exc:
        log.debug("event not posted: %s", exc.reason)


class JobErrors:
    """One loop's failures on single jobs: counted each time (pixcrawler_job_errors_total{loop}), and
    a Warning event on that job once per distinct error, not once per cycle."""

    def __init__(self, loop: str, post: Callable[[JobRef, str, str, str], Awaitable[None]]) -> None:
        self.loop = loop
        self.post = post
        self.last: dict[str, str] = {}  # job uid -> the error it last met

    async def report(self, ref: JobRef, exc: Exception, reason: str, context: str) -> str:
        """Returns the error as said (`Type: text`, bounded)."""
        metrics.JOB_ERRORS.labels(loop=self.loop).inc()
        message = f"{type(exc).__name__}: {exc}"[:1000]
        if self.last.get(ref.uid) != message:
            self.last[ref.uid] = message
            await self.post(ref, reason, f"{context}: {message}", "Warning")
        return message

    def clear(self, uid: str) -> None:
        self.last.pop(uid, None)
