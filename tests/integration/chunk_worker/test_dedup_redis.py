"""Dedup shared through a real Redis: one winner across workers, idempotent retries."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from chunk_worker import errors
from chunk_worker.contract import Keys, Reason
from chunk_worker.dedup import RedisDeduper, make_deduper
from chunk_worker.validate import ImageInfo
from ports import free_port

KEYS = Keys("t:")


def info(sha: str, phash: int) -> ImageInfo:
    return ImageInfo(format="JPEG", width=64, height=64, bytes=100, sha256=sha * 64, phash=phash)


def flip(value: int, *bits: int) -> int:
    for bit in bits:
        value ^= 1 << bit
    return value


@pytest.fixture
def deduper(redis_client):
    return make_deduper("near", redis=redis_client, keys=KEYS, scope="uid-1")


def test_exact_copy_from_another_chunk_is_a_duplicate(deduper):
    assert deduper.claim(info("a", 1), "00000") is None
    assert deduper.claim(info("a", 1), "00001") == Reason.DUPLICATE


def test_retry_of_the_same_chunk_keeps_its_own_claims(deduper):
    base = 0x0123_4567_89AB_CDEF
    assert deduper.claim(info("a", base), "00003") is None
    assert deduper.claim(info("a", base), "00003") is None
    assert deduper.claim(info("b", flip(base, 1)), "00003") is None


def test_hash_within_three_bits_is_a_near_duplicate(deduper):
    base = 0xFFFF_0000_AAAA_5555
    assert deduper.claim(info("a", base), "00000") is None
    # One flipped bit in three of the four bands: only the fourth band still matches.
    assert deduper.claim(info("b", flip(base, 63, 47, 31)), "00001") == Reason.NEAR_DUPLICATE


def test_hash_four_bits_away_is_kept(deduper):
    base = 0xFFFF_0000_AAAA_5555
    assert deduper.claim(info("a", base), "00000") is None
    assert deduper.claim(info("b", flip(base, 63, 47, 31, 15)), "00001") is None
    assert deduper.claim(info("c", flip(base, 0, 1, 2, 3)), "00001") is None


def test_top_bit_hashes_compare_exactly_despite_lua_doubles(deduper):
    high = 0xFFFF_FFFF_FFFF_FFFF
    assert deduper.claim(info("a", high), "00000") is None
    assert deduper.claim(info("b", flip(high, 0)), "00001") == Reason.NEAR_DUPLICATE


def test_jobs_do_not_see_each_others_images(redis_client):
    one = make_deduper("near", redis=redis_client, keys=KEYS, scope="uid-1")
    two = make_deduper("near", redis=redis_client, keys=KEYS, scope="uid-2")
    assert one.claim(info("a", 9), "00000") is None
    assert two.claim(info("a", 9), "00001") is None


def test_exact_mode_keeps_near_copies(redis_client):
    deduper = make_deduper("exact", redis=redis_client, keys=KEYS, scope="uid-1")
    assert deduper.claim(info("a", 7), "00000") is None
    assert deduper.claim(info("b", 7), "00001") is None
    assert deduper.claim(info("a", 7), "00001") == Reason.DUPLICATE


def test_keys_follow_the_contract_and_expire(deduper, redis_client):
    deduper.claim(info("a", 0x0001_0002_0003_0004), "00000")
    assert redis_client.hget(KEYS.job_sha("uid-1"), "a" * 64) == "00000"
    band = KEYS.job_phash_band("uid-1", 2, 3)
    assert redis_client.smembers(band) == {"0001000200030004:00000"}
    assert 0 < redis_client.ttl(band) and 0 < redis_client.ttl(KEYS.job_sha("uid-1"))
    assert set(redis_client.scan_iter(KEYS.job_pattern("uid-1"))) == {KEYS.job_sha("uid-1")} | {
        KEYS.job_phash_band("uid-1", i, v) for i, v in enumerate((1, 2, 3, 4))
    }


def test_concurrent_near_duplicates_from_many_workers_have_one_winner(redis_client, redis_url):
    base = 0x5A5A_5A5A_5A5A_5A5A

    def claim(n: int):
        client = redis.Redis.from_url(redis_url)
        try:
            deduper = RedisDeduper(client, KEYS, "race", mode="near")
            return deduper.claim(info(f"{n % 16:x}", flip(base, n % 3)), f"{n:05d}")
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(claim, range(16)))
    assert outcomes.count(None) == 1


def test_unreachable_redis_is_a_retryable_error():
    client = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    deduper = make_deduper("near", redis=client, keys=KEYS, scope="uid-1")
    with pytest.raises(errors.ProgressUnavailable):
        deduper.claim(info("a", 1), "00000")
