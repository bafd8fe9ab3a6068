"""What keeps a flood of connections from taking the proxy (and the daemon around it) down.

uvicorn closes idle keep-alive connections, but a connection that sends its request line a byte at a time
stays open forever, and every open connection holds a file descriptor that the database, the log files and
the memory worker need too. So:

- the HTTP protocol is uvicorn's h11 one with a deadline for the request line and headers (armed when a
  connection opens and whenever a new request starts arriving), and a cap on open connections: one past
  the cap is answered 503 and closed at once, before it costs more than its accept;
- the soft limit on open files is raised to the hard limit at start (a service manager's 1,024 default is
  what 1,100 slow connections ran into), so the cap, not the process limit, is what a flood meets;
- errors the event loop reports (``accept()`` failing with EMFILE is retried every second, forever) are
  logged once per interval with a count, instead of a traceback each time.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("headroom.proxy")

#: Seconds between two log lines about the same kind of event-loop error.
LOOP_ERROR_INTERVAL = 60.0


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard one (macOS: at most OPEN_MAX); the soft limit after."""
    try:
        # lazy: POSIX only
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if sys.platform == "darwin":
        target = min(hard, 10240) if hard != resource.RLIM_INFINITY else 10240
    if target != resource.RLIM_INFINITY and (soft == resource.RLIM_INFINITY or soft >= target):
        return int(soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
        return int(soft)
    return int(target)


def connection_cap(configured: int, fd_limit: int) -> int:
    """The connections to accept: the configured cap, lowered when the open-file limit could not hold it
    (each proxied connection takes two descriptors, and the daemon keeps some for its files)."""
    if fd_limit <= 0:
        return configured
    return max(16, min(configured, (fd_limit - 128) // 2))


_BUSY_BODY = b'{"error": {"message": "headroom proxy: too many open connections", "type": "overloaded"}}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + f"content-length: {len(_BUSY_BODY)}\r\n\r\n".encode()
    + _BUSY_BODY
)


def guarded_protocol(header_timeout: float, max_connections: int) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a header deadline and a connection cap (the values of this proxy)."""

    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        _refused = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                # Answered at once; closed once the request is read (closing with it unread would reset the
                # connection and lose the answer) or after a second, whichever comes first.
                self._refused = True
                transport.write(_BUSY)
                self._header_timer = self.loop.call_later(1.0, transport.close)
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._refused:
                self._disarm()
                self.transport.close()
                return
            super().data_received(data)
            if self.transport.is_closing():
                self._disarm()
            elif self.conn.their_state is h11.IDLE:  # a request's line and headers are still to come
                if self._header_timer is None and data:
                    self._arm()
            else:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            self._disarm()  # keep-alive: uvicorn's idle timer runs until the next request's first byte
            super().on_response_complete()

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self.transport.close()

    return GuardedH11Protocol


class LoopErrors:
    """An event-loop exception handler that logs each kind of error once per ``interval`` seconds."""

    def __init__(self, interval: float = LOOP_ERROR_INTERVAL) -> None:
        self.interval = interval
        self.counts: dict[str, int] = {}
        self._last: dict[str, float] = {}

    def __call__(self, _loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        key = str(context.get("message", "event loop error")) + (f" ({type(exc).__name__})" if exc else "")
        self.counts[key] = self.counts.get(key, 0) + 1
        now = time.monotonic()
        if now - self._last.get(key, -self.interval) < self.interval:
            return
        self._last[key] = now
        detail = f": {exc}" if exc else ""
        log.error("%s%s (%d so far; logged at most every %gs)", key, detail, self.counts[key], self.interval)
