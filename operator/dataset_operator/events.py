"""Kubernetes Events about a DatasetJob (`kubectl describe` and `kubectl get events` show them),
posted by the loops that run outside kopf's handlers."""

from __future__ import annotations

import logging

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from dataset_operator import jobs, status
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
