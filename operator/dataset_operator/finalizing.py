"""The finalize hand-off: once every chunk of a DatasetJob has settled, one more Kubernetes Job from the
worker image (`python -m chunk_worker finalize`) streams the manifests into the index, the split
metadata, the dataset card and the attribution file. The operator only creates that Job and reads its
outcome, so it never holds the index in memory; the Job is retried like a chunk (same backoff, same
`retries.maxAttempts`)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

from chunk_worker.contract import ATTRIBUTION_NAME, CARD_NAME, INDEX_PARQUET, REPORT_NAME
from dataset_operator import completion, jobs
from dataset_operator.plan import JobPlan, finalize_spec
from dataset_operator.pod_inspector import PodInspector
from dataset_operator.queue import ChunkQueue
from dataset_operator.registry import JobRef
from dataset_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

FinalizeState = Literal["running", "backoff", "succeeded", "failed"]
RUNNING = "the finalize Job writes the index and the dataset card"


@dataclass(frozen=True)
class FinalizeProgress:
    state: FinalizeState
    attempt: int
    message: str = ""


def outputs(location: str) -> dict[str, str]:
    """Where the finalize Job put what the status names."""
    base = location.rstrip("/")
    return {"index": f"{base}/{INDEX_PARQUET}", "card": f"{base}/{CARD_NAME}",
            "attribution": f"{base}/{ATTRIBUTION_NAME}", "report": f"{base}/{REPORT_NAME}"}


class Finalizer:
    def __init__(self, settings: OperatorSettings, queue: ChunkQueue, inspector: PodInspector) -> None:
        self.settings = settings
        self.queue = queue
        self.inspector = inspector

    async def step(self, ref: JobRef, plan: JobPlan) -> FinalizeProgress:
        """Idempotent, called every status cycle while the job is finalizing: creates the current
        attempt's Job if it is missing and due, and turns a finished one into the next step."""
        attempt, not_before = await self.queue.finalize_attempt(ref.uid)
        if time.time() < not_before:
            return FinalizeProgress("backoff", attempt, "the finalize Job waits out a retry backoff")
        name = jobs.finalize_job_name(ref.name, ref.uid, attempt)
        job = await self.inspector.read_job(name, ref.namespace)
        if job is None:
            await self._create(ref, plan, attempt)
            return FinalizeProgress("running", attempt, RUNNING)
        outcome = completion.classify(job)
        decision = completion.next_step(outcome, attempt, plan.max_attempts, self.settings.retry_base_seconds,
                                        self.settings.retry_max_seconds)
        if decision.step == "succeed":
            return FinalizeProgress("succeeded", attempt)
        if decision.step == "wait":
            trouble, given_up = await self.inspector.lone_job_trouble(
                job, self.settings.stuck_pod_grace_seconds, self.settings.unschedulable_grace_seconds)
            if trouble is None:
                return FinalizeProgress("running", attempt, RUNNING)
            if given_up is None:
                return FinalizeProgress("running", attempt, f"the finalize Job cannot run: {trouble.describe()}")
            decision = completion.next_step("failed", attempt, plan.max_attempts, self.settings.retry_base_seconds,
                                            self.settings.retry_max_seconds)
            why = given_up.describe()
        else:
            why = (await self.inspector.ended(job)).describe()
        if decision.step == "fail":
            log.warning("finalize failed for good", extra={"fields": {"job": ref.key, "attempt": attempt, "why": why}})
            return FinalizeProgress("failed", attempt, f"the finalize Job failed {attempt} times; last: {why}")
        await self.queue.retry_finalize(ref.uid, attempt + 1, time.time() + decision.delay)
        return FinalizeProgress("backoff", attempt + 1, f"finalize attempt {attempt} failed ({why}); retrying")

    async def _create(self, ref: JobRef, plan: JobPlan, attempt: int) -> None:
        manifest = jobs.build_finalize_job(
            dataset=ref.name, namespace=ref.namespace, uid=ref.uid, tier=ref.tier, attempt=attempt,
            spec_json=finalize_spec(plan, ref.spec.get("sources", [])).dump(), settings=self.settings)
        await self.inspector.create_job(ref.namespace, manifest)
        log.info("finalize Job created", extra={"fields": {"job": ref.key, "attempt": attempt}})
