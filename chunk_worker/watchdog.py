"""The fetch deadline: one watchdog thread shuts a fetch's sockets down when its deadline passes.

A socket timeout bounds one read, not a whole fetch: a server that drips a byte a second never
trips it. Shutting the socket down wakes any read blocked on it, so one deadline covers DNS,
connect, redirects, retries and body."""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time


class Watch:
    """Shuts down the sockets of one fetch when its deadline passes, waking any blocked read."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._done = False
        _WATCHDOG.add(self)

    @classmethod
    def lasting(cls, seconds: float) -> Watch:
        return cls(time.monotonic() + seconds)

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
        self._heap: list[tuple[float, int, Watch]] = []
        self._wake = threading.Condition()
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, watch: Watch) -> None:
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


def watching(watch: Watch | None) -> None:
    """Names the watch of the request this thread is about to make (None when it is made): the
    connection classes below urllib3 cannot be handed it any other way."""
    _current.watch = watch


def attach_current(sock: socket.socket | None) -> None:
    """Puts a socket this thread opens or reuses under the current request's watch."""
    watch = getattr(_current, "watch", None)
    if watch is not None and sock is not None:
        watch.attach(sock)
