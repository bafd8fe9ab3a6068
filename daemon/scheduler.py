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

Many daemons may share one database (issue 17). Each machine's jobs are its own rows of the table (the job id
is ``<machine id>/<name>``, and this store reads and removes only rows with its prefix), so two daemons each
run their own jobs and a third with learn off removes nothing of theirs. A job for the whole database
(pruning the shared memory, the team's nightly review) is registered with ``team=True`` on every daemon and
runs only where this process is the leader: the holder of a PostgreSQL session-level advisory lock
(:class:`Leadership`), taken again by another daemon when the leader's connection goes. On SQLite, one
person's file, every daemon is its own leader.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import utc_timestamp_to_datetime
from sqlalchemy import and_, delete, null, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from headroom.memory.db import Database
from headroom.memory.identity import current_machine
from headroom.memory.models import SchedulerJobRow

log = logging.getLogger("headroom.scheduler")

#: How late a missed interval run may still be made up (seconds); the nightly jobs allow far longer.
DEFAULT_GRACE_S = 300
STORE_RETRY_S = 10  # how soon to look again when the job store could not be read
#: The advisory lock whose holder runs the team-wide jobs ("lead"; the migration lock is "head").
LEADER_LOCK = 0x6C656164
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
    team: bool = False  # one run for the whole database: only on the leader


class Leadership:
    """Whether this process runs the team-wide jobs: it holds :data:`LEADER_LOCK` on PostgreSQL.

    The lock is session-level, held on a connection of its own for as long as the process lives: when a
    leader stops or dies, PostgreSQL releases it and the next daemon to ask becomes the leader. Any other
    database (SQLite: one person's file) has one daemon, always the leader.
    """

    def __init__(self, db: Database | None) -> None:
        self.db = db
        self._conn: Any = None
        self._lock = threading.Lock()

    def holds(self) -> bool:
        """Whether this process is the leader now (asks for the lock when it is not)."""
        if self.db is None or self.db.engine.dialect.name != "postgresql":
            return True

        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute(text("SELECT 1"))
                    return True
                except DBAPIError:  # the connection went (the server restarted): the lock went with it
                    self._drop()
            conn = self.db.engine.connect()
            try:
                won = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK}).scalar())
                conn.commit()  # a session-level lock outlives the transaction; no transaction stays open
            except DBAPIError:
                conn.close()
                raise
            if not won:
                conn.close()
                return False
            self._conn = conn
            log.info("this daemon leads the team-wide jobs")
            return True

    def release(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(DBAPIError):
                # Closed for real, not back to the pool: ending the session is what releases the lock.
                self._conn.invalidate()
                self._conn.close()
            self._conn = None

    @property
    def leading(self) -> bool:
        """Whether this process was the leader when it last asked (no query: for health reports)."""
        return self._conn is not None or self.db is None or self.db.engine.dialect.name != "postgresql"


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
    """A background scheduler for named jobs, persisted in ``db`` (in memory when ``db`` is None).

    ``machine``: whose rows of the job table are this scheduler's (default: this process's machine id).
    """

    def __init__(
        self,
        db: Database | None,
        *,
        threads: int = 2,
        machine: str | None = None,
        every: dict[str, float] | None = None,
    ) -> None:
        self.db = db
        #: Seconds between runs per job name, replacing the job's own trigger (``[scheduler] every``).
        self.every = dict(every or {})
        self.machine = current_machine() if machine is None else machine
        self.leadership = Leadership(db)
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
        self,
        name: str,
        func: Callable[[], Any],
        trigger: Any,
        *,
        grace_s: int = DEFAULT_GRACE_S,
        what: str = "",
        team: bool = False,
    ) -> None:
        """Register a job before :meth:`start` (its stored next run time is kept if the trigger is the same).

        ``team``: a job for the whole database, run only while this process is the leader (see the module doc).
        """
        if name in self.every:
            trigger = IntervalTrigger(seconds=self.every[name])
        self.specs[name] = JobSpec(name, func, trigger, grace_s, what or name, team)
        self.stats.setdefault(name, JobStats())

    def job_id(self, name: str) -> str:
        """The id of job ``name`` in the store: this machine's row."""
        return f"{self.machine}/{name}"

    def reschedule(self, name: str, trigger: Any) -> None:
        """A new trigger for a registered job (a config reload changed its time; ``every`` still wins)."""
        if name in self.every:
            return
        self.specs[name].trigger = trigger
        if self.running:
            self._aps.reschedule_job(self.job_id(name), trigger=trigger)
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
        store = _patient_store(self.db, self.machine) if self.db is not None else MemoryJobStore()
        self._aps = BackgroundScheduler(
            jobstores={"default": store},
            executors={"default": ThreadPoolExecutor(self.threads)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        _ACTIVE[self._token] = self
        if self.db is not None:
            _drop_unowned_jobs(self.db)
        self._aps.start(paused=True)  # jobs are reconciled with the store before anything runs
        now = datetime.now(self._aps.timezone)
        for spec in self.specs.values():
            self._install(spec, now)
        mine = {self.job_id(name) for name in self.specs}
        for job in self._aps.get_jobs():  # this machine's rows only (see _patient_store)
            if job.id not in mine:
                self._aps.remove_job(job.id)
                log.info("scheduled job %s removed (no longer registered)", job.id)
        self._aps.resume()
        for name in sorted(set(self.every) - set(self.specs)):
            log.warning("[scheduler] every: no job named %r (jobs: %s)", name, ", ".join(sorted(self.specs)))
        log.info(
            "scheduler started: %s%s",
            ", ".join(f"{s.name} ({s.trigger})" for s in self.specs.values()),
            f"; made up at start: {', '.join(self.made_up)}" if self.made_up else "",
        )

    def _install(self, spec: JobSpec, now: datetime) -> None:
        ident = self.job_id(spec.name)
        stored = self._aps.get_job(ident)
        args = [self._token, spec.name]
        if stored is not None and stored.next_run_time is not None and str(stored.trigger) == str(spec.trigger):
            # The same schedule as last time: keep its next run time (which may be overdue: made up once).
            self._aps.modify_job(ident, args=args, misfire_grace_time=spec.grace_s, name=spec.what)
            overdue = (now - stored.next_run_time).total_seconds()
            if 0 < overdue <= spec.grace_s:
                self.made_up.append(spec.name)
            elif overdue > spec.grace_s:  # too late to be worth it: on to its next time, said once here
                log.info(
                    "%s missed its run at %s, beyond its grace period; it runs at its next time",
                    spec.name,
                    stored.next_run_time.isoformat(timespec="minutes"),
                )
                self._aps.modify_job(ident, next_run_time=spec.trigger.get_next_fire_time(None, now))
        else:
            self._aps.add_job(
                run_job,
                spec.trigger,
                args=args,
                id=ident,
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
        self.leadership.release()
        log.info("scheduler stopped")

    # -- running jobs ------------------------------------------------------------------------------

    def execute(self, name: str) -> Any:
        """Run job ``name`` now, on the calling thread, recording its outcome (also the job store's entry)."""
        spec, stats = self.specs[name], self.stats[name]
        if spec.team and not self._leads():
            stats.last_result = "skipped: another daemon leads the team-wide jobs"
            with self._note_lock:
                if self.running and not self.stopping.is_set():
                    self._note_next(name)
            return None
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

    def _leads(self) -> bool:
        try:
            return self.leadership.holds()
        except Exception as exc:  # the database unreachable: nobody can tell, so this one does not run it
            log.warning("scheduler: cannot tell who leads the team-wide jobs (%s)", exc)
            return False

    def _note_next(self, name: str) -> None:
        job = self._aps.get_job(self.job_id(name))
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
            "machine": self.machine,
            "leader": self.leadership._conn is not None
            or self.db is None
            or self.db.engine.dialect.name != "postgresql",
            "jobs": jobs,
        }


def _patient_store(db: Database, machine: str) -> Any:
    """apscheduler's SQLAlchemy job store, made to outlast a database that stays locked past its busy timeout.

    apscheduler retries a failed read of the due jobs, but an error while it records a job's next run time (or
    asks for the next wake-up) escapes its loop and ends the scheduler's thread: every job would silently stop.
    Here such an error is logged and the scheduler looks again a little later; a next run time that could not
    be stored only means the job is due again at the next look, and missed runs are coalesced anyway.
    """
    prefix = f"{machine}/"
    postgres = db.engine.dialect.name == "postgresql"

    class PatientJobStore(SQLAlchemyJobStore):  # type: ignore[misc]
        """Only this machine's rows: a shared table holds every daemon's jobs (see the module doc)."""

        def _mine(self) -> Any:
            mine = self.jobs_t.c.id.startswith(prefix, autoescape=True)
            if not postgres:
                return mine
            # Rows whose server-filled user id is the connected role's (a member: its own, as its policy says;
            # the owner: ''), so no member can plant a pickled job in the owner's rows (revision 0012).
            return and_(mine, text("scheduler_jobs.user_id = coalesce(headroom_user(), '')"))

        def _get_jobs(self, *conditions: Any) -> list[Any]:
            return super()._get_jobs(self._mine(), *conditions)  # type: ignore[no-any-return]

        def shutdown(self) -> None:
            """Leave the engine alone: it is the daemon's (``Database.close`` disposes it). apscheduler's own
            shutdown disposes it, stranding connections other threads hold (a leader's lock connection, a
            job's session) in a dropped pool, where they are never closed."""

        def remove_all_jobs(self) -> None:
            with self.engine.begin() as connection:
                connection.execute(self.jobs_t.delete().where(self._mine()))

        def update_job(self, job: Any) -> None:
            try:
                super().update_job(job)
            except OperationalError as exc:
                log.warning("scheduler: next run of %s not stored (%s); it is looked at again", job.id, exc.orig)

        def get_next_run_time(self) -> datetime | None:
            query = (
                select(self.jobs_t.c.next_run_time)
                .where(and_(self._mine(), self.jobs_t.c.next_run_time != null()))
                .order_by(self.jobs_t.c.next_run_time)
                .limit(1)
            )
            try:
                with self.engine.begin() as connection:
                    return utc_timestamp_to_datetime(connection.execute(query).scalar())  # type: ignore[no-any-return]
            except OperationalError as exc:
                log.warning("scheduler: the job store cannot be read (%s); trying again shortly", exc.orig)
                return datetime.now(timezone.utc) + timedelta(seconds=STORE_RETRY_S)

    return PatientJobStore(engine=db.engine, tablename=SchedulerJobRow.__tablename__)


def _drop_unowned_jobs(db: Database) -> None:
    """Remove jobs stored by a version before machine ids (their ids have no ``<machine>/``): no daemon
    would ever run or remove them. Each daemon registers its jobs again at start."""
    try:
        with db.engine.begin() as conn:
            gone = conn.execute(delete(SchedulerJobRow).where(~SchedulerJobRow.id.contains("/"))).rowcount
    except OperationalError as exc:  # the table not there yet, or locked: the next start tries again
        log.debug("old scheduler jobs not removed: %s", exc.orig)
        return
    if gone:
        log.info("scheduler: %d job(s) stored before machine ids removed; registered again per machine", gone)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment is not None else None
