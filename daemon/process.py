"""The daemon process's own furniture: the one-daemon-per-user lock and pid file, and its log.

Kept apart from :mod:`headroom.daemon.service` (the lifecycle) because the CLI needs them without the service:
``daemon status``, ``wrap`` and ``doctor`` ask whether a daemon runs, a standalone proxy logs like the daemon.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from logging.handlers import RotatingFileHandler
from typing import Any

from filelock import FileLock, Timeout

from headroom.daemon.errors import AlreadyRunning
from headroom.daemon.paths import Paths
from headroom.memory.files import write_atomic
from headroom.memory.redact import redact_text

__all__ = ["RedactingFormatter", "daemon_lock", "running_daemon_pid", "setup_logging"]


@contextlib.contextmanager
def daemon_lock(paths: Paths) -> Iterator[None]:
    """Hold the one-daemon-per-user lock (released by the OS if the process dies)."""
    paths.ensure()
    lock = FileLock(str(paths.daemon_lock), timeout=0, mode=0o600)
    try:
        lock.acquire()
    except Timeout:
        pid = running_daemon_pid(paths)
        raise AlreadyRunning(
            f"headroom is already running (pid {pid if pid else 'unknown'}, lock {paths.daemon_lock})"
        ) from None
    pid_file = paths.daemon_lock.with_suffix(".pid")
    try:
        write_atomic(pid_file, str(os.getpid()).encode("ascii"), mode=0o600, fsync=False)  # gone with the process
        yield
    finally:
        with contextlib.suppress(OSError):
            pid_file.unlink()
        lock.release()


def running_daemon_pid(paths: Paths) -> int | None:
    """The pid of this user's running daemon, or None when none holds the lock."""
    if not paths.daemon_lock.exists():
        return None
    probe = FileLock(str(paths.daemon_lock), timeout=0)
    try:
        probe.acquire()
    except Timeout:
        try:
            return int(paths.daemon_lock.with_suffix(".pid").read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return -1
    probe.release()
    return None


def setup_logging(paths: Paths, *, verbose: bool = False) -> None:
    """Log to a rotating file in the state dir and to stderr."""
    paths.ensure()
    root = logging.getLogger("headroom")
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    target = str(paths.log_file.absolute())
    if any(getattr(h, "baseFilename", None) == target for h in root.handlers):
        return
    fmt = RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [
        _PrivateRotatingFileHandler(paths.log_file, maxBytes=5 << 20, backupCount=3, encoding="utf-8"),
        logging.StreamHandler(sys.stderr),
    ]
    for handler in handlers:
        handler.setFormatter(fmt)
        root.addHandler(handler)
    with contextlib.suppress(OSError):
        paths.log_file.chmod(0o600)


class RedactingFormatter(logging.Formatter):
    """Redacts each formatted line, traceback included, before a handler writes it.

    Log lines quote what the daemon was handling when something failed: a database error carries the row it
    could not store, a reader error the log line it could not parse. Those can hold an API key the agent read,
    and the log file outlives them all (DESIGN invariant 4: log lines are redacted too).
    """

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


class _PrivateRotatingFileHandler(RotatingFileHandler):
    """The log file and its rotated copies created 0600 (the log names the user's projects and files)."""

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)
