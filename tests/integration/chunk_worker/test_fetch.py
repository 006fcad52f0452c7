"""The safe fetcher against the hostile local image server (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import imageserver
import pytest

from chunk_worker import USER_AGENT
from chunk_worker.fetch import Fetcher
from chunk_worker.netpolicy import NetworkPolicy
from chunk_worker.settings import WorkerSettings
from tests.fixtures.imageserver import make_fetcher


def key() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def listener_127_0_0_2():
    """A TCP listener on 127.0.0.2: a blocked fetch must never reach it."""
    sock = socket.socket()
    sock.bind(("127.0.0.2", 0))
    sock.listen(8)
    sock.setblocking(False)

    def connections() -> int:
        count = 0
        while True:
            try:
                conn, _ = sock.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1

    yield sock.getsockname()[1], connections
    sock.close()


def test_fetches_an_image_with_its_bytes_and_our_user_agent(fetcher, image_server):
    result = fetcher.fetch(image_server.url("/img/1.jpg"))
    assert result.ok and result.status == 200 and result.reason is None
    assert result.data == imageserver.make_image(1, "JPEG")
    assert result.content_type == "image/jpeg"
    assert image_server.user_agents()[-1] == USER_AGENT


def test_content_type_is_recorded_but_not_trusted(fetcher, image_server):
    result = fetcher.fetch(image_server.url("/wrong-type.jpg"))
    assert result.ok and result.content_type == "image/jpeg"
    assert result.data.startswith(b"\x89PNG")


def test_http_errors_become_http_reasons(fetcher, image_server):
    result = fetcher.fetch(image_server.url("/404"))
    assert (result.ok, result.status, result.reason, result.data) == (False, 404, "http_404", None)


def test_server_errors_are_retried_a_bounded_number_of_times(image_server):
    before = image_server.hits("/500")
    with make_fetcher(fetch_attempts=3) as fetcher:
        result = fetcher.fetch(image_server.url("/500"))
    assert result.reason == "http_500"
    assert image_server.hits("/500") - before == 3


@pytest.mark.parametrize("path", ["/429", "/503"])
def test_retry_after_is_honoured_then_the_image_arrives(fetcher, image_server, path):
    client = key()
    result = fetcher.fetch(image_server.url(f"{path}?key={client}"))
    assert result.ok and result.data == imageserver.make_image(1, "JPEG")
    first, second = image_server.request_times(path, client)
    assert second - first >= 0.9  # the server asked for 1 second


def test_retry_after_as_an_http_date_is_honoured(fetcher, image_server):
    client = key()
    result = fetcher.fetch(image_server.url(f"/429?key={client}&retry_after=date"))
    assert result.ok
    assert len(image_server.request_times("/429", client)) == 2


def test_retry_after_beyond_the_deadline_gives_up_without_sleeping(image_server, monkeypatch):
    client = key()
    slept: list[float] = []
    monkeypatch.setattr("chunk_worker.fetch.time.sleep", slept.append)
    with make_fetcher(item_deadline_seconds=3.0) as fetcher:
        result = fetcher.fetch(image_server.url(f"/429?key={client}&retry_after=60"))
    assert result.reason == "http_429" and result.status == 429
    assert slept == []
    assert len(image_server.request_times("/429", client)) == 1


@pytest.mark.parametrize("path", ["/drip", "/drip-headers"])
def test_a_dripping_server_cannot_hold_a_fetch_past_its_deadline(image_server, path):
    with make_fetcher(item_deadline_seconds=2.0) as fetcher:  # the drip never ends: only the deadline stops it
        result = fetcher.fetch(image_server.url(path))
    assert not result.ok and result.reason == "timeout"


def test_byte_cap_holds_without_content_length(image_server):
    before = image_server.bytes_sent("/huge")
    with make_fetcher(max_bytes=1024 * 1024) as fetcher:
        result = fetcher.fetch(image_server.url("/huge"))
    assert result.reason == "too_large" and result.data is None
    assert image_server.bytes_sent("/huge") - before < 64 * 1024 * 1024  # of the 1 GiB on offer


def test_content_length_over_the_cap_is_rejected_early(image_server):
    with make_fetcher(max_bytes=1024 * 1024) as fetcher:
        result = fetcher.fetch(image_server.url("/huge-cl"))
    assert result.reason == "too_large"


def test_redirects_are_followed_to_the_image(fetcher, image_server):
    result = fetcher.fetch(image_server.url("/redirect/5"))
    assert result.ok and result.data == imageserver.make_image(5, "JPEG")
    assert result.final_url == image_server.url("/img/5.jpg")


def test_redirect_chain_up_to_the_limit_is_followed(image_server):
    with make_fetcher(max_redirects=3) as fetcher:
        assert fetcher.fetch(image_server.url("/redirect-chain/3")).ok
        assert fetcher.fetch(image_server.url("/redirect-chain/4")).reason == "too_many_redirects"


def test_redirect_loop_stops_at_the_limit(image_server):
    before = image_server.hits("/redirect-loop")
    with make_fetcher(max_redirects=4) as fetcher:
        result = fetcher.fetch(image_server.url("/redirect-loop"))
    assert result.reason == "too_many_redirects"
    assert image_server.hits("/redirect-loop") - before == 5


def test_redirect_to_the_metadata_service_is_blocked(fetcher, image_server):
    result = fetcher.fetch(image_server.url("/redirect-imds"))
    assert (result.ok, result.reason) == (False, "blocked_address")


def test_redirect_to_another_loopback_address_is_blocked_before_connecting(image_server, listener_127_0_0_2):
    port, connections = listener_127_0_0_2
    with make_fetcher() as fetcher:
        result = fetcher.fetch(image_server.url(f"/redirect-to?url=http://127.0.0.2:{port}/img/1.jpg"))
        also = fetcher.fetch(image_server.url("/redirect-loopback2"))
    assert result.reason == also.reason == "blocked_address"
    assert connections() == 0


@pytest.mark.parametrize("host", ["127.0.0.2", "2130706434", "0x7f.0.0.2", "0177.0.0.2", "[::ffff:127.0.0.2]"])
def test_every_spelling_of_a_blocked_address_is_refused_before_connecting(fetcher, listener_127_0_0_2, host):
    port, connections = listener_127_0_0_2
    result = fetcher.fetch(f"http://{host}:{port}/img/1.jpg")
    assert result.reason == "blocked_address"
    assert connections() == 0


def test_ipv6_loopback_literal_is_blocked(fetcher, image_server):
    assert fetcher.fetch(f"http://[::1]:{image_server.port}/img/1.jpg").reason == "blocked_address"


def test_a_name_is_checked_on_what_it_resolves_to(image_server):
    """`localhost` is no literal: only the resolved address check can stop it."""
    before = image_server.hits("/img/2.jpg")
    with Fetcher(NetworkPolicy(), WorkerSettings(item_deadline_seconds=5), max_bytes=1 << 20) as fetcher:
        result = fetcher.fetch(f"http://localhost:{image_server.port}/img/2.jpg")
    assert result.reason == "blocked_address"
    assert image_server.hits("/img/2.jpg") == before


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/a.jpg"])
def test_non_http_schemes_are_refused(fetcher, url):
    assert fetcher.fetch(url).reason == "blocked_scheme"


def test_redirect_to_a_non_http_scheme_is_refused(fetcher, image_server):
    assert fetcher.fetch(image_server.url("/redirect-to?url=file:///etc/passwd")).reason == "blocked_scheme"


@pytest.mark.parametrize("url", ["http://", "http://[::1/a.jpg", "http://exa mple.org/a.jpg", "http://127.0.0.1:99999/"])
def test_malformed_urls_are_bad_urls(fetcher, url):
    assert fetcher.fetch(url).reason == "bad_url"


@pytest.mark.parametrize("tag", ["noai", "pixcrawler: noimageai", "noindex, NOAI"])
def test_x_robots_tag_noai_is_an_opt_out(fetcher, image_server, tag):
    result = fetcher.fetch(image_server.url(f"/optout.jpg?tag={quote(tag)}"))
    assert (result.ok, result.reason, result.data) == (False, "opt_out", None)


def test_unreachable_port_is_a_connection_error(image_server):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with make_fetcher(fetch_attempts=2) as fetcher:
        result = fetcher.fetch(f"http://127.0.0.1:{port}/img/1.jpg")
    assert result.reason == "connection_error" and result.status is None


def test_per_host_cap_holds_under_parallel_downloads(image_server):
    image_server.reset_peak("slow")
    with make_fetcher(per_host_limit=2, fetch_threads=8) as fetcher, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: fetcher.fetch(image_server.url(f"/slow/{n}.jpg?delay=0.3")), range(8)))
    assert all(r.ok for r in results)
    assert [r.data for r in results] == [imageserver.make_image(n, "JPEG") for n in range(8)]
    assert image_server.peak_concurrency("slow") == 2
