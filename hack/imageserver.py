"""A local web server of generated images, hostile ones included, for tests, the demo and benchmarks.

Run it: `python hack/imageserver.py --port 8000 --count 200`; import it: `ImageServer(count=200).start()`.
Everything is generated (deterministically by number) and cached in memory; nothing is read from
disk or the network. Per-path counters (`hits`, `bytes_sent`, `peak_concurrency`) let tests prove
what a client did and did not request.
"""

from __future__ import annotations

import argparse
import csv
import functools
import gzip
import io
import json
import math
import random
import re
import socket
import ssl
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from PIL import Image, ImageDraw

from bombs import BOMBS, bomb_bytes

FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF"}
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
DEFAULT_SIZE = (320, 240)
OPENVERSE_ANONYMOUS_PAGE_SIZE = 20
LIST_SNDBUF = 32 * 1024  # small send buffer on list responses, so an early close is visible in bytes_sent

OPENVERSE_LICENSES = ("cc0", "pdm", "by", "by-sa", "by-nc", "by-nd", "by-nc-sa", "by-nc-nd", "sampling+", "nc-sampling+")
"""The codes Openverse's `license` parameter accepts (any other is a 400)."""
OPENVERSE_CREDITS = [
    # The first two are the API documentation's example results (search and related images);
    # the rest take the same shape, so results cycle through public domain, CC and retired licences.
    {"creator": "Tim Sullivan", "creator_url": "https://www.secretagencygroup.com", "license": "cc0",
     "license_version": "1.0", "license_url": "https://creativecommons.org/publicdomain/zero/1.0/",
     "provider": "stocksnap"},
    {"creator": "Sean MacEntee", "creator_url": "https://www.flickr.com/photos/18090920@N07", "license": "by",
     "license_version": "2.0", "license_url": "https://creativecommons.org/licenses/by/2.0/", "provider": "flickr"},
    {"creator": "Jane Roe", "creator_url": None, "license": "by-sa", "license_version": "4.0",
     "license_url": "https://creativecommons.org/licenses/by-sa/4.0/", "provider": "wikimedia"},
    {"creator": None, "creator_url": None, "license": "pdm", "license_version": "1.0",
     "license_url": "https://creativecommons.org/publicdomain/mark/1.0/", "provider": "smithsonian"},
    {"creator": "Kim Lee", "creator_url": "https://www.flickr.com/photos/kimlee", "license": "by-nc-nd",
     "license_version": "3.0", "license_url": "https://creativecommons.org/licenses/by-nc-nd/3.0/", "provider": "flickr"},
    {"creator": "ccMixter user", "creator_url": None, "license": "sampling+", "license_version": "1.0",
     "license_url": "https://creativecommons.org/licenses/sampling+/1.0/", "provider": "flickr"},
]
LIST_CREDITS = [
    # What users' csv/jsonl lists carry under `meta=1`, spelled as they come: a name, a URL only,
    # both, a licence nobody can read, nothing at all.
    {"licence": "CC BY-SA 4.0", "licence_url": "", "author": "Jane Roe", "credit": "Photo: Jane Roe, CC BY-SA 4.0",
     "title": "A cat, asleep"},
    {"licence": "", "licence_url": "https://creativecommons.org/publicdomain/zero/1.0/", "author": "Tim Sullivan",
     "credit": "", "title": "Tree bark"},
    {"licence": "cc-by", "licence_url": "https://creativecommons.org/licenses/by/2.0/", "author": "Sean MacEntee",
     "credit": '"exam tactics" by Sean MacEntee is licensed under CC BY 2.0.', "title": "exam tactics"},
    {"licence": "all rights reserved", "licence_url": "", "author": "", "credit": "", "title": ""},
]


def _draw(n: int, w: int, h: int) -> Image.Image:
    """A picture unique to `n`: a coarse random colour grid (distinct perceptual hashes) plus shapes."""
    rng = random.Random(n)
    grid = Image.new("RGB", (8, 6))
    grid.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(48)])
    image = grid.resize((w, h), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randrange(8, max(9, w // 3)), y0 + rng.randrange(8, max(9, h // 3))
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x0, y0, x1, y1), fill=colour)
    return image


@functools.lru_cache(maxsize=2048)
def make_image(n: int, fmt: str = "JPEG", w: int = DEFAULT_SIZE[0], h: int = DEFAULT_SIZE[1], quality: int = 90) -> bytes:
    """Encoded bytes of picture `n` (JPEG, PNG, WEBP or GIF); the same arguments give the same bytes."""
    image = _draw(n, w, h)
    out = io.BytesIO()
    if fmt == "JPEG":
        image.save(out, "JPEG", quality=quality)
    elif fmt == "WEBP":
        image.save(out, "WEBP", quality=quality)
    elif fmt == "GIF":
        image.convert("P", palette=Image.Palette.ADAPTIVE).save(out, "GIF")
    else:
        image.save(out, fmt)
    return out.getvalue()


@functools.lru_cache(maxsize=64)
def make_oriented(n: int, orientation: int, w: int = DEFAULT_SIZE[0], h: int = DEFAULT_SIZE[1]) -> bytes:
    """A JPEG stored as w x h whose EXIF orientation tells viewers to turn it (6: 90 degrees clockwise,
    shown h x w), as phone cameras write them."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    _draw(n, w, h).save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def make_noise(n: int, w: int = DEFAULT_SIZE[0], h: int = DEFAULT_SIZE[1]) -> bytes:
    """A PNG of random pixels (seeded by `n`): incompressible, so about 3 x w x h bytes, as large as a
    photo's file and slow enough to write that a stopped worker is often caught mid-write. Not cached."""
    image = Image.frombytes("RGB", (w, h), random.Random(n).randbytes(w * h * 3))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def make_near_duplicate(n: int, w: int = DEFAULT_SIZE[0], h: int = DEFAULT_SIZE[1]) -> bytes:
    """Picture `n` re-encoded at a lower JPEG quality: different bytes, the same picture."""
    return make_image(n, "JPEG", w, h, quality=55)


def make_truncated(n: int = 1) -> bytes:
    data = make_image(n, "JPEG")
    return data[: len(data) // 2]


CODINGS = ("gzip", "deflate", "br", "zstd", "gzip-gzip", "gzip+gzip", "x-gzip", "te-gzip", "identity")
"""The /encoded/<coding>.png variants: one coding each, "gzip-gzip" stacked in one header, "gzip+gzip"
stacked over two headers, "te-gzip" as a transfer coding, "identity" as it should be."""


def encode_body(data: bytes, coding: str) -> bytes:
    """`data` in an HTTP content coding, as a server would send it (br and zstd need the test extras)."""
    if coding in ("gzip", "x-gzip"):
        return gzip.compress(data, mtime=0)
    if coding == "deflate":
        return zlib.compress(data)  # HTTP's "deflate" is the zlib format
    if coding == "br":
        import brotli

        return brotli.compress(data)
    if coding == "zstd":
        try:
            from compression import zstd
        except ImportError:
            from backports import zstd

        return zstd.compress(data)
    if coding == "identity":
        return data
    raise ValueError(f"no such coding: {coding}")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@functools.lru_cache(maxsize=4)
def make_bomb(side: int = 30000) -> bytes:
    """A valid 1-bit PNG of side x side pixels (900 megapixels at 30000) that is ~100 KiB on the wire."""
    row = b"\x00" * (1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    parts = [packer.compress(row * 256) for _ in range(side // 256)]
    parts.append(packer.compress(row * (side % 256)))
    parts.append(packer.flush())
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", b"".join(parts)) + _png_chunk(b"IEND", b"")


class _Stats:
    """Counters per path, safe across handler threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits: Counter[str] = Counter()
        self.bytes_sent: Counter[str] = Counter()
        self.completed: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.keys: Counter[str] = Counter()
        self.key_times: dict[str, list[float]] = {}
        self.user_agents: list[str] = []
        self.queries: dict[str, list[dict[str, str]]] = {}


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up early (the fetcher aborting an oversized body) are expected, not errors."""

    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class ImageServer:
    """A ThreadingHTTPServer on 127.0.0.1 (HTTP/1.1, keep-alive); the routes are in `_Handler._dispatch`."""

    def __init__(self, port: int = 0, count: int = 200, host: str = "127.0.0.1",
                 tls: ssl.SSLContext | None = None, public_host: str | None = None,
                 site: dict[str, bytes | str] | None = None) -> None:
        """`tls`: serve https with this server context; `public_host`: the name used in URLs (e.g.
        "localhost" so a certificate for that name verifies); `site`: extra paths (/robots.txt,
        /.well-known/tdmrep.json), each served as the bytes given or, given a str, as that route of
        this server (with its query) answers, e.g. "/huge", "/drip" or "/redirect-imds"."""
        self.count = count
        self.site = dict(site or {})
        self.stats = _Stats()
        self.stopping = threading.Event()
        self.scheme = "https" if tls else "http"
        self.public_host = public_host
        self._httpd = _QuietServer((host, port), _Handler)
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self._httpd.daemon_threads = True
        self._httpd.app = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.public_host or self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def start(self) -> ImageServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="imageserver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ImageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def hits(self, path: str) -> int:
        """Requests seen for `path` (without the query string)."""
        with self.stats.lock:
            return self.stats.hits[path]

    def bytes_sent(self, path: str) -> int:
        """Body bytes the server managed to write for `path`, over all requests."""
        with self.stats.lock:
            return self.stats.bytes_sent[path]

    def completed(self, path: str) -> int:
        """Responses for `path` whose whole body was written (a client that hung up early does not count)."""
        with self.stats.lock:
            return self.stats.completed[path]

    def peak_concurrency(self, route: str) -> int:
        """Most requests in progress at once on a route (its first path segment, e.g. "slow")."""
        with self.stats.lock:
            return self.stats.peak[route]

    def reset_peak(self, route: str) -> None:
        with self.stats.lock:
            self.stats.peak[route] = self.stats.in_flight[route]

    def request_times(self, path: str, key: str) -> list[float]:
        """When (monotonic) each request for a /429, /503 or /flaky/list.* client key arrived."""
        with self.stats.lock:
            return list(self.stats.key_times.get(f"{path}?{key}", []))

    def user_agents(self) -> list[str]:
        with self.stats.lock:
            return list(self.stats.user_agents)

    def queries(self, path: str) -> list[dict[str, str]]:
        """The query parameters of every request for `path`, in arrival order."""
        with self.stats.lock:
            return [dict(query) for query in self.stats.queries.get(path, [])]

    def list_lines(self, kind: str, start: int, n: int, noise: bool = False, meta: bool = False) -> Iterator[str]:
        """The lines of /list.<kind>: URLs of /img/ on this server, with comments, blanks and bad
        lines mixed in when `noise` is set; csv and jsonl rows carry `list_credit`'s columns when
        `meta` is set."""
        columns = ["url", "label", *(["licence", "licence_url", "author", "credit", "page", "title"] if meta else [])]
        if kind == "csv":
            yield ",".join(columns)
        if kind == "txt" and noise:
            yield "# a comment"
        for i in range(start, start + n):
            url = self.url(f"/img/{i}.jpg")
            if noise and i % 5 == 0:
                yield {"txt": "", "csv": '"unterminated,', "jsonl": "{not json"}[kind]
            row = {"url": url, "label": f"label-{i % 3}", **(self.list_credit(i) if meta else {})}
            if kind == "csv":
                out = io.StringIO()
                csv.writer(out, lineterminator="").writerow([row[column] for column in columns])
                yield out.getvalue()
            elif kind == "jsonl":
                yield json.dumps({key: value or None for key, value in row.items()})
            else:
                yield url

    def list_credit(self, n: int) -> dict[str, str]:
        """The licence and credit columns of list row `n` (empty strings where the row has none;
        jsonl carries those as null)."""
        return {**LIST_CREDITS[n % len(LIST_CREDITS)], "page": self.url(f"/page.html?n={n}")}

    def openverse_result(self, query: str, n: int) -> dict:
        """Search result `n` in the Openverse API's documented format; `attribution` is worded the
        way the API words it."""
        credit = OPENVERSE_CREDITS[n % len(OPENVERSE_CREDITS)]
        title = f"{query} {n}"
        return {
            "id": f"00000000-0000-4000-8000-{n:012d}",
            "title": title,
            "indexed_on": "2022-08-27T17:39:48Z",
            "foreign_landing_url": self.url(f"/page.html?n={n}"),
            "url": self.url(f"/img/{n}.jpg"),
            "creator": credit["creator"],
            "creator_url": credit["creator_url"],
            "license": credit["license"],
            "license_version": credit["license_version"],
            "license_url": credit["license_url"],
            "provider": credit["provider"],
            "source": credit["provider"],
            "category": "photograph",
            "filesize": None,
            "filetype": "jpg",
            "tags": [],
            "attribution": _openverse_attribution(title, credit),
            "fields_matched": ["title"],
            "mature": False,
            "height": DEFAULT_SIZE[1],
            "width": DEFAULT_SIZE[0],
            "thumbnail": self.url(f"/img/{n}.jpg?w=64&h=48"),
            "detail_url": self.url(f"/openverse/v1/images/{n}/"),
            "related_url": self.url(f"/openverse/v1/images/{n}/related/"),
            "unstable__sensitivity": [],
        }

    def openverse_matches(self, licenses: frozenset[str] | None = None) -> list[int]:
        """The image numbers a search finds, in result order: all of them, or those under `licenses`."""
        return [n for n in range(self.count)
                if licenses is None or OPENVERSE_CREDITS[n % len(OPENVERSE_CREDITS)]["license"] in licenses]

    def openverse_page(self, query: str, page: int, page_size: int, licenses: frozenset[str] | None = None) -> dict:
        """One page of the Openverse image search format, paging over /img/<n>.jpg."""
        matches = self.openverse_matches(licenses)
        first = (page - 1) * page_size
        return {"result_count": len(matches), "page_count": math.ceil(len(matches) / page_size),
                "page_size": page_size, "page": page,
                "results": [self.openverse_result(query, n) for n in matches[first:first + page_size]]}


_IMG = re.compile(r"^/(img|dup|near|slow|exif)/(\d+)\.(jpg|jpeg|png|webp|gif)$")
_NOISE = re.compile(r"^/slow-noise/(\d+)\.png$")
_BOMB = re.compile(r"^/bomb/([a-z0-9.-]+)$")
_REDIRECT = re.compile(r"^/redirect/(\d+)$")
_CHAIN = re.compile(r"^/redirect-chain/(\d+)$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections end on their own
    server_version = "imageserver"

    @property
    def app(self) -> ImageServer:
        return self.server.app  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet: tests read counters, not logs."""

    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        self._route_path = parts.path
        self._query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        route = parts.path.strip("/").split("/", 1)[0]
        stats = self.app.stats
        with stats.lock:
            stats.hits[parts.path] += 1
            stats.user_agents.append(self.headers.get("User-Agent", ""))
            stats.queries.setdefault(parts.path, []).append(dict(self._query))
            stats.in_flight[route] += 1
            stats.peak[route] = max(stats.peak[route], stats.in_flight[route])
        try:
            self._dispatch(parts.path)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        finally:
            with stats.lock:
                stats.in_flight[route] -= 1

    # Responses -------------------------------------------------------------------------------

    def _count(self, size: int) -> None:
        with self.app.stats.lock:
            self.app.stats.bytes_sent[self._route_path] += size

    def _done(self) -> None:
        with self.app.stats.lock:
            self.app.stats.completed[self._route_path] += 1

    def _send(self, status: int, body: bytes, content_type: str,
              headers: dict[str, str] | list[tuple[str, str]] | None = None) -> None:
        """`headers` as a list may repeat a name."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers.items() if isinstance(headers, dict) else headers or []):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self._count(len(body))
        self._done()

    def _stream(self, chunks: Iterator[bytes], content_type: str, headers: dict[str, str] | None = None,
                sndbuf: int | None = None) -> None:
        """A body without Content-Length, ended by closing the connection."""
        if sndbuf:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        for chunk in chunks:
            if self.app.stopping.is_set():
                return
            self.wfile.write(chunk)
            self._count(len(chunk))
        self._done()

    def _redirect(self, location: str, status: int = 302) -> None:
        self._send(status, b"", "text/plain", {"Location": location})

    def _image(self, n: int, fmt: str) -> bytes:
        w = int(self._query.get("w", DEFAULT_SIZE[0]))
        h = int(self._query.get("h", DEFAULT_SIZE[1]))
        return make_image(n, fmt, w, h)

    def _once_then_image(self, status: int) -> None:
        """`status` with Retry-After for the first `times` requests of a client key, then an image."""
        key = f"{self._route_path}?{self._query.get('key', '')}"
        with self.app.stats.lock:
            self.app.stats.keys[key] += 1
            self.app.stats.key_times.setdefault(key, []).append(time.monotonic())
            seen = self.app.stats.keys[key]
        if seen <= int(self._query.get("times", 1)):
            retry_after = self._query.get("retry_after", "1")
            if retry_after == "date":
                retry_after = formatdate(time.time() + 1, usegmt=True)
            self._send(status, b"slow down", "text/plain", {"Retry-After": retry_after})
        else:
            self._send(200, make_image(1, "JPEG"), "image/jpeg")

    def _dispatch(self, path: str) -> None:
        app = self.app
        if path in app.site:
            return self._site_file(app.site[path], path)
        match = _IMG.match(path)
        if match:
            kind, n, ext = match.group(1), int(match.group(2)), match.group(3)
            fmt = FORMATS[ext]
            if kind == "near":
                body = make_near_duplicate(n)
            elif kind == "exif":
                body = make_oriented(n, int(self._query.get("orientation", 6)),
                                     int(self._query.get("w", DEFAULT_SIZE[0])), int(self._query.get("h", DEFAULT_SIZE[1])))
            elif kind == "slow":
                time.sleep(float(self._query.get("delay", 0.3)))
                body = self._image(n, fmt)
            else:
                body = self._image(n, fmt)
            return self._send(200, body, CONTENT_TYPES[fmt])
        match = _BOMB.match(path)
        if match and match.group(1) in BOMBS:
            bomb = BOMBS[match.group(1)]
            return self._send(200, bomb_bytes(bomb.name), CONTENT_TYPES[bomb.format])
        match = _NOISE.match(path)
        if match:
            time.sleep(float(self._query.get("delay", 0.3)))
            w, h = int(self._query.get("w", DEFAULT_SIZE[0])), int(self._query.get("h", DEFAULT_SIZE[1]))
            return self._send(200, make_noise(int(match.group(1)), w, h), "image/png")
        match = _REDIRECT.match(path)
        if match:
            return self._redirect(f"/img/{match.group(1)}.jpg")
        match = _CHAIN.match(path)
        if match:
            hops = int(match.group(1))
            return self._redirect(f"/redirect-chain/{hops - 1}" if hops > 1 else "/img/1.jpg")
        if path.startswith("/list."):
            return self._list(path.rsplit(".", 1)[1])
        if path.startswith("/flaky/list."):
            return self._flaky_list(path.rsplit(".", 1)[1])
        if path == "/openverse/v1/images/":
            return self._openverse()
        if path.startswith("/encoded/") and path.endswith(".png"):
            return self._encoded(path[len("/encoded/"):-len(".png")])
        routes: dict[str, Callable[[], None]] = {
            "/truncated.jpg": lambda: self._send(200, make_truncated(), "image/jpeg"),
            "/bomb.png": lambda: self._send(200, make_bomb(), "image/png"),
            "/small.jpg": lambda: self._send(200, make_image(1, "JPEG", 16, 16), "image/jpeg"),
            "/wrong-type.jpg": lambda: self._send(200, make_image(1, "PNG"), "image/jpeg"),
            "/page.html": lambda: self._send(200, b"<!doctype html><title>not an image</title><p>hello</p>",
                                             "text/html; charset=utf-8"),
            "/optout.jpg": lambda: self._send(200, make_image(1, "JPEG"), "image/jpeg",
                                              {"X-Robots-Tag": self._query.get("tag", "noai")}),
            "/tdm.jpg": lambda: self._send(200, make_image(1, "JPEG"), "image/jpeg", {
                name: self._query[key] for name, key in (("tdm-reservation", "reservation"), ("tdm-policy", "policy"))
                if key in self._query}),
            "/huge": lambda: self._stream(self._endless(), "image/jpeg"),
            "/huge-cl": self._huge_cl,
            "/drip": lambda: self._stream(self._drip(), "image/jpeg"),
            "/drip-headers": self._drip_headers,
            "/429": lambda: self._once_then_image(429),
            "/503": lambda: self._once_then_image(503),
            "/404": lambda: self._send(404, b"not found", "text/plain"),
            "/500": lambda: self._send(500, b"boom", "text/plain"),
            "/redirect-loop": lambda: self._redirect("/redirect-loop"),
            "/redirect-imds": lambda: self._redirect("http://169.254.169.254/latest/meta-data"),
            "/redirect-loopback2": lambda: self._redirect(f"http://127.0.0.2:{app.port}/img/1.jpg"),
            "/redirect-to": lambda: self._redirect(self._query.get("url", "/img/1.jpg")),
            "/length/longer.png": lambda: self._lying_length(+1000),
            "/length/shorter.png": lambda: self._lying_length(-len(make_image(1, "PNG")) // 2),
        }
        handler = routes.get(path)
        if handler is None:
            return self._send(404, b"no such route", "text/plain")
        return handler()

    def _site_file(self, served: bytes | str, path: str) -> None:
        if isinstance(served, bytes):
            content_type = "application/json" if path.endswith(".json") else "text/plain"
            return self._send(200, served, content_type)
        route = urlsplit(served)
        self._query = {k: v[-1] for k, v in parse_qs(route.query).items()}
        return self._dispatch(route.path)

    def _encoded(self, coding: str) -> None:
        """Picture 1 as a PNG wrapped in `coding` (see CODINGS), though every client asks for identity."""
        if coding not in CODINGS:
            return self._send(404, b"no such coding", "text/plain")
        image = make_image(1, "PNG")
        if coding in ("gzip-gzip", "gzip+gzip"):
            body = encode_body(encode_body(image, "gzip"), "gzip")
        else:
            body = encode_body(image, coding.removeprefix("te-"))
        if coding == "gzip+gzip":
            return self._send(200, body, "image/png", [("Content-Encoding", "gzip"), ("Content-Encoding", "gzip")])
        if coding == "te-gzip":
            return self._stream(iter([body]), "image/png", {"Transfer-Encoding": "gzip"})
        headers = {} if coding == "identity" else {"Content-Encoding": coding.replace("-", ", ")}
        return self._send(200, body, "image/png", headers)

    def _lying_length(self, error: int) -> None:
        """Picture 1 as a PNG under a Content-Length `error` bytes off: longer than the body (the
        connection then closes), or shorter (the rest follows anyway, on a kept-alive connection)."""
        body = make_image(1, "PNG")
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body) + error))
        if error > 0:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self._count(len(body))
        self._done()

    def _endless(self, limit: int = 1 << 30) -> Iterator[bytes]:
        block = b"\xff" * 65536
        for _ in range(limit // len(block)):
            yield block

    def _huge_cl(self) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(1 << 30))
        self.end_headers()
        for chunk in self._endless():
            if self.app.stopping.is_set():
                return
            self.wfile.write(chunk)
            self._count(len(chunk))

    def _drip(self) -> Iterator[bytes]:
        while not self.app.stopping.wait(1.0):
            yield b"\xff"

    def _drip_headers(self) -> None:
        """Headers that never finish: one byte a second of an endless header line."""
        self.close_connection = True
        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not self.app.stopping.wait(1.0):
            self.wfile.write(b"a")
            self.wfile.flush()

    def _list(self, kind: str) -> None:
        if kind not in ("txt", "csv", "jsonl"):
            return self._send(404, b"no such list", "text/plain")
        n = int(self._query.get("n", self.app.count))
        start = int(self._query.get("start", 0))
        noise = self._query.get("noise") == "1"
        meta = self._query.get("meta") == "1"
        content_type = {"txt": "text/plain", "csv": "text/csv", "jsonl": "application/x-ndjson"}[kind]
        return self._stream(_batched(self.app.list_lines(kind, start, n, noise, meta)), content_type, sndbuf=LIST_SNDBUF)

    def _flaky_list(self, kind: str) -> None:
        """/list.<kind> that answers `status` (default 404) to the first `fails` requests of a client
        `key`: a worker reading it fails once, its retry succeeds (404 is not retried inside a fetch)."""
        key = f"{self._route_path}?{self._query.get('key', '')}"
        with self.app.stats.lock:
            self.app.stats.keys[key] += 1
            self.app.stats.key_times.setdefault(key, []).append(time.monotonic())
            seen = self.app.stats.keys[key]
        if seen <= int(self._query.get("fails", 1)):
            return self._send(int(self._query.get("status", 404)), b"not yet", "text/plain")
        return self._list(kind)

    def _openverse(self) -> None:
        query = self._query.get("q", "")
        page = int(self._query.get("page", 1))
        page_size = int(self._query.get("page_size", OPENVERSE_ANONYMOUS_PAGE_SIZE))
        if not query:
            return self._json(400, {"detail": "q is required"})
        if page_size > OPENVERSE_ANONYMOUS_PAGE_SIZE:
            return self._json(401, {"detail": "page_size above 20 needs authentication"})
        licenses = None
        if "license" in self._query:
            licenses = frozenset(self._query["license"].lower().split(","))
            unknown = sorted(licenses - set(OPENVERSE_LICENSES))
            if unknown:
                return self._json(400, {"error": "InputError", "fields": ["license"], "detail":
                                        f"Invalid input given for fields. 'license' -> License '{unknown[0]}' does not exist."})
        if page < 1 or page > max(1, math.ceil(len(self.app.openverse_matches(licenses)) / page_size)):
            return self._json(400, {"detail": "Invalid page."})
        return self._json(200, self.app.openverse_page(query, page, page_size, licenses))

    def _json(self, status: int, document: object) -> None:
        self._send(status, json.dumps(document).encode(), "application/json")


def _openverse_attribution(title: str, credit: dict) -> str:
    """The API's plain-text credit line: title, creator, "is marked with" for public domain and
    "is licensed under" for licences, then where the terms are."""
    public_domain = credit["license"] in ("cc0", "pdm")
    name = "Public Domain Mark" if credit["license"] == "pdm" else credit["license"].upper().replace("SAMPLING", "Sampling")
    name = f"{name} {credit['license_version']}" if public_domain else f"CC {name} {credit['license_version']}"
    by = f" by {credit['creator']}" if credit["creator"] else ""
    terms = "the terms" if public_domain else "a copy of this license"
    verb = "is marked with" if public_domain else "is licensed under"
    return f'"{title}"{by} {verb} {name}. To view {terms}, visit {credit["license_url"]}.'


def _batched(lines: Iterator[str], size: int = 4096) -> Iterator[bytes]:
    buffer: list[str] = []
    length = 0
    for line in lines:
        buffer.append(line)
        length += len(line) + 1
        if length >= size:
            yield ("\n".join(buffer) + "\n").encode()
            buffer, length = [], 0
    if buffer:
        yield ("\n".join(buffer) + "\n").encode()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve generated (and hostile) images on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--count", type=int, default=200, help="images behind the lists and search")
    args = parser.parse_args(argv)
    server = ImageServer(port=args.port, count=args.count).start()
    print(f"serving on {server.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
