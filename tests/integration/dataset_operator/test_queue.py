"""The chunk queue against a real redis-server: order, fencing, admission bookkeeping, retries, cleanup."""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from chunk_worker.contract import ChunkState, Keys, chunk_id
from dataset_operator import priority
from dataset_operator.plan import JobPlan, make_plan
from dataset_operator.queue import ChunkQueue, StaleFence

KEYS = Keys("t:")
T0 = 1_760_000_000.0
DEADLINE = T0 + 10_000


def run(redis_url: str, body: Callable[[ChunkQueue, aioredis.Redis], Awaitable[object]]) -> object:
    """Runs one async test body against an empty Redis with a fresh ChunkQueue. The queue gets a client
    in bytes mode, as the operator runs it; the test reads and arranges keys through a decoding one."""
    async def main() -> object:
        raw = aioredis.from_url(redis_url)
        client = aioredis.from_url(redis_url, decode_responses=True)
        await client.flushall()
        try:
            return await body(ChunkQueue(raw, KEYS, epoch=1), client)
        finally:
            await client.aclose()
            await raw.aclose()
    return asyncio.run(main())


def plan(chunks: int, tier: str = "free", name: str = "cats") -> JobPlan:
    spec = {"tier": tier, "chunkSize": 1,
            "sources": [{"label": "x", "urls": [f"https://img.example/{i}.jpg" for i in range(chunks)]}]}
    return make_plan("team", name, str(uuid.uuid4()), spec, "file:///tmp/datasets", {"openverse"})


def ids(claimed) -> list[str]:
    return [c.chunk_id for c in claimed]


def test_enqueue_twice_gives_the_same_entries(redis_url):
    async def body(queue, client):
        job = plan(5)
        first = await queue.enqueue(job, T0)
        entries = await client.zrange(KEYS.queue, 0, -1, withscores=True)
        second = await queue.enqueue(job, T0 + 60)
        assert (first, second) == (5, 0)
        assert await client.zrange(KEYS.queue, 0, -1, withscores=True) == entries
        assert await client.zrange(KEYS.waiting, 0, -1) == [job.uid]
        assert await queue.load_plan(job.uid) == job
    run(redis_url, body)


def test_enqueue_skips_chunks_that_already_finished(redis_url):
    async def body(queue, client):
        job = plan(4)
        assert await queue.enqueue(job, T0, skip={0, 2}) == 2
        assert await client.zrange(KEYS.queue, 0, -1) == [chunk_id(job.uid, 1), chunk_id(job.uid, 3)]
    run(redis_url, body)


def test_claim_order_follows_tier_then_round_robin_then_submission(redis_url):
    async def body(queue, client):
        old_free, new_user, young_free = plan(3, "free"), plan(2, "new-user"), plan(2, "free")
        await queue.enqueue(old_free, T0)
        await queue.enqueue(new_user, T0 + 100)
        await queue.enqueue(young_free, T0 + 50)
        claimed = await queue.claim(n=10, admit_deadline=DEADLINE, job_slots={})
        expected = [(new_user, 0), (new_user, 1), (old_free, 0), (young_free, 0), (old_free, 1), (young_free, 1),
                    (old_free, 2)]
        assert [(c.uid, c.index) for c in claimed] == [(job.uid, index) for job, index in expected]
    run(redis_url, body)


def test_claim_respects_job_slots(redis_url):
    async def body(queue, client):
        suspended, capped, free = plan(3), plan(3), plan(3)
        for offset, job in enumerate((suspended, capped, free)):
            await queue.enqueue(job, T0 + offset)
        claimed = await queue.claim(10, DEADLINE, job_slots={suspended.uid: 0, capped.uid: 1})
        by_job = {job.uid: sum(c.uid == job.uid for c in claimed) for job in (suspended, capped, free)}
        assert by_job == {suspended.uid: 0, capped.uid: 1, free.uid: 3}
        assert await client.zcard(KEYS.queue) == 5
    run(redis_url, body)


def test_claim_with_a_stale_epoch_is_refused_and_takes_nothing(redis_url):
    async def body(queue, client):
        await queue.enqueue(plan(3), T0)
        assert await queue.lead(7) == 7
        with pytest.raises(StaleFence, match="epoch 6 < fence 7"):
            await queue.lead(6)  # the fence never moves back
        with pytest.raises(StaleFence):
            await queue.claim(3, DEADLINE, {})
        assert await client.zcard(KEYS.queue) == 3 and await client.zcard(KEYS.admitted) == 0
        await queue.lead(7)
        assert len(await queue.claim(3, DEADLINE, {})) == 3
    run(redis_url, body)


def test_claim_moves_chunks_to_admitted_with_a_deadline_and_counts_the_attempt(redis_url):
    async def body(queue, client):
        job = plan(2)
        await queue.enqueue(job, T0)
        [claimed] = await queue.claim(1, DEADLINE, {})
        assert (claimed.chunk_id, claimed.index, claimed.attempt) == (chunk_id(job.uid, 0), 0, 1)
        assert await queue.admitted() == {claimed.chunk_id: DEADLINE}
        assert await client.zscore(KEYS.queue, claimed.chunk_id) is None
        assert await client.hmget(KEYS.chunk(claimed.chunk_id), "state", "attempt", "fence") == ["admitted", "1", "1"]
    run(redis_url, body)


def test_release_puts_the_chunk_back_without_losing_an_attempt(redis_url):
    async def body(queue, client):
        job = plan(2)
        await queue.enqueue(job, T0)
        original = await client.zscore(KEYS.queue, chunk_id(job.uid, 0))
        [claimed] = await queue.claim(1, DEADLINE, {})
        assert await queue.release(claimed, job.tier, T0)
        assert not await queue.release(claimed, job.tier, T0)  # a second release changes nothing
        assert await client.zscore(KEYS.queue, claimed.chunk_id) == original
        assert await queue.admitted() == {}
        [again] = await queue.claim(1, DEADLINE, {})
        assert (again.chunk_id, again.attempt) == (claimed.chunk_id, 1)
    run(redis_url, body)


def test_settle_folds_counters_into_the_job_once(redis_url):
    async def body(queue, client):
        job = plan(2)
        await queue.enqueue(job, T0)
        [claimed] = await queue.claim(1, DEADLINE, {})
        await client.hset(KEYS.chunk(claimed.chunk_id), mapping={"n_valid": 5, "n_uploaded": 4, "n_rejected": 1})
        assert await queue.settle(claimed.chunk_id, ChunkState.SUCCEEDED)
        assert not await queue.settle(claimed.chunk_id, ChunkState.SUCCEEDED)
        assert not await queue.settle(claimed.chunk_id, ChunkState.FAILED)
        assert await client.hmget(KEYS.job(job.uid), "valid", "uploaded", "rejected") == ["5", "4", "1"]
        assert await client.smembers(KEYS.job_done(job.uid)) == {"0"}
        assert await client.scard(KEYS.job_failed(job.uid)) == 0
        assert await queue.admitted() == {}
    run(redis_url, body)


def test_retry_later_waits_in_delayed_until_requeue_due_puts_it_back(redis_url):
    async def body(queue, client):
        job = plan(1)
        await queue.enqueue(job, T0)
        original = await client.zscore(KEYS.queue, chunk_id(job.uid, 0))
        [claimed] = await queue.claim(1, DEADLINE, {})
        now = time.time()
        assert await queue.retry_later(claimed.chunk_id, now + 100, "BackoffLimitExceeded: exit 1")
        assert await client.zscore(KEYS.delayed, claimed.chunk_id) == pytest.approx(now + 100, abs=0.01)
        assert await queue.admitted() == {} and await client.zcard(KEYS.queue) == 0
        tiers, submitted = {job.uid: job.tier}, {job.uid: T0}
        assert await queue.requeue_due(now, tiers, submitted) == 0
        assert await queue.requeue_due(now + 101, tiers, submitted) == 1
        assert await client.zscore(KEYS.queue, claimed.chunk_id) == original
        assert await client.zcard(KEYS.delayed) == 0
        [retry] = await queue.claim(1, DEADLINE, {})
        assert (retry.chunk_id, retry.attempt) == (claimed.chunk_id, 2)
    run(redis_url, body)


def promoted_members(ranked: list[tuple[str, float]]) -> set[str]:
    return {member for member, score in ranked if priority.decode(score)[0] == priority.PROMOTED}


def test_a_job_waiting_past_the_maximum_gets_one_chunk_promoted_not_all(redis_url):
    async def body(queue, client):
        now = time.time()
        waited, fresh, new_user = plan(3, "free"), plan(2, "free"), plan(2, "new-user")
        await queue.enqueue(waited, now - 3600)
        await queue.enqueue(fresh, now - 60)
        await queue.enqueue(new_user, now)
        submitted = {waited.uid: now - 3600, fresh.uid: now - 60, new_user.uid: now}
        assert await queue.promote_waiting(now, max_wait=1800, submitted=submitted) == 1
        queued = await client.zrange(KEYS.queue, 0, -1, withscores=True)
        assert promoted_members(queued) == {chunk_id(waited.uid, 0)}
        claimed = await queue.claim(3, DEADLINE, {})
        assert [c.uid for c in claimed] == [waited.uid, new_user.uid, new_user.uid]  # one ahead, not three
    run(redis_url, body)


def test_no_more_promoted_chunks_wait_than_the_limit_the_longest_waiting_first(redis_url):
    async def body(queue, client):
        jobs = [plan(2, "free") for _ in range(4)]
        for age, job in enumerate(jobs):
            await queue.enqueue(job, T0 - 1000 * age)  # the last one has waited longest
        submitted = {job.uid: T0 for job in jobs}
        assert await queue.promote_waiting(T0 + 3600, 1800, submitted, limit=2) == 2
        assert await queue.promote_waiting(T0 + 3600, 1800, submitted, limit=2) == 0  # two already wait
        promoted = promoted_members(await client.zrange(KEYS.queue, 0, -1, withscores=True))
        assert promoted == {chunk_id(jobs[3].uid, 0), chunk_id(jobs[2].uid, 0)}
    run(redis_url, body)


def test_no_second_chunk_is_promoted_while_the_first_waits_for_a_slot(redis_url):
    async def body(queue, client):
        now = time.time()
        job = plan(3, "free")
        await queue.enqueue(job, now - 3600)
        assert await queue.promote_waiting(now, 1800, {job.uid: now - 3600}) == 1
        await client.zadd(KEYS.waiting, {job.uid: now - 3600})  # a retried chunk came back long ago
        assert await queue.promote_waiting(now + 3600, 1800, {job.uid: now - 3600}) == 0
        assert promoted_members(await client.zrange(KEYS.queue, 0, -1, withscores=True)) == {chunk_id(job.uid, 0)}
    run(redis_url, body)


def test_a_claim_restarts_the_jobs_wait(redis_url):
    async def body(queue, client):
        job = plan(3, "free")
        await queue.enqueue(job, T0)
        await queue.promote_waiting(T0 + 1801, 1800, {job.uid: T0})
        await queue.claim(1, DEADLINE, {}, now=T0 + 1900)
        assert await client.zscore(KEYS.waiting, job.uid) == T0 + 1900
        assert await client.hget(KEYS.promoted, job.uid) is None
        assert await queue.promote_waiting(T0 + 1900 + 1799, 1800, {job.uid: T0}) == 0
        assert await queue.promote_waiting(T0 + 1900 + 1801, 1800, {job.uid: T0}) == 1
        assert promoted_members(await client.zrange(KEYS.queue, 0, -1, withscores=True)) == {chunk_id(job.uid, 1)}
    run(redis_url, body)


def test_retier_moves_queued_chunks_to_the_new_tier(redis_url):
    async def body(queue, client):
        now = time.time()
        job, other = plan(3, "free"), plan(1, "enterprise")
        await queue.enqueue(job, now)
        await queue.enqueue(other, now)
        assert await queue.retier(job.uid, "new-user", now) == 3
        assert await client.hget(KEYS.job(job.uid), "tier") == "new-user"
        order = [c.uid for c in await queue.claim(4, DEADLINE, {})]
        assert order == [job.uid, job.uid, job.uid, other.uid]
    run(redis_url, body)


def test_retier_keeps_promoted_chunks_in_place(redis_url):
    async def body(queue, client):
        now = time.time()
        job = plan(1, "free")
        await queue.enqueue(job, now - 3600)
        await queue.promote_waiting(now, 1800, {job.uid: now - 3600})
        promoted = await client.zscore(KEYS.queue, chunk_id(job.uid, 0))
        assert await queue.retier(job.uid, "enterprise", now - 3600) == 0
        assert await client.zscore(KEYS.queue, chunk_id(job.uid, 0)) == promoted
    run(redis_url, body)


async def scans(client: aioredis.Redis) -> int:
    """SCAN and ZSCAN calls the server has answered since the last CONFIG RESETSTAT."""
    stats = await client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("scan", "zscan"))


def test_retier_and_remove_job_cost_the_jobs_size_not_the_keyspaces(redis_url):
    async def body(queue, client):
        job, others = plan(4), [plan(50) for _ in range(20)]
        for each in (job, *others):
            await queue.enqueue(each, T0)
        await client.sadd(KEYS.job_phash_band(job.uid, 3, 65535), "cd" * 32)
        await client.config_resetstat()
        assert await queue.retier(job.uid, "new-user", T0) == 4
        await queue.remove_job(job.uid)
        assert await scans(client) == 0
        assert not [key async for key in client.scan_iter(match=f"*{job.uid}*")]
    run(redis_url, body)


def test_remove_job_after_redis_lost_the_plan_deletes_by_the_status_chunk_count(redis_url):
    async def body(queue, client):
        job = plan(3)
        await queue.enqueue(job, T0)
        await client.hset(KEYS.chunk(chunk_id(job.uid, 2)), "n_valid", 1)
        await client.sadd(KEYS.job_sha(job.uid), "ab" * 32)
        await client.hdel(KEYS.job(job.uid), "plan")
        queue.forget_plan(job.uid)
        await client.config_resetstat()
        await queue.remove_job(job.uid, chunk_count=3)
        assert await scans(client) == 0
        assert not [key async for key in client.scan_iter(match=f"*{job.uid}*")]
        assert not [m for m in await client.zrange(KEYS.queue, 0, -1) if m.startswith(job.uid)]
    run(redis_url, body)


def test_remove_job_leaves_no_key_of_that_job_and_keeps_other_jobs(redis_url):
    async def body(queue, client):
        gone, kept = plan(6), plan(3)
        for job in (gone, kept):
            await queue.enqueue(job, T0)
        claimed = await queue.claim(6, DEADLINE, {})
        mine = [c for c in claimed if c.uid == gone.uid]
        await client.hset(KEYS.chunk(mine[0].chunk_id), "n_valid", 3)
        await queue.settle(mine[0].chunk_id, ChunkState.SUCCEEDED)
        await queue.settle(mine[1].chunk_id, ChunkState.FAILED)
        await queue.retry_later(mine[2].chunk_id, time.time() + 600, "retry")
        for job in (gone, kept):
            await client.sadd(KEYS.job_sha(job.uid), "ab" * 32)
            await client.sadd(KEYS.job_phash_band(job.uid, 2, 4711), "cd" * 32)
        await queue.remove_job(gone.uid)
        keys = [key async for key in client.scan_iter(count=1000)]
        assert not [key for key in keys if gone.uid in key]
        for zset in (KEYS.queue, KEYS.admitted, KEYS.delayed, KEYS.waiting):
            assert not [m for m in await client.zrange(zset, 0, -1) if m.startswith(gone.uid)]
        assert await client.exists(KEYS.job(kept.uid), KEYS.job_sha(kept.uid),
                                   KEYS.job_phash_band(kept.uid, 2, 4711)) == 3
        kept_members = set(await client.zrange(KEYS.queue, 0, -1)) | set(await client.zrange(KEYS.admitted, 0, -1))
        assert kept_members == {chunk_id(kept.uid, i) for i in range(3)}
    run(redis_url, body)


def test_queue_ranks_give_each_jobs_first_queued_chunk(redis_url):
    async def body(queue, client):
        first, second, third = plan(3, "free"), plan(2, "new-user"), plan(1, "free")
        await queue.enqueue(first, T0)
        await queue.enqueue(second, T0)
        await queue.enqueue(third, T0 + 1)
        assert await queue.queue_ranks() == {second.uid: 0, first.uid: 2, third.uid: 3}
        await queue.claim(3, DEADLINE, {})
        assert await queue.queue_ranks() == {third.uid: 0, first.uid: 1}
    run(redis_url, body)


def test_queue_positions_stop_at_the_limit(redis_url):
    async def body(queue, client):
        front, back = plan(3, "new-user"), plan(2, "free")
        await queue.enqueue(front, T0)
        await queue.enqueue(back, T0)
        assert await queue.queue_ranks(limit=3) == {front.uid: 0}
        assert await queue.queue_ranks(limit=4) == {front.uid: 0, back.uid: 3}
    run(redis_url, body)


def test_concurrent_claims_on_two_connections_never_claim_the_same_chunk(redis_url):
    async def body(queue, client):
        jobs = [plan(20), plan(20)]
        for offset, job in enumerate(jobs):
            await queue.enqueue(job, T0 + offset)
        other_client = aioredis.from_url(redis_url)
        try:
            leaders = [queue, ChunkQueue(other_client, KEYS, epoch=1)]
            rounds = [leaders[i % 2].claim(3, DEADLINE, {}) for i in range(16)]
            claimed = [c for batch in await asyncio.gather(*rounds) for c in batch]
        finally:
            await other_client.aclose()
        assert len(ids(claimed)) == len(set(ids(claimed))) == 40
        assert all(c.attempt == 1 for c in claimed)
    run(redis_url, body)


def test_chunk_index_beyond_five_digits_is_claimed_as_itself(redis_url):
    async def body(queue, client):
        spec = {"chunkSize": 1, "sources": [{"urlList": {"url": "https://lists.example/big.txt",
                                                         "count": 100_001}}]}
        job = make_plan("team", "big", str(uuid.uuid4()), spec, "file:///tmp/datasets", {"openverse"})
        await queue.enqueue(job, T0, skip=set(range(100_000)))
        [claimed] = await queue.claim(1, DEADLINE, {job.uid: 1})
        assert (claimed.uid, claimed.index) == (job.uid, 100_000)
    run(redis_url, body)


def test_only_listed_claims_skip_jobs_the_leader_does_not_know(redis_url):
    """A chunk of a job the leader has not seen (or is deleting) stays queued, wherever it sits."""
    async def body(queue, client):
        known, unknown = plan(2, name="known"), plan(2, tier="new-user", name="unknown")
        await queue.enqueue(known, T0)
        await queue.enqueue(unknown, T0)
        claimed = await queue.claim(4, DEADLINE, {known.uid: 4}, only_listed=True)
        assert ids(claimed) == [chunk_id(known.uid, 0), chunk_id(known.uid, 1)]
        assert await client.zrange(KEYS.queue, 0, -1) == [chunk_id(unknown.uid, 0), chunk_id(unknown.uid, 1)]
    run(redis_url, body)


def test_a_deposed_leader_claims_nothing_once_the_next_term_raised_the_fence(redis_url):
    async def body(queue, client):
        await queue.enqueue(plan(6), T0)
        other_client = aioredis.from_url(redis_url)
        try:
            old, new = queue, ChunkQueue(other_client, KEYS)
            await old.lead(3)
            first = await old.claim(2, DEADLINE, {})
            await new.lead(4)
            with pytest.raises(StaleFence, match="epoch 3 < fence 4"):
                await old.claim(2, DEADLINE, {})
            second = await new.claim(10, DEADLINE, {})
        finally:
            await other_client.aclose()
        assert len(first) == 2 and len(second) == 4
        assert not set(ids(first)) & set(ids(second))
    run(redis_url, body)


DEPOSED_WRITES = {
    "settle": lambda q, c: q.settle(c.chunk_id, ChunkState.SUCCEEDED),
    "retry_later": lambda q, c: q.retry_later(c.chunk_id, T0, "retry"),
    "release": lambda q, c: q.release(c, "free", T0),
    "mark_running": lambda q, c: q.mark_running([c.chunk_id], T0),
    "set_spec": lambda q, c: q.set_spec(c.chunk_id, "{}", "job"),
    "record_failure": lambda q, c: q.record_failure(c.chunk_id, 1, "WorkerFailed", "x"),
    "enqueue": lambda q, c: q.enqueue(plan(2), T0),
    "retier": lambda q, c: q.retier(c.uid, "new-user", T0),
    "promote_waiting": lambda q, c: q.promote_waiting(time.time() + 10**6, 1, {c.uid: T0}),
}


@pytest.mark.parametrize("write", sorted(DEPOSED_WRITES))
def test_every_write_of_a_deposed_leader_is_refused_and_changes_nothing(redis_url, write):
    async def body(queue, client):
        await queue.enqueue(plan(3), T0)
        await queue.lead(3)
        [claimed] = await queue.claim(1, DEADLINE, {})
        before = {key: await client.dump(key) for key in sorted(await client.keys("*"))}
        other_client = aioredis.from_url(redis_url)
        try:
            await ChunkQueue(other_client, KEYS).lead(4)
        finally:
            await other_client.aclose()
        with pytest.raises(StaleFence):
            await DEPOSED_WRITES[write](queue, claimed)
        after = {key: await client.dump(key) for key in sorted(await client.keys("*")) if key != KEYS.fence}
        assert after == {key: value for key, value in before.items() if key != KEYS.fence}
    run(redis_url, body)


def test_after_redis_lost_its_data_the_leaders_first_write_restores_the_fence(redis_url):
    async def body(queue, client):
        other_client = aioredis.from_url(redis_url)
        try:
            old, new = queue, ChunkQueue(other_client, KEYS)
            await old.lead(3)
            await new.lead(4)
            await client.flushall()  # Redis restarted empty: the fence is gone with everything else
            await new.enqueue(plan(2), T0)  # the rebuild, by the current leader
            assert await client.get(KEYS.fence) == "4"
            with pytest.raises(StaleFence):
                await old.claim(2, DEADLINE, {})
            assert len(await new.claim(2, DEADLINE, {})) == 2
        finally:
            await other_client.aclose()
    run(redis_url, body)


def test_progress_of_many_jobs_in_batches_and_none_for_a_job_redis_lost(redis_url, monkeypatch):
    monkeypatch.setattr("dataset_operator.queue.PROGRESS_BATCH", 2)  # two round trips for four jobs

    async def body(queue, client):
        jobs = [plan(2) for _ in range(3)]
        for job in jobs:
            await queue.enqueue(job, T0)
        [first] = await queue.claim(1, DEADLINE, {jobs[0].uid: 1}, only_listed=True)
        await client.hset(KEYS.chunk(first.chunk_id), mapping={"n_uploaded": 4, "n_rejected": 1})
        await queue.settle(first.chunk_id, ChunkState.SUCCEEDED)
        [running] = await queue.claim(1, DEADLINE, {jobs[1].uid: 1}, only_listed=True)
        await client.hset(KEYS.chunk(running.chunk_id), "n_uploaded", 2)
        asked = [(jobs[0].uid, []), (jobs[1].uid, [running.chunk_id]), (jobs[2].uid, []), ("lost-uid", [])]
        found = await queue.progress(asked)
        assert found["lost-uid"] is None
        assert found[jobs[0].uid].done == {0} and found[jobs[0].uid].settled["uploaded"] == 4
        assert found[jobs[0].uid].settled["rejected"] == 1
        assert found[jobs[1].uid].live == [dict.fromkeys(found[jobs[1].uid].live[0], 0) | {"uploaded": 2}]
        assert found[jobs[2].uid].done == set() and found[jobs[2].uid].live == []
    run(redis_url, body)


def test_progress_rereads_the_finished_sets_only_when_they_grew(redis_url):
    async def body(queue, client):
        job = plan(3)
        await queue.enqueue(job, T0)
        for claimed in await queue.claim(2, DEADLINE, {}):
            await queue.settle(claimed.chunk_id, ChunkState.SUCCEEDED)
        first = await queue.progress([(job.uid, [])])
        again = await queue.progress([(job.uid, [])], first)
        assert again[job.uid].done is first[job.uid].done == {0, 1}
        [last] = await queue.claim(1, DEADLINE, {})
        await queue.settle(last.chunk_id, ChunkState.FAILED)
        grown = await queue.progress([(job.uid, [])], again)
        assert (grown[job.uid].done, grown[job.uid].failed) == ({0, 1}, {2})
    run(redis_url, body)


def test_a_quiet_job_keeps_its_progress_and_a_moved_counter_gives_a_new_one(redis_url):
    async def body(queue, client):
        job = plan(2)
        await queue.enqueue(job, T0)
        [running] = await queue.claim(1, DEADLINE, {})
        first = await queue.progress([(job.uid, [running.chunk_id])])
        again = await queue.progress([(job.uid, [running.chunk_id])], first)
        assert again[job.uid] is first[job.uid]  # nothing new for the GC to walk on a quiet pass
        await client.hset(KEYS.chunk(running.chunk_id), "n_uploaded", 3)
        moved = await queue.progress([(job.uid, [running.chunk_id])], again)
        assert moved[job.uid].live[0]["uploaded"] == 3 and first[job.uid].live[0]["uploaded"] == 0
    run(redis_url, body)


def test_outlines_of_many_jobs_are_read_in_batches_and_kept(redis_url, monkeypatch):
    monkeypatch.setattr("dataset_operator.queue.PROGRESS_BATCH", 2)

    async def body(queue, client):
        jobs = [plan(n + 1, name=f"job-{n}") for n in range(5)]
        for job in jobs:
            await queue.enqueue(job, T0)
        read = await queue.read_outlines([job.uid for job in jobs] + ["gone"])
        assert [read[job.uid].chunk_count for job in jobs] == [1, 2, 3, 4, 5]
        assert [read[job.uid].output for job in jobs] == [job.output for job in jobs]
        assert read["gone"] is None
        await client.config_resetstat()
        assert (await queue.read_outlines([jobs[4].uid]))[jobs[4].uid].chunk_count == 5
        assert "cmdstat_hget" not in await client.info("commandstats")
    run(redis_url, body)


def test_parsed_plans_are_kept_up_to_the_cache_bound_and_reread_after(redis_url, monkeypatch):
    monkeypatch.setattr("dataset_operator.queue.PLAN_CACHE", 2)

    async def hgets(client):
        return int((await client.info("commandstats")).get("cmdstat_hget", {}).get("calls", 0))

    async def body(queue, client):
        jobs = [plan(1, name=f"job-{n}") for n in range(3)]
        for job in jobs:
            await queue.enqueue(job, T0)
            assert await queue.load_plan(job.uid) == job
        await client.config_resetstat()
        assert await queue.load_plan(jobs[2].uid) == jobs[2]  # kept
        assert (await queue.read_outlines([jobs[0].uid]))[jobs[0].uid].chunk_count == 1  # kept for every job
        assert await hgets(client) == 0
        assert await queue.load_plan(jobs[0].uid) == jobs[0]  # evicted: read again
        assert await hgets(client) == 1
    run(redis_url, body)
