"""The daemon's hook endpoint: a Unix socket under headroom's state dir, one JSON line in, one out.

Why a Unix socket and not the daemon's HTTP port: hooks run on every prompt and tool call, so the endpoint
must be cheap to reach from a bare ``python -I -S`` (no HTTP client to import) and must be reachable only by
this user. A socket file in the owner-only state dir (0700), itself 0600, is both: no TCP port a browser
page or another local user could reach, so no Host/Origin guard to get right, and the kernel checks the
permissions; on Linux the peer's uid is checked as well (``SO_PEERCRED``). The daemon holds the
one-per-user lock, so a socket file left by a killed daemon is simply replaced at start.

Each connection is served on its own thread (hooks of parallel sessions do not queue behind a briefing);
the hook client sends a header line (agent, event) and the event's bytes as the agent gave them, and
gets back the bytes to print (:meth:`~headroom.daemon.hooks.answers.HookAnswers.hook`, which never
raises); a plain JSON line gets a JSON answer (``hooks status``). Requests are capped at :data:`MAX_REQUEST`.

The same socket answers the daemon's other local requests (``requests``: ``memory_search`` for
``headroom memory search`` and the MCP servers, so they use the model the daemon has loaded instead of
loading their own). It is there whenever the daemon runs, whether or not the proxy is enabled.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from headroom.daemon.hooks.answers import HookAnswers

log = logging.getLogger("headroom.hooks")

#: A local request other than a hook's (``{"purpose": NAME, ...}`` -> a JSON object), e.g. ``memory_search``.
Request = Callable[[dict[str, Any]], dict[str, Any]]

MAX_REQUEST = 16 << 20
READ_TIMEOUT_S = 5.0
#: sun_path is 108 bytes on Linux, 104 on macOS: a longer socket path cannot be bound.
MAX_PATH_BYTES = 100


class _Handler(socketserver.StreamRequestHandler):
    server: _Server
    timeout = READ_TIMEOUT_S

    def handle(self) -> None:
        if not _same_user(self.request):
            return
        line = self.rfile.readline(MAX_REQUEST)
        try:
            header = json.loads(line or b"{}")
        except ValueError:
            header = None
        if not isinstance(header, dict):
            self._write(json.dumps({"context": "", "error": "bad request"}).encode())
        elif header.get("v") == 2:  # the hook client: the event's raw bytes follow; answer what it prints
            self._write(self.server.answers.hook(header, self.rfile.read(MAX_REQUEST)).encode())
        elif header.get("purpose") in self.server.requests:  # a local request: ``headroom memory search``, MCP
            answer = _serve(self.server.requests[header["purpose"]], header)
            self._write(json.dumps(answer, ensure_ascii=False).encode())
        else:  # a JSON request (``hooks status``, tests, the benchmark): a JSON answer
            self._write(json.dumps(self.server.answers.answer(header), ensure_ascii=False).encode())

    def _write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self.wfile.write(data + b"\n" if data else b"")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    answers: HookAnswers
    requests: dict[str, Request]


def _serve(handler: Request, request: dict[str, Any]) -> dict[str, Any]:
    """``handler``'s answer, or ``{"error": ...}``: a bad request or a failure must not end the connection
    without an answer (the caller then falls back to doing the work itself)."""
    try:
        return handler(request)
    except ValueError as exc:
        return {"error": str(exc)}
    except Exception as exc:
        log.error("local request %s failed: %s: %s", request.get("purpose"), type(exc).__name__, exc)
        return {"error": f"{type(exc).__name__}: {exc}"}


def _same_user(sock: socket.socket) -> bool:
    """The peer runs as this user (Linux ``SO_PEERCRED``; elsewhere the socket's 0600 mode does the job)."""
    peercred = getattr(socket, "SO_PEERCRED", None)
    if peercred is None:
        return True
    try:
        _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, peercred, struct.calcsize("3i")))
    except OSError:
        return False
    return bool(uid == os.getuid())


class HookServer:
    """Serves :class:`HookAnswers` on ``path`` from a thread: ``start()``, ``stop()``."""

    def __init__(self, answers: HookAnswers, path: Path, requests: dict[str, Request] | None = None) -> None:
        self.answers = answers
        self.path = path
        self.requests = dict(requests or {})
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._warm: threading.Thread | None = None

    def start(self) -> None:
        """Bind (replacing a stale socket file) and serve; ``OSError`` when the path cannot be bound."""
        if len(os.fsencode(self.path)) > MAX_PATH_BYTES:
            raise OSError(f"the socket path {self.path} is too long for a Unix socket")
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # the daemon lock is held: no other daemon can be serving it
        old = os.umask(0o177)
        try:
            server = _Server(str(self.path), _Handler, bind_and_activate=True)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        server.answers = self.answers
        server.requests = self.requests
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="headroom-hooks", daemon=True
        )
        self._thread.start()
        self._warm = threading.Thread(target=self.answers.warm_up, name="headroom-hooks-warm", daemon=True)
        self._warm.start()
        log.info("hooks: answering on %s", self.path)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        if self._warm is not None:  # a stop right after the start: the warm-up is a query and a table load
            self._warm.join(10)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        log.info("hooks: stopped")

    def health(self) -> dict[str, Any]:
        return {
            "state": "running" if self.running else "stopped",
            "last_error": None,
            "socket": str(self.path),
            **self.answers.health(),
        }
