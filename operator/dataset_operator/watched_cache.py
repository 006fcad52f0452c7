"""A cache of Kubernetes objects kept current by a watch instead of a LIST every cycle.

One paginated LIST fills the cache, then a watch from its resourceVersion applies every change. The
watch is opened with a server-side timeout, so every `resync_seconds` the cache is listed afresh (any
drift is bounded by that); a 410 Gone (the resourceVersion is too old) lists at once. A subclass
names the list call (namespaced or for all namespaces); the JobWatch and the PodWatch are such
caches.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from kubernetes_asyncio import watch
from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger(__name__)

PAGE = 500
RETRY_SECONDS = 1.0


def apply(items: dict[str, dict[str, Any]], event: dict[str, Any]) -> None:
    """One watch event applied to a cache keyed by uid; BOOKMARK and anything else change nothing."""
    kind, obj = event.get("type"), event.get("raw_object") or {}
    uid = (obj.get("metadata") or {}).get("uid")
    if uid is None:
        return
    if kind in ("ADDED", "MODIFIED"):
        items[uid] = obj
    elif kind == "DELETED":
        items.pop(uid, None)


class WatchedCache:
    what = "objects"  # for the log lines

    def __init__(self, namespace: str | None, label_selector: str, resync_seconds: int = 300) -> None:
        self.namespace = namespace
        self.selector = label_selector
        self.resync_seconds = resync_seconds
        self.items: dict[str, dict[str, Any]] = {}  # uid -> the object as the API returns it
        self.synced = asyncio.Event()
        self.lists = 0  # full LISTs so far: one at start, then one per resync or 410

    def snapshot(self) -> list[dict[str, Any]]:
        return list(self.items.values())

    def _list_call(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """The API's list function and its positional arguments (the namespace, if any)."""
        raise NotImplementedError

    async def run(self) -> None:
        while True:
            try:
                version = await self._list()
                await self._follow(version)
            except asyncio.CancelledError:
                raise
            except ApiException as exc:
                if exc.status != 410:
                    log.warning("watching %s failed: %s %s; listing again", self.what, exc.status, exc.reason)
                    await asyncio.sleep(RETRY_SECONDS)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                log.warning("watching %s failed: %s; listing again", self.what, exc or type(exc).__name__)
                await asyncio.sleep(RETRY_SECONDS)
            except Exception:  # whatever went wrong, a stale cache must not stay: list again
                log.exception("watching %s failed; listing again", self.what)
                await asyncio.sleep(RETRY_SECONDS)

    async def _page(self, token: str | None) -> dict[str, Any]:
        """One page of the LIST, as the API server's JSON."""
        call, args = self._list_call()
        response = await call(*args, label_selector=self.selector, limit=PAGE, _preload_content=False,
                              **({"_continue": token} if token else {}))
        return await response.json()

    async def _events(self, version: str) -> AsyncIterator[dict[str, Any]]:
        """The watch from `version` until the server ends it (its timeout: time to resync)."""
        call, args = self._list_call()
        async with watch.Watch() as stream:
            async for event in stream.stream(call, *args, label_selector=self.selector, resource_version=version,
                                             timeout_seconds=self.resync_seconds, allow_watch_bookmarks=True):
                yield event

    async def _list(self) -> str:
        items: dict[str, dict[str, Any]] = {}
        token = None
        while True:
            body = await self._page(token)
            for obj in body.get("items", []):
                items[obj["metadata"]["uid"]] = obj
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                break
        self.items = items
        self.lists += 1
        self.synced.set()
        return body["metadata"]["resourceVersion"]

    async def _follow(self, version: str) -> None:
        async for event in self._events(version):
            apply(self.items, event)
