"""The operator's own Kubernetes Jobs, kept current by a watch (watched_cache) instead of a LIST every
scheduler cycle. The scheduler reads the cache: a Job it created a moment ago may not be in it yet,
which it already tolerates (a chunk claimed without a listed Job counts as running and is looked up
by name before it is requeued).
"""

from __future__ import annotations

from typing import Any, Callable

from kubernetes_asyncio import client

from dataset_operator import jobs
from dataset_operator.watched_cache import WatchedCache

OPERATOR_MADE = f"{jobs.LABEL_MANAGED_BY}={jobs.MANAGED_BY}"
"""The label every Job the operator makes carries, and so every pod of those Jobs."""


class JobWatch(WatchedCache):
    what = "Jobs"

    def __init__(self, api: client.ApiClient, namespace: str | None, label_selector: str = OPERATOR_MADE,
                 resync_seconds: int = 300) -> None:
        super().__init__(namespace, label_selector, resync_seconds)
        self.batch = client.BatchV1Api(api)

    def _list_call(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        if self.namespace:
            return self.batch.list_namespaced_job, (self.namespace,)
        return self.batch.list_job_for_all_namespaces, ()
