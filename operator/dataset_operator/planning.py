"""Keeps every DatasetJob the leader knows queued under its current tier: plans it once per term
(`Planner.ensure_planned` is idempotent, so a restart re-plans only what Redis lacks), and moves its
queued chunks when spec.tier changes.

This runs beside kopf rather than as its create, resume and field handlers: those persist their
progress and a diff base in each object's annotations, three writes and five watch events a job on
top of the one status write planning needs, and at 10,000 new jobs kopf holds every waiting event in
memory as a whole body. Each job is retried on its own schedule (counting its lists, a step that
failed) and never holds up the others; a failure shows on that job as an event and a metric."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

from kubernetes_asyncio import client

from dataset_operator import events, jobs, status
from dataset_operator.in_flight import InFlight
from dataset_operator.list_counting import CountingLists, ListsNotReadable
from dataset_operator.plan import InvalidSpec, JobPlan
from dataset_operator.planner import Planner
from dataset_operator.queue import ChunkQueue
from dataset_operator.registry import JobRef, Registry

log = logging.getLogger(__name__)

CONCURRENCY = 16  # jobs planned at once: each is a few Redis calls and one status write
COUNTING_DELAY = 2.0  # while a Job counts the job's URL lists
UNREADABLE_DELAY = 30.0  # the list Job failed; counting again after this
FAILED_DELAY = 15.0  # any other failure of a step
BUSY_DELAY = 1.0  # wanted again while its step runs: looked at again after this


class Planning:
    def __init__(self, planner: Planner, queue: ChunkQueue, registry: Registry, api: client.ApiClient,
                 running: Callable[[str], set[int]]) -> None:
        self.planner = planner
        self.queue = queue
        self.registry = registry
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.running = running
        self.queued_tier: dict[str, str] = {}  # uid -> the tier its chunks are queued under, this term
        self.due: dict[str, float] = {}  # uid -> when to look at it next (monotonic)
        self._heap: list[tuple[float, int, str]] = []
        self._order = itertools.count()
        self.busy = InFlight()  # with its ref marked deleting, no step of a job starts after `settled`
        self.errors = events.JobErrors("planning", self._post)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def want(self, ref: JobRef) -> None:
        """Called on every watch event: cheap when the job is queued under its tier already."""
        if ref.deleting or ref.terminal or self.queued_tier.get(ref.uid) == ref.tier:
            return
        if ref.uid not in self.due:
            self._schedule(ref.uid, 0.0)

    def forget(self, uid: str) -> None:
        self.queued_tier.pop(uid, None)
        self.due.pop(uid, None)
        self.errors.clear(uid)

    async def run(self) -> None:
        try:
            while True:
                for uid in self._take_due(CONCURRENCY - len(self.busy)):
                    self.busy.enter(uid)
                    task = asyncio.create_task(self._step(uid), name=f"plan {uid}")
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                await self._sleep()
        finally:
            for task in list(self._tasks):
                task.cancel()

    def _schedule(self, uid: str, delay: float) -> None:
        at = time.monotonic() + delay
        self.due[uid] = at
        heapq.heappush(self._heap, (at, next(self._order), uid))
        self._wake.set()

    def _take_due(self, room: int) -> list[str]:
        taken: list[str] = []
        now = time.monotonic()
        while self._heap and len(taken) < room and self._heap[0][0] <= now:
            at, _, uid = heapq.heappop(self._heap)
            if self.due.get(uid) != at:
                continue  # rescheduled or forgotten since
            if uid in self.busy:
                self._schedule(uid, BUSY_DELAY)  # its step still runs: look again after it
                continue
            del self.due[uid]
            taken.append(uid)
        return taken

    async def _sleep(self) -> None:
        """Until a job is wanted, a step ends (room for the next), or the earliest retry is due."""
        self._wake.clear()
        timeout = None
        if self._heap and len(self.busy) < CONCURRENCY:
            timeout = self._heap[0][0] - time.monotonic()
            if timeout <= 0:
                return
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass

    async def _step(self, uid: str) -> None:
        try:
            ref = self.registry.jobs.get(uid)
            if ref is None or ref.deleting or ref.terminal:
                return
            retry = await self._attempt(ref)
            if retry is not None and not ref.deleting:
                self._schedule(uid, retry)
        finally:
            await self.busy.leave(uid)
            self._wake.set()

    async def _attempt(self, ref: JobRef) -> float | None:
        """One step toward queued-under-its-tier; returns the delay before the next, or None when done."""
        try:
            if ref.uid not in self.queued_tier:
                await self._plan(ref)
            if self.queued_tier.get(ref.uid, ref.tier) != ref.tier:
                await self.queue.retier(ref.uid, ref.tier, ref.submitted_at)
                self.queued_tier[ref.uid] = ref.tier
            self.errors.clear(ref.uid)
            return None
        except InvalidSpec as exc:
            await self._write(ref, {"phase": "Failed", "reason": status.INVALID_SPEC, "message": str(exc),
                                    "conditions": status.set_condition(
                                        list(ref.status.get("conditions") or []), "Failed", True,
                                        status.INVALID_SPEC, str(exc), ref.generation, status.now_iso())})
            await self._post(ref, status.INVALID_SPEC, str(exc), "Warning")
            return None
        except CountingLists as exc:
            if not status.planned(ref.status) and ref.status.get("message") != str(exc):
                await self._write(ref, {"phase": "Pending", "reason": status.COUNTING_URL_LISTS, "message": str(exc)})
            return COUNTING_DELAY
        except ListsNotReadable as exc:
            await self._failed(ref, exc, "ListsNotReadable")
            return UNREADABLE_DELAY
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis, the API server: this job waits, the others go on
            await self._failed(ref, exc, "PlanningFailed")
            return FAILED_DELAY

    async def _plan(self, ref: JobRef) -> None:
        plan = await self.planner.ensure_planned(ref, running=self.running(ref.uid),
                                                 rebuild=status.planned(ref.status))
        tier = plan.tier if plan else await self.queue.tier_of(ref.uid) or ref.tier
        if plan is None and not status.planned(ref.status):
            plan = await self.queue.load_plan(ref.uid)  # queued by an earlier step whose status write failed
        if plan is not None:
            first = not status.planned(ref.status)
            await self._write(ref, planned_status(ref, plan))
            if first:
                await self._post(ref, "Queued",
                                        f"{plan.total_items} images in {plan.chunk_count} chunks", "Normal")
                log.info("planned %d chunks", plan.chunk_count, extra={"fields": {"job": ref.key}})
        self.queued_tier[ref.uid] = tier

    async def _write(self, ref: JobRef, changes: dict[str, Any]) -> None:
        if not changes:
            return
        await self.custom.patch_namespaced_custom_object_status(
            jobs.GROUP, jobs.VERSION, ref.namespace, jobs.PLURAL, ref.name, {"status": changes},
            _content_type="application/merge-patch+json")
        ref.status.update({key: value for key, value in changes.items() if value is not None})
        for key in [key for key, value in changes.items() if value is None]:
            ref.status.pop(key, None)

    async def _failed(self, ref: JobRef, exc: Exception, reason: str) -> None:
        message = await self.errors.report(ref, exc, reason, "planning is retried")
        log.warning("planning %s: %s", ref.key, message, extra={"fields": {"job": ref.key}})

    async def _post(self, ref: JobRef, reason: str, message: str, kind: str) -> None:
        await events.post_event(self.core, ref, reason, message, kind)


def planned_status(ref: JobRef, plan: JobPlan) -> dict[str, Any]:
    """What a plan adds to the status: the list counts (so a re-plan needs no list Job) and, the
    first time, the Queued phase with every chunk queued."""
    changes: dict[str, Any] = {}
    if plan.list_pages and ref.status.get("listPages") != plan.list_pages:
        changes["listCounts"] = {str(position): count for position, count in plan.list_counts.items()}
        changes["listPages"] = plan.list_pages
    if not status.planned(ref.status):
        changes.update({"phase": "Queued", "reason": None, "message": None, "progress": f"0/{plan.chunk_count}",
                        "chunks": {"total": plan.chunk_count, "queued": plan.chunk_count, "running": 0,
                                   "succeeded": 0, "failed": 0},
                        "images": {"requested": 0}, "output": {"location": plan.output},
                        "observedGeneration": ref.generation})
    return changes

