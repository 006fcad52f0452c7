"""Cluster-wide pacing on a real Redis: four chunks searching one provider at once send, together,
no more than the bucket allows (counted at the provider, per one-second window of arrivals)."""

from __future__ import annotations

import threading

import pytest
import redis

from chunk_worker.contract import Keys
from chunk_worker.pacing import Rate, RedisPacer, reserve
from chunk_worker.providers.protocol import SearchContext
from chunk_worker.providers.wikimedia import WikimediaProvider
from tests.fixtures.imageserver import make_fetcher
from tests.integration.chunk_worker.providers.conftest import fixture

RATE = 5.0
CHUNKS = 4
PAGES = 6


def most_in_any_window(times: list[float], window: float) -> int:
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


@pytest.fixture
def client(redis_url, redis_client):
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def test_four_chunks_share_one_providers_rate(client, provider_server):
    provider_server.route("/w/api.php", lambda request: fixture("wikimedia", "search-page1"))  # always more
    errors = []

    def chunk() -> None:
        with make_fetcher(search_rates={"wikimedia": RATE}) as fetcher:
            context = SearchContext.start(fetcher, RedisPacer(client, Keys().pace))
            provider = WikimediaProvider(context, provider_server.base_url)
            provider.PAGE_SIZE = 2
            try:
                assert len(list(provider.search("sunflower", 0, 2 * PAGES))) == 2 * PAGES
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=chunk) for _ in range(CHUNKS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    arrivals = [request.at for request in provider_server.requests("/w/api.php")]
    assert len(arrivals) == CHUNKS * PAGES
    burst = Rate(RATE).burst
    # the bucket grants at most burst + rate * W in any W seconds; one more for a request whose grant
    # fell just before a window and its arrival just inside it
    assert most_in_any_window(arrivals, 1.0) <= burst + RATE * 1.0 + 1
    assert most_in_any_window(arrivals, 2.0) <= burst + RATE * 2.0 + 1
    # four unpaced (or each self-paced) chunks would have sent their first pages together
    assert most_in_any_window(arrivals, 0.1) <= burst + 1


class Recorder:
    def __init__(self) -> None:
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_a_hold_by_one_worker_makes_another_wait(client):
    one = RedisPacer(client, Keys().pace)
    sleep = Recorder()
    other = RedisPacer(client, Keys().pace, sleep=sleep)
    one.hold("flickr", Rate(1.0), 30.0)  # one worker saw Retry-After: 30
    other.acquire("flickr", Rate(1.0), deadline=float("inf"))
    (waited,) = sleep.slept
    assert 29.0 < waited <= 30.0


def test_the_script_keeps_the_arithmetic_of_reserve(client):
    pacer = RedisPacer(client, Keys().pace, sleep=Recorder())
    rate = Rate(2.0, burst=3)
    waits = [pacer._call("met", rate, 1e9, -1.0)[1] for _ in range(6)]
    state, expected = None, []
    for _ in range(6):
        grant = reserve(state, rate, 0.0, 1e9)
        state, _ = grant.state, expected.append(grant.wait)
    assert waits == pytest.approx(expected, abs=0.05)  # the calls take a few ms of Redis time


def test_a_wait_past_the_deadline_takes_no_token(client):
    pacer = RedisPacer(client, Keys().pace)
    pacer.hold("inaturalist", Rate(1.0), 600.0)
    from chunk_worker.errors import SourceUnavailable

    with pytest.raises(SourceUnavailable):
        pacer.acquire("inaturalist", Rate(1.0), deadline=0.0)
    assert float(client.hget(Keys().pace("inaturalist"), "tokens")) == pytest.approx(1 - 600.0, abs=0.1)
