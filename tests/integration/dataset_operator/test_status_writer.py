"""The status pass against a real redis-server: one DatasetJob whose update fails (its storage down, a
rebuild refused) is reported on that job and does not stop the others."""

import asyncio

import redis.asyncio as aioredis

from chunk_worker.contract import Keys
from dataset_operator import metrics
from dataset_operator.queue import ChunkQueue
from dataset_operator.registry import JobRef, Registry
from dataset_operator.settings import OperatorSettings
from dataset_operator.status_writer import StatusWriter


class NoApi:
    """Stands in for the API client: this test posts no request (events are captured below)."""

    @staticmethod
    def sanitize_for_serialization(value):
        return value


class NothingRuns:
    @staticmethod
    def by_job() -> dict[str, list[str]]:
        return {}


class Writer(StatusWriter):
    def __init__(self, queue: ChunkQueue, registry: Registry, broken: str) -> None:
        super().__init__(OperatorSettings(), queue, NoApi(), registry, running=NothingRuns(), planner=None,
                         inspector=None)
        self.broken, self.updated, self.events = broken, [], []

    async def update(self, ref, progress, plan, ranks, backoff) -> None:
        if ref.name == self.broken:
            raise OSError("azure container 'ds': cannot write")
        self.updated.append(ref.name)

    async def post_event(self, ref, reason, message, kind) -> None:
        self.events.append((ref.name, reason, kind, message))


def ref(name: str) -> JobRef:
    return JobRef(uid=f"uid-{name}", namespace="ns", name=name, spec={}, status={}, generation=1, created="")


def test_a_job_whose_update_fails_does_not_stop_the_others(redis_url):
    async def main() -> Writer:
        client = aioredis.from_url(redis_url)
        await client.flushall()
        registry = Registry({"uid-a": ref("a"), "uid-b": ref("b")})
        writer = Writer(ChunkQueue(client, Keys("t:")), registry, broken="a")
        try:
            await writer.cycle()
            await writer.cycle()
        finally:
            await client.aclose()
        return writer

    before = metrics.JOB_ERRORS.labels(loop="status")._value.get()
    writer = asyncio.run(main())
    assert writer.updated == ["b", "b"]
    assert [(name, reason, kind) for name, reason, kind, _ in writer.events] == [("a", "StatusUpdateFailed", "Warning")]
    assert "cannot write" in writer.events[0][3]
    assert metrics.JOB_ERRORS.labels(loop="status")._value.get() - before == 2
