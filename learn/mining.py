"""Lesson mining: from failures that recur (or a rule the user stated) to short lessons, fix first.

Mining is a pure function of the observations (:mod:`headroom.learn.failures`): the same sessions always give the
same drafts with the same keys, in the same order, so :mod:`headroom.learn.lessons` can upsert them run after run.

- **Grouped by what went wrong**: failures group by (scope, signature, agent): machine facts (``not-found:python``,
  PowerShell's parser) across every project of the same machine, everything else within its project; a lesson
  about one agent's own tool (Claude's Read limit, Codex's apply_patch) only with that agent's failures, and it is
  written into that agent's file only.
- **Independent evidence**: a lesson needs ``min_sessions`` (2) sessions showing the failure, counted after
  merging sessions that share a failing tool call (a sub-agent file that replays its parent's history is not a
  second session). A user's rule, or an error that itself states a durable rule (a protected branch), needs one.
- **A fix, where the class needs one**: a missing path, a plain command, a missing npm script, a missing module
  become lessons only with the fix the sessions showed; a program that is not installed can stand without one.
- **Not stale**: a machine fact retires as soon as a later call of the program succeeded on that machine; a path
  lesson as soon as the old path was used successfully later.
- ``auto_ok``: what the daemon may write on its own: evidence from two sessions on different days, or a rule.

Texts are one or two lines, the fix first, redacted, at most 200 characters, valid Markdown (inline code only),
naming paths relative to the project. ``names`` lists what the lesson relies on (the working path or program) so
that a lesson whose file or program is gone can be retired.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from headroom.learn.failures import (
    Failure,
    Observations,
    observe,
    placeholders,
    project_key,
    project_keys,
    session_failures,
    sessions_query,
)
from headroom.memory.db import Database
from headroom.memory.redact import redact_text

MAX_TEXT = 200
MAX_EVIDENCE = 20
# Classes whose lesson only makes sense with the fix the sessions showed.
_NEEDS_FIX = ("path:", "cmd:", "npm-missing-script:", "py-module-missing", "not-a-git-repo")


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
    project: str  # "" for a machine fact
    scope: str  # project | machine
    kind: str
    signature: str
    text: str
    names: tuple[str, ...]
    evidence: tuple[Evidence, ...]
    sessions: int
    count: int
    first_seen: datetime | None
    last_seen: datetime | None
    corrected_by_user: bool  # the lesson is a rule the user stated
    agents: tuple[str, ...] = ()  # only these agents' files (their own tool); () = every agent's
    days: int = 0  # distinct days with evidence
    auto_ok: bool = False  # the daemon may write it on its own
    machine: str = ""

    def __post_init__(self) -> None:
        """The boundary every lesson crosses before it is stored or written: redacted here, once (whole, then
        clipped, so a secret is never cut in half and left unrecognizable)."""
        set_ = object.__setattr__
        set_(self, "text", _clip(redact_text(self.text)))
        set_(self, "signature", redact_text(self.signature))
        set_(self, "names", tuple(redact_text(n) for n in self.names))
        set_(
            self,
            "evidence",
            tuple(
                Evidence(
                    e.agent,
                    e.session_key,
                    e.ts,
                    redact_text(e.command) if e.command else None,
                    redact_text(e.error) if e.error else None,
                )
                for e in self.evidence
            ),
        )


def is_environment(signature: str) -> bool:
    """Kept for older rows: machine facts were called environment lessons."""
    return signature.startswith(("not-found:", "powershell-"))


def lesson_key(where: str, signature: str, agent: str = "") -> str:
    """Stable across runs: a hash over where it holds (project, or machine) and what went wrong."""
    return hashlib.sha256(f"{where}\0{signature}\0{agent}".encode()).hexdigest()[:16]


def _code(text: str) -> str:
    """Inline code that stays valid Markdown whatever the text holds (a longer fence around backticks)."""
    text = " ".join(text.split())
    if "`" not in text:
        return f"`{text}`"
    return f"`` {text} ``"


def _short(text: str | None, limit: int = 70) -> str:
    text = text or "?"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip(text: str) -> str:
    """One paragraph, at most MAX_TEXT characters, never cut inside a word or an inline code span."""
    text = " ".join(text.split())
    if len(text) <= MAX_TEXT:
        return text
    cut = text[: MAX_TEXT - 1].rsplit(" ", 1)[0]
    if cut.count("`") % 2:
        cut = cut[: cut.rfind("`")].rstrip()
    return cut + "…"


def _no_abs(text: str, project: str) -> str:
    """No absolute machine path in a lesson: project paths relative, others cut to their last parts."""
    if project:
        for root in {project, project.replace("\\", "/")}:
            text = text.replace(root.rstrip("/\\") + "/", "").replace(root.rstrip("/\\") + "\\", "")
    return text


_AGENT_TOOLS = {
    "edit-unread": {
        "claude": "Read a file before you Edit or Write it: Claude's Edit refuses a file it has not read (`File has "
        "not been read yet`).",
    },
    "edit-stale": {
        "claude": "Read the file again right before editing it: Edit refuses a file changed since it was read "
        "(`File has been modified since read`).",
    },
    "read-too-large": {
        "claude": "Read large files in parts with Read's `offset` and `limit` (or Grep them): Read refuses a file "
        "over its size limit.",
    },
}
_NO_MATCH = {
    "apply_patch": "Re-read the exact lines (`sed -n`) right before `apply_patch`: patches written from memory "
    "failed verification (`Failed to find expected lines`).",
    "replace": "read_file the current lines right before `replace`: an `old_string` from memory did not match "
    "(`0 occurrences found`).",
    "edit": "Read the current lines right before Edit: an `old_string` from memory did not match (`String to "
    "replace not found`).",
}


def _text(signature: str, fix: str | None, group: Sequence[Failure]) -> tuple[str, tuple[str, ...]] | None:
    """The lesson's text (fix first) and names; None when the group is not worth a lesson."""
    head, _, subject = signature.partition(":")
    sample = group[-1]
    detail = sample.detail or ""
    agent = sample.agent_only or sample.agent
    if head == "rule":
        return sample.error or subject, ()
    if head == "not-found":
        # Where each agent has a shell of its own (Windows), say so: another agent's shell may well have it.
        where = (
            "is not on your shell's PATH on this machine" if sample.agent_only else "is not installed on this machine"
        )
        if fix:
            return f"Use {_code(fix)}: {_code(subject)} {where}.", (fix,)
        return f"{_code(subject)} {where}.", ()
    if head == "crlf":
        how = _code(fix) if fix else "`dos2unix` or `sed -i 's/\\r$//'`"
        return (
            f"Convert scripts to LF line endings ({how}): CRLF endings make bash fail with `$'\\r': command not "
            "found`.",
            (),
        )
    if head == "git-safe-directory":
        return (
            f"Run {_code(fix or 'git config --global --add safe.directory <repo>')} once: git refuses this "
            "repository (`detected dubious ownership`).",
            (),
        )
    if head == "git-bash-path":
        lead = subject
        form = f"`:(literal){lead}/…`" if fix == ":(literal)" else f"`./{lead}/…`"
        return (
            f"Write git path arguments that start with `{lead}/` as {form}: Git Bash rewrites a leading "
            f"`{lead}/` into a Windows path (`pathspec '{lead}C:/…/Git/…' did not match`).",
            (),
        )
    if head == "powershell-separator":
        return (
            "Chain commands with `;` (or `if ($?) { … }`), not `&&` or `||`: this Windows PowerShell rejects "
            "them as statement separators.",
            (),
        )
    if head == "powershell-param":
        if fix:
            return f"Use {_code(fix)}, not {_code(subject)}: the shell is PowerShell, which has no such parameter.", ()
        return (
            f"The shell is PowerShell: {_code(subject)} fails (no such parameter); use the cmdlet's own parameters.",
            (),
        )
    if head == "npm-missing-script" and fix:
        what = "the tests" if detail == "test" else f"`{detail}`"
        failing = _code(_short(sample.command, 40)) if sample.command else f"`npm run {detail}`"
        return f'Run {what} with {_code(_short(fix))}: {failing} fails here (`Missing script: "{detail}"`).', (fix,)
    if head == "py-module-missing" and fix:
        return (
            f"Run Python through the project's environment ({_code(_short(fix))}): the system Python lacks "
            f"`{detail}` (`No module named {detail}`).",
            (),
        )
    if head == "sandbox-no-network":
        cmds = Counter(f.command for f in group if f.command)
        cmd = cmds.most_common(1)[0][0] if cmds else "npm install"
        return (
            f"Ask for network access (escalated sandbox permissions) before {_code(cmd)} and other downloads: "
            "the sandbox has no network (`ENOTFOUND`).",
            (),
        )
    if head == "timeout":
        cmds = Counter(f.command for f in group if f.command)
        if not cmds:
            return (
                "Give long scans and builds a longer timeout or run them in the background: commands here "
                "outlasted the shell tool's timeout (exit 124).",
                (),
            )
        cmd = cmds.most_common(1)[0][0]
        return (
            f"Run {_code(_short(cmd, 40))} with a longer timeout or in the background: it outlasted the shell "
            "tool's timeout here (exit 124).",
            (),
        )
    if head in _AGENT_TOOLS:
        own = _AGENT_TOOLS[head].get(agent)
        return (own, ()) if own else None
    if head == "edit-no-match":
        text = _NO_MATCH.get(subject)
        return (text, ()) if text else None
    if head == "tool-param":
        tool, how, param = [*subject.split(":"), "", ""][:3]
        if how == "missing":
            return (
                f"Give `{tool}` its required `{param}`: calls without it are rejected "
                f"(`must have required property '{param.rsplit('.', 1)[-1]}'`).",
                (),
            )
        return f"Call `{tool}` without `{param}`: it is not one of its parameters (the call is rejected).", ()
    if head == "protected-branch":
        return (
            f"Push a branch and open a pull request: `{detail or subject}` is protected (changes must be made "
            "through a pull request).",
            (),
        )
    if head == "not-a-git-repo" and fix:
        return f"Run git inside `{fix}/`: the workspace root is not a git repository.", (fix,)
    if head == "zsh-glob-brackets":
        return (
            "Quote paths that contain `[…]` (e.g. `'app/[id]/page.tsx'`): zsh reads the brackets as a glob "
            "(`no matches found`).",
            (),
        )
    if head == "path" and fix:
        old = detail or subject
        if os.path.basename(old.rstrip("/")) == os.path.basename(fix.rstrip("/")) and os.path.dirname(fix):
            return f"Use {_code(fix)}: {_code(old)} does not exist.", (fix,)
        return f"Use {_code(fix)}: {_code(old)} does not exist.", (fix,)
    if head == "cmd" and fix:
        return f"Use {_code(_short(placeholders(fix)))}, not {_code(_short(placeholders(sample.command or '')))}.", (
            fix,
        )
    return None


def _independent(group: Sequence[Failure]) -> dict[str, str]:
    """Session → its representative: sessions sharing a failing tool call (a replayed history) are one."""
    parent: dict[str, str] = {f.session_key: f.session_key for f in group}

    def find(s: str) -> str:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    by_call: dict[str, str] = {}
    for f in group:
        if f.tool_call_key is None:
            continue
        other = by_call.setdefault(f.tool_call_key, f.session_key)
        a, b = find(other), find(f.session_key)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {s: find(s) for s in parent}


def _stale(signature: str, group: Sequence[Failure], seen: Observations | None) -> bool:
    """Whether a later success contradicts the lesson (the program ran after all, the old path worked)."""
    if seen is None:
        return False
    last = max((f.ts for f in group if f.ts is not None), default=None)
    if last is None:
        return False
    head, _, subject = signature.partition(":")
    if head == "not-found":
        ok = seen.program_ok.get((group[0].machine, subject))
        return ok is not None and ok > last
    if head == "path":
        project = project_key(group[0].project)
        old = group[0].detail or subject
        fixes = {f.fix for f in group if f.fix}
        for (where, path), ok in seen.path_ok.items():
            if where != project or ok <= last:
                continue
            # The old path worked after all, or the file turned up somewhere else than the fix: it moved again.
            if path == old or (os.path.basename(path) == os.path.basename(old) and path not in fixes):
                return True
        return False
    return False


def _lesson(
    where: str, signature: str, group: list[Failure], min_sessions: int, seen: Observations | None
) -> LessonDraft | None:
    reps = _independent(group)
    sessions = set(reps.values())
    explicit = any(f.explicit for f in group)
    if len(sessions) < (1 if explicit else min_sessions):
        return None
    fixes = Counter(f.fix for f in group if f.fix)
    fix = sorted(fixes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] if fixes else None
    if fix is None and signature.startswith(_NEEDS_FIX):
        return None
    if signature.startswith("path:") and len(fixes) > 1:
        return None  # the sessions disagree on where the file is: it moves, no lesson can say where
    if _stale(signature, group, seen):
        return None
    made = _text(signature, fix, group)
    if made is None or not made[0]:
        return None
    text, names = made
    first = group[0]
    kinds = Counter(f.kind for f in group)
    stamps = [f.ts for f in group if f.ts is not None]
    days = {f.ts.date() for f in group if f.ts is not None and reps[f.session_key] == f.session_key}
    ordered = sorted(group, key=lambda f: (f.ts or datetime.min, f.session_key))
    rule = any(f.kind == "user_rule" for f in group)
    agents = (first.agent_only,) if first.agent_only else ()
    machine = first.scope in ("machine", "agent")
    return LessonDraft(
        key=lesson_key(where, signature, first.agent_only or ""),
        project="" if machine else (first.repository or first.project),
        scope=first.scope,
        kind=sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))[0][0],
        signature=signature,
        text=_no_abs(text, first.project),
        names=tuple(dict.fromkeys(names)),
        evidence=tuple(Evidence(f.agent, f.session_key, f.ts, f.command, f.error) for f in ordered[-MAX_EVIDENCE:]),
        sessions=len(sessions),
        count=len(group),
        first_seen=min(stamps) if stamps else None,
        last_seen=max(stamps) if stamps else None,
        corrected_by_user=rule,
        agents=agents,
        days=len(days),
        auto_ok=rule or (len(sessions) >= 2 and len(days) >= 2),
        machine=first.machine if machine else "",
    )


def mine(
    failures: Sequence[Failure], *, min_sessions: int = 2, observations: Observations | None = None
) -> list[LessonDraft]:
    """Group failures by (scope, signature, agent) and keep those that pass the rules of the module docstring."""
    groups: dict[tuple[str, str, str], list[Failure]] = {}
    for f in failures:
        if f.scope == "machine":
            where = "machine:" + f.machine
        elif f.scope == "agent":
            where = "agent"  # an agent's own tool behaves the same on every machine and in every project
        elif f.project:
            where = f.repository or project_key(f.project)  # one repository: one lesson, whatever the path
        else:
            continue  # a session without a cwd: its project is unknown
        groups.setdefault((where, f.signature, f.agent_only or ""), []).append(f)
    drafts = []
    for (where, signature, _agent), group in groups.items():
        draft = _lesson(where, signature, group, min_sessions, observations)
        if draft is not None:
            drafts.append(draft)
    drafts.sort(key=lambda d: d.key)
    drafts.sort(key=lambda d: d.last_seen or datetime.min, reverse=True)
    drafts.sort(key=lambda d: (not d.corrected_by_user, -d.sessions))
    return drafts


def mine_db(
    db: Database,
    *,
    project: str | None = None,
    agent: str | None = None,
    since: datetime | None = None,
    observations: Observations | None = None,
) -> list[LessonDraft]:
    """Mine the mirror: every lesson, or one project's (its own, its machine's facts, the agents' tool lessons).

    Machine facts and agent lessons draw on every session, so each run reads them all; a caller that learns
    several projects in a row passes the ``observations`` it read once (:func:`~headroom.learn.failures.observe`).
    """
    seen = observations if observations is not None else observe(db, agent=agent, since=since)
    drafts = mine(seen.failures, observations=seen)
    if project is None:
        return drafts
    machines = {f.machine for f in seen.failures if f.project == project}
    names = project_keys(project)
    return [
        d
        for d in drafts
        if project_key(d.project) in names or (d.scope == "machine" and d.machine in machines) or d.scope == "agent"
    ]


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
