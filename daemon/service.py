"""The long-running service: one process per user that keeps the session mirror current.

Lifecycle, in order: take the per-user lock, open (and upgrade) the database, start the memory worker
(feed, embeddings and retention on its own thread), the learn schedule (apscheduler), the proxy (on its own
thread, with its own event loop), start watching the agents' log roots, backfill everything already on disk
(with a progress bar on a terminal, progress lines in the log), then follow changes until SIGINT/SIGTERM.
Watching starts *before* the backfill so nothing written during it is missed (a file both backfilled and
reported by the watcher is simply read twice: the second read finds nothing new). Shutdown runs in reverse
and is logged as "stopped".

All ingestion happens on the main thread; watchdog's threads only mark paths dirty. One writer means no
write contention inside the process, and the DB's busy timeout absorbs other processes (the CLI).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from logging.handlers import RotatingFileHandler
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from headroom.daemon.config import Config
from headroom.daemon.errors import AlreadyRunning, ProxyError
from headroom.daemon.ingest import Ingestor, Progress, ScanReport
from headroom.daemon.paths import Paths
from headroom.daemon.watcher import Watcher
from headroom.memory.db import Database, open_database

if TYPE_CHECKING:
    from headroom.daemon.learn_service import LearnScheduler
    from headroom.daemon.memory_service import MemoryWorker
    from headroom.daemon.proxy.app import ProxyApp
    from headroom.daemon.proxy.server import ProxyServer
    from headroom.memory.memo_store import DBBlockMemo
from headroom.memory.errors import DatabaseError, DatabaseLocked

log = logging.getLogger("headroom.daemon")

ROOT_CHECK_SECONDS = 5.0


def make_ingestor(config: Config, db: Database) -> Ingestor:
    return Ingestor(
        db,
        config.agent_roots(),
        max_line_bytes=int(config.ingest.max_line_mb * (1 << 20)),
        chunk_bytes=int(config.ingest.chunk_mb * (1 << 20)),
    )


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
        pid_file.write_text(str(os.getpid()), encoding="ascii")
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
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [
        RotatingFileHandler(paths.log_file, maxBytes=5 << 20, backupCount=3, encoding="utf-8"),
        logging.StreamHandler(sys.stderr),
    ]
    for handler in handlers:
        handler.setFormatter(fmt)
        root.addHandler(handler)
    with contextlib.suppress(OSError):
        paths.log_file.chmod(0o600)


class Service:
    """The daemon: backfill, then follow the agents' logs until stopped."""

    def __init__(self, config: Config, *, progress: Progress | None = None) -> None:
        self.config = config
        self.progress = progress
        self.stop_event = threading.Event()
        self.watcher: Watcher | None = None
        self.ingestor: Ingestor | None = None
        self.proxy: ProxyServer | None = None
        self.memory: MemoryWorker | None = None
        self.learn: LearnScheduler | None = None
        self.last_error: str | None = None

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        if signum is not None:
            log.info("received %s, stopping", signal.Signals(signum).name)
        self.stop_event.set()
        if self.watcher is not None:
            self.watcher.wake()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.request_stop)

    def run(self) -> None:
        """Run until :meth:`request_stop` (or a signal)."""
        paths = self.config.paths
        with daemon_lock(paths), contextlib.ExitStack() as stack:
            started = time.monotonic()
            log.info("starting (pid %d, database %s)", os.getpid(), _display_url(self.config.database_url))
            db = open_database(self.config.database_url)
            stack.callback(db.close)
            memo = self._start_memory(db, stack)
            self._start_proxy(db, stack, memo)
            self._start_learn(db, stack)
            ingestor = make_ingestor(self.config, db)
            ingestor.should_stop = self.stop_event.is_set
            self.ingestor = ingestor
            roots = [root for rs in ingestor.roots.values() for root in rs]
            watcher = Watcher(
                roots,
                lambda path: ingestor.locate(path) is not None,
                debounce=self.config.watcher.debounce_ms / 1000,
                polling=self.config.watcher.polling,
            )
            self.watcher = watcher
            watcher.start()
            stack.callback(watcher.stop)
            for agent, agent_roots in ingestor.roots.items():
                for root in agent_roots:
                    log.info("%s logs: %s%s", agent, root, "" if root.is_dir() else " (not there yet)")
            report = self._scan(ingestor, self.progress)
            log.info(
                "started in %.1fs: backfilled %d files (%.1f MB, %d records, %d problems) in %.1fs",
                time.monotonic() - started,
                report.files,
                report.bytes_read / 1e6,
                report.records,
                report.problems,
                report.seconds,
            )
            self._follow(ingestor, watcher)
        log.info("stopped")

    def _start_memory(self, db: Database, stack: contextlib.ExitStack) -> DBBlockMemo | None:
        """The memory worker (feed, embeddings, retention) and the block memo the proxy shares across agents."""
        if not self.config.memory.enabled:
            log.info("memory disabled in the config")
            return None
        from headroom.daemon.memory_service import MemoryWorker, open_memory
        from headroom.memory.memo_store import DBBlockMemo

        memo = DBBlockMemo(db)
        stack.callback(memo.close)
        worker = MemoryWorker(self.config, open_memory(self.config, db), memo)
        worker.start()
        stack.callback(worker.stop)
        self.memory = worker
        return memo

    def _start_learn(self, db: Database, stack: contextlib.ExitStack) -> None:
        """Lessons after idle sessions and nightly (apscheduler, its own thread)."""
        if not self.config.learn.enabled:
            log.info("learn disabled in the config")
            return
        from headroom.daemon.learn_service import LearnScheduler

        scheduler = LearnScheduler(self.config, db)
        scheduler.start()
        stack.callback(scheduler.stop)
        self.learn = scheduler

    def _start_proxy(self, db: Database, stack: contextlib.ExitStack, memo: DBBlockMemo | None = None) -> None:
        """The proxy on its own thread; a taken port is logged and ingestion goes on without it."""
        if not self.config.proxy.enabled:
            log.info("proxy disabled in the config")
            return
        from headroom.daemon.proxy.server import ProxyServer

        try:
            proxy = self.config.proxy
            server = ProxyServer(
                self._proxy_app(db, memo), proxy.host, proxy.port, state_file=self.config.paths.proxy_state
            )
            server.start()
        except ProxyError as exc:
            self._note_error(f"proxy not started: {exc}")
            return
        self.proxy = server
        stack.callback(server.stop)

    def _proxy_app(self, db: Database, memo: DBBlockMemo | None) -> ProxyApp:
        from headroom.daemon.memory_service import search_endpoint
        from headroom.daemon.proxy.server import build_app

        search = search_endpoint(self.memory.memory) if self.memory is not None else None
        return build_app(self.config, db, memo=memo, memory_search=search)

    def _follow(self, ingestor: Ingestor, watcher: Watcher) -> None:
        next_root_check = time.monotonic() + ROOT_CHECK_SECONDS
        next_rescan = time.monotonic() + self.config.watcher.rescan_seconds
        while not self.stop_event.is_set():
            now = time.monotonic()
            dirty, rescan = watcher.take(timeout=max(0.05, min(next_root_check, next_rescan) - now))
            if self.stop_event.is_set():
                break
            if dirty:
                self._ingest_paths(ingestor, watcher, dirty)
            now = time.monotonic()
            if now >= next_root_check:
                next_root_check = now + ROOT_CHECK_SECONDS
                if watcher.check_roots():
                    rescan = True
            if rescan or now >= next_rescan:
                next_rescan = now + self.config.watcher.rescan_seconds
                self._scan(ingestor, None)

    def _ingest_paths(self, ingestor: Ingestor, watcher: Watcher, dirty: set[Path]) -> None:
        for path in sorted(dirty):
            try:
                ingestor.ingest_path(path)
            except DatabaseLocked as exc:
                self._note_error(f"database busy, will retry: {exc}")
                watcher.requeue({path})
                self.stop_event.wait(1.0)
            except Exception as exc:  # one bad file must never stop the daemon
                self._note_error(f"ingesting {path} failed: {type(exc).__name__}: {exc}", exc)
        try:
            ingestor.refresh()
        except DatabaseError as exc:
            self._note_error(f"refreshing session counters failed: {exc}")
        if self.memory is not None:
            self.memory.wake()

    def _scan(self, ingestor: Ingestor, progress: Progress | None) -> ScanReport:
        try:
            report = ingestor.scan(progress=progress)
            if self.memory is not None:
                self.memory.wake()
            return report
        except DatabaseError as exc:
            self._note_error(f"scan failed, will retry: {exc}")
        except Exception as exc:
            self._note_error(f"scan failed: {type(exc).__name__}: {exc}", exc)
        return ScanReport()

    def _note_error(self, message: str, exc: BaseException | None = None) -> None:
        self.last_error = message
        log.error(message, exc_info=exc if os.environ.get("HEADROOM_RAISE_ERRORS") else None)


def _display_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
