"""The pods of the operator's Jobs, kept current by a watch (watched_cache) so that the pod inspector
reads them from memory instead of a LIST per namespace each cycle. Every pod the operator's Jobs make
carries the Job's `managed-by` label (jobs.py puts the Job's labels on its pod template), and the Job
controller adds the Job's name."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Iterable

from kubernetes_asyncio import client

from dataset_operator.job_watch import OPERATOR_MADE
from dataset_operator.watched_cache import WatchedCache

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def pods_by_job(pods: Iterable[dict[str, Any]], namespace: str, names: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Job name -> its pods, for the Jobs `names` of one namespace."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for pod in pods:
        meta = pod.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(JOB_NAME_LABEL)
        if owner in names and meta.get("namespace") == namespace:
            found[owner].append(pod)
    return found


class PodWatch(WatchedCache):
    what = "pods"

    def __init__(self, api: client.ApiClient, namespace: str | None, label_selector: str = OPERATOR_MADE,
                 resync_seconds: int = 300) -> None:
        super().__init__(namespace, label_selector, resync_seconds)
        self.core = client.CoreV1Api(api)

    def of_jobs(self, namespace: str, names: set[str]) -> dict[str, list[dict[str, Any]]]:
        return pods_by_job(self.items.values(), namespace, names) if names else {}

    def _list_call(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        if self.namespace:
            return self.core.list_namespaced_pod, (self.namespace,)
        return self.core.list_pod_for_all_namespaces, ()
