"""The daemon's learn schedule: after a session has been idle a while, and nightly over every project.

Both jobs run on the daemon's scheduler (``daemon/scheduler.py``: apscheduler with its job store in the DB;
each job at most one instance at a time, missed runs coalesced into one and made up after a restart).
The idle job looks for sessions that ended ``idle_minutes`` ago or more since its last look (a cursor in
``state_values``, so a restart neither repeats nor skips a project) and runs learn for their projects; the nightly
job first reviews the active lessons (re-validation, expiry, outcomes) and then runs learn for every project active
in the last 30 days. What is written follows ``[learn] auto_apply_personal`` / ``auto_apply_shared``, and only
lessons with evidence from two sessions on different days, or a rule the user stated, are written unasked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from headroom.daemon.component import RUNNING, STOPPED, LearnHealth
from headroom.daemon.config import Config
from headroom.daemon.paths import agent_homes
from headroom.daemon.scheduler import Scheduler
from headroom.learn import apply as learn_apply
from headroom.learn.failures import observe
from headroom.learn.journal import Journal
from headroom.learn.lessons import review
from headroom.learn.model import AGENTS
from headroom.memory.db import Database
from headroom.memory.identity import current_machine
from headroom.memory.models import SessionRow
from headroom.memory.store import get_state, set_state, utcnow

log = logging.getLogger("headroom.learn")

IDLE_CHECK_MINUTES = 5
IDLE_CURSOR = "learn.idle_checked_until"


def journal_for(config: Config) -> Any:
    return Journal(config.paths.data_dir / "learn")


def user_homes(config: Config) -> dict[str, Path]:
    """Each enabled agent's first home folder: where its user-level instruction file lives."""
    homes: dict[str, Path] = {}
    for agent in AGENTS:
        settings = config.agents[agent]
        if settings.enabled:
            homes[agent] = agent_homes(agent, settings.homes)[0]
    return homes


def learn_projects(
    config: Config,
    db: Database,
    projects: list[str],
    *,
    apply: bool = True,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, int]:
    """Run learn for each project; returns counts for the log. One project failing never stops the others;
    a shutdown stops it between projects (each project's files are written atomically, never halfway)."""
    totals = {"projects": 0, "lessons": 0, "files_written": 0, "failed": 0}
    seen = observe(db) if projects else None  # every session, read once for all the projects
    for project in projects:
        if should_stop():
            log.info(
                "learn stopped for shutdown; %d project(s) left for the next run",
                len(projects) - totals["projects"] - totals["failed"],
            )
            break
        try:
            run = learn_apply.run_learn(  # looked up per call: a test stands in a failing one
                db,
                project,
                journal=journal_for(config),
                apply_personal=apply and config.learn.auto_apply_personal,
                apply_shared=apply and config.learn.auto_apply_shared,
                claude_file=config.learn.claude_file,
                auto=True,  # unasked, only lessons from two sessions on different days, or the user's own rule
                user_homes=user_homes(config),
                observations=seen,
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
    machine = current_machine()  # a machine mines the sessions it ran: lessons go into its own files
    with db.transaction() as s:
        stored = get_state(s, IDLE_CURSOR, machine)
        since = datetime.fromisoformat(stored) if stored is not None else until - timedelta(days=1)
        projects = sorted(
            p
            for p in s.execute(
                select(SessionRow.project_root)
                .where(
                    SessionRow.ended_at > since,
                    SessionRow.ended_at <= until,
                    SessionRow.project_root.is_not(None),
                    SessionRow.machine_id == machine,
                )
                .distinct()
            ).scalars()
            if p
        )
        set_state(s, IDLE_CURSOR, until.isoformat(), machine)
    return projects


def recent_projects(db: Database, days: int = 30, now: datetime | None = None) -> list[str]:
    since = (now or utcnow()) - timedelta(days=days)
    with db.sessions() as s:
        rows = s.execute(
            select(SessionRow.project_root)
            .where(
                SessionRow.started_at >= since,
                SessionRow.project_root.is_not(None),
                SessionRow.machine_id == current_machine(),  # projects checked out on this machine
            )
            .distinct()
        ).scalars()
        return sorted(p for p in rows if p)


class LearnJobs:
    """The two learn jobs, registered on the daemon's :class:`~headroom.daemon.scheduler.Scheduler`."""

    IDLE, NIGHTLY = "learn-idle", "learn-nightly"

    def __init__(self, config: Config, db: Database) -> None:
        self.config = config
        self.db = db
        self.last: dict[str, Any] = {}
        self.scheduler: Scheduler | None = None

    def register(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        scheduler.add(
            self.IDLE, self.after_idle, IntervalTrigger(minutes=IDLE_CHECK_MINUTES), what="learn after idle sessions"
        )
        # A nightly run missed while the machine slept is made up when the daemon next runs, within 12 hours.
        scheduler.add(
            self.NIGHTLY, self.nightly, self._nightly_trigger(), grace_s=12 * 3600, what="review and learn, nightly"
        )
        log.info(
            "learn scheduled: idle sessions every %d min, nightly at %s",
            IDLE_CHECK_MINUTES,
            self.config.learn.nightly_at,
        )

    def health(self) -> LearnHealth:
        """Running while the scheduler runs; the last error of either job, and what the last runs did."""
        scheduler = self.scheduler
        if scheduler is None:
            return LearnHealth(STOPPED)
        errors = [e for e in (scheduler.last_error(self.IDLE), scheduler.last_error(self.NIGHTLY)) if e]
        return LearnHealth(RUNNING if scheduler.running else STOPPED, errors[-1] if errors else None, last=self.last)

    def reconfigure(self, config: Config) -> None:
        """New settings (a config reload): the jobs read ``self.config`` on every run; only the nightly time
        lives in a trigger, so that job is rescheduled when it changed."""
        old_at, self.config = self.config.learn.nightly_at, config
        if config.learn.nightly_at != old_at and self.scheduler is not None:
            self.scheduler.reschedule(self.NIGHTLY, self._nightly_trigger())
            log.info("nightly learn now at %s", config.learn.nightly_at)

    def _nightly_trigger(self) -> Any:
        hour, minute = (int(x) for x in self.config.learn.nightly_at.split(":"))
        return CronTrigger(hour=hour, minute=minute)

    def _should_stop(self) -> bool:
        return self.scheduler is not None and self.scheduler.stopping.is_set()

    def after_idle(self) -> dict[str, int] | None:
        projects = idle_projects(self.db, timedelta(minutes=self.config.learn.idle_minutes))
        if not projects:
            return None
        totals = self.last["idle"] = learn_projects(self.config, self.db, projects, should_stop=self._should_stop)
        log.info("learn after idle sessions: %s", totals)
        _raise_failures(totals)
        return totals

    def nightly(self) -> dict[str, Any]:
        reviewed = review(self.db)
        self.last["review"] = {"retired": reviewed.retired, "measured": reviewed.measured}
        self.last["nightly"] = learn_projects(
            self.config, self.db, recent_projects(self.db), should_stop=self._should_stop
        )
        log.info("nightly learn: %s; review: %s", self.last["nightly"], self.last["review"])
        _raise_failures(self.last["nightly"])
        return {**self.last["nightly"], **self.last["review"]}


def _raise_failures(totals: dict[str, int]) -> None:
    """Projects that failed (each logged by name) make the run count as failed, for the health check."""
    if totals.get("failed"):
        raise LearnFailed(f"learn failed for {totals['failed']} project(s); the log names them")


class LearnFailed(RuntimeError):
    pass
