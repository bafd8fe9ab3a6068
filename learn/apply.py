"""One learn run for a project: mine, keep the lessons in the DB, and plan (or make) the writes.

A project's lessons (its own and the environment's, :func:`headroom.learn.lessons.lessons_for`) are rendered
into the instruction file of every agent that works in the project: a lesson learned from Codex's failure
reaches Claude's file too. Files are *personal* (ignored by git: ``CLAUDE.local.md``, which headroom adds to
``.git/info/exclude``) or *shared* (anything git would pick up: ``CLAUDE.md``, ``AGENTS.md``,
``GEMINI.md``); the daemon applies on its own only where the config allows (personal by default), while
``headroom learn --apply`` writes where asked. Nothing is written without a plan, a journal entry and a backup
(:mod:`headroom.learn.writers`).
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from headroom.learn.journal import Journal
from headroom.learn.lessons import SyncReport, activate, lessons_for, sync
from headroom.learn.mining import LessonDraft, mine_db
from headroom.learn.model import AGENTS
from headroom.learn.writers import Plan, WriteError, apply, plan_write, target_for
from headroom.memory.db import Database
from headroom.memory.models import Session

log = logging.getLogger("headroom.learn")

PERSONAL_FILE = "CLAUDE.local.md"


@dataclass
class LearnRun:
    """What one run found and planned (and, with ``apply``, wrote)."""

    project: str
    drafts: list[LessonDraft] = field(default_factory=list)
    synced: SyncReport = field(default_factory=SyncReport)
    plans: list[Plan] = field(default_factory=list)
    written: list[Plan] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # why a file was not written
    activated: int = 0


def project_agents(db: Database, project: str) -> list[str]:
    """The agents with sessions in ``project``, in the usual order."""
    with db.sessions() as s:
        found = set(s.execute(select(Session.agent).where(Session.project_root == project).distinct()).scalars())
    return [a for a in AGENTS if a in found]


def is_shared(path: Path) -> bool:
    """Whether git would share ``path`` (tracked, or not ignored in a work tree); False outside git."""
    folder = path.parent
    if not any((p / ".git").exists() for p in (folder, *folder.parents)):
        return False
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "check-ignore", "-q", str(path)], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return True  # cannot tell: treat as shared, the cautious side
    return done.returncode != 0  # 0: ignored (personal); 1: not ignored (shared)


def exclude_from_git(path: Path) -> bool:
    """Add ``path``'s name to the repository's ``.git/info/exclude`` (personal files stay out of commits)."""
    for folder in (path.parent, *path.parent.parents):
        git = folder / ".git"
        if git.is_dir():
            exclude = git / "info" / "exclude"
            rel = "/" + str(path.relative_to(folder))
            try:
                current = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
                if rel in current.splitlines():
                    return False
                exclude.parent.mkdir(parents=True, exist_ok=True)
                with exclude.open("a", encoding="utf-8") as fh:
                    fh.write(("" if not current or current.endswith("\n") else "\n") + rel + "\n")
                return True
            except OSError as exc:
                log.warning("could not add %s to %s: %s", rel, exclude, exc)
                return False
    return False


def run_learn(
    db: Database,
    project: str,
    *,
    journal: Journal,
    agents: Sequence[str] | None = None,
    since: datetime | None = None,
    apply_personal: bool = False,
    apply_shared: bool = False,
    claude_file: str = "CLAUDE.local.md",
    now: datetime | None = None,
) -> LearnRun:
    """Mine ``project``, sync its lessons and plan every agent file's block; write what the flags allow."""
    run = LearnRun(project)
    run.drafts = [d for d in mine_db(db, project=project, since=since) if d.project in (project, "")]
    run.synced = sync(db, run.drafts, now=now)
    lessons = lessons_for(db, project)
    texts = [lesson.text for lesson in lessons]
    root = Path(project)
    if not project or not root.is_dir():
        run.skipped.append(f"{project or '(no project)'}: the folder is not on this machine")
        return run
    written_keys: set[str] = set()
    for agent in agents or project_agents(db, project):
        target = target_for(agent, root, claude_file=claude_file)
        try:
            plan = plan_write(target, texts, create=True)
        except WriteError as exc:
            run.skipped.append(str(exc))
            continue
        run.plans.append(plan)
        if not plan.changed:
            written_keys.update(lesson.key for lesson in lessons[: plan.lessons_written])
            continue
        # CLAUDE.local.md is personal by definition: it goes into .git/info/exclude when it is written.
        personal = target.path.name == PERSONAL_FILE or not is_shared(target.path)
        if not (apply_personal if personal else apply_shared):
            continue
        try:
            apply(plan, journal)
        except WriteError as exc:
            run.skipped.append(str(exc))
            continue
        run.written.append(plan)
        written_keys.update(lesson.key for lesson in lessons[: plan.lessons_written])
        if target.path.name == PERSONAL_FILE:
            exclude_from_git(target.path)
    if written_keys:
        run.activated = activate(db, sorted(written_keys), now=now)
    return run
