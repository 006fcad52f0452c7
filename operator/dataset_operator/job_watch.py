"""The operator's own Kubernetes Jobs, kept current by a watch instead of a LIST every scheduler cycle.

One paginated LIST fills the cache, then a watch from its resourceVersion applies every change. The
watch is opened with a server-side timeout, so every `resync_seconds` the cache is listed afresh (any
drift is bounded by that); a 410 Gone (the resourceVersion is too old) lists at once. The scheduler
reads the cache: a Job it created a moment ago may not be in it yet, which it already tolerates (a
chunk claimed without a listed Job counts as running and is looked up by name before it is requeued).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger(__name__)

PAGE = 500


class JobWatch:
    def __init__(self, api: client.ApiClient, namespace: str | None, label_selector: str,
                 resync_seconds: int = 300) -> None:
        self.batch = client.BatchV1Api(api)
        self.namespace = namespace
        self.selector = label_selector
        self.resync_seconds = resync_seconds
        self.jobs: dict[str, dict[str, Any]] = {}  # Job uid -> the Job as the API returns it
        self.synced = asyncio.Event()
        self.lists = 0  # full LISTs so far: one at start, then one per resync or 410

    def snapshot(self) -> list[dict[str, Any]]:
        return list(self.jobs.values())

    async def run(self) -> None:
        while True:
            try:
                version = await self._list()
                await self._follow(version)
            except asyncio.CancelledError:
                raise
            except ApiException as exc:
                if exc.status != 410:
                    log.warning("watching Jobs failed: %s %s; listing again", exc.status, exc.reason)
                    await asyncio.sleep(1)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                log.warning("watching Jobs failed: %s; listing again", exc or type(exc).__name__)
                await asyncio.sleep(1)
            except Exception:  # whatever went wrong, a stale cache must not stay: list again
                log.exception("watching Jobs failed; listing again")
                await asyncio.sleep(1)

    def _list_call(self):  # noqa: ANN202
        if self.namespace:
            return self.batch.list_namespaced_job, (self.namespace,)
        return self.batch.list_job_for_all_namespaces, ()

    async def _list(self) -> str:
        call, args = self._list_call()
        jobs: dict[str, dict[str, Any]] = {}
        token = None
        while True:
            response = await call(*args, label_selector=self.selector, limit=PAGE, _preload_content=False,
                                  **({"_continue": token} if token else {}))
            body = await response.json()
            for job in body.get("items", []):
                jobs[job["metadata"]["uid"]] = job
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                break
        self.jobs = jobs
        self.lists += 1
        self.synced.set()
        return body["metadata"]["resourceVersion"]

    async def _follow(self, version: str) -> None:
        """Applies events until the server ends the watch (its timeout: time to resync)."""
        call, args = self._list_call()
        async with watch.Watch() as stream:
            async for event in stream.stream(call, *args, label_selector=self.selector, resource_version=version,
                                             timeout_seconds=self.resync_seconds, allow_watch_bookmarks=True):
                kind, job = event["type"], event["raw_object"]
                if kind in ("ADDED", "MODIFIED"):
                    self.jobs[job["metadata"]["uid"]] = job
                elif kind == "DELETED":
                    self.jobs.pop(job["metadata"]["uid"], None)
