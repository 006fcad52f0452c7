"""Where a chunk's progress goes: Redis for the operator (batched), a bar for a person at a terminal."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Protocol

import redis

from chunk_worker.contract import COUNTERS, ChunkField, ChunkState, ManifestLine, metric_reasons
from chunk_worker.errors import ProgressUnavailable

log = logging.getLogger(__name__)


def counts_for(line: ManifestLine) -> dict[str, int]:
    """The counters one finished item moves. `bytes` set means the body was downloaded."""
    counts = {"requested": 1}
    if line.bytes is not None:
        counts["downloaded"] = 1
    if line.status == "ok":
        counts.update(valid=1, uploaded=1, bytes_uploaded=line.bytes or 0)
    elif line.status == "duplicate":
        counts.update(valid=1, duplicates=1)
    else:
        counts[line.status] = 1
    return counts


class Progress(Protocol):
    def started(self, total: int) -> None: ...

    def record(self, line: ManifestLine) -> None: ...

    def finished(self, outcome: str, manifest: str | None = None, message: str = "") -> None: ...


class Tally:
    """Counts kept in the worker; sinks read them."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter({name: 0 for name in COUNTERS})
        self.reasons: Counter[str] = Counter()  # items not stored, by ChunkField.reason_counter

    def add(self, line: ManifestLine) -> None:
        for name, value in counts_for(line).items():
            self.counts[name] += value
        if line.status != "ok" and line.reason:
            self.reasons[ChunkField.reason_counter(line.reason)] += 1


class RedisProgress:
    """Writes absolute counters into `chunk:<id>` at most once per interval: a retry overwrites, never adds."""

    def __init__(self, client: redis.Redis, chunk_key: str, tally: Tally, interval: float, pod: str = "") -> None:
        self.client = client
        self.chunk_key = chunk_key
        self.tally = tally
        self.interval = interval
        self.pod = pod
        self._last_flush = 0.0

    def started(self, total: int) -> None:
        try:  # an earlier attempt's reason counts must not add to this one's
            self.client.hdel(self.chunk_key, *(ChunkField.reason_counter(r) for r in metric_reasons()))
        except redis.RedisError as exc:
            raise ProgressUnavailable(f"cannot record progress in Redis: {exc}") from exc
        self._write(
            {
                ChunkField.STATE: ChunkState.RUNNING.value,
                ChunkField.STARTED_AT: f"{time.time():.3f}",
                ChunkField.POD: self.pod,
                ChunkField.OUTCOME: "",
                **self._counter_fields(),
            },
            required=True,
        )

    def record(self, line: ManifestLine) -> None:
        now = time.monotonic()
        if now - self._last_flush >= self.interval:
            self._last_flush = now
            self._write(self._counter_fields(), required=False)

    def finished(self, outcome: str, manifest: str | None = None, message: str = "") -> None:
        self._write(
            {
                ChunkField.OUTCOME: outcome,
                ChunkField.FINISHED_AT: f"{time.time():.3f}",
                ChunkField.MANIFEST: manifest or "",
                ChunkField.MESSAGE: message[:1000],
                **self._counter_fields(),
            },
            required=outcome == "done",
        )

    def _counter_fields(self) -> dict[str, int]:
        return {**{ChunkField.counter(name): int(value) for name, value in self.tally.counts.items()},
                **self.tally.reasons}

    def _write(self, mapping: dict[str, object], required: bool) -> None:
        try:
            self.client.hset(self.chunk_key, mapping=mapping)
        except redis.RedisError as exc:
            if required:
                raise ProgressUnavailable(f"cannot record progress in Redis: {exc}") from exc
            log.warning("progress not recorded in Redis (will retry): %s", exc)


class TerminalProgress:
    """A progress bar for people; pods get JSON logs instead."""

    def __init__(self, tally: Tally, label: str) -> None:
        self.tally = tally
        self.label = label
        self._bar = None

    def started(self, total: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total or None, desc=self.label, unit="img", dynamic_ncols=True)

    def record(self, line: ManifestLine) -> None:
        if self._bar is None:
            return
        counts = self.tally.counts
        self._bar.set_postfix(ok=counts["uploaded"], dup=counts["duplicates"], rej=counts["rejected"],
                              fail=counts["failed"], refresh=False)
        self._bar.update(1)

    def finished(self, outcome: str, manifest: str | None = None, message: str = "") -> None:
        if self._bar is not None:
            self._bar.close()
