"""Reads the pods and events of the operator's Jobs that are not running as they should, for
pod_trouble to name. Only Jobs without a ready pod are looked at. Their pods come from the PodWatch's
cache (no API call); the Job controller's FailedCreate events are still listed, once per namespace
and only for Jobs that have no pod at all, so a cycle of healthy running chunks costs no call."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any, Iterable

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from dataset_operator import pod_trouble
from dataset_operator.pod_trouble import Trouble
from dataset_operator.pod_watch import PodWatch

log = logging.getLogger(__name__)

SETTLING_SECONDS = 2.0  # a Job younger than this is still making its pod: not worth a look


def _meta(job: dict[str, Any]) -> dict[str, Any]:
    return job.get("metadata") or {}


def needs_a_look(job: dict[str, Any], now: float) -> bool:
    status = job.get("status") or {}
    created = pod_trouble.timestamp(_meta(job).get("creationTimestamp")) or now
    return not status.get("ready") and now - created >= SETTLING_SECONDS


class PodInspector:
    def __init__(self, api: client.ApiClient, pods: PodWatch) -> None:
        self.core = client.CoreV1Api(api)
        self.pods = pods
        self.batch = client.BatchV1Api(api)
        self.warned: set[str] = set()

    async def read_job(self, name: str, namespace: str) -> dict[str, Any] | None:
        """One Job as the API returns it, or None if there is none."""
        try:
            job = await self.batch.read_namespaced_job(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return self.batch.api_client.sanitize_for_serialization(job)

    async def create_job(self, namespace: str, manifest: dict[str, Any]) -> None:
        """Creates a Job of a deterministic name; 409 means an earlier call or leader created it."""
        try:
            await self.batch.create_namespaced_job(namespace, manifest)
        except ApiException as exc:
            if exc.status != 409:
                raise

    async def lone_job_trouble(self, job: dict[str, Any], stuck_grace: float,
                               unschedulable_grace: float) -> tuple[Trouble | None, Trouble | None]:
        """For one of the operator's single Jobs (finalize, list count) still active: (its pod's
        trouble, the trouble it was given up for). Given up means deleted after the grace, like a
        chunk's stuck Job; the caller counts the attempt as failed."""
        now = time.time()
        trouble = (await self.stuck([job], now)).get(_meta(job).get("name", ""))
        if trouble is None:
            return None, None
        grace = pod_trouble.grace(trouble, stuck_grace, unschedulable_grace)
        if not pod_trouble.gives_up(trouble, now, grace) or not await self.delete(job):
            return trouble, None
        return trouble, pod_trouble.given_up(trouble, grace)

    async def stuck(self, active: Iterable[dict[str, Any]], now: float) -> dict[str, Trouble]:
        """Job name -> trouble, for the active Jobs whose pod cannot be made, placed or started."""
        by_namespace: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for job in active:
            if needs_a_look(job, now):
                by_namespace[_meta(job).get("namespace", "")].append(job)
        found: dict[str, Trouble] = {}
        for namespace, candidates in by_namespace.items():
            names = {_meta(job)["name"] for job in candidates}
            pods = self.pods.of_jobs(namespace, names)
            events = await self._refusals(namespace, {name for name in names if not pods.get(name)})
            for job in candidates:
                name = _meta(job)["name"]
                trouble = pod_trouble.stuck(pods.get(name, []), events.get(name, []),
                                            pod_trouble.timestamp(_meta(job).get("creationTimestamp")))
                if trouble is not None:
                    found[name] = trouble
        return found

    async def ended(self, job: dict[str, Any]) -> Trouble:
        """Why a finished, failed Job failed (its pods are kept, and watched, until the Job's TTL)."""
        namespace, name = _meta(job).get("namespace", ""), _meta(job).get("name", "")
        pods = self.pods.of_jobs(namespace, {name})
        return pod_trouble.ended(job, pods.get(name, []))

    async def delete(self, job: dict[str, Any]) -> bool:
        """Deletes a stuck Job (its pods with it); False when the API server refused."""
        meta = _meta(job)
        try:
            await self.batch.delete_namespaced_job(meta["name"], meta["namespace"], propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                log.warning("could not delete stuck Job %s: %s %s", meta["name"], exc.status, exc.reason)
                return False
        return True

    async def _refusals(self, namespace: str, names: set[str]) -> dict[str, list[dict[str, Any]]]:
        """The Job controller's FailedCreate events: all a Job that cannot make a pod says about it."""
        if not names:
            return {}
        try:
            response = await self.core.list_namespaced_event(
                namespace, field_selector="involvedObject.kind=Job,reason=FailedCreate", _preload_content=False)
            listed = (await response.json()).get("items", [])
        except ApiException as exc:
            if namespace not in self.warned:  # an RBAC gap is worth one line, not one per cycle
                self.warned.add(namespace)
                log.warning("cannot list Job events in %s: %s %s", namespace, exc.status, exc.reason)
            return {}
        events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in listed:
            name = (event.get("involvedObject") or {}).get("name")
            if name in names:
                events[name].append(event)
        return events
