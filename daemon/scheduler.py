"""The daemon's periodic jobs: one apscheduler scheduler whose job store is a table of the daemon's database.

Why the database: the store keeps each job's next run time, so a run that fell due while the daemon was down
(the laptop asleep at the nightly hour, a crash, a reboot) is made up once when it starts again (missed runs
are coalesced into one, within each job's grace period) instead of being skipped, and a restart does not
push every interval job back by a whole period. A job whose trigger changed in the config is rescheduled;
a job no longer registered (its component disabled) is removed from the store.

What the store pickles is a reference to :func:`run_job` with the scheduler's token and the job's name,
never the job's callable: components stay ordinary objects with state, and a stored job left by an older
version can only ever call a name this process registered. Each job runs at most one instance at a time on
the scheduler's small thread pool; one that raises is logged and counted (``headroom daemon status`` shows
it) and runs again at its next time. Jobs that can take long check :attr:`Scheduler.stopping`, so a
shutdown waits for the step in progress only (a lesson file's atomic write, never a half-written one).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from headroom.memory.db import Database
from headroom.memory.models import SchedulerJob

log = logging.getLogger("headroom.scheduler")

#: How late a missed interval run may still be made up (seconds); the nightly jobs allow far longer.
DEFAULT_GRACE_S = 300
STORE_RETRY_S = 10  # how soon to look again when the job store could not be read
_ACTIVE: dict[str, Scheduler] = {}  # token -> the running scheduler it belongs to


def run_job(token: str, name: str) -> None:
    """What the job store calls (by reference): the named job of the scheduler that registered it."""
    scheduler = _ACTIVE.get(token)
    if scheduler is None:  # a stale token: only possible between a stop and the executor's last run
        log.debug("job %s of a stopped scheduler ignored", name)
        return
    scheduler.execute(name)


@dataclass
class JobSpec:
    name: str
    func: Callable[[], Any]
    trigger: Any  # an apscheduler trigger
    grace_s: int
    what: str


@dataclass
class JobStats:
    """What :meth:`Scheduler.health` reports per job (kept in memory, so health checks never query the DB)."""

    runs: int = 0
    failures: int = 0
    running: bool = False
    last_run: datetime | None = None
    last_seconds: float | None = None
    last_error: str | None = None
    last_result: Any = None
    next_run: datetime | None = None


class Scheduler:
    """A background scheduler for named jobs, persisted in ``db`` (in memory when ``db`` is None)."""

    def __init__(self, db: Database | None, *, threads: int = 2) -> None:
        self.db = db
        self.threads = threads
        self.specs: dict[str, JobSpec] = {}
        self.stats: dict[str, JobStats] = {}
        self.stopping = threading.Event()
        self.made_up: list[str] = []  # jobs overdue at start, run once now (coalesced)
        self._token = uuid.uuid4().hex
        self._aps: Any = None
        # apscheduler's shutdown holds its job-store lock while it waits for running jobs, and a job that ends
        # then asks that lock for its next run time: this lock makes "not stopping, so ask" one step.
        self._note_lock = threading.Lock()

    # -- registration ------------------------------------------------------------------------------

    def add(
        self, name: str, func: Callable[[], Any], trigger: Any, *, grace_s: int = DEFAULT_GRACE_S, what: str = ""
    ) -> None:
        """Register a job before :meth:`start` (its stored next run time is kept if the trigger is the same)."""
        self.specs[name] = JobSpec(name, func, trigger, grace_s, what or name)
        self.stats.setdefault(name, JobStats())

    def reschedule(self, name: str, trigger: Any) -> None:
        """A new trigger for a registered job (a config reload changed its time)."""
        self.specs[name].trigger = trigger
        if self.running:
            self._aps.reschedule_job(name, trigger=trigger)
            self._note_next(name)

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._aps is not None and bool(self._aps.running)

    @property
    def alive(self) -> bool:
        """Whether the scheduler's own thread (which starts the jobs) is still there."""
        thread = getattr(self._aps, "_thread", None)
        return self.running and thread is not None and thread.is_alive()

    def start(self) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        store = _patient_store(self.db) if self.db is not None else MemoryJobStore()
        self._aps = BackgroundScheduler(
            jobstores={"default": store},
            executors={"default": ThreadPoolExecutor(self.threads)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        _ACTIVE[self._token] = self
        self._aps.start(paused=True)  # jobs are reconciled with the store before anything runs
        now = datetime.now(self._aps.timezone)
        for spec in self.specs.values():
            self._install(spec, now)
        for job in self._aps.get_jobs():
            if job.id not in self.specs:
                self._aps.remove_job(job.id)
                log.info("scheduled job %s removed (no longer registered)", job.id)
        self._aps.resume()
        log.info(
            "scheduler started: %s%s",
            ", ".join(f"{s.name} ({s.trigger})" for s in self.specs.values()),
            f"; made up at start: {', '.join(self.made_up)}" if self.made_up else "",
        )

    def _install(self, spec: JobSpec, now: datetime) -> None:
        stored = self._aps.get_job(spec.name)
        args = [self._token, spec.name]
        if stored is not None and stored.next_run_time is not None and str(stored.trigger) == str(spec.trigger):
            # The same schedule as last time: keep its next run time (which may be overdue: made up once).
            self._aps.modify_job(spec.name, args=args, misfire_grace_time=spec.grace_s, name=spec.what)
            overdue = (now - stored.next_run_time).total_seconds()
            if 0 < overdue <= spec.grace_s:
                self.made_up.append(spec.name)
            elif overdue > spec.grace_s:  # too late to be worth it: on to its next time, said once here
                log.info(
                    "%s missed its run at %s, beyond its grace period; it runs at its next time",
                    spec.name,
                    stored.next_run_time.isoformat(timespec="minutes"),
                )
                self._aps.modify_job(spec.name, next_run_time=spec.trigger.get_next_fire_time(None, now))
        else:
            self._aps.add_job(
                run_job,
                spec.trigger,
                args=args,
                id=spec.name,
                name=spec.what,
                misfire_grace_time=spec.grace_s,
                replace_existing=True,
            )
        self._note_next(spec.name)

    def stop(self) -> None:
        """Stop taking jobs and wait for the ones running (they check :attr:`stopping` between steps)."""
        with self._note_lock:
            self.stopping.set()
        if self._aps is not None and self._aps.running:
            self._aps.shutdown(wait=True)
        _ACTIVE.pop(self._token, None)
        log.info("scheduler stopped")

    # -- running jobs ------------------------------------------------------------------------------

    def execute(self, name: str) -> Any:
        """Run job ``name`` now, on the calling thread, recording its outcome (also the job store's entry)."""
        spec, stats = self.specs[name], self.stats[name]
        started = time.monotonic()
        stats.running, stats.last_run = True, datetime.now().astimezone()
        try:
            stats.last_result = spec.func()
            stats.last_error = None
            return stats.last_result
        except Exception as exc:  # one failing run must not stop the schedule; the next one tries again
            stats.failures += 1
            stats.last_error = f"{type(exc).__name__}: {exc}"
            log.error(
                "job %s failed: %s",
                name,
                stats.last_error,
                exc_info=exc if os.environ.get("HEADROOM_RAISE_ERRORS") else None,
            )
            return None
        finally:
            stats.runs += 1
            stats.running = False
            stats.last_seconds = round(time.monotonic() - started, 3)
            with self._note_lock:
                if self.running and not self.stopping.is_set():
                    self._note_next(name)

    def _note_next(self, name: str) -> None:
        job = self._aps.get_job(name)
        self.stats[name].next_run = job.next_run_time if job is not None else None

    def last_error(self, name: str) -> str | None:
        """The last error of job ``name`` (None when it never failed, or is not registered)."""
        stats = self.stats.get(name)
        return stats.last_error if stats is not None else None

    def health(self) -> dict[str, Any]:
        jobs = {}
        for name, stats in self.stats.items():
            jobs[name] = {
                "what": self.specs[name].what,
                "next_run": _iso(stats.next_run),
                "last_run": _iso(stats.last_run),
                "last_seconds": stats.last_seconds,
                "running": stats.running,
                "runs": stats.runs,
                "failures": stats.failures,
                "last_error": stats.last_error,
            }
        failing = [f"{name}: {s.last_error}" for name, s in self.stats.items() if s.last_error]
        return {
            "state": ("running" if self.alive else "failed") if self.running else "stopped",
            "last_error": "; ".join(failing) or None,
            "store": "database" if self.db is not None else "memory",
            "jobs": jobs,
        }


def _patient_store(db: Database) -> Any:
    """apscheduler's SQLAlchemy job store, made to outlast a database that stays locked past its busy timeout.

    apscheduler retries a failed read of the due jobs, but an error while it records a job's next run time (or
    asks for the next wake-up) escapes its loop and ends the scheduler's thread: every job would silently stop.
    Here such an error is logged and the scheduler looks again a little later; a next run time that could not
    be stored only means the job is due again at the next look, and missed runs are coalesced anyway.
    """
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from sqlalchemy.exc import OperationalError

    class PatientJobStore(SQLAlchemyJobStore):  # type: ignore[misc]
        def update_job(self, job: Any) -> None:
            try:
                super().update_job(job)
            except OperationalError as exc:
                log.warning("scheduler: next run of %s not stored (%s); it is looked at again", job.id, exc.orig)

        def get_next_run_time(self) -> datetime | None:
            try:
                return super().get_next_run_time()  # type: ignore[no-any-return]
            except OperationalError as exc:
                log.warning("scheduler: the job store cannot be read (%s); trying again shortly", exc.orig)
                return datetime.now(timezone.utc) + timedelta(seconds=STORE_RETRY_S)

    return PatientJobStore(engine=db.engine, tablename=SchedulerJob.__tablename__)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment is not None else None
