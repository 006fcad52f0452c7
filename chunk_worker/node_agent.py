"""The node agent (a DaemonSet): reports this node's free disk and available memory to Redis,
so the scheduler only admits chunks the nodes have room for. Reports expire, so a dead agent's
node stops counting."""

from __future__ import annotations

import logging
import signal
import threading
import time

import psutil
import redis

from chunk_worker.contract import Keys

log = logging.getLogger(__name__)


def measure(disk_path: str) -> dict[str, int | float]:
    return {
        "disk_free": psutil.disk_usage(disk_path).free,
        "memory_available": psutil.virtual_memory().available,
        "at": round(time.time(), 3),
    }


def publish(client: redis.Redis, keys: Keys, node: str, values: dict[str, int | float], ttl: int) -> None:
    """The report under node:<name> with a TTL, and its time in the `nodes` index the scheduler reads."""
    with client.pipeline(transaction=True) as pipe:
        pipe.hset(keys.node(node), mapping=values)
        pipe.expire(keys.node(node), ttl)
        pipe.zadd(keys.nodes, {node: values["at"]})
        pipe.execute()


def report(client: redis.Redis, keys: Keys, node: str, disk_path: str, ttl: int) -> dict[str, int | float]:
    values = measure(disk_path)
    publish(client, keys, node, values, ttl)
    return values


def run(client: redis.Redis, keys: Keys, node: str, disk_path: str, interval: float, once: bool = False) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ttl = max(int(interval * 3), 5)
    while True:
        try:
            values = report(client, keys, node, disk_path, ttl)
            log.info("node report", extra={"fields": {"node": node, **values}})
        except redis.RedisError as exc:
            log.warning("node report not written: %s", exc)
        if once or stop.wait(interval):
            return 0
