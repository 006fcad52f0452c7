"""Is the worker ServiceAccount in a DatasetJob's namespace? Asked before admitting its chunks: a Job
there could not make a pod, so without the account the chunks wait with reason
`WorkerServiceAccountMissing` and hold no quota. The operator does not create the account itself:
that would need the right to create identities in every namespace it serves; the chart creates it
in `worker.namespaces`."""

from __future__ import annotations

import logging
import time

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger(__name__)

PRESENT_TTL_SECONDS = 30.0
MISSING_TTL_SECONDS = 2.0  # short: creating the account should start the job within a few seconds


def missing_message(name: str, namespace: str) -> str:
    return (f'ServiceAccount "{name}" not found in namespace "{namespace}", so a chunk pod cannot be created; '
            f"add the namespace to the chart's worker.namespaces, or `kubectl create serviceaccount {name} "
            f"-n {namespace}`")


class WorkerIdentity:
    def __init__(self, api: client.ApiClient, name: str) -> None:
        self.core = client.CoreV1Api(api)
        self.name = name
        self.known: dict[str, tuple[bool, float]] = {}  # namespace -> (present, checked at)
        self.unreadable: set[str] = set()

    async def missing(self, namespaces: set[str]) -> set[str]:
        now = time.monotonic()
        result = set()
        for namespace in namespaces:
            present, checked = self.known.get(namespace, (False, -1e9))
            ttl = PRESENT_TTL_SECONDS if present else MISSING_TTL_SECONDS
            if now - checked >= ttl:
                present = await self._present(namespace)
                self.known[namespace] = (present, now)
            if not present:
                result.add(namespace)
        return result

    async def _present(self, namespace: str) -> bool:
        try:
            await self.core.read_namespaced_service_account(self.name, namespace)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            if namespace not in self.unreadable:  # cannot tell (RBAC): admit, the pod inspector still speaks up
                self.unreadable.add(namespace)
                log.warning("cannot read ServiceAccount %s/%s: %s %s", namespace, self.name, exc.status, exc.reason)
            return True
