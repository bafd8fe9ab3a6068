"""Ingestion as a daemon component: watch the agents' log roots, backfill what is on disk, follow changes.

Watching starts *before* the backfill so nothing written during it is missed (a file both backfilled and
reported by the watcher is simply read twice: the second read finds nothing new). All ingestion happens on the
thread that calls :meth:`IngestLoop.follow` (the daemon's main thread); watchdog's threads only mark paths
dirty. One writer means no write contention inside the process, and the DB's busy timeout absorbs other
processes (the CLI).

It also owns what only ingestion needs: the disk-full back-off (ingestion pauses, nothing is lost, it resumes
by itself) and the check that the database file is still the one the daemon opened (recovered in place when it
was deleted or replaced, see memory/dbguard.py).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from headroom.daemon.component import RUNNING, STOPPED, IngestHealth, Runtime
from headroom.daemon.config import Config
from headroom.daemon.ingest import Ingestor, Progress, ScanReport
from headroom.daemon.watcher import Watcher
from headroom.memory.db import Database
from headroom.memory.errors import DatabaseError, DatabaseFull, DatabaseLocked

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
        helper=config.ingest.helper_process,
    )


class IngestLoop:
    """The ``ingest`` component: ``start`` watches the roots, ``backfill`` reads what is there, ``follow`` runs
    until ``stop_event`` is set. ``on_pass`` is called after every pass that may have stored something (the
    service wakes the memory worker there); ``on_turn`` at every turn of the loop (the service applies a
    pending config reload there, never inside a signal handler)."""

    name = "ingest"

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.config = rt.config
        self.errors = rt.errors
        self.stop_event = rt.stop_event
        self.ingestor: Ingestor | None = None
        self.watcher: Watcher | None = None
        self.on_pass: Callable[[], None] = lambda: None
        self.on_turn: Callable[[], None] = lambda: None
        #: What each recovery of the DB file did, for the database's health.
        self.db_recoveries: list[str] = []
        self._stopped = False
        self._pass_started: float | None = None  # when the ingestion pass in progress began
        self._full_since: float | None = None  # ingestion paused: the database's disk is full
        self._full_retry_at = 0.0
        self._full_wait = FULL_RETRY_SECONDS

    # -- the component contract --------------------------------------------------------------------

    def start(self, stack: contextlib.ExitStack) -> None:
        ingestor = make_ingestor(self.config, self.rt.database())
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
        stack.callback(self.stop)
        for agent, agent_roots in ingestor.roots.items():
            for root in agent_roots:
                log.info("%s logs: %s%s", agent, root, "" if root.is_dir() else " (not there yet)")

    def stop(self) -> None:
        self._stopped = True
        if self.watcher is not None:
            self.watcher.stop()

    def wake(self) -> None:
        """Cut the loop's wait short (a stop or a reload was requested)."""
        if self.watcher is not None:
            self.watcher.wake()

    def reconfigure(self, config: Config) -> None:
        self.config = config
        if self.watcher is not None:
            self.watcher.debounce = config.watcher.debounce_ms / 1000

    def health(self) -> IngestHealth:
        """``lag_s`` is the age of the oldest change the watcher reported that is not ingested yet (still
        queued, or in the pass now running); 0 when caught up."""
        now = time.monotonic()
        pending, oldest = self.watcher.backlog() if self.watcher is not None else (0, None)
        started = self._pass_started
        # A pass that began after ``now`` was read (another thread) is not a negative lag.
        ages = [max(0.0, now - t) for t in (oldest, started) if t is not None]
        # Running from the moment the daemon has its database (the other components start first) until stopped.
        running = self.rt.db is not None and not self._stopped
        state = RUNNING if running else STOPPED
        if running and self._full_since is not None:
            state = "paused: disk full"
        return IngestHealth(
            state=state,
            last_error=self.errors.get("ingest"),
            pending_paths=pending,
            lag_s=round(max(ages, default=0.0), 3),
            events_seen=self.watcher.events_seen if self.watcher is not None else 0,
            new_record_types=list(self.ingestor.new_record_types[-20:]) if self.ingestor is not None else [],
        )

    # -- running -----------------------------------------------------------------------------------

    def backfill(self, progress: Progress | None) -> ScanReport:
        """Read everything already on disk (a progress bar on a terminal)."""
        assert self.ingestor is not None, "start() first"
        return self._scan(progress)

    def follow(self) -> None:
        """Ingest what the watcher reports, rescan now and then, until ``stop_event`` is set."""
        watcher = self.watcher
        assert watcher is not None, "start() first"
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
            self.on_turn()
            if time.monotonic() >= next_db_check:
                next_db_check = time.monotonic() + DB_CHECK_SECONDS
                if not self._check_database_file():
                    watcher.requeue(dirty)  # nothing is written before the file is back: retried next round
                    continue
            if self._full_since is not None:
                # Paused for a full disk: the watcher's paths are left to the rescan that resumes ingestion
                # (offsets never moved past what was committed, so it picks up exactly where it stopped).
                if time.monotonic() >= self._full_retry_at:
                    self._scan(None)
                continue
            if dirty:
                self._ingest_paths(dirty)
            now = time.monotonic()
            if now >= next_root_check:
                next_root_check = now + ROOT_CHECK_SECONDS
                if watcher.check_roots():
                    rescan = True
            if rescan or now >= next_rescan:
                next_rescan = now + self.config.watcher.rescan_seconds
                self._scan(None)

    def _check_database_file(self) -> bool:
        """Whether the DB file is in place (one stat); when it was deleted or replaced, recover it first.

        Why recover rather than stop: the proxy keeps serving the agents meanwhile, and the old contents are
        still readable through the open file, so they can be put back whole (see memory/dbguard.py). When
        the daemon ends up on another database (the user put one in place, or the copy failed), the logs on
        disk are ingested again from the start: the rescan that follows does it.
        """
        db, ingestor = self.rt.database(), self.ingestor
        assert ingestor is not None
        what = db.check_file()
        if what is None:
            return True
        self.errors.note("database", f"the database file was {what} under the running daemon; recovering")
        try:
            message, switched = db.recover_file()
        except Exception as exc:
            self.errors.note("database", f"database recovery failed, will retry: {type(exc).__name__}: {exc}")
            return False
        log.warning("%s", message)
        self.db_recoveries.append(message)
        self.errors.clear("database")
        if self.errors.last and self.errors.last.startswith("the database file was"):
            self.errors.last = message
        if switched:
            log.info("ingesting the agents' logs again into the database now in use")
            ingestor.forget()
        self._scan(None)
        return True

    def _ingest_paths(self, dirty: set[Path]) -> None:
        self._pass_started = time.monotonic()
        try:
            self._ingest_each(dirty)
        finally:
            self._pass_started = None

    def _ingest_each(self, dirty: set[Path]) -> None:
        ingestor, watcher = self.ingestor, self.watcher
        assert ingestor is not None and watcher is not None
        for path in sorted(dirty):
            try:
                ingestor.ingest_path(path)
            except DatabaseFull as exc:
                self._pause_for_full_disk(exc)
                return
            except DatabaseLocked as exc:
                self.errors.note("ingest", f"database busy, will retry: {exc}")
                watcher.requeue({path})
                self.stop_event.wait(1.0)
            except Exception as exc:  # one bad file must never stop the daemon
                self.errors.note("ingest", f"ingesting {path} failed: {type(exc).__name__}: {exc}", exc)
        try:
            ingestor.refresh()
        except DatabaseError as exc:
            self.errors.note("ingest", f"refreshing session counters failed: {exc}")
        self.on_pass()

    def _scan(self, progress: Progress | None) -> ScanReport:
        assert self.ingestor is not None
        self._pass_started = time.monotonic()
        try:
            report = self.ingestor.scan(progress=progress)
            if self._full_since is not None:
                self._resume_after_full_disk()
            self.on_pass()
            return report
        except DatabaseFull as exc:
            self._pause_for_full_disk(exc)
        except DatabaseError as exc:
            self.errors.note("ingest", f"scan failed, will retry: {exc}")
        except Exception as exc:
            self.errors.note("ingest", f"scan failed: {type(exc).__name__}: {exc}", exc)
        finally:
            self._pass_started = None
        return ScanReport()

    def _pause_for_full_disk(self, exc: DatabaseFull) -> None:
        """Stop ingesting until the database can grow again; retried with back-off, nothing is lost meanwhile."""
        now = time.monotonic()
        if self._full_since is None:
            self._full_since, self._full_wait = now, FULL_RETRY_SECONDS
            self.errors.note(
                "ingest",
                f"ingestion paused: {exc}; nothing is lost (the logs stay on disk and offsets did not move), "
                "it resumes by itself when space returns",
            )
        else:
            self._full_wait = min(self._full_wait * 2, FULL_RETRY_MAX_SECONDS)
        self._full_retry_at = now + self._full_wait

    def _resume_after_full_disk(self) -> None:
        assert self._full_since is not None
        log.info("disk space is back: ingestion resumed after %.0fs", time.monotonic() - self._full_since)
        self._full_since = None
        self.errors.clear("ingest")
