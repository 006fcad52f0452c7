"""The kopf handlers' own decisions, without an API server."""

import asyncio

from dataset_operator import handlers


class Untouchable:
    """A memo whose every attribute read fails: the handler must not reach the queue or registry."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the handler read memo.{name}")


def test_a_new_job_is_not_retiered_when_kopf_reports_its_tier_at_creation():
    body = {"metadata": {"uid": "u-1", "namespace": "team", "name": "cats"}, "spec": {"tier": "free"}}
    asyncio.run(handlers.tier_changed(body=body, old=None, new="free", memo=Untouchable()))
