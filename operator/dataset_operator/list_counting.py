"""Counting a DatasetJob's URL lists before planning, by a Job of the worker image: the operator
process never requests a user-given URL. The Job writes each list as pages under the job's output
(what the chunks read instead of the list) and answers in the job's Redis hash; the operator reads
the answer, and keeps the counts in the status so that a re-plan (after Redis lost its data) gives
the same chunks from the same pages."""

from __future__ import annotations

import logging

from chunk_worker.contract import ListCountRequest, ListCounts
from dataset_operator import completion, jobs
from dataset_operator.plan import InvalidSpec
from dataset_operator.pod_inspector import PodInspector
from dataset_operator.queue import ChunkQueue
from dataset_operator.registry import JobRef
from dataset_operator.settings import OperatorSettings

log = logging.getLogger(__name__)


class CountingLists(RuntimeError):
    """The lists are being counted: plan again shortly."""


class ListsNotReadable(RuntimeError):
    """A list could not be counted now (unreachable, a 5xx, a crash): planning is retried later."""


class ListCounter:
    def __init__(self, settings: OperatorSettings, queue: ChunkQueue, inspector: PodInspector) -> None:
        self.settings = settings
        self.queue = queue
        self.inspector = inspector

    async def counts(self, ref: JobRef, request: ListCountRequest) -> dict[int, int]:
        """The counts, once the Job has answered. Until then CountingLists; an unusable list is
        InvalidSpec; a failed attempt is ListsNotReadable, and the next call starts another."""
        attempt = await self.queue.list_count_attempt(ref.uid)
        name = jobs.count_lists_job_name(ref.name, ref.uid, attempt)
        job = await self.inspector.read_job(name, ref.namespace)  # before the answer: a Job that ended has answered
        answer = await self.queue.list_counts(ref.uid)
        if answer is not None:
            return await self._use(ref, answer, attempt)
        if job is None:
            await self._create(ref, request, attempt)
            raise CountingLists(f"Job {ref.namespace}/{name} counts the URL lists")
        outcome = completion.classify(job)
        if outcome == "active":
            trouble, given_up = await self.inspector.lone_job_trouble(
                job, self.settings.stuck_pod_grace_seconds, self.settings.unschedulable_grace_seconds)
            if trouble is None:
                raise CountingLists(f"Job {ref.namespace}/{name} counts the URL lists")
            if given_up is None:
                raise CountingLists(f"Job {ref.namespace}/{name} cannot run: {trouble.describe()}")
            why = given_up.describe()
        else:
            why = "it ended without an answer in Redis" if outcome == "succeeded" else \
                (await self.inspector.ended(job)).describe()
        await self.queue.next_list_count_attempt(ref.uid, attempt + 1)
        raise ListsNotReadable(f"the Job counting the URL lists failed ({why}); counting again")

    async def _use(self, ref: JobRef, answer: ListCounts, attempt: int) -> dict[int, int]:
        if answer.error is None:
            return answer.counts
        if answer.permanent:
            raise InvalidSpec(answer.error)
        await self.queue.next_list_count_attempt(ref.uid, attempt + 1)
        raise ListsNotReadable(answer.error)

    async def _create(self, ref: JobRef, request: ListCountRequest, attempt: int) -> None:
        manifest = jobs.build_count_lists_job(dataset=ref.name, namespace=ref.namespace, uid=ref.uid, tier=ref.tier,
                                              attempt=attempt, spec_json=request.model_dump_json(
                                                  by_alias=True, exclude_defaults=True), settings=self.settings)
        await self.inspector.create_job(ref.namespace, manifest)
        log.info("list-count Job created", extra={"fields": {"job": ref.key, "attempt": attempt}})
