"""The safe fetcher: every download goes through here, under the address policy, a deadline and a byte cap.

Why it is more than `urllib3.request` (urllib3 directly: requests' session machinery cost about
0.5 ms of CPU per image, the largest share of a fetch under one process's GIL):
- the host is resolved here and every address is checked before a socket is opened, and the socket
  connects to that vetted address (TLS still verifies the hostname), so neither a redirect nor a
  DNS answer can point a worker at the node, the cluster or the metadata service;
- redirects are followed by hand so each hop gets the same check;
- one deadline per item covers DNS, connect, redirects, retries and body: a watchdog shuts the
  socket down when it passes, so a server that drips a byte a second cannot hold a thread;
- the byte cap is counted while streaming, never taken from Content-Length;
- no proxy from the environment (it would bypass the address check), no cookies;
- bodies are read raw (never decoded): `identity` is asked for, and a body in any other content or
  transfer coding is refused (`encoded_body`), so no server can make a worker inflate a bomb;
- a certificate that does not verify is final: retrying cannot make it verify.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import http.client
import itertools
import json
import os
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import certifi
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, LocationValueError, NameResolutionError, NewConnectionError
from urllib3.util.ssl_ import create_urllib3_context
from urllib3.util.ssl_match_hostname import CertificateError

from chunk_worker import USER_AGENT
from chunk_worker.contract import Reason, http_reason
from chunk_worker.errors import SourceUnavailable, SpecError
from chunk_worker.netpolicy import NetworkPolicy, PolicyError
from chunk_worker.settings import WorkerSettings

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
OPT_OUT_DIRECTIVES = frozenset({"noai", "noimageai"})
READ_CHUNK = 64 * 1024
JSON_MAX_BYTES = 8 * 1024 * 1024

# `identity` only, and bodies are read with decode_content=False: what the cap counts is what came over
# the wire, and a server that sends a coding anyway is refused (body_codings), never inflated.
BASE_HEADERS = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
IMAGE_HEADERS = {**BASE_HEADERS, "Accept": "image/*,*/*;q=0.5"}
LIST_HEADERS = {**BASE_HEADERS, "Accept": "text/plain,text/csv,application/x-ndjson,application/json,*/*;q=0.5"}
JSON_HEADERS = {**BASE_HEADERS, "Accept": "application/json"}


class SourceHTTPError(SourceUnavailable):
    """A list or API answered with a non-2xx status; `status` lets a caller tell "no more pages" apart."""

    def __init__(self, message: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class FetchResult:
    url: str
    final_url: str
    ok: bool
    data: bytes | None = None
    status: int | None = None
    content_type: str | None = None
    reason: str | None = None


# Pure decisions ------------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date); None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, retry_after: float | None, rng: random.Random, base: float = 0.25, cap: float = 8.0) -> float:
    """How long to wait before try `attempt + 1`: the server's Retry-After if it gave one, else
    exponential in the attempt with jitter so many workers do not retry in step."""
    if retry_after is not None:
        return max(0.0, retry_after)
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return rng.uniform(ceiling / 2, ceiling)


def robots_opt_out(value: str | None) -> bool:
    """True when X-Robots-Tag carries `noai` or `noimageai`, bare or in the `<useragent>: noai` form."""
    if not value:
        return False
    tokens = re.split(r"[\s,:;]+", value.lower())
    return not OPT_OUT_DIRECTIVES.isdisjoint(tokens)


def body_codings(headers: Mapping[str, str]) -> list[str]:
    """The codings a body is wrapped in besides identity (Content-Encoding, and Transfer-Encoding
    other than the chunked framing http.client undoes); any at all means the body is refused."""
    content = [c.strip().lower() for c in headers.get("Content-Encoding", "").split(",")]
    transfer = [c.strip().lower() for c in headers.get("Transfer-Encoding", "").split(",")]
    return [c for c in content if c not in ("", "identity")] + [c for c in transfer if c not in ("", "identity", "chunked")]


def certificate_refused(exc: BaseException) -> bool:
    """True when a transport error is, at its root, a certificate that did not verify (wrong name,
    untrusted, expired): urllib3 wraps the ssl error once or twice, in args or as the cause."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (ssl.SSLCertVerificationError, CertificateError)):
            return True
        pending.extend([current.__cause__, current.__context__, *current.args])
    return False


def with_query(url: str, params: Mapping[str, object] | None) -> str:
    """`url` with `params` added to its query as requests encoded them: None values dropped, a list
    or tuple repeats its key, everything else through str(). Raises ValueError on a malformed URL."""
    if not params:
        return url
    pairs = [
        (key, value)
        for key, values in params.items()
        for value in (values if isinstance(values, (list, tuple)) else [values])
        if value is not None
    ]
    parts = urlsplit(url)
    query = "&".join(part for part in (parts.query, urlencode(pairs)) if part)
    return urlunsplit(parts._replace(query=query))


# The socket watchdog -------------------------------------------------------------------------


class _Watch:
    """Shuts down the sockets of one fetch when its deadline passes, waking any blocked read."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._done = False
        _WATCHDOG.add(self)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def attach(self, sock: socket.socket) -> None:
        """Holds the socket object itself: http.client drops `conn.sock` once a response owns it."""
        with self._lock:
            if self._done:
                return
            self._socks.append(sock)
            if self.expired:
                _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            for sock in self._socks:
                _shutdown(sock)

    def stop(self) -> None:
        with self._lock:
            self._done = True
            self._socks.clear()


class _Watchdog:
    """One thread expires every fetch's watch at its deadline: a timer thread per fetch would cost
    more CPU than the rest of a small image's bookkeeping. Stopped watches just lapse harmlessly."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Watch]] = []
        self._wake = threading.Condition()
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, watch: _Watch) -> None:
        with self._wake:
            heapq.heappush(self._heap, (watch.deadline, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fetch-watchdog", daemon=True)
                self._thread.start()
            if self._heap[0][2] is watch:
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap:
                    self._wake.wait()
                deadline, _, watch = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._wake.wait(delay)
                    continue
                heapq.heappop(self._heap)
            watch._expire()


_WATCHDOG = _Watchdog()


def _shutdown(sock: socket.socket) -> None:
    try:
        # The plain-socket method also works on an SSLSocket without touching its TLS state;
        # a closed socket has no descriptor (-1), so a reused descriptor is never hit.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


_current = threading.local()


def _attach_current(sock: socket.socket | None) -> None:
    watch = getattr(_current, "watch", None)
    if watch is not None and sock is not None:
        watch.attach(sock)


# Connections that only ever connect to vetted addresses --------------------------------------

Resolver = Callable[[str, int, float | None], list[tuple]]


class _VettedConnection:
    """Mixin for urllib3 connections: resolve, check every address, then connect to a checked one."""

    policy: NetworkPolicy
    resolve: Resolver

    def _new_conn(self) -> socket.socket:
        conn: HTTPConnection = self  # type: ignore[assignment]
        timeout = conn.timeout if isinstance(conn.timeout, (int, float)) else None
        infos = self.resolve(conn._dns_host, conn.port, timeout)
        for info in infos:
            self.policy.check_address(info[4][0])
        last: OSError | None = None
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                for option in conn.socket_options or ():
                    sock.setsockopt(*option)
                sock.settimeout(timeout)
                _attach_current(sock)  # covers the TLS handshake too
                sock.connect(address)
            except TimeoutError as exc:
                sock.close()
                raise ConnectTimeoutError(conn, f"Connection to {conn.host} timed out") from exc
            except OSError as exc:
                sock.close()
                last = exc
                continue
            return sock
        raise NewConnectionError(conn, f"Failed to establish a new connection: {last}")

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _attach_current(self.sock)  # type: ignore[attr-defined]  # the TLS socket, for https

    def request(self, *args, **kwargs):  # noqa: ANN002, ANN003
        _attach_current(self.sock)  # type: ignore[attr-defined]  # a pooled connection being reused
        return super().request(*args, **kwargs)  # type: ignore[misc]


def _vetted_pools(policy: NetworkPolicy, resolve: Resolver) -> dict[str, type[HTTPConnectionPool]]:
    """Pool classes, by scheme, whose connections only ever connect to vetted addresses."""
    attrs = {"policy": policy, "resolve": staticmethod(resolve)}
    http_conn = type("VettedHTTPConnection", (_VettedConnection, HTTPConnection), attrs)
    https_conn = type("VettedHTTPSConnection", (_VettedConnection, HTTPSConnection), attrs)
    return {
        "http": type("VettedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("VettedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }


def _tls_options(verify: bool | str) -> dict[str, object]:
    """One shared TLS context with the CAs loaded once (requests' bundle, certifi's, by default);
    urllib3 would otherwise build a context and reload the CAs for every new connection."""
    if verify is False:
        return {"cert_reqs": "CERT_NONE"}
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    if isinstance(verify, str) and os.path.isdir(verify):
        context.load_verify_locations(capath=verify)
    else:
        context.load_verify_locations(cafile=certifi.where() if verify is True else verify)
    return {"cert_reqs": "CERT_REQUIRED", "ssl_context": context}


class _HostSlots:
    """At most `limit` concurrent requests per host, so one site is never hammered by a chunk."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}

    def acquire(self, host: str, timeout: float) -> threading.BoundedSemaphore | None:
        with self._lock:
            slot = self._slots.setdefault(host, threading.BoundedSemaphore(self._limit))
        return slot if timeout > 0 and slot.acquire(timeout=timeout) else None


class _Failure(Exception):
    def __init__(self, reason: str, status: int | None = None, final_url: str | None = None,
                 retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.final_url = final_url
        self.retryable = retryable


@dataclass
class _Opened:
    """A final (non-redirect) response with its headers read and its host slot held."""

    response: urllib3.BaseHTTPResponse
    final_url: str
    slot: threading.BoundedSemaphore

    def close(self) -> None:
        """A body read to the end has already given its connection back to the pool; one left
        unread (error, redirect, cap, early stop) closes its connection rather than drain it."""
        try:
            self.response.close()
            self.response.release_conn()
        finally:
            self.slot.release()

    def __enter__(self) -> _Opened:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)
_BAD_URL_ERRORS = (LocationValueError, http.client.InvalidURL)


class Fetcher:
    """Thread-safe: one per chunk, shared by all download threads."""

    def __init__(self, policy: NetworkPolicy, settings: WorkerSettings, max_bytes: int, *, verify: bool | str = True) -> None:
        """`verify`: True (certifi's CAs), a CA bundle file or directory (tests); never False in production."""
        self.policy = policy
        self.settings = settings
        self.max_bytes = max_bytes
        self._rng = random.Random()
        self._slots = _HostSlots(settings.per_host_limit)
        self._dns = concurrent.futures.ThreadPoolExecutor(
            max_workers=min(8, settings.fetch_threads), thread_name_prefix="dns"
        )
        # A plain PoolManager reads no proxy from the environment (one would bypass the address
        # policy) and keeps no cookies; it is told never to retry or redirect on its own.
        self._pools = urllib3.PoolManager(
            num_pools=max(10, settings.fetch_threads),
            maxsize=settings.fetch_threads,
            block=False,
            retries=False,
            headers=BASE_HEADERS,
            **_tls_options(verify),
        )
        self._pools.pool_classes_by_scheme = _vetted_pools(policy, self._resolve)

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._pools.clear()
        self._dns.shutdown(wait=False, cancel_futures=True)

    # Public API ---------------------------------------------------------------------------

    def fetch(self, url: str) -> FetchResult:
        """Download one image; every failure is a result with a reason, never an exception."""
        watch = _Watch(time.monotonic() + self.settings.item_deadline_seconds)
        try:
            opened = self._open(url, watch, IMAGE_HEADERS)
        except PolicyError as exc:
            watch.stop()
            return FetchResult(url, url, ok=False, reason=exc.reason.value)
        except _Failure as exc:
            watch.stop()
            return FetchResult(url, exc.final_url or url, ok=False, status=exc.status, reason=exc.reason)
        try:
            return self._read_image(url, opened, watch)
        finally:
            opened.close()
            watch.stop()

    def open_lines(self, url: str) -> Iterator[bytes]:
        """Stream a text list's raw bytes (never loaded whole; chunk_worker.listlines splits and
        numbers its lines); closing the iterator closes the connection, so a slice near the top of a
        huge list reads only the top.

        The list deadline runs from the first `next()`: consume promptly (a chunk's slice is small).
        A URL the policy refuses is a spec problem (SpecError); a network or HTTP failure may pass
        (SourceUnavailable)."""
        watch = _Watch(time.monotonic() + self.settings.list_deadline_seconds)
        try:
            with self._open_source(url, watch, LIST_HEADERS) as opened:
                try:
                    yield from opened.response.stream(READ_CHUNK, decode_content=False)
                except _TRANSPORT_ERRORS as exc:
                    raise SourceUnavailable(f"URL list {url}: {self._stream_reason(watch)} ({exc})") from None
                if watch.expired:
                    raise SourceUnavailable(f"URL list {url}: {Reason.TIMEOUT.value}")
        finally:
            watch.stop()

    def get_json(self, url: str, params: dict[str, object] | None = None, max_bytes: int = JSON_MAX_BYTES, *,
                 headers: Mapping[str, str] | None = None, form: Mapping[str, str] | None = None,
                 deadline: float | None = None, attempts: int | None = None) -> object:
        """GET a JSON document of bounded size (search APIs), under the same policy as images. `form`
        POSTs those fields instead (an OAuth token request); `deadline` (monotonic) replaces the
        per-item one; `attempts=1` leaves 429/5xx to the caller (search providers pace cluster-wide)."""
        try:
            target = with_query(url, params)
        except ValueError:
            raise SpecError(f"source {url} is refused: malformed URL") from None
        watch = _Watch(deadline if deadline is not None else time.monotonic() + self.settings.item_deadline_seconds)
        body = urlencode(form).encode() if form is not None else None
        sent = {**JSON_HEADERS, **(headers or {}),
                **({"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {})}
        try:
            with self._open_source(target, watch, sent, body, attempts) as opened:
                try:
                    body = self._read_capped(opened.response, max_bytes, watch)
                except _Failure as exc:
                    raise SourceUnavailable(f"{target}: {exc.reason}") from None
            try:
                return json.loads(body)
            except ValueError as exc:
                raise SourceUnavailable(f"{target}: not JSON ({exc})") from None
        finally:
            watch.stop()

    # Internals ----------------------------------------------------------------------------

    def _resolve(self, host: str, port: int, timeout: float | None) -> list[tuple]:
        """getaddrinfo bounded by the connect timeout (it has none of its own)."""
        future = self._dns.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
        try:
            infos = future.result(timeout=timeout)
        except concurrent.futures.TimeoutError as exc:
            raise ConnectTimeoutError(None, f"resolving {host} timed out") from exc
        except socket.gaierror as exc:
            raise NameResolutionError(host, None, exc) from exc  # type: ignore[arg-type]
        if not infos:
            raise NameResolutionError(host, None, socket.gaierror("no addresses"))  # type: ignore[arg-type]
        return infos

    def _open_source(self, url: str, watch: _Watch, headers: dict[str, str], body: bytes | None = None,
                     attempts: int | None = None) -> _Opened:
        """`_open` for lists and APIs: failures become the chunk errors the runner maps to exit codes."""
        try:
            opened = self._open(url, watch, headers, body, attempts)
        except PolicyError as exc:
            raise SpecError(f"source {url} is refused: {exc}") from None
        except _Failure as exc:
            raise SourceUnavailable(f"source {url}: {exc.reason}") from None
        if not 200 <= opened.response.status < 300:
            status = opened.response.status
            retry_after = parse_retry_after(opened.response.headers.get("Retry-After"))
            opened.close()
            raise SourceHTTPError(f"source {url}: {http_reason(status)}", status, retry_after)
        codings = body_codings(opened.response.headers)
        if codings:
            opened.close()
            raise SpecError(f"source {url} is refused: its body is {', '.join(codings)}-encoded "
                            f"({Reason.ENCODED_BODY.value}); only identity is accepted")
        return opened

    def _open(self, url: str, watch: _Watch, headers: dict[str, str], body: bytes | None = None,
              attempts: int | None = None) -> _Opened:
        """The final response after redirects and retries; raises PolicyError or _Failure."""
        attempts = attempts or self.settings.fetch_attempts
        for attempt in range(1, attempts + 1):
            try:
                opened = self._follow(url, watch, headers, body)
            except _Failure as exc:
                if exc.reason != Reason.CONNECTION_ERROR.value or not exc.retryable or attempt == attempts:
                    raise
                if not self._pause(backoff_delay(attempt, None, self._rng), watch):
                    raise
                continue
            status = opened.response.status
            if status in RETRY_STATUSES and attempt < attempts:
                retry_after = None
                if status in RETRY_AFTER_STATUSES:
                    retry_after = parse_retry_after(opened.response.headers.get("Retry-After"))
                delay = backoff_delay(attempt, retry_after, self._rng)
                if delay < watch.remaining():
                    opened.close()
                    self._pause(delay, watch)
                    continue
            return opened
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _pause(self, delay: float, watch: _Watch) -> bool:
        """Sleep before a retry unless that would run past the deadline."""
        if delay >= watch.remaining():
            return False
        time.sleep(delay)
        return True

    def _follow(self, url: str, watch: _Watch, headers: dict[str, str], body: bytes | None = None) -> _Opened:
        """One request chain, redirects followed by hand so every hop is checked."""
        current = url
        for _ in range(self.settings.max_redirects + 1):
            self.policy.check_url(current)
            opened = self._request(current, watch, headers, body)
            response = opened.response
            location = response.headers.get("Location") if response.status in REDIRECT_STATUSES else None
            if location is None:
                return opened
            opened.close()
            try:
                previous, current = current, urljoin(current, location)
            except ValueError:
                raise _Failure(Reason.BAD_URL.value, final_url=current) from None
            if urlsplit(previous)[:2] != urlsplit(current)[:2]:  # credentials stay with their origin
                headers = {key: value for key, value in headers.items() if key.lower() != "authorization"}
                body = None
        raise _Failure(Reason.TOO_MANY_REDIRECTS.value, final_url=current)

    def _request(self, url: str, watch: _Watch, headers: dict[str, str], body: bytes | None = None) -> _Opened:
        host = (urlsplit(url).hostname or "").lower()
        slot = self._slots.acquire(host, watch.remaining())
        if slot is None:
            raise _Failure(Reason.TIMEOUT.value, final_url=url)
        remaining = max(watch.remaining(), 0.001)
        _current.watch = watch
        try:
            response = self._pools.urlopen(
                "GET" if body is None else "POST",
                url,
                body=body,
                headers=headers,
                retries=False,
                redirect=False,
                preload_content=False,
                decode_content=False,
                timeout=urllib3.Timeout(connect=remaining, read=remaining),
            )
        except PolicyError:
            slot.release()
            raise
        except _BAD_URL_ERRORS:
            slot.release()
            raise _Failure(Reason.BAD_URL.value, final_url=url) from None
        except _TRANSPORT_ERRORS as exc:
            slot.release()
            raise _Failure(self._stream_reason(watch), final_url=url, retryable=not certificate_refused(exc)) from None
        finally:
            _current.watch = None
        return _Opened(response, url, slot)

    @staticmethod
    def _stream_reason(watch: _Watch) -> str:
        timed_out = watch.expired or watch.remaining() <= 0
        return (Reason.TIMEOUT if timed_out else Reason.CONNECTION_ERROR).value

    def _read_capped(self, response: urllib3.BaseHTTPResponse, cap: int, watch: _Watch) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            raise _Failure(Reason.TOO_LARGE.value, status=response.status)
        body = bytearray()
        try:
            for chunk in response.stream(READ_CHUNK, decode_content=False):
                body += chunk
                if len(body) > cap:
                    raise _Failure(Reason.TOO_LARGE.value, status=response.status)
        except _TRANSPORT_ERRORS:
            raise _Failure(self._stream_reason(watch), status=response.status) from None
        if watch.expired:
            raise _Failure(Reason.TIMEOUT.value, status=response.status)
        return bytes(body)

    def _read_image(self, url: str, opened: _Opened, watch: _Watch) -> FetchResult:
        response = opened.response
        status = response.status
        content_type = response.headers.get("Content-Type")
        failed = FetchResult(url, opened.final_url, ok=False, status=status, content_type=content_type)
        if not 200 <= status < 300:
            return _with_reason(failed, http_reason(status))
        if robots_opt_out(response.headers.get("X-Robots-Tag")):
            return _with_reason(failed, Reason.OPT_OUT.value)
        if body_codings(response.headers):
            return _with_reason(failed, Reason.ENCODED_BODY.value)
        try:
            data = self._read_capped(response, self.max_bytes, watch)
        except _Failure as exc:
            return _with_reason(failed, exc.reason)
        return FetchResult(url, opened.final_url, ok=True, data=data, status=status, content_type=content_type)


def _with_reason(result: FetchResult, reason: str) -> FetchResult:
    return FetchResult(result.url, result.final_url, False, None, result.status, result.content_type, reason)
