"""The long-running service: one process per user that keeps the session mirror current.

Lifecycle, in order: take the per-user lock, open (and upgrade) the database, start the memory worker (feed
and embeddings on its own thread), the proxy (on its own thread, with its own event loop), the scheduler
(apscheduler, its job store in the DB: learn, memory retention, CCR expiry, compaction), start watching the
agents' log roots, backfill everything already on disk (with a progress bar on a terminal, progress lines in
the log), then follow changes until SIGINT/SIGTERM. Watching starts *before* the backfill so nothing written
during it is missed (a file both backfilled and reported by the watcher is simply read twice: the second read
finds nothing new). Shutdown runs in reverse and is logged as "stopped".

SIGHUP re-reads the config file between ingestion passes (never inside the signal handler): settings the
running components read on every use are applied, the rest is logged as needing a restart, and a broken file
is logged and the old config kept. :meth:`Service.health` answers from counters the components keep anyway,
so ``GET /healthz`` and ``headroom daemon status`` never query the database.

All ingestion happens on the main thread; watchdog's threads only mark paths dirty. One writer means no
write contention inside the process, and the DB's busy timeout absorbs other processes (the CLI).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from headroom.daemon.config import Config, config_changes, display_url, is_live_key, load_config
from headroom.daemon.errors import ConfigError, ProxyError
from headroom.daemon.ingest import Ingestor, Progress, ScanReport
from headroom.daemon.process import daemon_lock
from headroom.daemon.scheduler import Scheduler
from headroom.daemon.watcher import Watcher
from headroom.memory.db import Database, open_database

if TYPE_CHECKING:
    from headroom.daemon.hooks.server import HookServer
    from headroom.daemon.learn_service import LearnJobs
    from headroom.daemon.memory_service import MemoryWorker
    from headroom.daemon.proxy.app import ProxyApp
    from headroom.daemon.proxy.server import ProxyServer
    from headroom.memory.memo_store import DBBlockMemo
from headroom.memory.errors import DatabaseError, DatabaseFull, DatabaseLocked
from headroom.memory.rescan import note_rules_applied, redact_if_rules_changed, stored_anything

log = logging.getLogger("headroom.daemon")

ROOT_CHECK_SECONDS = 5.0
#: How often the follow loop checks that the DB file is still the one it opened (one stat).
DB_CHECK_SECONDS = 1.0
#: With the disk full, ingestion pauses and tries again after this many seconds, doubling up to the maximum.
FULL_RETRY_SECONDS, FULL_RETRY_MAX_SECONDS = 5.0, 60.0


def make_ingestor(config: Config, db: Database) -> Ingestor:
    return Ingestor(
        db,
        config.agent_roots(),
        max_line_bytes=int(config.ingest.max_line_mb * (1 << 20)),
        chunk_bytes=int(config.ingest.chunk_mb * (1 << 20)),
    )


class Service:
    """The daemon: backfill, then follow the agents' logs until stopped."""

    def __init__(self, config: Config, *, progress: Progress | None = None, config_file: Path | None = None) -> None:
        self.config = config
        self.progress = progress
        #: What SIGHUP re-reads (``--config``); None: the default file, as at start.
        self.config_file = config_file
        #: Called once the backfill is over (the CLI clears its progress bar there).
        self.after_backfill: Callable[[], None] | None = None
        self.stop_event = threading.Event()
        self.watcher: Watcher | None = None
        self.ingestor: Ingestor | None = None
        self.proxy: ProxyServer | None = None
        self.memory: MemoryWorker | None = None
        self.learn: LearnJobs | None = None
        self.scheduler: Scheduler | None = None
        self.hooks: HookServer | None = None
        self.last_error: str | None = None
        self.db: Database | None = None
        self._errors: dict[str, str] = {}  # the last error per component ("ingest", "proxy", "config")
        self._started: float | None = None
        self._running = False
        self._pass_started: float | None = None  # when the ingestion pass in progress began
        self._full_since: float | None = None  # ingestion paused: the database's disk is full
        self._full_retry_at = 0.0
        self._full_wait = FULL_RETRY_SECONDS
        self._reload = threading.Event()
        self._db_recoveries: list[str] = []  # what each recovery of the DB file did, for health

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        if signum is not None:
            log.info("received %s, stopping", signal.Signals(signum).name)
        self.stop_event.set()
        if self.watcher is not None:
            self.watcher.wake()

    def request_reload(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        """Re-read the config at the next turn of the follow loop (the handler itself only sets a flag)."""
        self._reload.set()
        if self.watcher is not None:
            self.watcher.wake()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)

    def run(self) -> None:
        """Run until :meth:`request_stop` (or a signal)."""
        paths = self.config.paths
        with daemon_lock(paths), contextlib.ExitStack() as stack:
            started = self._started = time.monotonic()
            log.info("starting (pid %d, database %s)", os.getpid(), display_url(self.config.database_url))
            db = open_database(self.config.database_url, guard=True)
            stack.callback(db.close)
            self.db = db
            self._start_integrity_check(db)
            self._running = True
            stack.callback(setattr, self, "_running", False)
            memo = self._start_memory(db, stack)
            self._start_hooks(db, stack)
            self._start_proxy(db, stack, memo)
            self._start_scheduler(db, stack, memo)
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
            fresh = not stored_anything(db)
            if fresh:  # everything from here on is redacted as it is written
                note_rules_applied(db)
            report = self._scan(ingestor, self.progress)
            if self.after_backfill is not None:
                self.after_backfill()
            if not fresh:
                self._start_redaction_pass(db)
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

    def _start_redaction_pass(self, db: Database) -> None:
        """Once per change of the redaction rules (and after an upgrade from a version that kept the session
        mirror in clear), redact what is already stored, on its own thread after the backfill: rows written
        meanwhile are redacted as they are written anyway."""

        def run() -> None:
            try:
                report = redact_if_rules_changed(db)
            except Exception as exc:  # retried at the next start: the rules' fingerprint is recorded only after
                self._note_error(f"redacting stored text failed: {exc}", component="database")
                return
            if report is not None:
                log.info("redacted stored text under the current rules: %d rows changed", report["rows"])

        threading.Thread(target=run, name="headroom-redact-pass", daemon=True).start()

    def _start_integrity_check(self, db: Database) -> None:
        """``PRAGMA quick_check`` once at start, on its own thread (it reads the whole file: seconds for a large
        DB, which must not hold up the backfill); the nightly ``db-compact`` job runs it again."""

        def check() -> None:
            try:
                db.quick_check()
            except Exception as exc:  # the check itself failing is reported like damage
                db.integrity = {"ok": False, "problems": [f"{type(exc).__name__}: {exc}"], "checked_at": None}
            problem = db.integrity_problem()
            if problem:
                self._note_error(problem, component="database")
            else:
                log.info("database integrity check: ok")

        threading.Thread(target=check, name="headroom-db-check", daemon=True).start()

    def _check_database_file(self, ingestor: Ingestor) -> bool:
        """Whether the DB file is in place (one stat); when it was deleted or replaced, recover it first.

        Why recover rather than stop: the proxy keeps serving the agents meanwhile, and the old contents are
        still readable through the open file, so they can be put back whole (see memory/dbguard.py). When
        the daemon ends up on another database (the user put one in place, or the copy failed), the logs on
        disk are ingested again from the start: the rescan that follows does it.
        """
        db = self.db
        if db is None:
            return True
        what = db.check_file()
        if what is None:
            return True
        self._note_error(f"the database file was {what} under the running daemon; recovering", component="database")
        try:
            message, switched = db.recover_file()
        except Exception as exc:
            self._note_error(f"database recovery failed, will retry: {type(exc).__name__}: {exc}", component="database")
            return False
        log.warning("%s", message)
        self._db_recoveries.append(message)
        self._errors.pop("database", None)
        if self.last_error and self.last_error.startswith("the database file was"):
            self.last_error = message
        if switched:
            log.info("ingesting the agents' logs again into the database now in use")
            ingestor.forget()
        self._scan(ingestor, None)
        return True

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

    def _start_hooks(self, db: Database, stack: contextlib.ExitStack) -> None:
        """The agents' hooks' socket (daemon/hooks/server.py), which also answers the CLI's and the MCP servers'
        local requests (memory search, stats); a path that cannot be bound is logged, not fatal."""
        from headroom.daemon.hooks.answers import HookAnswers
        from headroom.daemon.hooks.server import HookServer, Request
        from headroom.daemon.memory_service import socket_search
        from headroom.daemon.stats_request import stats_request

        paths = self.config.paths
        answers = HookAnswers(lambda: self.config, db, self.memory.memory if self.memory else None, paths.hooks_stats)
        requests: dict[str, Request] = {"stats_rows": stats_request(db)}
        if self.memory is not None:
            requests["memory_search"] = socket_search(self.memory.memory)
        server = HookServer(answers, paths.hooks_socket, requests)
        try:
            server.start()
        except OSError as exc:
            self._note_error(f"hooks not started: {exc}", component="hooks")
            return
        self.hooks = server
        stack.callback(server.stop)

    def _start_scheduler(self, db: Database, stack: contextlib.ExitStack, memo: DBBlockMemo | None) -> None:
        """The periodic jobs (apscheduler on its own threads, jobs stored in the DB): learn, if enabled, and
        the memory's retention and compaction. Started after, and so stopped before, what its jobs use."""
        from headroom.daemon.memory_service import register_jobs

        scheduler = Scheduler(db)
        if self.config.learn.enabled:
            from headroom.daemon.learn_service import LearnJobs

            self.learn = LearnJobs(self.config, db)
            self.learn.register(scheduler)
        else:
            log.info("learn disabled in the config")
        register_jobs(scheduler, lambda: self.config, db, self.memory, memo)
        scheduler.start()
        stack.callback(scheduler.stop)
        self.scheduler = scheduler

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
            self._note_error(f"proxy not started: {exc}", component="proxy")
            return
        self.proxy = server
        stack.callback(server.stop)

    def _proxy_app(self, db: Database, memo: DBBlockMemo | None) -> ProxyApp:
        from headroom.daemon.memory_service import search_endpoint
        from headroom.daemon.proxy.server import build_app

        search = search_endpoint(self.memory.memory) if self.memory is not None else None
        return build_app(self.config, db, memo=memo, memory_search=search, health=self.health)

    def _follow(self, ingestor: Ingestor, watcher: Watcher) -> None:
        next_root_check = time.monotonic() + ROOT_CHECK_SECONDS
        next_rescan = time.monotonic() + self.config.watcher.rescan_seconds
        next_db_check = time.monotonic() + DB_CHECK_SECONDS
        while not self.stop_event.is_set():
            now = time.monotonic()
            wake_at = min(next_root_check, next_rescan, next_db_check)
            if self._full_since is not None:  # paused for a full disk: wake for the next retry
                wake_at = min(wake_at, self._full_retry_at)
            dirty, rescan = watcher.take(timeout=max(0.05, wake_at - now))
            if self.stop_event.is_set():
                break
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
            if time.monotonic() >= next_db_check:
                next_db_check = time.monotonic() + DB_CHECK_SECONDS
                if not self._check_database_file(ingestor):
                    watcher.requeue(dirty)  # nothing is written before the file is back: retried next round
                    continue
            if self._full_since is not None:
                # Paused for a full disk: the watcher's paths are left to the rescan that resumes ingestion
                # (offsets never moved past what was committed, so it picks up exactly where it stopped).
                if time.monotonic() >= self._full_retry_at:
                    self._scan(ingestor, None)
                continue
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
        self._pass_started = time.monotonic()
        try:
            self._ingest_each(ingestor, watcher, dirty)
        finally:
            self._pass_started = None

    def _ingest_each(self, ingestor: Ingestor, watcher: Watcher, dirty: set[Path]) -> None:
        for path in sorted(dirty):
            try:
                ingestor.ingest_path(path)
            except DatabaseFull as exc:
                self._pause_for_full_disk(exc)
                return
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
        self._pass_started = time.monotonic()
        try:
            report = ingestor.scan(progress=progress)
            if self._full_since is not None:
                self._resume_after_full_disk()
            if self.memory is not None:
                self.memory.wake()
            return report
        except DatabaseFull as exc:
            self._pause_for_full_disk(exc)
        except DatabaseError as exc:
            self._note_error(f"scan failed, will retry: {exc}")
        except Exception as exc:
            self._note_error(f"scan failed: {type(exc).__name__}: {exc}", exc)
        finally:
            self._pass_started = None
        return ScanReport()

    def _pause_for_full_disk(self, exc: DatabaseFull) -> None:
        """Stop ingesting until the database can grow again; retried with back-off, nothing is lost meanwhile."""
        now = time.monotonic()
        if self._full_since is None:
            self._full_since, self._full_wait = now, FULL_RETRY_SECONDS
            self._note_error(
                f"ingestion paused: {exc}; nothing is lost (the logs stay on disk and offsets did not move), "
                "it resumes by itself when space returns"
            )
        else:
            self._full_wait = min(self._full_wait * 2, FULL_RETRY_MAX_SECONDS)
        self._full_retry_at = now + self._full_wait

    def _resume_after_full_disk(self) -> None:
        assert self._full_since is not None
        log.info("disk space is back: ingestion resumed after %.0fs", time.monotonic() - self._full_since)
        self._full_since = None
        self._errors.pop("ingest", None)

    def _note_error(self, message: str, exc: BaseException | None = None, *, component: str = "ingest") -> None:
        self.last_error = message
        self._errors[component] = message
        log.error(message, exc_info=exc if os.environ.get("HEADROOM_RAISE_ERRORS") else None)

    # -- config reload -----------------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read the config file and apply what the running components can take (``config.LIVE_KEYS``)."""
        try:
            new = load_config(self.config_file)
        except ConfigError as exc:  # names the file and the key
            self._note_error(f"config not reloaded, the old one stays: {exc}", component="config")
            return
        changed = config_changes(self.config, new)
        live = [key for key in changed if is_live_key(key)]
        restart = [key for key in changed if not is_live_key(key)]
        config = self.config
        for key in live:
            section, _, name = key.partition(".")
            value = (
                getattr(new, section)
                if not name
                else dataclasses.replace(getattr(config, section), **{name: getattr(getattr(new, section), name)})
            )
            config = dataclasses.replace(config, **{section: value})
        self.config = config
        if self.proxy is not None and any(key.startswith("engine") for key in live):
            self.proxy.app.rewriter.reconfigure(config.engine)
        if self.proxy is not None and "proxy.holdout" in live:  # new draws; a conversation may change group
            self.proxy.app.rewriter.policy.holdout = config.proxy.holdout
        if self.learn is not None:
            self.learn.reconfigure(config)
        if self.memory is not None:
            self.memory.config = config
        if self.watcher is not None:
            self.watcher.debounce = config.watcher.debounce_ms / 1000
        self._errors.pop("config", None)
        if restart:
            log.warning("config: %s changed; needs a restart to take effect", ", ".join(restart))
        log.info(
            "reloaded config from %s: %s",
            new.source or "defaults (no config file)",
            f"applied {', '.join(live)}" if live else "nothing to apply",
        )

    # -- health ------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Every component's state, last error and backlog, from numbers kept anyway (cheap enough per request).

        ``ingest.lag_s`` is how far ingestion is behind the agents' writes: the age of the oldest change the
        watcher reported that is not ingested yet (still queued, or in the pass now running); 0 when caught up.
        """
        now = time.monotonic()
        db_size = None
        if self.db is not None:
            with contextlib.suppress(OSError):  # the WAL can vanish between exists() and stat()
                db_size = self.db.size_bytes()
        from headroom.daemon.process_info import process_info

        return {
            "pid": os.getpid(),
            "uptime_s": round(now - self._started, 1) if self._started is not None else None,
            "process": process_info(),
            "last_error": self.last_error,
            "config": {
                "file": str(self.config.source) if self.config.source else None,
                "last_error": self._errors.get("config"),
            },
            "database": self._database_health(db_size),
            "components": {
                "ingest": self._ingest_health(now),
                "memory": self._memory_health(),
                "learn": self._learn_health(),
                "scheduler": self.scheduler.health() if self.scheduler is not None else {"state": "stopped"},
                "proxy": self._proxy_health(),
                "hooks": self._hooks_health(),
            },
        }

    def _database_health(self, size: int | None) -> dict[str, Any]:
        """The DB file's state: "ok", "recovering" (deleted or replaced, not back yet), "damaged" (the last
        quick_check found errors: ``last_error`` says how to rebuild), or "unchecked" before the first check."""
        db = self.db
        failed = self._errors.get("database")
        integrity = db.integrity if db is not None else None
        if db is not None and db.integrity_problem():
            state = "damaged"
        elif failed:
            state = "recovering"
        elif integrity is None:
            state = "unchecked" if db is not None else "closed"
        else:
            state = "ok"
        return {
            "url": display_url(self.config.database_url),
            "size_bytes": size,
            "state": state,
            "last_error": (db.integrity_problem() if db is not None else None) or failed,
            "integrity": integrity,
            "recoveries": list(self._db_recoveries[-5:]),
        }

    def _ingest_health(self, now: float) -> dict[str, Any]:
        pending, oldest = 0, None
        if self.watcher is not None:
            pending, oldest = self.watcher.backlog()
        started = self._pass_started
        # A pass that began after ``now`` was read (another thread) is not a negative lag.
        ages = [max(0.0, now - t) for t in (oldest, started) if t is not None]
        state = "running" if self._running else "stopped"
        if self._running and self._full_since is not None:
            state = "paused: disk full"
        return {
            "state": state,
            "last_error": self._errors.get("ingest"),
            "pending_paths": pending,
            "lag_s": round(max(ages, default=0.0), 3),
            "events_seen": self.watcher.events_seen if self.watcher is not None else 0,
            # Log record types met for the first time by this daemon (format drift): status warns about them.
            "new_record_types": list(self.ingestor.new_record_types[-20:]) if self.ingestor is not None else [],
        }

    def _memory_health(self) -> dict[str, Any]:
        worker = self.memory
        if worker is None:
            return {"state": "disabled" if not self.config.memory.enabled else "stopped", "last_error": None}
        state = "running" if worker.alive else "stopped" if worker.stopping else "failed"
        return {
            "state": state,
            "last_error": worker.state.last_error,
            "embed_backlog": worker.state.embed_backlog,
            "rounds": worker.state.rounds,
            "errors": worker.state.errors,
        }

    def _learn_health(self) -> dict[str, Any]:
        if self.learn is None or self.scheduler is None:
            return {"state": "disabled" if not self.config.learn.enabled else "stopped", "last_error": None}
        jobs = self.scheduler.stats
        errors = [jobs[name].last_error for name in (self.learn.IDLE, self.learn.NIGHTLY) if jobs[name].last_error]
        return {
            "state": "running" if self.scheduler.running else "stopped",
            "last_error": errors[-1] if errors else None,
            "last": self.learn.last,
        }

    def _hooks_health(self) -> dict[str, Any]:
        if self.hooks is not None:
            return self.hooks.health()
        failed = self._errors.get("hooks")
        return {"state": "failed" if failed else "stopped", "last_error": failed}

    def _proxy_health(self) -> dict[str, Any]:
        if self.proxy is None:
            if not self.config.proxy.enabled:
                return {"state": "disabled", "last_error": None}
            failed = self._errors.get("proxy")
            return {"state": "failed" if failed else "stopped", "last_error": failed}
        info = self.proxy.health()
        stopping = self.proxy.server.should_exit or self.stop_event.is_set()
        state = "running" if info.pop("running") else "stopped" if stopping else "failed"
        return {"state": state, "last_error": info.pop("error"), **info}
