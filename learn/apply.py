"""One learn run for a project: mine, plan the writes, and (with apply) keep the lessons in the DB and write them.

Where each lesson goes:

- a *project* lesson into the instruction file of every agent that works in the project (a lesson learned from
  Codex's failure reaches Claude's file too), or of one agent when it is about that agent's own tool;
- a *machine* fact ("`python` is not installed on this machine") and a lesson about an agent's own tool into the
  agent's *user-level* file (``~/.claude/CLAUDE.md``, ``~/.codex/AGENTS.md``, ``~/.gemini/GEMINI.md``), the same
  managed block with the same guarantees; only for an agent whose home folder exists (headroom creates no
  folders), and only machine facts of this machine.

Files are *personal* (ignored by git: ``CLAUDE.local.md``, which headroom adds to ``.git/info/exclude``; the
user-level files) or *shared* (anything git would pick up); the daemon applies on its own only where the config
allows (personal by default) and only lessons it may write unasked (:attr:`LessonDraft.auto_ok`), while
``headroom learn --apply`` writes where asked. A dry run stores nothing: it shows the lessons and the diffs.
Every write of one run shares a journal run id, so ``learn undo`` takes the whole run back at once.
"""

from __future__ import annotations

import logging
import secrets
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from headroom.learn.failures import Observations, machine_of, project_key, project_keys
from headroom.learn.journal import Journal
from headroom.learn.lessons import SyncReport, activate, lessons_for, parse_scope, sync
from headroom.learn.mining import LessonDraft, mine_db
from headroom.learn.model import AGENTS
from headroom.learn.team import accepted
from headroom.learn.writers import Plan, Target, WriteError, apply, plan_write, target_for, user_target
from headroom.memory.db import Database
from headroom.memory.models import SessionRow
from headroom.memory.rls import is_team_database

log = logging.getLogger("headroom.learn")

PERSONAL_FILE = "CLAUDE.local.md"


@dataclass(frozen=True)
class Entry:
    """A lesson as the files see it: what it says, where it holds, and for which agents."""

    key: str
    text: str
    scope: str  # project | machine | agent
    agents: tuple[str, ...]  # () = every agent


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
    run_id: str = ""


def project_agents(db: Database, project: str) -> list[str]:
    """The agents with sessions in ``project``, in the usual order."""
    with db.sessions() as s:
        found = set(s.execute(select(SessionRow.agent).where(SessionRow.project_root == project).distinct()).scalars())
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


def _entries(db: Database, project: str, drafts: Sequence[LessonDraft]) -> list[Entry]:
    """This run's lessons, then those written earlier and still active (a lesson stays until it is retired)."""
    out = [Entry(d.key, d.text, d.scope, d.agents) for d in drafts]
    known = {e.key for e in out}
    for row in lessons_for(db, project, statuses=("active",)):
        scope, agents = parse_scope(row.scope)
        if row.key not in known:
            out.append(Entry(row.key, row.text, scope, agents))
            known.add(row.key)
    return out


def _for(agent: str, entries: Sequence[Entry], scopes: tuple[str, ...]) -> list[Entry]:
    return [e for e in entries if e.scope in scopes and (not e.agents or agent in e.agents)]


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
    auto: bool = False,
    user_homes: Mapping[str, Path] | None = None,
    observations: Observations | None = None,
) -> LearnRun:
    """Mine ``project``, plan every agent file's block (project and user-level); write what the flags allow.

    ``auto``: the daemon's run, which writes only lessons it may write unasked. ``user_homes``: each agent's home
    folder (where its user-level file is); without it no user-level file is planned. ``observations``: the
    sessions as already read (learning many projects in a row reads them once).
    """
    run = LearnRun(project, run_id=f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}")
    here = machine_of(project)
    ours = project_keys(project)
    drafts = [
        d
        for d in mine_db(db, project=project, since=since, observations=observations)
        if d.scope == "agent" or (d.scope == "machine" and d.machine == here) or project_key(d.project) in ours
    ]
    run.drafts = [d for d in drafts if d.auto_ok] if auto else drafts
    writing = apply_personal or apply_shared
    root = Path(project) if project else None
    if root is None or not root.is_dir():
        run.skipped.append(
            f"{project or '(no project)'}: the folder is not on this machine, so its files cannot be written "
            "(the lessons are shown above)"
        )
        return run
    if writing:
        run.synced = sync(db, run.drafts, now=now)
    entries = _entries(db, project, run.drafts)
    targets: list[tuple[Target, list[Entry], bool]] = []
    for agent in agents or project_agents(db, project):
        targets.append((target_for(agent, root, claude_file=claude_file), _for(agent, entries, ("project",)), False))
    # A machine fact holds for every agent on the machine: each one installed here (its home exists) gets it.
    for agent, home in (user_homes or {}).items():
        if (agents is None or agent in agents) and home.is_dir():
            targets.append((user_target(agent, home), _for(agent, entries, ("machine", "agent")), True))
    written_keys: set[str] = set()
    # On a team's database (one with member roles) a shared file (one git commits) changes every teammate's
    # agents: it holds only the lessons accepted in `headroom learn review` (learn/team.py). Personal files are
    # written as before.
    team = is_team_database(db)
    team_entries = [Entry(r.key, r.text, *parse_scope(r.scope)) for r in accepted(db, project)] if team else []
    for target, planned, user_level in targets:
        personal = user_level or target.path.name == PERSONAL_FILE or not is_shared(target.path)
        chosen = _for(target.agent, team_entries, ("project",)) if team and not personal else planned
        if user_level and not chosen and not target.path.exists():
            continue
        try:
            plan = plan_write(target, [e.text for e in chosen], create=True)
        except WriteError as exc:
            run.skipped.append(str(exc))
            continue
        run.plans.append(plan)
        keys = [e.key for e in chosen[: plan.lessons_written]]
        if not plan.changed:
            written_keys.update(keys)
            continue
        # CLAUDE.local.md and the user-level files are personal by definition.
        if not (apply_personal if personal else apply_shared):
            continue
        try:
            apply(plan, journal, run=run.run_id, lessons=keys)
        except WriteError as exc:
            run.skipped.append(str(exc))
            continue
        run.written.append(plan)
        written_keys.update(keys)
        if target.path.name == PERSONAL_FILE:
            exclude_from_git(target.path)
    if written_keys and writing:
        run.activated = activate(db, sorted(written_keys), now=now)
    return run
