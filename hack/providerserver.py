"""A stand-in for search provider APIs on loopback: each route answers what a test scripts, from the
documented response documents in tests/fixtures/providers/, and every request is logged (arrival
time, path, query, headers, form body) so tests can count what a provider would have been sent.

Run alone (the cluster tests start it on the node host):
    python hack/providerserver.py --port 8090 --images http://HOST:PORT
serves each provider's documented pages under /<provider>/..., image URLs pointing at the image server.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "providers"
IMAGE_HOSTS = re.compile(r"^https://(upload\.wikimedia\.org|images\.metmuseum\.org|live\.staticflickr\.com|"
                         r"inaturalist-open-data\.s3\.amazonaws\.com|ids\.si\.edu|cdn\.stocksnap\.io)/")


def load(provider: str, name: str) -> object:
    return json.loads((FIXTURES / provider / f"{name}.json").read_text())


def point_images_at(document: object, image_url: Callable[[int], str]) -> object:
    """The document with each provider image URL replaced by `image_url(n)` (n counts distinct URLs in
    document order), so a fixture's results can be downloaded from the local image server."""
    seen: dict[str, str] = {}

    def walk(value: object) -> object:
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, str) and IMAGE_HOSTS.match(value):
            return seen.setdefault(value, image_url(len(seen)))
        return value

    return walk(document)


@dataclass(frozen=True)
class Request:
    at: float
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class Reply:
    document: object = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    """Sent instead of the document's JSON (answers no JSON encoder would write)."""


Answer = Callable[[Request], Reply]


class ProviderServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._routes: dict[str, Answer] = {}
        self._log: list[Request] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.app = self  # type: ignore[attr-defined]

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def route(self, path: str, answer: Answer) -> None:
        self._routes[path] = answer

    def requests(self, path: str | None = None) -> list[Request]:
        with self._lock:
            return [request for request in self._log if path is None or request.path == path]

    def start(self) -> ProviderServer:
        threading.Thread(target=self._httpd.serve_forever, name="providerserver", daemon=True).start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def answer(self, request: Request) -> Reply:
        with self._lock:
            self._log.append(request)
            answer = self._routes.get(request.path)
        return answer(request) if answer else Reply({"error": "no such route"}, 404)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._serve(b"")

    def do_POST(self) -> None:  # noqa: N802
        self._serve(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _serve(self, body: bytes) -> None:
        parts = urlsplit(self.path)
        request = Request(time.monotonic(), self.command, parts.path, dict(parse_qsl(parts.query)),
                          {key.lower(): value for key, value in self.headers.items()},
                          dict(parse_qsl(body.decode("utf-8", "replace"))))
        reply = self.server.app.answer(request)  # type: ignore[attr-defined]
        data = reply.raw if reply.raw is not None else json.dumps(reply.document).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


def documented_routes(server: ProviderServer, image_url: Callable[[int], str]) -> None:
    """Every provider's documented pages under /<provider>, whatever the query: what the cluster test
    searches. Pages follow each API's own paging parameter; image URLs are numbered across all
    documents, so no two results share an image."""
    numbers = itertools.count()

    def pointed(provider: str, name: str) -> object:
        return point_images_at(load(provider, name), lambda _: image_url(next(numbers)))

    def fixed(provider: str, name: str) -> Answer:
        document = pointed(provider, name)
        return lambda request: Reply(document)

    def by_param(provider: str, param: str, pages: dict[str, str], empty: str) -> Answer:
        documents = {value: pointed(provider, name) for value, name in pages.items()}
        empty_document = load(provider, empty)
        return lambda request: Reply(documents.get(request.params.get(param, ""), empty_document))

    server.route("/wikimedia/w/api.php", by_param("wikimedia", "gsroffset",
                                                  {"0": "search-page1", "50": "search-page2"}, "empty"))
    server.route("/inaturalist/v1/observations", by_param("inaturalist", "page", {"1": "observations-page1"},
                                                          "empty"))
    server.route("/flickr/services/rest/", by_param("flickr", "page", {"1": "search-page1"}, "empty"))
    server.route("/smithsonian/openaccess/api/v1.0/search", by_param("smithsonian", "start", {"0": "search-page1"},
                                                                     "search-empty"))
    server.route("/met/public/collection/v1/search", fixed("met", "search"))
    server.route("/met/public/collection/v1/objects/45734", fixed("met", "object-45734"))
    server.route("/openverse/v1/auth_tokens/token/", fixed("openverse", "token"))
    server.route("/openverse/v1/images/", fixed("openverse", "images-page1"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--images", required=True, help="base URL of the image server (hack/imageserver.py)")
    args = parser.parse_args(argv)
    server = ProviderServer(args.host, args.port)
    documented_routes(server, lambda n: f"{args.images.rstrip('/')}/img/{n}.jpg")
    server.start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
