"""The lesson lifecycle in the database: proposed → active → retired, and whether a lesson helped.

Mining (:mod:`headroom.learn.mining`) is a pure function of the sessions; this module keeps what must
outlive a run. :func:`sync` upserts the mined drafts by their stable key (new evidence refreshes a lesson, a
retired lesson stays retired: it does not flip back because its old evidence is mined again). A lesson
becomes *active* when it is written into an agent's file (:func:`activate`), which also records the
failure's recurrence in the project's sessions before that moment. :func:`review` then:

- retires a lesson whose project folder, or a path it names, no longer exists (re-validation);
- retires a lesson past its TTL (``ttl_days`` after its last evidence, refreshed whenever the failure is seen);
- measures the outcome: among the project's sessions since activation, how many show the failure again.
  After ``min_sessions_after`` sessions, a lesson whose failure recurs at least as often as before is retired
  as "did not help" — the peer never checks this, and stale lessons cost every session tokens.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from headroom.learn.failures import Observations, observe
from headroom.learn.mining import LessonDraft, recurrences
from headroom.learn.projects import REPO_PREFIX, identities
from headroom.learn.team import note_seen
from headroom.memory.db import Database
from headroom.memory.models import LessonRow, SessionRow
from headroom.memory.rls import join_lessons
from headroom.memory.store import utcnow
from headroom.memory.upsert import retrying

TTL_DAYS = 90
MIN_SESSIONS_AFTER = 3
BEFORE_WINDOW_DAYS = 30


def _now() -> datetime:
    return utcnow()


@dataclass
class SyncReport:
    new: int = 0
    updated: int = 0
    unchanged: int = 0


def sync(db: Database, drafts: Sequence[LessonDraft], *, now: datetime | None = None) -> SyncReport:
    """Upsert mined drafts; returns what changed (a draft's text and evidence are redacted when it is made).

    Two daemons of a team may mine the same lesson at once (one repository, two machines): the loser's
    insert fails on the unique key and its whole transaction is run again, now finding the winner's row.
    """
    return retrying(lambda: _sync(db, drafts, now or _now()), what="lessons")


def _sync(db: Database, drafts: Sequence[LessonDraft], now: datetime) -> SyncReport:
    report = SyncReport()
    with db.transaction() as s:
        if not db.is_sqlite:  # a teammate's row of the same key becomes readable (and a proposal): see rls
            join_lessons(s, sorted({d.key for d in drafts}))
        for d in drafts:
            row = s.execute(select(LessonRow).where(LessonRow.key == d.key)).scalar_one_or_none()
            evidence = json.dumps(
                [
                    {
                        "agent": e.agent,
                        "session": e.session_key,
                        "ts": e.ts.isoformat() if e.ts else None,
                        "command": e.command,
                        "error": e.error,
                    }
                    for e in d.evidence[:20]
                ]
            )
            values: dict[str, Any] = {
                "project": d.project,
                "scope": scope_value(d.scope, d.agents),
                "kind": d.kind,
                "signature": d.signature,
                "text": d.text,
                "names": json.dumps(list(d.names)),
                "evidence": evidence,
                "sessions": d.sessions,
                "count": d.count,
                "corrected_by_user": d.corrected_by_user,
                "first_seen": d.first_seen,
                "last_seen": d.last_seen,
            }
            if row is None:
                row = LessonRow(key=d.key, status="proposed", created_at=now, updated_at=now, **values)
                note_seen(row)
                s.add(row)
                report.new += 1
                continue
            note_seen(row)  # another developer's machine mining it too makes it a team proposal
            if row.status == "undone":
                row.status = "proposed"  # asked for again: a later --apply may write it again
            if all(getattr(row, k) == v for k, v in values.items()):
                report.unchanged += 1
                continue
            for k, v in values.items():
                setattr(row, k, v)
            row.updated_at = now
            if row.status == "active" and d.last_seen is not None:
                row.expires_at = max(row.expires_at or now, d.last_seen + timedelta(days=TTL_DAYS))
            report.updated += 1
    return report


def scope_value(scope: str, agents: Sequence[str] = ()) -> str:
    """The stored scope: ``project``, ``machine`` or ``agent``, with ``:<agent>`` when only one agent's files hold
    it (``agent:claude``, ``project:codex``)."""
    scope = "machine" if scope == "environment" else scope
    return f"{scope}:{agents[0]}" if len(agents) == 1 else scope


def parse_scope(value: str) -> tuple[str, tuple[str, ...]]:
    """The inverse of :func:`scope_value` (older rows say ``environment`` for a machine fact)."""
    scope, _, agent = value.partition(":")
    return ("machine" if scope == "environment" else scope), ((agent,) if agent else ())


def mark_undone(db: Database, keys: Sequence[str]) -> int:
    """Lessons whose write ``learn undo`` took back: shown as undone, no longer in any file."""
    with db.transaction() as s:
        rows = list(s.execute(select(LessonRow).where(LessonRow.key.in_(list(keys)))).scalars())
        for row in rows:
            if row.status == "active":
                row.status = "undone"
    return len(rows)


def lessons_for(db: Database, project: str, *, statuses: Sequence[str] = ("proposed", "active")) -> list[LessonRow]:
    """The lessons one project's files should carry: its own and the environment's, best first."""
    with db.sessions() as s:
        rows = s.execute(
            select(LessonRow)
            .where(
                LessonRow.project.in_(sorted(identities(project) | {project, ""})), LessonRow.status.in_(list(statuses))
            )
            .order_by(
                LessonRow.corrected_by_user.desc(), LessonRow.sessions.desc(), LessonRow.last_seen.desc(), LessonRow.key
            )
        ).scalars()
        return list(rows)


def _project_sessions(db: Database, project: str, start: datetime | None, end: datetime | None) -> int:
    with db.sessions() as s:
        q = select(func.count()).select_from(SessionRow).where(SessionRow.kind == "main")
        if project.startswith(REPO_PREFIX):  # a lesson of a repository: its sessions on every machine
            q = q.where(SessionRow.repository == project)
        elif project:
            q = q.where(SessionRow.project_root == project)
        if start is not None:
            q = q.where(SessionRow.started_at >= start)
        if end is not None:
            q = q.where(SessionRow.started_at < end)
        return int(s.execute(q).scalar() or 0)


def activate(db: Database, keys: Sequence[str], *, now: datetime | None = None) -> int:
    """Mark lessons written: active from now, with the failure's recent recurrence as the baseline."""
    now = now or _now()
    n = 0
    with db.transaction() as s:
        for row in s.execute(select(LessonRow).where(LessonRow.key.in_(list(keys)))).scalars():
            if row.status == "active":
                continue
            start = now - timedelta(days=BEFORE_WINDOW_DAYS)
            row.status, row.activated_at, row.retired_reason = "active", now, None
            row.expires_at = (row.last_seen or now) + timedelta(days=TTL_DAYS)
            row.sessions_before = _project_sessions(db, row.project, start, now)
            row.recurring_before = recurrences(db, row.signature, row.project, after=start, before=now)
            n += 1
    return n


def retire(db: Database, keys: Sequence[str], reason: str) -> int:
    with db.transaction() as s:
        rows = list(s.execute(select(LessonRow).where(LessonRow.key.in_(list(keys)))).scalars())
        for row in rows:
            row.status, row.retired_reason = "retired", reason
    return len(rows)


@dataclass
class ReviewReport:
    retired: dict[str, int]
    measured: int


def review(db: Database, *, now: datetime | None = None, min_sessions_after: int = MIN_SESSIONS_AFTER) -> ReviewReport:
    """Re-validate active lessons, expire old ones, measure outcomes and retire the ones that did not help."""
    now = now or _now()
    retired: dict[str, int] = {}
    measured = 0
    with db.sessions() as s:
        active = list(s.execute(select(LessonRow).where(LessonRow.status == "active")).scalars())
    seen = observe(db) if any(r.signature.startswith("not-found:") for r in active) else None
    for row in active:
        reason = (
            _invalid(row)
            or _ran_since(row, seen)
            or ("expired" if row.expires_at is not None and row.expires_at < now else None)
        )
        after = _project_sessions(db, row.project, row.activated_at, None)
        again = recurrences(db, row.signature, row.project, after=row.activated_at or now)
        measured += 1
        if reason is None and after >= min_sessions_after and _did_not_help(row, after, again):
            reason = "did not help"
        with db.transaction() as s:
            fresh = s.get(LessonRow, row.id)
            if fresh is None:
                continue
            fresh.sessions_after, fresh.recurring_after, fresh.validated_at = after, again, now
            if reason is not None:
                fresh.status, fresh.retired_reason = "retired", reason
                retired[reason] = retired.get(reason, 0) + 1
    return ReviewReport(retired, measured)


def _ran_since(row: LessonRow, seen: Observations | None) -> str | None:
    """A machine fact "X is not installed" is void once a later call of X succeeded (X was installed since)."""
    if seen is None or not row.signature.startswith("not-found:") or row.last_seen is None:
        return None
    program = row.signature.split(":", 1)[1]
    later = [ts for (_machine, name), ts in seen.program_ok.items() if name == program and ts > row.last_seen]
    return f"{program} ran successfully since" if later else None


def _did_not_help(row: LessonRow, after: int, again: int) -> bool:
    before_rate = (row.recurring_before or 0) / max(1, row.sessions_before or 0)
    return again / max(1, after) >= before_rate and again > 0


def _invalid(row: LessonRow) -> str | None:
    """Why a lesson no longer fits the machine or the project on disk (None: still valid, or nothing to check).

    An environment lesson ("use `python3`, not `python`") is void once the program it recommends is gone; a
    project lesson once a path it names is.
    """
    if not row.project:
        for name in json.loads(row.names or "[]"):
            program = name.split()[0] if isinstance(name, str) and name.strip() else ""
            if program and "/" not in program and shutil.which(program) is None:
                return f"{program} is no longer installed"
        return None
    if not os.path.isdir(row.project):
        return None  # logs from another machine, or the checkout is elsewhere now: nothing to check
    for name in json.loads(row.names or "[]"):
        if isinstance(name, str) and ("/" in name or "." in name) and not name.startswith("-"):
            path = name if os.path.isabs(name) else os.path.join(row.project, name)
            if not os.path.exists(path) and not _is_command(name):
                return f"{name} no longer exists"
    return None


def _is_command(name: str) -> bool:
    return " " in name.strip()


def report(db: Database, project: str | None = None) -> list[dict[str, Any]]:
    """Every lesson (of ``project``, or all), with its evidence counts and before/after recurrence."""
    with db.sessions() as s:
        q = select(LessonRow).order_by(LessonRow.status, LessonRow.sessions.desc(), LessonRow.key)
        if project is not None:
            q = q.where(LessonRow.project.in_([project, ""]))
        rows = list(s.execute(q).scalars())
    out = []
    for r in rows:
        out.append(
            {
                "key": r.key,
                "project": r.project or f"({parse_scope(r.scope)[0]})",
                "scope": r.scope,
                "kind": r.kind,
                "status": r.status,
                "retired_reason": r.retired_reason,
                "text": r.text,
                "sessions": r.sessions,
                "count": r.count,
                "corrected_by_user": r.corrected_by_user,
                "last_seen": r.last_seen,
                "activated_at": r.activated_at,
                "before": _rate(r.recurring_before, r.sessions_before),
                "after": _rate(r.recurring_after, r.sessions_after),
            }
        )
    return out


def _rate(recurring: int | None, sessions: int | None) -> str | None:
    if recurring is None or sessions is None:
        return None
    return f"{recurring}/{sessions}"
