"""Node reports on a real Redis: what the node agent writes, the scheduler's queue reads back from
the `nodes` index (no SCAN), and a node that stopped reporting drops out of it."""

from __future__ import annotations

import asyncio
import time

import redis
import redis.asyncio as aioredis

from chunk_worker import node_agent
from chunk_worker.contract import Keys
from dataset_operator.queue import ChunkQueue

KEYS = Keys("nr:")


def read_reports(redis_url: str, since: float) -> list:
    async def main():
        client = aioredis.from_url(redis_url)
        try:
            return await ChunkQueue(client, KEYS).node_reports(since)
        finally:
            await client.aclose()
    return asyncio.run(main())


def test_the_agents_report_is_read_back_through_the_index(redis_url, tmp_path):
    with redis.Redis.from_url(redis_url) as client:
        client.flushall()
        written = node_agent.report(client, KEYS, "node-a", str(tmp_path), ttl=30)
    [read] = read_reports(redis_url, time.time() - 60)
    assert (read.node, read.disk_free, read.memory_available) == ("node-a", written["disk_free"],
                                                                 written["memory_available"])


def test_a_node_that_stopped_reporting_leaves_the_index(redis_url):
    with redis.Redis.from_url(redis_url) as client:
        client.flushall()
        now = time.time()
        node_agent.publish(client, KEYS, "gone", {"disk_free": 1, "memory_available": 1, "at": now - 120}, 300)
        node_agent.publish(client, KEYS, "live", {"disk_free": 2, "memory_available": 2, "at": now}, 300)
        assert [r.node for r in read_reports(redis_url, now - 60)] == ["live"]
        assert client.zrange(KEYS.nodes, 0, -1) == [b"live"]
