"""The daemon's learn schedule: after a session has been idle a while, and nightly over every project.

Both jobs run on an apscheduler ``BackgroundScheduler`` (one thread; each job at most one instance at a
time, missed runs coalesced into one). The idle job looks for sessions that ended ``idle_minutes`` ago or
more since its last look (a cursor in ``state_values``, so a restart neither repeats nor skips a project) and
runs learn for their projects; the nightly job first reviews the active lessons (re-validation, expiry,
outcomes) and then runs learn for every project active in the last 30 days. What is written follows
``[learn] auto_apply_personal`` / ``auto_apply_shared``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from headroom.daemon.config import Config
from headroom.memory.db import Database
from headroom.memory.models import Session, StateValue
from headroom.memory.store import utcnow

log = logging.getLogger("headroom.learn")

IDLE_CHECK_MINUTES = 5
_CURSOR = "learn.idle_checked_until"


def journal_for(config: Config) -> Any:
    from headroom.learn.journal import Journal

    return Journal(config.paths.data_dir / "learn")


def learn_projects(config: Config, db: Database, projects: list[str], *, apply: bool = True) -> dict[str, int]:
    """Run learn for each project; returns counts for the log. One project failing never stops the others."""
    from headroom.learn.apply import run_learn

    totals = {"projects": 0, "lessons": 0, "files_written": 0, "failed": 0}
    for project in projects:
        try:
            run = run_learn(
                db,
                project,
                journal=journal_for(config),
                apply_personal=apply and config.learn.auto_apply_personal,
                apply_shared=apply and config.learn.auto_apply_shared,
                claude_file=config.learn.claude_file,
            )
        except Exception as exc:  # a bad project (unreadable file, odd session) must not stop the schedule
            totals["failed"] += 1
            log.error("learn failed for %s: %s: %s", project, type(exc).__name__, exc)
            continue
        totals["projects"] += 1
        totals["lessons"] += run.synced.new
        totals["files_written"] += len(run.written)
    return totals


def idle_projects(db: Database, idle: timedelta, now: datetime | None = None) -> list[str]:
    """Projects with a session that went idle since the last look; advances the cursor."""
    now = now or utcnow()
    until = now - idle
    with db.transaction() as s:
        row = s.get(StateValue, _CURSOR)
        since = datetime.fromisoformat(row.value) if row is not None else until - timedelta(days=1)
        projects = sorted(
            p
            for p in s.execute(
                select(Session.project_root)
                .where(Session.ended_at > since, Session.ended_at <= until, Session.project_root.is_not(None))
                .distinct()
            ).scalars()
            if p
        )
        if row is None:
            s.add(StateValue(name=_CURSOR, value=until.isoformat()))
        else:
            row.value = until.isoformat()
    return projects


def recent_projects(db: Database, days: int = 30, now: datetime | None = None) -> list[str]:
    since = (now or utcnow()) - timedelta(days=days)
    with db.sessions() as s:
        rows = s.execute(
            select(Session.project_root)
            .where(Session.started_at >= since, Session.project_root.is_not(None))
            .distinct()
        ).scalars()
        return sorted(p for p in rows if p)


class LearnScheduler:
    """The two learn jobs on an apscheduler background scheduler."""

    def __init__(self, config: Config, db: Database) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self.config = config
        self.db = db
        self.scheduler = BackgroundScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600}
        )
        self.last: dict[str, Any] = {}
        #: The last job that raised (apscheduler only logs it); shown by the daemon's health check.
        self.last_error: str | None = None

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    def start(self) -> None:
        from apscheduler.triggers.interval import IntervalTrigger

        self.scheduler.add_job(
            self._guarded(self.after_idle), IntervalTrigger(minutes=IDLE_CHECK_MINUTES), id="learn-idle"
        )
        self.scheduler.add_job(self._guarded(self.nightly), self._nightly_trigger(), id="learn-nightly")
        self.scheduler.start()
        log.info(
            "learn scheduled: idle sessions every %d min, nightly at %s",
            IDLE_CHECK_MINUTES,
            self.config.learn.nightly_at,
        )

    def stop(self) -> None:
        self.scheduler.shutdown(wait=False)
        log.info("learn scheduler stopped")

    def reconfigure(self, config: Config) -> None:
        """New settings (a config reload): the jobs read ``self.config`` on every run; only the nightly time
        lives in a trigger, so that job is rescheduled when it changed."""
        old_at, self.config = self.config.learn.nightly_at, config
        if config.learn.nightly_at != old_at and self.scheduler.running:
            self.scheduler.reschedule_job("learn-nightly", trigger=self._nightly_trigger())
            log.info("nightly learn now at %s", config.learn.nightly_at)

    def _nightly_trigger(self) -> Any:
        from apscheduler.triggers.cron import CronTrigger

        hour, minute = (int(x) for x in self.config.learn.nightly_at.split(":"))
        return CronTrigger(hour=hour, minute=minute)

    def _guarded(self, job: Callable[[], None]) -> Callable[[], None]:
        """``job`` recording its failure in :attr:`last_error` (and still raising, for apscheduler's log)."""

        @functools.wraps(job)
        def run() -> None:
            try:
                job()
            except Exception as exc:
                self.last_error = f"{job.__name__}: {type(exc).__name__}: {exc}"
                raise

        return run

    def after_idle(self) -> None:
        projects = idle_projects(self.db, timedelta(minutes=self.config.learn.idle_minutes))
        if projects:
            self.last["idle"] = learn_projects(self.config, self.db, projects)
            self._note_failures(self.last["idle"])
            log.info("learn after idle sessions: %s", self.last["idle"])

    def nightly(self) -> None:
        from headroom.learn.lessons import review

        reviewed = review(self.db)
        self.last["review"] = {"retired": reviewed.retired, "measured": reviewed.measured}
        self.last["nightly"] = learn_projects(self.config, self.db, recent_projects(self.db))
        self._note_failures(self.last["nightly"])
        log.info("nightly learn: %s; review: %s", self.last["nightly"], self.last["review"])

    def _note_failures(self, totals: dict[str, int]) -> None:
        if totals.get("failed"):
            self.last_error = f"learn failed for {totals['failed']} project(s); the log names them"
