"""The planner's use of the list-count Job: asked once for every URL list (pages under the job's
output), and not again when the status kept the counts and the pages' place (a re-plan after Redis
lost its data), which then gives the same chunks."""

from __future__ import annotations

import asyncio

from chunk_worker.contract import ListCountRequest
from dataset_operator.plan import chunk_spec
from dataset_operator.planner import Planner
from dataset_operator.registry import JobRef
from dataset_operator.settings import OperatorSettings

UID = "9d1c-uid"
SPEC = {"chunkSize": 4, "sources": [
    {"label": "cat", "urls": ["https://img.example/1.jpg", "https://img.example/2.jpg"]},
    {"label": "dog", "urlList": {"url": "https://lists.example/dogs.txt"}},
    {"label": "fox", "urlList": {"url": "https://lists.example/foxes.csv", "format": "csv", "count": 20}}]}


class Counter:
    """Stands in for the list-count Job: answers `counts`, recording what it was asked."""

    def __init__(self, counts: dict[int, int]) -> None:
        self.counts_given = counts
        self.asked: list[ListCountRequest] = []

    async def counts(self, ref: JobRef, request: ListCountRequest) -> dict[int, int]:
        self.asked.append(request)
        return self.counts_given


def ref(status: dict) -> JobRef:
    return JobRef(uid=UID, namespace="team", name="pets", spec=SPEC, status=status, generation=1,
                  created="2026-01-01T00:00:00Z")


def planner(counter: Counter) -> Planner:
    return Planner(OperatorSettings(storage="azure://datasets"), queue=None, counter=counter)


def test_the_first_plan_asks_for_every_list_as_pages_under_the_jobs_output():
    counter = Counter({1: 7, 2: 12})
    plan = asyncio.run(planner(counter).plan(ref({})))
    [asked] = counter.asked
    assert (list(asked.lists), asked.limits, asked.output, asked.pages, asked.page_size) == (
        [1, 2], {2: 20}, "azure://datasets/team/pets", f".pixcrawler/lists/{UID}", 4)
    assert [source.size for source in plan.sources] == [2, 7, 12]  # the short list plans what it holds
    assert plan.list_pages == f".pixcrawler/lists/{UID}" and plan.list_counts == {1: 7, 2: 12}


def test_a_replan_from_the_kept_counts_runs_no_list_job_and_gives_the_same_chunks():
    first = asyncio.run(planner(Counter({1: 7, 2: 12})).plan(ref({})))
    kept = {"listCounts": {"1": 7, "2": 12}, "listPages": first.list_pages}
    counter = Counter({1: 999, 2: 999})  # what the lists would say now
    again = asyncio.run(planner(counter).plan(ref(kept)))
    assert counter.asked == []
    assert again.chunk_count == first.chunk_count == 6
    assert [chunk_spec(again, i) for i in range(6)] == [chunk_spec(first, i) for i in range(6)]
    assert all(part.pages for i in range(6) for part in chunk_spec(again, i).sources)


def test_counts_kept_without_pages_by_a_job_not_yet_planned_are_read_again_into_pages():
    counter = Counter({1: 7, 2: 12})
    plan = asyncio.run(planner(counter).plan(ref({"listCounts": {"1": 7}})))
    assert len(counter.asked) == 1 and plan.list_pages is not None


def test_a_job_planned_before_pages_existed_is_replanned_as_then_without_a_list_job():
    counter = Counter({1: 999, 2: 999})
    plan = asyncio.run(planner(counter).plan(ref({"phase": "Running", "listCounts": {"1": 7}})))
    assert counter.asked == [] and plan.list_pages is None
    assert [source.size for source in plan.sources] == [2, 7, 20]
