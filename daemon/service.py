"""The long-running service: one process per user that keeps the session mirror current.

Lifecycle, in order: take the per-user lock, open (and upgrade) the database, start the memory worker (feed
and embeddings on its own thread), the proxy (on its own thread, with its own event loop), the scheduler
(apscheduler, its job store in the DB: learn, memory retention, CCR expiry, compaction), start watching the
agents' log roots, backfill everything already on disk (with a progress bar on a terminal, progress lines in
the log), then follow changes until SIGINT/SIGTERM. Watching starts *before* the backfill so nothing written
during it is missed (a file both backfilled and reported by the watcher is simply read twice: the second read
finds nothing new). Shutdown runs in reverse and is logged as "stopped".

Every part is a component under one contract (daemon/component.py: ``start(stack)``, ``stop()``,
``health()``, ``reconfigure(config)``), so this module runs the lifecycle generically and never reads a
component's internals: ingestion and its follow loop are daemon/follow.py, the others daemon/components.py.

SIGHUP re-reads the config file between ingestion passes (never inside the signal handler): every component
is handed the new config and applies what it can read live, the rest is logged as needing a restart, and a
broken file is logged and the old config kept. :meth:`Service.health` asks each component for its typed
health record, built from counters the components keep anyway, so ``GET /healthz`` and ``headroom daemon
status`` never query the database.
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
from typing import Any

from headroom.daemon.component import Component, Runtime
from headroom.daemon.components import (
    HooksComponent,
    LearnComponent,
    MemoryComponent,
    ProxyComponent,
    SchedulerComponent,
)
from headroom.daemon.config import Config, config_changes, display_url, is_live_key, load_config
from headroom.daemon.errors import ConfigError
from headroom.daemon.follow import IngestLoop, make_ingestor
from headroom.daemon.hooks.server import HookServer
from headroom.daemon.ingest import Ingestor, Progress
from headroom.daemon.learn_service import LearnJobs
from headroom.daemon.memory_service import MemoryWorker
from headroom.daemon.process import daemon_lock
from headroom.daemon.process_info import process_info
from headroom.daemon.proxy.server import ProxyServer
from headroom.daemon.scheduler import Scheduler
from headroom.daemon.watcher import Watcher
from headroom.memory.db import Database, open_database
from headroom.memory.rescan import note_rules_applied, redact_if_rules_changed, stored_anything

__all__ = ["Service", "make_ingestor"]

log = logging.getLogger("headroom.daemon")

#: The order ``health()`` lists the components in (``headroom daemon status`` shows them so).
HEALTH_ORDER = ("ingest", "memory", "learn", "scheduler", "proxy", "hooks")


def _health_rank(name: str) -> int:
    return HEALTH_ORDER.index(name) if name in HEALTH_ORDER else len(HEALTH_ORDER)


class Service:
    """The daemon: start the components, backfill, then follow the agents' logs until stopped."""

    def __init__(self, config: Config, *, progress: Progress | None = None, config_file: Path | None = None) -> None:
        self.rt = Runtime(config)
        self.progress = progress
        #: What SIGHUP re-reads (``--config``); None: the default file, as at start.
        self.config_file = config_file
        #: Called once the backfill is over (the CLI clears its progress bar there).
        self.after_backfill: Callable[[], None] | None = None
        self.stop_event = self.rt.stop_event
        self.errors = self.rt.errors
        self._started: float | None = None
        self._reload = threading.Event()
        # In start order (stopped in reverse): what a component uses starts before it, and stops after it.
        self._memory = MemoryComponent(self.rt)
        self._hooks = HooksComponent(self.rt, self._memory)
        self._proxy = ProxyComponent(self.rt, self._memory, daemon_health=self.health)
        self._learn = LearnComponent(self.rt)
        self._scheduler = SchedulerComponent(self.rt, self._memory, self._learn)
        self._ingest = IngestLoop(self.rt)
        self._ingest.on_pass = self._memory.wake
        self._ingest.on_turn = self._reload_if_asked
        self.components: list[Component] = [
            self._memory,
            self._hooks,
            self._proxy,
            self._learn,
            self._scheduler,
            self._ingest,
        ]

    # -- the parts, for callers that need one (tests, the CLI) ---------------------------------------

    @property
    def config(self) -> Config:
        return self.rt.config

    @config.setter
    def config(self, config: Config) -> None:
        self.rt.config = config

    @property
    def db(self) -> Database | None:
        return self.rt.db

    @property
    def last_error(self) -> str | None:
        return self.errors.last

    @property
    def ingestor(self) -> Ingestor | None:
        return self._ingest.ingestor

    @property
    def watcher(self) -> Watcher | None:
        return self._ingest.watcher

    @property
    def memory(self) -> MemoryWorker | None:
        return self._memory.worker

    @property
    def hooks(self) -> HookServer | None:
        return self._hooks.server

    @property
    def proxy(self) -> ProxyServer | None:
        return self._proxy.server

    @property
    def learn(self) -> LearnJobs | None:
        return self._learn.jobs

    @property
    def scheduler(self) -> Scheduler | None:
        return self._scheduler.scheduler

    # -- signals -----------------------------------------------------------------------------------

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        if signum is not None:
            log.info("received %s, stopping", signal.Signals(signum).name)
        self.stop_event.set()
        self._ingest.wake()

    def request_reload(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        """Re-read the config at the next turn of the follow loop (the handler itself only sets a flag)."""
        self._reload.set()
        self._ingest.wake()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)

    # -- the lifecycle -----------------------------------------------------------------------------

    def run(self) -> None:
        """Run until :meth:`request_stop` (or a signal)."""
        paths = self.config.paths
        with daemon_lock(paths), contextlib.ExitStack() as stack:
            started = self._started = time.monotonic()
            log.info("starting (pid %d, database %s)", os.getpid(), display_url(self.config.database_url))
            db = open_database(self.config.database_url, guard=True)
            stack.callback(db.close)
            self.rt.db = db
            self._start_integrity_check(db)
            for component in self.components:
                component.start(stack)
            ingest = self._ingest
            fresh = not stored_anything(db)
            if fresh:  # everything from here on is redacted as it is written
                note_rules_applied(db)
            report = ingest.backfill(self.progress)
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
            ingest.follow()
        log.info("stopped")

    def _start_redaction_pass(self, db: Database) -> None:
        """Once per change of the redaction rules (and after an upgrade from a version that kept the session
        mirror in clear), redact what is already stored, on its own thread after the backfill: rows written
        meanwhile are redacted as they are written anyway."""

        def run() -> None:
            try:
                report = redact_if_rules_changed(db)
            except Exception as exc:  # retried at the next start: the rules' fingerprint is recorded only after
                self.errors.note("database", f"redacting stored text failed: {exc}")
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
                self.errors.note("database", problem)
            else:
                log.info("database integrity check: ok")

        threading.Thread(target=check, name="headroom-db-check", daemon=True).start()

    # -- config reload -----------------------------------------------------------------------------

    def _reload_if_asked(self) -> None:
        if self._reload.is_set():
            self._reload.clear()
            self.reload()

    def reload(self) -> None:
        """Re-read the config file and hand every component what it can take live (``config.LIVE_KEYS``)."""
        try:
            new = load_config(self.config_file, set_identity=False)  # [team] needs a restart
        except ConfigError as exc:  # names the file and the key
            self.errors.note("config", f"config not reloaded, the old one stays: {exc}")
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
        for component in self.components:
            component.reconfigure(config)
        self.errors.clear("config")
        if restart:
            log.warning("config: %s changed; needs a restart to take effect", ", ".join(restart))
        log.info(
            "reloaded config from %s: %s",
            new.source or "defaults (no config file)",
            f"applied {', '.join(live)}" if live else "nothing to apply",
        )

    # -- health ------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Every component's health record, and the process's and the database's, from numbers kept anyway
        (cheap enough per request)."""
        now = time.monotonic()
        db_size = None
        if self.db is not None:
            with contextlib.suppress(OSError):  # the WAL can vanish between exists() and stat()
                db_size = self.db.size_bytes()

        components = {c.name: c.health().as_dict() for c in self.components}
        return {
            "pid": os.getpid(),
            "uptime_s": round(now - self._started, 1) if self._started is not None else None,
            "process": process_info(),
            "last_error": self.errors.last,
            "config": {
                "file": str(self.config.source) if self.config.source else None,
                "last_error": self.errors.get("config"),
            },
            "database": self._database_health(db_size),
            "components": dict(sorted(components.items(), key=lambda item: _health_rank(item[0]))),
        }

    def _database_health(self, size: int | None) -> dict[str, Any]:
        """The DB file's state: "ok", "recovering" (deleted or replaced, not back yet), "damaged" (the last
        quick_check found errors: ``last_error`` says how to rebuild), or "unchecked" before the first check."""
        db = self.db
        failed = self.errors.get("database")
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
            "recoveries": list(self._ingest.db_recoveries[-5:]),
        }
