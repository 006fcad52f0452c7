"""One task folds Redis progress into every DatasetJob's status: at most one write per job per
interval, and only when something changed. It also notices a job whose queue vanished (Redis lost
its data) and has it rebuilt from the spec and the status, the record of what finished."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from chunk_worker.contract import COUNTERS
from dataset_operator import events, finalizing, jobs, metrics, status
from dataset_operator.finalizing import Finalizer
from dataset_operator.planner import Planner
from dataset_operator.pod_inspector import PodInspector
from dataset_operator.queue import ChunkQueue, JobProgress, PlanOutline, split_chunk_id
from dataset_operator.registry import JobRef, Registry
from dataset_operator.running_chunks import RunningChunks
from dataset_operator.settings import OperatorSettings

log = logging.getLogger(__name__)


def finished(ref: JobRef) -> bool:
    return ref.status.get("reason") == status.INVALID_SPEC or ref.status.get("phase") in ("Succeeded", "Failed")


class StatusWriter:
    def __init__(self, settings: OperatorSettings, queue: ChunkQueue, api: client.ApiClient, registry: Registry,
                 running: RunningChunks, planner: Planner, inspector: PodInspector) -> None:
        self.settings = settings
        self.queue = queue
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.registry = registry
        self.running = running
        self.planner = planner
        self.finalizer = Finalizer(settings, queue, inspector)
        self.errors = events.JobErrors("status", self.post_event)
        self.last_facts: dict[str, status.Facts] = {}  # job uid -> what its written status was built from
        self.last_progress: dict[str, JobProgress] = {}  # the previous pass's reads (finished sets reused)

    async def run(self) -> None:
        while True:
            try:
                await self.cycle()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("status cycle failed")
            await asyncio.sleep(self.settings.status_interval_seconds)

    async def cycle(self) -> None:
        ranks = await self.queue.queue_ranks()
        backoff = Counter(split_chunk_id(m)[0] for m in await self.queue.delayed())
        phases: Counter[str] = Counter()
        refs = [ref for ref in list(self.registry.jobs.values()) if not ref.deleting]
        for uid in set(self.last_facts) - {ref.uid for ref in refs}:
            del self.last_facts[uid]  # deleted jobs
        active = [ref for ref in refs if not finished(ref)]
        running = self.running.by_job()
        asked = [(ref.uid, running.get(ref.uid, ())) for ref in active]
        progress = await self.queue.progress(asked, self.last_progress)
        self.last_progress = {uid: found for uid, found in progress.items() if found is not None}
        outlines = await self.queue.read_outlines(self.last_progress)
        for ref in refs:
            try:
                if finished(ref):
                    self.queue.forget_plan(ref.uid)  # not needed again: the caches stay bounded
                    self.last_facts.pop(ref.uid, None)
                else:
                    await self.update(ref, progress[ref.uid], outlines.get(ref.uid), ranks, backoff)
                self.errors.clear(ref.uid)
            except ApiException as exc:
                if exc.status != 404:
                    log.warning("status of %s not written: %s %s %s", ref.key, exc.status, exc.reason,
                                (exc.body or "")[:500])
            except Exception as exc:  # one job's trouble (storage, a bad rebuild) must not stop the others
                await self.job_failed(ref, exc)
            phases[ref.status.get("phase") or "Pending"] += 1
        for phase in ("Pending", "Queued", "Running", "Succeeded", "Failed", "Suspended"):
            metrics.DATASETJOBS.labels(phase=phase).set(phases.get(phase, 0))

    async def update(self, ref: JobRef, progress: JobProgress | None, plan: PlanOutline | None,
                     ranks: dict[str, int], backoff: Counter[str]) -> None:
        if progress is None:
            if status.planned(ref.status):  # so Redis lost it: rebuild from the status
                await self.planner.ensure_planned(ref, running=self.running.indices_of(ref.uid),
                                                  rebuild=True)
            return
        if plan is None:  # lost since its progress was read: the next pass rebuilds it
            return
        done, failed, settled = progress.done, progress.failed, progress.settled
        counters = Counter(settled)
        for live in progress.live:
            counters.update(live)
        finalize = None
        if done and len(done) + len(failed) >= plan.chunk_count:
            finalize = await self.finalizer.step(ref, await self.queue.load_plan(ref.uid))
        facts = status.Facts(
            total=plan.chunk_count,
            done=done,
            failed=failed,
            running=len(progress.live),
            counters=dict(counters),
            queue_position=ranks.get(ref.uid),
            waiting_reason=ref.waiting_reason,
            waiting_message=ref.waiting_message,
            trouble=ref.trouble,
            last_failure=progress.last_failure,
            suspended=ref.suspended,
            backoff=backoff.get(ref.uid, 0),
            generation=ref.generation,
            extra_message=ref.extra_message,
            location=plan.output,
            format=plan.format,
            finalize_state=finalize.state if finalize else None,
            finalize_message=finalize.message if finalize else "",
            outputs=finalizing.outputs(plan.output) if finalize and finalize.state == "succeeded" else {},
            conditions=list(ref.status.get("conditions") or []),
            start_time=ref.status.get("startTime"),
            completion_time=ref.status.get("completionTime"),
        )
        if self.last_facts.get(ref.uid) == facts:
            return  # the same facts make the same status: nothing to build or write
        new = status.build_status(facts)
        new["imagesSettled"] = {name: settled.get(name, 0) for name in COUNTERS}
        if not status.differs(ref.status, new):
            self.last_facts[ref.uid] = facts
            return
        old_phase = ref.status.get("phase")
        await self.custom.patch_namespaced_custom_object_status(
            jobs.GROUP, jobs.VERSION, ref.namespace, jobs.PLURAL, ref.name, {"status": new},
            _content_type="application/merge-patch+json")
        ref.status.update(new)
        self.last_facts[ref.uid] = facts
        if new["phase"] != old_phase:
            await self.event(ref, new)

    async def job_failed(self, ref: JobRef, exc: Exception) -> None:
        log.error("status of %s not updated", ref.key, exc_info=exc, extra={"fields": {"job": ref.key}})
        await self.errors.report(ref, exc, "StatusUpdateFailed", "the operator cannot update this job's status")

    async def event(self, ref: JobRef, new: dict[str, Any]) -> None:
        """One event per phase transition: rare by construction, so no further rate limit is needed."""
        kind = "Warning" if new["phase"] == "Failed" else "Normal"
        await self.post_event(ref, new.get("reason") or new["phase"], f"{new['phase']}: {new.get('message', '')}", kind)

    async def post_event(self, ref: JobRef, reason: str, message: str, kind: str) -> None:
        await events.post_event(self.core, ref, reason, message, kind)
