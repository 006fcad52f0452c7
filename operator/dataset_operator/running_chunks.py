"""What runs now, as the leader counts it: the live chunk Jobs (from the Job watch) plus the chunks it
claimed whose Job is not listed yet. Never a counter: counters drift on restarts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from dataset_operator import completion, jobs
from dataset_operator.queue import ChunkQueue, Claimed, split_chunk_id


@dataclass
class LiveJobs:
    """Chunk Jobs as the Job watch has them this cycle."""

    active: dict[str, dict[str, Any]] = field(default_factory=dict)  # chunk id -> Job
    finished: list[dict[str, Any]] = field(default_factory=list)

    def running_by_job(self) -> Counter[str]:
        return Counter(split_chunk_id(member)[0] for member in self.active)


def live_jobs(listed: Iterable[dict[str, Any]]) -> LiveJobs:
    """The chunk Jobs among the operator's Jobs, sorted into active and finished (a Job being deleted
    has finished as far as admission goes)."""
    live = LiveJobs()
    for job in listed:
        member, _ = jobs.chunk_of(job)
        if member is None:
            continue
        if completion.classify(job) == "active" and not job["metadata"].get("deletionTimestamp"):
            live.active[member] = job
        else:
            live.finished.append(job)
    return live


class RunningChunks:
    def __init__(self, queue: ChunkQueue) -> None:
        self.queue = queue
        self.live = LiveJobs()
        self.claimed_without_job: set[str] = set()  # claimed, their Job not listed yet: they run too

    def running_of(self, uid: str) -> list[str]:
        """One job's running chunks: a live Job, or claimed with its Job about to be listed. Counting
        only listed Jobs would show a job Suspended for a moment while a chunk claimed just before the
        suspend is starting."""
        return self.by_job().get(uid, [])

    def by_job(self) -> dict[str, list[str]]:
        """Every job's running chunks at once (running_of for all jobs, in one walk)."""
        found: dict[str, list[str]] = {}
        for member in (*self.live.active, *self.claimed_without_job):
            found.setdefault(split_chunk_id(member)[0], []).append(member)
        return found

    def indices_of(self, uid: str) -> set[int]:
        """Indices of one job's running chunks (a rebuilt queue must not hold them again)."""
        return {split_chunk_id(member)[1] for member in self.running_of(uid)}

    def claimed(self, items: Iterable[Claimed]) -> None:
        self.claimed_without_job.update(item.chunk_id for item in items)

    async def release(self, item: Claimed, tier: str, submitted_at: float) -> None:
        """A claimed chunk without a Job goes back to the queue, its attempt not spent."""
        self.claimed_without_job.discard(item.chunk_id)
        await self.queue.release(item, tier, submitted_at)
