"""Redis loses everything mid-run: the operator rebuilds the queue from the DatasetJob's spec and
status, finishes the job, and never runs again a chunk the status recorded as finished."""

from __future__ import annotations

from collections import Counter

import pytest

from dataset_operator.status import parse_ranges
from tests.cluster.conftest import chunk_key, image_urls, inline_job, phase, redis_client

pytestmark = pytest.mark.cluster

FIRST_IMAGE, CHUNKS, PER_CHUNK = 7000, 10, 2


def chunk_paths(index: int) -> list[str]:
    first = FIRST_IMAGE + index * PER_CHUNK
    return [f"/slow/{n}.jpg" for n in range(first, first + PER_CHUNK)]


def test_a_flushed_redis_is_rebuilt_without_rerunning_finished_chunks(operator, image_server):
    operator.start(PIXCRAWLER_MAX_CONCURRENT_CHUNKS="2")
    operator.apply(inline_job("resilient", image_urls(image_server.base_url, FIRST_IMAGE, CHUNKS * PER_CHUNK,
                                                      route="slow", query="delay=1"), PER_CHUNK))
    before = operator.wait_for(
        "resilient", lambda b: len(parse_ranges((b.get("status") or {}).get("finishedChunks"))) >= 3,
        timeout=180, what="three chunks recorded as finished")
    with redis_client(operator) as redis:
        redis.flushdb()
    finished = parse_ranges(before["status"]["finishedChunks"])
    assert len(finished) < CHUNKS, "the job finished before Redis was flushed: nothing was tested"
    done = operator.wait_for("resilient", lambda b: phase(b) in ("Succeeded", "Failed"), timeout=300, what="the end")
    assert phase(done) == "Succeeded"
    assert done["status"]["chunks"]["succeeded"] == CHUNKS
    assert parse_ranges(done["status"]["finishedChunks"]) == set(range(CHUNKS))
    jobs_per_chunk = Counter(chunk_key(job)[1] for job in operator.chunk_jobs())
    assert {index: jobs_per_chunk[index] for index in finished} == {index: 1 for index in finished}
    hits = {path: image_server.hits(path) for index in finished for path in chunk_paths(index)}
    assert set(hits.values()) == {1}, hits
    assert all(image_server.hits(path) >= 1 for index in range(CHUNKS) for path in chunk_paths(index))
