"""kopf handlers for DatasetJobs: every event feeds the registry and wakes planning (planning.py,
which plans new jobs and follows tier changes outside kopf's change handlers); delete cleans up.
They only run in the leader (the app starts kopf after winning the Lease)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import kopf
import redis.asyncio as aioredis
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from chunk_worker.errors import ChunkError
from chunk_worker.storage import open_storage
from dataset_operator import jobs
from dataset_operator.plan import leftover_pages
from dataset_operator.planning import Planning
from dataset_operator.queue import ChunkQueue
from dataset_operator.registry import Registry
from dataset_operator.scheduler import Scheduler
from dataset_operator.settings import OperatorSettings

RESOURCE = ("pixcrawler.io", "v1alpha1", "datasetjobs")
FINALIZER = "pixcrawler.io/cleanup"
STOP_WORKERS_SECONDS = 60  # a pod's terminationGracePeriodSeconds (30) plus room

registry = kopf.OperatorRegistry()
log = logging.getLogger(__name__)


@dataclass
class Context:
    """What the handlers share with the scheduler, passed in kopf's memo."""

    settings: OperatorSettings
    queue: ChunkQueue
    registry: Registry
    planning: Planning
    scheduler: Scheduler


def _ctx(memo: Any) -> Context:
    return memo.context


@kopf.on.event(*RESOURCE, registry=registry)
async def observe(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Keeps the in-memory registry the scheduler and the status writer read."""
    ctx = _ctx(memo)
    if type == "DELETED":
        ctx.registry.forget(body["metadata"]["uid"])
        ctx.planning.forget(body["metadata"]["uid"])
    else:
        ctx.planning.want(ctx.registry.observe(dict(body)))


@kopf.on.delete(*RESOURCE, registry=registry, retries=3, backoff=2, timeout=120)
async def cleanup(body: kopf.Body, memo: kopf.Memo, spec: kopf.Spec, **_: Any) -> None:
    """Chunk Jobs are stopped first (so no worker writes after the cleanup), then every Redis key of
    the job goes. If Redis stays down, the deletion still completes after a few tries, with a warning."""
    ctx = _ctx(memo)
    uid = body["metadata"]["uid"]
    ctx.registry.forget(uid)
    ctx.planning.forget(uid)
    await ctx.planning.busy.settled(uid)
    await ctx.scheduler.creator.creating.settled(uid)
    if not await stop_workers(ctx, body["metadata"]["namespace"], uid):
        kopf.warn(body, reason="CleanupIncomplete",
                  message="chunk pods still running; Redis keys they write later may remain")
    for attempt in range(1, ctx.settings.redis_delete_attempts + 1):
        try:
            await ctx.queue.remove_job(uid, ((body.get("status") or {}).get("chunks") or {}).get("total"))
            break
        except aioredis.RedisError as exc:
            if attempt == ctx.settings.redis_delete_attempts:
                kopf.warn(body, reason="CleanupIncomplete",
                          message=f"Redis unreachable ({exc}); keys of job {uid} may remain")
                break
            await asyncio.sleep(min(2 ** attempt, 10))
    if (spec.get("output") or {}).get("retainPolicy") == "Delete":
        location = ((body.get("status") or {}).get("output") or {}).get("location")
        if location:
            removed = await asyncio.to_thread(_delete_output, location)
            kopf.info(body, reason="OutputDeleted", message=f"removed {removed} objects under {location}")
        return
    leftover = leftover_pages(dict(spec), dict(body.get("status") or {}), uid, body["metadata"]["namespace"],
                              body["metadata"]["name"], ctx.settings.storage)
    if leftover is not None:
        try:
            await asyncio.to_thread(_delete_pages, *leftover)
        except ChunkError as exc:
            kopf.warn(body, reason="CleanupIncomplete", message=f"URL list pages under {leftover[0]} remain: {exc}")


async def stop_workers(ctx: Context, namespace: str, uid: str) -> bool:
    """Deletes the job's chunk Jobs and waits (bounded) for their pods to end, so no worker writes
    progress or dedup keys after the Redis cleanup. Owner garbage collection would only start once
    the finalizer is gone, too late. Returns False when pods outlived the wait."""
    selector = f"{jobs.LABEL_JOB_UID}={uid}"
    batch = client.BatchV1Api(ctx.scheduler.api)
    core = client.CoreV1Api(ctx.scheduler.api)
    try:
        listed = await batch.list_namespaced_job(namespace, label_selector=selector)
        for job in listed.items:
            try:
                await batch.delete_namespaced_job(job.metadata.name, namespace, propagation_policy="Background")
            except ApiException as exc:
                if exc.status != 404:
                    raise
        deadline = time.monotonic() + STOP_WORKERS_SECONDS
        while (await core.list_namespaced_pod(namespace, label_selector=selector)).items:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(1)
    except ApiException as exc:
        log.warning("chunk Jobs of %s not stopped: %s %s", uid, exc.status, exc.reason)
        return False
    return True


def _delete_pages(location: str, pages: str) -> int:
    """The kept dataset stays; only the job's URL list pages go (finalize removes them too)."""
    storage = open_storage(location, pool_size=4)
    try:
        return storage.delete_tree(pages)
    finally:
        storage.close()


def _delete_output(location: str) -> int:
    storage = open_storage(location, pool_size=4)
    try:
        return storage.delete_all()
    finally:
        storage.close()
