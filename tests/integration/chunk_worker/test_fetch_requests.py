"""What the fetcher sends on the wire: checked on a real HTTP server that records every request."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chunk_worker import USER_AGENT
from tests.fixtures.imageserver import IMAGES_ONLY, make_fetcher

BODY = b"\xff\xd8 not really a jpeg"


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is visible

    def do_GET(self) -> None:  # noqa: N802
        self.server.seen.append((self.client_address[1], dict(self.headers)))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("Set-Cookie", "session=abc; Path=/")
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.daemon_threads = True
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def url(server: ThreadingHTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_requests_ask_for_identity_encoding_with_our_user_agent(recorder):
    with make_fetcher(respect=IMAGES_ONLY) as fetcher:
        assert fetcher.fetch(url(recorder, "/a.jpg")).data == BODY
    headers = {name.lower(): value for name, value in recorder.seen[0][1].items()}
    assert headers["accept-encoding"] == "identity"
    assert headers["user-agent"] == USER_AGENT


def test_a_cookie_a_server_sets_is_never_sent_back(recorder):
    with make_fetcher(respect=IMAGES_ONLY) as fetcher:
        fetcher.fetch(url(recorder, "/a.jpg"))
        fetcher.fetch(url(recorder, "/b.jpg"))
    assert len(recorder.seen) == 2
    assert all("cookie" not in {name.lower() for name in headers} for _, headers in recorder.seen)


def test_sequential_fetches_from_one_host_reuse_one_connection(recorder):
    with make_fetcher(respect=IMAGES_ONLY) as fetcher:
        results = [fetcher.fetch(url(recorder, f"/{n}.jpg")) for n in range(3)]
    assert all(r.ok for r in results)
    assert len({port for port, _ in recorder.seen}) == 1


def test_a_proxy_from_the_environment_is_ignored(recorder, monkeypatch):
    proxy = socket.socket()
    proxy.bind(("127.0.0.1", 0))
    proxy.listen(8)
    proxy.setblocking(False)
    address = f"http://127.0.0.1:{proxy.getsockname()[1]}"
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, address)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    try:
        with make_fetcher(respect=IMAGES_ONLY) as fetcher:
            assert fetcher.fetch(url(recorder, "/a.jpg")).ok
        with pytest.raises(BlockingIOError):
            proxy.accept()
    finally:
        proxy.close()
    assert len(recorder.seen) == 1
