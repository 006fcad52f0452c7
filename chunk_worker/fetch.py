"""The safe fetcher: every download goes through here, under the address policy, a deadline and a byte cap.

Why it is more than `urllib3.request` (urllib3 directly: requests' session machinery cost about
0.5 ms of CPU per image, the largest share of a fetch under one process's GIL):
- every address is vetted before a socket is opened, on every hop (chunk_worker.connections);
- redirects are followed by hand so each hop gets the same check;
- one deadline per item covers DNS, connect, redirects, retries and body (chunk_worker.watchdog);
- the byte cap is counted while streaming, never taken from Content-Length;
- no proxy from the environment (it would bypass the address check), no cookies;
- bodies are read raw (never decoded): `identity` is asked for, and a body in any other content or
  transfer coding is refused (`encoded_body`), so no server can make a worker inflate a bomb;
- a certificate that does not verify is final: retrying cannot make it verify;
- a site's opt-outs are honoured (chunk_worker.sitefiles): robots.txt before each request of an
  image, X-Robots-Tag and TDMRep on its headers, before a byte of the body is read.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3
from urllib3.exceptions import ConnectTimeoutError, LocationValueError, NameResolutionError

from chunk_worker import user_agent
from chunk_worker.connections import HostSlots, certificate_refused, tls_options, vetted_pools
from chunk_worker.contract import OptOut, Reason, Respect, http_reason
from chunk_worker.errors import SourceUnavailable, SpecError
from chunk_worker.httprules import (REDIRECT_STATUSES, RETRY_AFTER_STATUSES, RETRY_STATUSES, backoff_delay,
                                    body_codings, parse_retry_after, with_query)
from chunk_worker.netpolicy import NetworkPolicy, PolicyError
from chunk_worker.optouts import Refusal
from chunk_worker.settings import WorkerSettings
from chunk_worker.sitefiles import SiteFile, SiteFiles
from chunk_worker.watchdog import Watch, watching

READ_CHUNK = 64 * 1024
JSON_MAX_BYTES = 8 * 1024 * 1024

IMAGE_ACCEPT = "image/*,*/*;q=0.5"
LIST_ACCEPT = "text/plain,text/csv,application/x-ndjson,application/json,*/*;q=0.5"
JSON_ACCEPT = "application/json"
SITE_FILE_ACCEPT = "text/plain,application/json,*/*;q=0.5"


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
    opt_out: OptOut | None = None  # the signal that refused the item, when one did


class _Failure(Exception):
    def __init__(self, reason: str, status: int | None = None, final_url: str | None = None,
                 retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.final_url = final_url
        self.retryable = retryable


class _OptedOut(Exception):
    """robots.txt refused a hop before any request was made for it."""

    def __init__(self, refusal: Refusal, final_url: str) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal
        self.final_url = final_url


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

Gate = Callable[[str], Refusal | None]


class Fetcher:
    """Thread-safe: one per chunk, shared by all download threads. `respect`: the opt-outs images
    are checked against (the chunk's spec.respect); robots.txt and tdmrep.json are fetched once per
    origin for the Fetcher's life, that is for the chunk."""

    def __init__(self, policy: NetworkPolicy, settings: WorkerSettings, max_bytes: int, *, verify: bool | str = True,
                 respect: Respect | None = None) -> None:
        """`verify`: True (certifi's CAs), a CA bundle file or directory (tests); never False in production."""
        self.policy = policy
        self.settings = settings
        self.max_bytes = max_bytes
        self.sites = SiteFiles(self._site_file, respect or Respect(), settings.user_agent_token)
        self._rng = random.Random()
        self._slots = HostSlots(settings.per_host_limit)
        self._dns = concurrent.futures.ThreadPoolExecutor(
            max_workers=min(8, settings.fetch_threads), thread_name_prefix="dns"
        )
        # `identity` only, and bodies are read with decode_content=False: what the cap counts is what
        # came over the wire, and a server that sends a coding anyway is refused, never inflated.
        base = {"User-Agent": user_agent(settings.user_agent_token), "Accept-Encoding": "identity"}
        self._headers = {kind: {**base, "Accept": accept} for kind, accept in (
            ("image", IMAGE_ACCEPT), ("list", LIST_ACCEPT), ("json", JSON_ACCEPT), ("site", SITE_FILE_ACCEPT))}
        # A plain PoolManager reads no proxy from the environment (one would bypass the address
        # policy) and keeps no cookies; it is told never to retry or redirect on its own.
        self._pools = urllib3.PoolManager(
            num_pools=max(10, settings.fetch_threads),
            maxsize=settings.fetch_threads,
            block=False,
            retries=False,
            headers=base,
            **tls_options(verify),
        )
        self._pools.pool_classes_by_scheme = vetted_pools(policy, self._resolve)

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
        watch = Watch.lasting(self.settings.item_deadline_seconds)
        try:
            opened = self._open(url, watch, self._headers["image"], gate=self.sites.before_request)
        except PolicyError as exc:
            watch.stop()
            return FetchResult(url, url, ok=False, reason=exc.reason.value)
        except _Failure as exc:
            watch.stop()
            return FetchResult(url, exc.final_url or url, ok=False, status=exc.status, reason=exc.reason)
        except _OptedOut as exc:
            watch.stop()
            return FetchResult(url, exc.final_url, ok=False, reason=exc.refusal.reason, opt_out=exc.refusal.record)
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
        watch = Watch.lasting(self.settings.list_deadline_seconds)
        try:
            with self._open_source(url, watch, self._headers["list"]) as opened:
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
        watch = Watch(deadline if deadline is not None else time.monotonic() + self.settings.item_deadline_seconds)
        body = urlencode(form).encode() if form is not None else None
        sent = {**self._headers["json"], **(headers or {}),
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

    def _site_file(self, url: str, cap: int) -> SiteFile:
        """GET a robots.txt or tdmrep.json under its own deadline, keeping at most `cap` bytes (the
        rest is never read); every failure is a SiteFile, never an exception."""
        watch = Watch.lasting(self.settings.site_file_deadline_seconds)
        hops: list[str] = []
        try:
            with self._open(url, watch, self._headers["site"], hops=hops) as opened:
                status = opened.response.status
                if not 200 <= status < 300:
                    return SiteFile(status=status)
                if body_codings(opened.response.headers):
                    return SiteFile(status=status, failure=Reason.ENCODED_BODY.value)
                body, truncated = self._read_prefix(opened.response, cap, watch)
                return SiteFile(status=status, body=body, truncated=truncated)
        except PolicyError as exc:
            return SiteFile(failure=exc.reason.value, redirected=len(hops) > 1)
        except _Failure as exc:
            return SiteFile(status=exc.status, failure=exc.reason, redirected=len(hops) > 1)
        finally:
            watch.stop()

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

    def _open_source(self, url: str, watch: Watch, headers: dict[str, str], body: bytes | None = None,
                     attempts: int | None = None) -> _Opened:
        """`_open` for lists and APIs: failures become the chunk errors the runner maps to exit codes."""
        try:
            opened = self._open(url, watch, headers, body=body, attempts=attempts)
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

    def _open(self, url: str, watch: Watch, headers: dict[str, str], gate: Gate | None = None,
              hops: list[str] | None = None, body: bytes | None = None, attempts: int | None = None) -> _Opened:
        """The final response after redirects and retries; raises PolicyError, _Failure or _OptedOut.
        `hops`, when given, gets each URL of the last try's chain as it is checked; `body` is POSTed."""
        attempts = attempts or self.settings.fetch_attempts
        for attempt in range(1, attempts + 1):
            try:
                if hops is not None:
                    hops.clear()
                opened = self._follow(url, watch, headers, gate, hops, body)
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

    def _pause(self, delay: float, watch: Watch) -> bool:
        """Sleep before a retry unless that would run past the deadline."""
        if delay >= watch.remaining():
            return False
        time.sleep(delay)
        return True

    def _follow(self, url: str, watch: Watch, headers: dict[str, str], gate: Gate | None,
                hops: list[str] | None, body: bytes | None = None) -> _Opened:
        """One request chain, redirects followed by hand so every hop is checked (and, for an image,
        asked of its origin's robots.txt before it is requested)."""
        current = url
        for _ in range(self.settings.max_redirects + 1):
            if hops is not None:
                hops.append(current)
            self.policy.check_url(current)
            refusal = gate(current) if gate is not None else None
            if refusal is not None:
                raise _OptedOut(refusal, current)
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

    def _request(self, url: str, watch: Watch, headers: dict[str, str], body: bytes | None = None) -> _Opened:
        host = (urlsplit(url).hostname or "").lower()
        slot = self._slots.acquire(host, watch.remaining())
        if slot is None:
            raise _Failure(Reason.TIMEOUT.value, final_url=url)
        remaining = max(watch.remaining(), 0.001)
        watching(watch)
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
            watching(None)
        return _Opened(response, url, slot)

    @staticmethod
    def _stream_reason(watch: Watch) -> str:
        timed_out = watch.expired or watch.remaining() <= 0
        return (Reason.TIMEOUT if timed_out else Reason.CONNECTION_ERROR).value

    def _read_capped(self, response: urllib3.BaseHTTPResponse, cap: int, watch: Watch) -> bytes:
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

    def _read_prefix(self, response: urllib3.BaseHTTPResponse, cap: int, watch: Watch) -> tuple[bytes, bool]:
        """At most the first `cap` bytes, and whether there was more: a robots.txt past the cap is
        read up to it and the rest ignored (RFC 9309 2.5). Raises _Failure for a timeout or a cut."""
        body = bytearray()
        try:
            for chunk in response.stream(READ_CHUNK, decode_content=False):
                body += chunk
                if len(body) > cap:
                    return bytes(body[:cap]), True
        except _TRANSPORT_ERRORS:
            raise _Failure(self._stream_reason(watch), status=response.status) from None
        if watch.expired:
            raise _Failure(Reason.TIMEOUT.value, status=response.status)
        return bytes(body), False

    def _read_image(self, url: str, opened: _Opened, watch: Watch) -> FetchResult:
        response = opened.response
        status = response.status
        content_type = response.headers.get("Content-Type")
        failed = FetchResult(url, opened.final_url, ok=False, status=status, content_type=content_type)
        if not 200 <= status < 300:
            return _with_reason(failed, http_reason(status))
        refusal = self.sites.after_headers(opened.final_url, response.headers)
        if refusal is not None:
            return _with_reason(failed, refusal.reason, refusal.record)
        if body_codings(response.headers):
            return _with_reason(failed, Reason.ENCODED_BODY.value)
        try:
            data = self._read_capped(response, self.max_bytes, watch)
        except _Failure as exc:
            return _with_reason(failed, exc.reason)
        return FetchResult(url, opened.final_url, ok=True, data=data, status=status, content_type=content_type)


def _with_reason(result: FetchResult, reason: str, opt_out: OptOut | None = None) -> FetchResult:
    return FetchResult(result.url, result.final_url, False, None, result.status, result.content_type, reason, opt_out)
