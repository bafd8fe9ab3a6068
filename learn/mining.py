"""Lesson mining: from failures that recur (or that a user corrected) to short, evidenced lessons.

Mining is a pure function of the failures (:mod:`headroom.learn.failures`): the same sessions always give
the same drafts with the same keys, in the same order, so :mod:`headroom.learn.lessons` can upsert them run
after run. Failures are grouped by *(scope, signature)*: environment signatures (a program that is not
installed, ``not-found:python``) group across every project, everything else only within its project.

Rules, all deliberately conservative (a wrong lesson costs every later session tokens and trust):

- a group becomes a lesson when its signature shows up in ``min_sessions`` (2) independent sessions, or when
  the user explicitly corrected the agent (one correction is enough: the user said it);
- *usefulness threshold*: a failure that never recovered and says nothing beyond "this failed"
  (a missing file nobody found, a command that fails, a generic tool error) needs one session more
  (``min_sessions + 1``); with a known fix (the file was found under another name, the flag that worked)
  the lesson is concrete ("use X, not Y") and the normal threshold applies;
- a failing test suite is the normal work loop, so a test lesson needs a recovery (the same command passed
  later) and then names the command to run;
- interrupts need ``min_sessions + 1`` sessions too: stopping the agent is often just impatience.

Texts are one or two imperative lines, redacted, at most 200 characters, naming paths relative to the
project. ``names`` lists what the lesson relies on (the working path or command) so that a lesson whose
file is gone can be retired; never the wrong path, which by definition does not exist.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from headroom.learn.failures import Failure, find_failures, session_failures, sessions_query
from headroom.memory.db import Database
from headroom.memory.redact import redact_text

MAX_TEXT = 200
MAX_EVIDENCE = 20
ENVIRONMENT_PREFIXES = ("not-found:",)
# Signatures that say nothing beyond "it failed" unless a fix is known: one session more is required.
_PLAIN = ("missing-file:", "path:", "cmd:", "tool:", "interrupt:")


@dataclass(frozen=True)
class Evidence:
    agent: str
    session_key: str
    ts: datetime | None
    command: str | None
    error: str | None


@dataclass(frozen=True)
class LessonDraft:
    key: str
    project: str
    scope: str  # project | environment
    kind: str
    signature: str
    text: str
    names: tuple[str, ...]
    evidence: tuple[Evidence, ...]
    sessions: int
    count: int
    first_seen: datetime | None
    last_seen: datetime | None
    corrected_by_user: bool


def is_environment(signature: str) -> bool:
    return signature.startswith(ENVIRONMENT_PREFIXES)


def lesson_key(project: str, signature: str) -> str:
    """Stable across runs and machines: a hash over the scope (project or "env") and the signature."""
    scope = "env" if is_environment(signature) else project
    return hashlib.sha256(f"{scope}\0{signature}".encode()).hexdigest()[:16]


def _code(text: str) -> str:
    return "`" + text.replace("`", "'") + "`"


def _clip(text: str) -> str:
    text = redact_text(" ".join(text.split()))
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _no_abs(text: str, project: str) -> str:
    """No absolute machine path in a lesson: project paths relative, others cut to their last parts."""
    if project:
        text = text.replace(project.rstrip("/") + "/", "").replace(project, ".")
    words = []
    for word in text.split(" "):
        core = word.strip("`'\",.:;()")
        cut = core.startswith("/") and core.count("/") > 1
        words.append(word.replace(core, "/".join(core.split("/")[-2:])) if cut else word)
    return " ".join(words)


def _short_cmd(command: str | None, limit: int = 70) -> str:
    command = command or "?"
    return command if len(command) <= limit else command[: limit - 1] + "…"


def _text(kind: str, signature: str, fix: str | None, group: Sequence[Failure]) -> tuple[str, tuple[str, ...]] | None:
    """The lesson's text and names; None when the group is not worth a lesson."""
    _, _, subject = signature.partition(":")
    sample = group[-1]
    if signature.startswith("not-found:"):
        if fix:
            return f"Use {_code(fix)}, not {_code(subject)}: {_code(subject)} is not installed here.", (fix,)
        return f"{_code(subject)} is not installed here: do not call it.", ()
    if signature.startswith(("path:", "missing-file:")):
        if fix:
            old_dir, new_dir = os.path.dirname(subject), os.path.dirname(fix)
            if os.path.basename(subject) == os.path.basename(fix) and old_dir != new_dir and old_dir and new_dir:
                base = os.path.basename(fix)
                return f"{_code(base)} is in {_code(new_dir + '/')}, not {_code(old_dir + '/')}: use {_code(fix)}.", (
                    fix,
                )
            return f"{_code(subject)} does not exist here; the file is {_code(fix)}.", (fix,)
        return f"{_code(subject)} does not exist in this project: do not look for it.", ()
    if signature.startswith("test:"):
        if not fix:
            return None
        return f"Run the tests with {_code(_short_cmd(fix))} and make them pass before you finish.", (fix,)
    if signature.startswith("edit-no-match:"):
        return (
            f"Read {_code(subject)} before editing it: edits of {_code(subject)} failed to match its current content.",
            (subject,) if subject != "?" else (),
        )
    if signature.startswith("correction:"):
        requirement = sample.error or subject
        return f"The user corrected this: {requirement}", ()
    if signature.startswith("loop:"):
        return f"Do not re-run {_code(_short_cmd(subject))} unchanged: it failed repeatedly in one session.", ()
    if signature.startswith("cmd:"):
        if fix:
            return f"Use {_code(_short_cmd(fix))}, not {_code(_short_cmd(subject))}.", (fix,)
        err = f" ({sample.error})" if sample.error else ""
        return f"{_code(_short_cmd(subject))} fails in this project{err}.", ()
    if signature == "context-overflow":
        return "Sessions here overflow the context: read large files and logs in slices (head, grep), not whole.", ()
    if signature.startswith("interrupt:"):
        return f"The user stopped {_code(_short_cmd(sample.command))} repeatedly: ask before running it.", ()
    if signature.startswith("tool:"):
        name = signature.split(":", 2)[1]
        return f"{_code(name)} fails here with: {sample.error or subject}", ()
    return None


def _lesson(project: str, signature: str, group: list[Failure], min_sessions: int) -> LessonDraft | None:
    sessions = {f.session_key for f in group}
    corrected = any(f.kind == "user_correction" for f in group)
    fixes = Counter(f.fix for f in group if f.fix)
    fix = sorted(fixes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] if fixes else None
    needed = min_sessions + 1 if signature.startswith(_PLAIN) and fix is None else min_sessions
    if len(sessions) < needed and not corrected:
        return None
    made = _text(group[0].kind, signature, fix, group)
    if made is None:
        return None
    text, names = made
    kinds = Counter(f.kind for f in group)
    kind = sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    stamps = [f.ts for f in group if f.ts is not None]
    ordered = sorted(group, key=lambda f: (f.ts or datetime.min, f.session_key))
    environment = is_environment(signature)
    return LessonDraft(
        key=lesson_key(project, signature),
        project="" if environment else project,
        scope="environment" if environment else "project",
        kind=kind,
        signature=signature,
        text=_clip(_no_abs(text, project)),
        names=tuple(dict.fromkeys(names)),
        evidence=tuple(Evidence(f.agent, f.session_key, f.ts, f.command, f.error) for f in ordered[-MAX_EVIDENCE:]),
        sessions=len(sessions),
        count=len(group),
        first_seen=min(stamps) if stamps else None,
        last_seen=max(stamps) if stamps else None,
        corrected_by_user=corrected,
    )


def mine(failures: Sequence[Failure], *, min_sessions: int = 2) -> list[LessonDraft]:
    """Group failures by (scope, signature) and keep those that pass the rules of the module docstring."""
    groups: dict[tuple[str, str], list[Failure]] = {}
    for f in failures:
        if not f.project and not is_environment(f.signature):
            continue  # a session without a cwd: a project lesson would land in every project as "environment"
        scope = "" if is_environment(f.signature) else f.project
        groups.setdefault((scope, f.signature), []).append(f)
    drafts = []
    for (project, signature), group in groups.items():
        draft = _lesson(project, signature, group, min_sessions)
        if draft is not None:
            drafts.append(draft)
    drafts.sort(key=lambda d: d.key)
    drafts.sort(key=lambda d: d.last_seen or datetime.min, reverse=True)
    drafts.sort(key=lambda d: d.sessions, reverse=True)
    return drafts


def mine_db(
    db: Database, *, project: str | None = None, agent: str | None = None, since: datetime | None = None
) -> list[LessonDraft]:
    """Mine the sessions of the mirror (all of them, or one project / agent / period)."""
    return mine(find_failures(db, project=project, agent=agent, since=since))


def recurrences(db: Database, signature: str, project: str, *, after: datetime, before: datetime | None = None) -> int:
    """How many sessions of ``project`` (any project when ``project == ""``) since ``after`` show ``signature``."""
    with db.sessions() as s:
        ids = list(s.execute(sessions_query(project or None, None, after)).scalars())
    n = 0
    for session_id in ids:
        for f in session_failures(db, session_id):
            if f.signature == signature and (f.ts is None or (f.ts >= after and (before is None or f.ts < before))):
                n += 1
                break
    return n
