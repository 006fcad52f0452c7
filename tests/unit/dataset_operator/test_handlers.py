"""The kopf handlers' own decisions, without an API server."""

import asyncio
from types import SimpleNamespace

from dataset_operator import handlers
from dataset_operator.registry import Registry


class WantedJobs:
    """Stands in for planning: records which refs the events woke it for."""

    def __init__(self) -> None:
        self.wanted: list[str] = []
        self.forgotten: list[str] = []

    def want(self, ref) -> None:
        self.wanted.append(ref.uid)

    def forget(self, uid: str) -> None:
        self.forgotten.append(uid)


def memo() -> SimpleNamespace:
    return SimpleNamespace(context=SimpleNamespace(registry=Registry(), planning=WantedJobs()))


def body(uid: str) -> dict:
    return {"metadata": {"uid": uid, "namespace": "team", "name": "cats"}, "spec": {"tier": "free"}}


def test_every_event_of_a_job_wakes_planning_with_its_registry_entry():
    shared = memo()
    for event in (None, "ADDED", "MODIFIED"):
        asyncio.run(handlers.observe(body=body("u-1"), type=event, memo=shared))
    assert shared.context.planning.wanted == ["u-1", "u-1", "u-1"]
    assert list(shared.context.registry.jobs) == ["u-1"]


def test_a_deleted_job_leaves_the_registry_and_planning():
    shared = memo()
    asyncio.run(handlers.observe(body=body("u-1"), type="ADDED", memo=shared))
    asyncio.run(handlers.observe(body=body("u-1"), type="DELETED", memo=shared))
    assert shared.context.registry.jobs == {}
    assert shared.context.planning.forgotten == ["u-1"]
