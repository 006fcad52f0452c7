"""Pacing of search-provider requests across every worker of the cluster: one token bucket per
provider, so 35 chunks of one search send the provider's documented rate, not 35 times it.

The bucket is a reservation scheme (GCRA-like): each request takes a token at once and is told how
long to wait for it, so no worker polls and no two workers are given the same moment. Tokens go
negative by the requests already promised; a request therefore waits `(1 - tokens) / rate`. A 429
or a Retry-After pushes the bucket down so the next grant, for everyone, comes after the wait. In
any window of W seconds at most `burst + rate * W` requests are granted.

`reserve` is the arithmetic; `RedisPacer` runs the same arithmetic as one Lua script on the
worker's Redis (cluster mode: every chunk shares it, the server's clock is the only clock);
`LocalPacer` runs it in the process (a chunk run from a file, without Redis).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import NamedTuple, Protocol

import redis

from chunk_worker.errors import ProgressUnavailable, SourceUnavailable


class Rate(NamedTuple):
    per_second: float
    burst: float = 1.0


class BucketState(NamedTuple):
    tokens: float
    updated: float


class Grant(NamedTuple):
    granted: bool
    wait: float
    state: BucketState


def refill(state: BucketState | None, rate: Rate, now: float) -> BucketState:
    """The bucket at `now`: full when new, refilled at the rate since its last update, never above burst."""
    if state is None:
        return BucketState(rate.burst, now)
    elapsed = max(0.0, now - state.updated)
    return BucketState(min(rate.burst, state.tokens + elapsed * rate.per_second), now)


def reserve(state: BucketState | None, rate: Rate, now: float, max_wait: float) -> Grant:
    """Take one token if it comes within `max_wait`; the wait until it does. A refused reservation
    leaves the bucket as it was (refilled), so a caller out of time costs the others nothing."""
    current = refill(state, rate, now)
    wait = max(0.0, (1.0 - current.tokens) / rate.per_second)
    if wait > max_wait:
        return Grant(False, wait, current)
    return Grant(True, wait, BucketState(current.tokens - 1.0, now))


def hold(state: BucketState | None, rate: Rate, now: float, seconds: float) -> BucketState:
    """The provider asked everyone to wait `seconds` (Retry-After, a 429): the next grant comes no
    earlier than then, later ones at the rate after it."""
    current = refill(state, rate, now)
    return BucketState(min(current.tokens, 1.0 - seconds * rate.per_second), now)


class Pacer(Protocol):
    def acquire(self, bucket: str, rate: Rate, deadline: float) -> None:
        """Block until a request to `bucket` may go; SourceUnavailable if that is past `deadline`
        (monotonic)."""
        ...

    def hold(self, bucket: str, rate: Rate, seconds: float) -> None:
        """Make every user of `bucket` wait `seconds` before its next request."""
        ...


def _too_late(bucket: str, wait: float) -> SourceUnavailable:
    return SourceUnavailable(f"search provider {bucket}: the next request may go in {wait:.1f} s, "
                             "after the search's deadline (PIXCRAWLER_LIST_DEADLINE_SECONDS)")


class LocalPacer:
    """The bucket in this process: a chunk run without Redis shares it among its own threads only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._states: dict[str, BucketState] = {}

    def acquire(self, bucket: str, rate: Rate, deadline: float) -> None:
        with self._lock:
            now = self._clock()
            grant = reserve(self._states.get(bucket), rate, now, deadline - now)
            self._states[bucket] = grant.state
        if not grant.granted:
            raise _too_late(bucket, grant.wait)
        if grant.wait > 0:
            self._sleep(grant.wait)

    def hold(self, bucket: str, rate: Rate, seconds: float) -> None:
        with self._lock:
            self._states[bucket] = hold(self._states.get(bucket), rate, self._clock(), seconds)


# KEYS[1] the bucket hash; ARGV: rate per second, burst, max wait, hold seconds (< 0: a reservation).
# The server's clock (TIME) is the one clock all workers share. Returns {granted 0|1, wait as a string}.
_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local hold_for = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens'))
local updated = tonumber(redis.call('HGET', KEYS[1], 'updated'))
if tokens == nil or updated == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
end
local granted = 0
local wait = 0
if hold_for >= 0 then
  tokens = math.min(tokens, 1 - hold_for * rate)
else
  wait = math.max(0, (1 - tokens) / rate)
  if wait <= max_wait then
    tokens = tokens - 1
    granted = 1
  end
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
local idle = math.ceil((burst - tokens) / rate) + 60
redis.call('EXPIRE', KEYS[1], idle)
return {granted, tostring(wait)}
"""


class RedisPacer:
    """The bucket in the worker's Redis: every chunk of every job shares one bucket per provider."""

    def __init__(self, client: redis.Redis, key: Callable[[str], str], clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._script = client.register_script(_SCRIPT)
        self._key = key
        self._clock = clock
        self._sleep = sleep

    def _call(self, bucket: str, rate: Rate, max_wait: float, hold_for: float) -> tuple[bool, float]:
        try:
            granted, wait = self._script(keys=[self._key(bucket)],
                                         args=[rate.per_second, rate.burst, max_wait, hold_for])
        except redis.RedisError as exc:
            raise ProgressUnavailable(f"pacing search provider {bucket} in Redis: {exc}") from exc
        return bool(int(granted)), float(wait)

    def acquire(self, bucket: str, rate: Rate, deadline: float) -> None:
        granted, wait = self._call(bucket, rate, max(0.0, deadline - self._clock()), -1.0)
        if not granted:
            raise _too_late(bucket, wait)
        if wait > 0:
            self._sleep(wait)

    def hold(self, bucket: str, rate: Rate, seconds: float) -> None:
        self._call(bucket, rate, 0.0, max(0.0, seconds))
