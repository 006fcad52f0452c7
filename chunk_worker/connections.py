"""Connections that only ever connect to vetted addresses, their pools, TLS settings and per-host slots.

The host is resolved here and every address is checked before a socket is opened, and the socket
connects to that vetted address (TLS still verifies the hostname), so neither a redirect nor a DNS
answer can point a worker at the node, the cluster or the metadata service."""

from __future__ import annotations

import os
import socket
import ssl
import threading
from collections.abc import Callable

import certifi
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.ssl_ import create_urllib3_context
from urllib3.util.ssl_match_hostname import CertificateError

from chunk_worker.netpolicy import NetworkPolicy
from chunk_worker.watchdog import attach_current

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
                attach_current(sock)  # covers the TLS handshake too
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
        attach_current(self.sock)  # type: ignore[attr-defined]  # the TLS socket, for https

    def request(self, *args, **kwargs):  # noqa: ANN002, ANN003
        attach_current(self.sock)  # type: ignore[attr-defined]  # a pooled connection being reused
        return super().request(*args, **kwargs)  # type: ignore[misc]


def vetted_pools(policy: NetworkPolicy, resolve: Resolver) -> dict[str, type[HTTPConnectionPool]]:
    """Pool classes, by scheme, whose connections only ever connect to vetted addresses."""
    attrs = {"policy": policy, "resolve": staticmethod(resolve)}
    http_conn = type("VettedHTTPConnection", (_VettedConnection, HTTPConnection), attrs)
    https_conn = type("VettedHTTPSConnection", (_VettedConnection, HTTPSConnection), attrs)
    return {
        "http": type("VettedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("VettedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }


def tls_options(verify: bool | str) -> dict[str, object]:
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


def certificate_refused(exc: BaseException) -> bool:
    """True when a transport error is, at its root, a certificate that did not verify (wrong name,
    untrusted, expired): urllib3 wraps the ssl error once or twice, in args or as the cause.
    Retrying cannot make such a certificate verify."""
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


class HostSlots:
    """At most `limit` concurrent requests per host, so one site is never hammered by a chunk."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}

    def acquire(self, host: str, timeout: float) -> threading.BoundedSemaphore | None:
        with self._lock:
            slot = self._slots.setdefault(host, threading.BoundedSemaphore(self._limit))
        return slot if timeout > 0 and slot.acquire(timeout=timeout) else None
