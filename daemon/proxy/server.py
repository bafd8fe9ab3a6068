"""Serving the proxy: uvicorn on a socket we bind ourselves, in the foreground or on a thread of the daemon.

Binding first (instead of letting uvicorn do it) turns "address already in use" into one clear error that
names the host and port before anything else starts, and lets the daemon keep ingesting when the port is
taken. The daemon runs the proxy's event loop on its own thread; stopping sets uvicorn's exit flag, which
drains open connections for a few seconds and closes the upstream pool. The connection limits (header
deadline, connection cap, open-file limit, quiet loop errors) are in :mod:`headroom.daemon.proxy.limits`;
the registration file that says where it listens, in :mod:`headroom.daemon.proxy.registration`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import uvicorn

from headroom.daemon.config import Config
from headroom.daemon.dashboard import dashboard_data as figures
from headroom.daemon.errors import ProxyError
from headroom.daemon.proxy import registration
from headroom.daemon.proxy.app import ProxyApp, ProxySettings, UpstreamCut
from headroom.daemon.proxy.guard import Guard, is_loopback
from headroom.daemon.proxy.limits import LoopErrors, connection_cap, guarded_protocol, raise_fd_limit
from headroom.daemon.proxy.rewrite import Rewriter
from headroom.daemon.proxy.savings import SavingsPolicy
from headroom.daemon.proxy.stats import StatsWriter, proxy_summary
from headroom.engine.cache import PrefixCache
from headroom.memory.ccr_store import FileCCRStore
from headroom.memory.db import Database
from headroom.memory.memo_store import DBBlockMemo

log = logging.getLogger("headroom.proxy")


def build_app(
    config: Config,
    db: Database | None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    memo: DBBlockMemo | None = None,
    memory_search: Callable[[dict[str, str]], dict[str, Any]] | None = None,
    dashboard_data: Callable[[int], Mapping[str, Any]] | None = None,
    health: Callable[[], dict[str, Any]] | None = None,
) -> ProxyApp:
    """The proxy app for this config: engine settings, upstreams, the CCR store, stats into ``db``, the
    block memo shared by every agent of a project (its own when none is given and memory is enabled), and the
    dashboard's figures from ``db`` (unless ``dashboard_data`` gives them); ``health`` (the daemon's) joins
    ``GET /healthz``."""
    p = config.proxy
    settings = ProxySettings(
        upstreams=p.upstreams(),
        mode=p.mode,
        max_body_bytes=int(p.max_body_mb * (1 << 20)),
        connect_timeout=p.connect_timeout,
        read_timeout=p.read_timeout,
        header_timeout=p.header_timeout,
        body_timeout=p.body_timeout,
        max_connections=p.max_connections,
        guard=Guard.for_bind(p.host, p.allowed_hosts),
    )
    # httpx logs every upstream URL at INFO, and Gemini's may carry ?key=: keep it out of any log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if memo is None and db is not None and config.memory.enabled:
        memo = DBBlockMemo(db)
    policy = SavingsPolicy(p.holdout)
    rewriter = Rewriter(
        config.engine,
        FileCCRStore(config.paths.ccr_dir),
        memo=memo,
        prefix=PrefixCache(max_bytes=int(config.proxy.prefix_cache_mb * (1 << 20))),
        policy=policy,
    )
    stats = StatsWriter(db, observe=policy.observe)
    summary = (lambda: proxy_summary(db)) if db is not None else None
    if dashboard_data is None and db is not None:
        dashboard_data = functools.partial(figures, db)
    return ProxyApp(
        settings,
        rewriter,
        stats,
        transport=transport,
        summary=summary,
        memory_search=memory_search,
        dashboard_data=dashboard_data,
        health=health,
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a :class:`ProxyError` that says which address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # else asyncio skips TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ProxyError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another proxy running?)") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _exit_cleanly(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


class _QuietCut(logging.Filter):
    """uvicorn logs a traceback when an app aborts a response; an upstream cut is already logged in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], UpstreamCut))


class ProxyServer:
    """One proxy listening on ``host:port``; ``run()`` in the foreground, or ``start()``/``stop()`` on a thread."""

    def __init__(
        self,
        app: ProxyApp,
        host: str,
        port: int,
        *,
        state_file: Path | None = None,
    ) -> None:
        self.app = app
        self.state_file = state_file
        self.host = host
        self.socket = bind(host, port)
        self.port: int = self.socket.getsockname()[1]
        if not is_loopback(host):
            log.warning(
                "listening on %s:%d: reachable from other machines; the proxy has no authentication", host, self.port
            )
        logging.getLogger("uvicorn.error").addFilter(_QuietCut())
        self.max_connections = connection_cap(app.settings.max_connections, raise_fd_limit())
        self.loop_errors = LoopErrors()
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                http=guarded_protocol(app.settings.header_timeout, self.max_connections),
                log_level="warning",
                access_log=False,
                lifespan="on",
                ws_max_size=app.settings.max_body_bytes,  # a frame may be as large as a request body, no larger
                ws_per_message_deflate=False,
                ws_ping_interval=None,
                timeout_graceful_shutdown=5,
                server_header=False,
                date_header=False,
            )
        )
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """A URL a local client can connect to (a wildcard address becomes loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM (uvicorn's own handlers, in the main thread)."""
        log.info("proxy listening on %s", self.url)
        self._write_state()
        # uvicorn re-raises a captured SIGTERM after its shutdown, and SIGTERM's default action would end the
        # process before the state file is removed and the queued statistics are written.
        previous = signal.signal(signal.SIGTERM, _exit_cleanly)
        try:
            asyncio.run(self._serve())
        finally:
            signal.signal(signal.SIGTERM, previous)
            self._close()

    def start(self) -> None:
        """Serve on a background thread; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self._thread_main, name="headroom-proxy", daemon=True)
        self._thread.start()
        for _ in range(200):
            if self.server.started or not self._thread.is_alive():
                break
            threading.Event().wait(0.025)
        if not self.server.started:
            raise ProxyError(f"proxy did not start on {self.url}: {self.error or 'timed out'}")
        log.info("proxy listening on %s", self.url)
        self._write_state()

    async def _serve(self) -> None:
        asyncio.get_running_loop().set_exception_handler(self.loop_errors)
        await self.server.serve(sockets=[self.socket])

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start() / status, never raised into the daemon
            self.error = exc
            log.error("proxy stopped: %s: %s", type(exc).__name__, exc)

    @property
    def stopping(self) -> bool:
        """Whether it was told to stop (a server not running then is stopped, not failed)."""
        return bool(self.server.should_exit)

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._close()

    def _write_state(self) -> None:
        """Where this proxy listens, for ``headroom wrap`` (the port may have been picked by the OS)."""
        if self.state_file is not None:
            registration.write(self.state_file, url=self.url, mode=self.app.settings.mode, token=self.app.token)

    def _close(self) -> None:
        if self.state_file is not None:
            registration.remove(self.state_file)
        with contextlib.suppress(OSError):
            self.socket.close()
        if self.app.stats is not None:
            self.app.stats.close()
        if self.app.rewriter.memo is not None:
            self.app.rewriter.memo.close()

    def health(self) -> dict[str, Any]:
        """Where it listens, whether it serves, and the statistics writer's backlog (rows not yet in the DB)."""
        stats = self.app.stats
        thread_alive = self._thread is None or self._thread.is_alive()  # None: run() in the foreground
        return {
            "url": self.url,
            "running": bool(self.server.started and not self.server.should_exit and thread_alive),
            "error": f"{type(self.error).__name__}: {self.error}" if self.error is not None else None,
            "requests": self.app.requests,
            "upstream_errors": self.app.upstream_errors,
            # BatchWriter keeps its queue private; its size is all we read (a racy but harmless snapshot).
            "stats_queue": stats.queued if stats is not None else 0,
            "stats_dropped": stats.dropped if stats is not None else 0,
            "stats_tokens_skipped": stats.tokens_skipped if stats is not None else 0,
            "refused": self.app.refused,
            "connections": len(self.server.server_state.connections),
            "max_connections": self.max_connections,
            "loop_errors": sum(self.loop_errors.counts.values()),
            # What the prefix cache holds (bounded by its byte cap): read unlocked, a harmless snapshot.
            "prefix_cache": {"entries": len(self.app.rewriter.prefix), "bytes": self.app.rewriter.prefix.bytes},
            # The holdout share and the cache watchdog's fallbacks (conversations switched to lossless).
            "savings": self.app.rewriter.policy.health(),
        }
