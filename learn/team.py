"""Team lessons: what two developers' machines both learned goes to the repository's shared files by review only.

Each sync of a mined lesson records the user whose machine mined it (``Lesson.seen_by``). A *project* lesson
seen by :data:`MIN_USERS` or more users becomes a team proposal (``team_status = "pending"``): the shared
instruction files (``CLAUDE.md``, ``AGENTS.md``, ``GEMINI.md``: what git commits for everyone) would change
every teammate's agents, so on a shared database they receive only lessons a reviewer accepted
(``headroom learn review --accept``); personal files (``CLAUDE.local.md``, the user-level files) keep
receiving lessons automatically. An accepted lesson is also saved in the shared memory with visibility
``team``. Machine facts and agent-tool lessons are never proposed: they hold for one machine.

One person's SQLite database sees one user, so nothing is ever proposed there and nothing changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select

from headroom.learn.projects import identities
from headroom.memory.db import Database
from headroom.memory.identity import current_user
from headroom.memory.models import LessonRow
from headroom.memory.store import MemoryStore

MIN_USERS = 2
PENDING, ACCEPTED, REJECTED = "pending", "accepted", "rejected"


def users_of(row: LessonRow) -> list[str]:
    """The users whose machines mined ``row`` (a damaged value reads as nobody)."""
    try:
        value = json.loads(row.seen_by or "[]")
    except ValueError:
        return []
    return [str(u) for u in value] if isinstance(value, list) else []


def note_seen(row: LessonRow, user: str | None = None) -> None:
    """Record that ``user`` (this machine's by default) mined ``row``; propose it when enough users have."""
    users = users_of(row)
    me = current_user() if user is None else user
    if me not in users:
        users.append(me)
        row.seen_by = json.dumps(sorted(users))
    if row.team_status is None and len(users) >= MIN_USERS and row.scope.split(":")[0] == "project":
        row.team_status = PENDING


@dataclass(frozen=True)
class Proposal:
    key: str
    project: str
    text: str
    users: list[str]
    sessions: int
    count: int
    status: str
    evidence: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "project": self.project,
            "text": self.text,
            "seen_by": self.users,
            "sessions": self.sessions,
            "count": self.count,
            "team_status": self.status,
            "evidence": self.evidence,
        }


def proposals(db: Database, project: str | None = None, *, statuses: tuple[str, ...] = (PENDING,)) -> list[Proposal]:
    """Team proposals (pending by default), for one project or all, the most seen first."""
    with db.sessions() as s:
        q = select(LessonRow).where(LessonRow.team_status.in_(statuses))
        if project is not None:
            q = q.where(LessonRow.project == project)
        rows = s.execute(q).scalars().all()
    out = []
    for row in rows:
        try:
            evidence = json.loads(row.evidence or "[]")
        except ValueError:
            evidence = []
        out.append(
            Proposal(
                row.key,
                row.project,
                row.text,
                users_of(row),
                row.sessions,
                row.count,
                row.team_status or "",
                evidence[:5],
            )
        )
    return sorted(out, key=lambda p: (-len(p.users), -p.sessions, p.key))


def find(db: Database, key_prefix: str) -> LessonRow:
    """The one team proposal whose key starts with ``key_prefix`` (as ``learn review`` shows keys, shortened)."""
    if len(key_prefix) < 4:
        raise ValueError("give at least 4 characters of the lesson's key")
    with db.sessions() as s:
        rows = (
            s.execute(select(LessonRow).where(LessonRow.key.startswith(key_prefix), LessonRow.team_status.is_not(None)))
            .scalars()
            .all()
        )
    if not rows:
        raise ValueError(f"no team proposal with a key starting {key_prefix!r}")
    if len(rows) > 1:
        raise ValueError(f"{len(rows)} team proposals have keys starting {key_prefix!r}: give more characters")
    return rows[0]


def decide(db: Database, key: str, *, accept: bool, now: datetime | None = None) -> LessonRow:
    """Accept or reject the team proposal ``key``; an accepted one is saved to the shared memory as a team lesson."""
    when = (now or datetime.now(timezone.utc)).replace(tzinfo=None)
    with db.transaction() as s:
        row = s.execute(select(LessonRow).where(LessonRow.key == key)).scalar_one()
        row.team_status = ACCEPTED if accept else REJECTED
        row.team_decided_by = current_user()
        row.team_decided_at = when
        s.flush()
        s.expunge(row)
    if accept:
        MemoryStore(db).put(row.text, "lesson", project=row.project, team=True, source="cli", agent="user")
    return row


def accepted(db: Database, project: str) -> list[LessonRow]:
    """The project's lessons accepted for the team (what its shared files may hold on a shared database)."""
    names = sorted(identities(project) | {project})  # the repository's identity as well as this checkout's path
    with db.sessions() as s:
        return list(
            s.execute(
                select(LessonRow).where(LessonRow.project.in_(names), LessonRow.team_status == ACCEPTED)
            ).scalars()
        )
