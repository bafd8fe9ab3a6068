"""What went wrong in a session, grouped by *what* went wrong, and what fixed it: the input of lesson mining.

Deliberately literal (no model): every failure is recognized from what the agents log, and each one gets a
*signature* that says what went wrong, not which command line did it. A missing ``python`` is ``not-found:python``
whether the agent ran ``python -m pytest`` or ``python - <<EOF``; git's refusal of a repository it does not own is
``git-safe-directory`` under any git command; ids, hashes, dates and temp names in what is kept become
placeholders (:func:`mask`). The error classes (:mod:`headroom.learn.error_classes`) decide the signature, the
scope (this project, this machine, or one agent's own tool) and how the fix is recognized.

The *fix* is what worked next for the same goal in the same session: the next successful call that the class
accepts as a fix (``python3`` after ``python``, ``make test`` after ``npm test`` said ``Missing script: "test"``,
the quoted path after zsh's ``no matches found``), never a later unrelated command. In a chain
(``cd x && set +H && git mv …``) the failing part is blamed: the program the error names, else the last part
that is not a shell builtin.

Not failures here: cancelled or rejected calls, a user's own ``!`` commands (``by_user``), "no match" answers,
failing test runs (the normal work loop), and transient state ("database is locked", "would be overwritten",
rate limits, one-off network errors): none of them is a fact about the project or the machine.

The session is read from the tool-call fields the readers decide (:class:`Step` is built from them in one place,
:func:`steps_of`); prompts that state a durable rule come from :mod:`headroom.learn.rules`.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from headroom.learn.knowledge import base_tool, tool_args, unwrap_output
from headroom.learn.model import ToolKind
from headroom.learn.projects import identities
from headroom.learn.rules import rule_text
from headroom.memory.db import Database
from headroom.memory.models import EventRow, SessionRow, ToolCallRow

MAX_TEXT = 200
RECOVERY_WINDOW = 8  # how many later calls of the session may hold the fix

SHELL, READ, EDIT, WRITE = (ToolKind.SHELL.value, ToolKind.READ.value, ToolKind.EDIT.value, ToolKind.WRITE.value)


@dataclass(frozen=True)
class Failure:
    """One failure in one session, normalized for grouping (see the module docstring).

    ``scope``: ``project`` (a fact of this project), ``machine`` (of this machine: goes to the user-level files).
    ``agent_only``: the agent whose own tool this is about (its file only), else None. ``machine`` names the
    machine by its user's home folder (``/home/ann``, ``c:\\users\\ann``): machine facts from logs of another
    machine never mix. ``explicit``: the error itself states a durable rule (a protected branch), or it is the
    user's rule: one session is enough.
    """

    kind: str
    agent: str
    session_key: str
    project: str
    ts: datetime | None
    signature: str
    command: str | None
    error: str | None
    fix: str | None
    tool_call_key: str | None
    scope: str = "project"
    agent_only: str | None = None
    machine: str = ""
    explicit: bool = False
    detail: str | None = None  # what the lesson text needs beyond command/fix (a module, a script, a dir)
    repository: str = ""  # the repository the project is a checkout of (one lesson across machines and paths)


@dataclass
class Step:
    """One tool call as the detectors see it: the readers' fields, the project-relative path, the chain's parts."""

    key: str
    seq: int
    ts: datetime | None
    tool: str  # base tool name, lower case (mcp__x__y -> y)
    name: str  # the tool's name as the agent calls it (``Bash``, ``ask_user``)
    kind: str
    command: str | None
    path: str | None
    failed: bool
    by_user: bool
    output: str
    args: Any
    exit_code: int | None = None
    parts: list[list[str]] = field(default_factory=list)  # the chain's simple commands, words each

    @property
    def programs(self) -> list[str]:
        return [os.path.basename(p[0]) for p in self.parts if p]


@dataclass
class Observations:
    """What the sessions showed: the failures, and when things last worked (for retiring stale lessons)."""

    failures: list[Failure] = field(default_factory=list)
    program_ok: dict[tuple[str, str], datetime] = field(default_factory=dict)  # (machine, program) -> last ok
    path_ok: dict[tuple[str, str], datetime] = field(default_factory=dict)  # (project, path) -> last ok use


# --- text helpers -----------------------------------------------------------------------------------------

_ENV_ASSIGN = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*=")
_HASH = re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,}\b")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE)
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T_ ]\d{2}[-:]\d{2}(?:[-:]\d{2})?Z?)?\b")
_NUMBER = re.compile(r"(?<![\w.])\d+(?![\w])")
_TMP_NAME = re.compile(r"\btmp[\w.-]*[0-9][\w.-]*|/tmp/[^\s/]+")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_WINDOWS_ABS = re.compile(r"\A[A-Za-z]:[\\/]")
_HOME = re.compile(r"\A(?:/(?:home|Users)/[^/]+|[A-Za-z]:[\\/]Users[\\/][^\\/]+|/root)", re.IGNORECASE)
_CHAIN = {"&&", "||", ";", "|", "&", ";;", "|&"}
_REDIRECT = re.compile(r"\s\d*(?:>>?|&>|<)(?:&\d+|\s*[^\s&|;<>]+)")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)\w+\1")
_BUILTINS = {"cd", "set", "export", "source", ".", "echo", "true", "false", "pushd", "popd", "unset", "sleep"}
# Programs that only filter a pipe's output: a chain is blamed on what fed them.
_FILTERS = {"tail", "head", "grep", "sort", "uniq", "wc", "cat", "less", "more", "cut", "tr", "tee", "jq", "column"}
_CLAUDE_EXIT = re.compile(r"\A(?:Error: )?Exit code (-?\d+)\n")
_ERROR_LINE = re.compile(
    r"error|fail|not found|no such|denied|cannot|can't|could not|unable|exception|traceback|invalid|fatal|"
    r"not recognized|timed out|refus",
    re.IGNORECASE,
)


def short(text: str | None, limit: int = MAX_TEXT) -> str | None:
    """One line, at most ``limit`` characters (redaction happens once, when a lesson is made from it)."""
    if text is None:
        return None
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def placeholders(text: str) -> str:
    """Temp names, ids, hashes and dates as placeholders: what a lesson says instead of one run's values
    (``bd show <id> --children``, not one lesson per id)."""
    text = _TMP_NAME.sub("<tmp>", text)
    text = _UUID.sub("<id>", text)
    text = _DATE.sub("<date>", text)
    return _HASH.sub("<id>", text)


def mask(text: str) -> str:
    """:func:`placeholders`, and numbers too: what groups the same mistake under different runs."""
    return _NUMBER.sub("<n>", placeholders(text))


def machine_of(cwd: str | None) -> str:
    """The machine a session ran on, named by its user's home folder (case-folded on Windows); "" if unknown."""
    m = _HOME.match(cwd or "")
    if not m:
        return ""
    home = m.group(0).replace("\\", "/")
    return home.lower() if _WINDOWS_ABS.match(home) else home


def project_key(project: str) -> str:
    """The form projects compare in: Windows paths case-folded with forward slashes (one folder, one key)."""
    return project.replace("\\", "/").lower() if _WINDOWS_ABS.match(project) else project


def project_keys(project: str) -> set[str]:
    """Every :func:`project_key` a project on this machine is known by (its folder's, its repository's)."""
    return {project_key(name) for name in identities(project)}


def relpath(path: str, project: str) -> str:
    """``path`` relative to the project when inside it; other absolute paths keep only their last two parts."""
    if _WINDOWS_ABS.match(path) or _WINDOWS_ABS.match(project or ""):
        norm = path.replace("\\", "/")
        root = (project or "").replace("\\", "/").rstrip("/")
        if root and norm.lower().startswith(root.lower() + "/"):
            return norm[len(root) + 1 :]
        if not _WINDOWS_ABS.match(path):
            return norm
        parts = [p for p in norm[3:].split("/") if p]
        return "/".join(parts[-2:])
    norm = os.path.normpath(path) if path else path
    if project and (norm == project or norm.startswith(project.rstrip("/") + "/")):
        return os.path.relpath(norm, project)
    if os.path.isabs(norm):
        parts = [p for p in norm.split("/") if p]
        return "/".join(parts[-2:]) if len(parts) > 1 else (parts[0] if parts else norm)
    return norm


def chain(command: str) -> list[list[str]]:
    """The simple commands of a command line, in order: split at ``&&``/``||``/``;``/``|``/newlines, env
    assignments and redirections dropped. A heredoc's body is data: only its first line runs (``python - <<EOF``
    runs ``python``)."""
    text = command.strip()
    text = text.split("\n", 1)[0] if _HEREDOC.search(text) else text.replace("\n", " ; ")
    text = _HEREDOC.sub(" ", text)
    text = _REDIRECT.sub(" ", " " + text)
    try:
        lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError:
        words = text.split()
    parts: list[list[str]] = [[]]
    for word in words:
        if word in _CHAIN:
            parts.append([])
        elif parts[-1] or not _ENV_ASSIGN.match(word):
            parts[-1].append(word)
    return [p for p in parts if p]


def normalize_command(command: str, project: str) -> str:
    """The blamed part of a command, project paths relative, noise masked: what groups the same mistake."""
    parts = chain(command)
    words = blame(parts) if parts else []
    return mask(" ".join(relpath(w, project) if w.startswith("/") else w for w in words))[:160]


def blame(parts: list[list[str]], error: str = "") -> list[str]:
    """The part of a chain that failed: the one whose program the error names, else the last non-builtin one."""
    for part in parts:
        program = os.path.basename(part[0])
        if program not in _BUILTINS and error and re.search(rf"(?<![\w-]){re.escape(program)}(?![\w-])", error):
            return part
    real = [p for p in parts if os.path.basename(p[0]) not in _BUILTINS]
    main = [p for p in real if os.path.basename(p[0]) not in _FILTERS]
    return main[-1] if main else real[-1] if real else parts[-1]


def body(output: str | None) -> str:
    """The tool's own output: the agents' wrappers and ANSI colours removed."""
    text = _ANSI.sub("", unwrap_output(output or ""))
    m = _CLAUDE_EXIT.match(text)
    if m:
        text = text[m.end() :]
    return re.sub(r"</?tool_use_error>", "", text)


def error_line(output: str | None) -> str | None:
    """The key line of an error output: the first that reads like an error, else the first non-empty one."""
    lines = [ln.strip().removeprefix("Output: ") for ln in body(output).splitlines() if ln.strip()]
    if not lines:
        return None
    for ln in lines:
        if _ERROR_LINE.search(ln) and not set(ln) <= set("=-_ ") and "\u2713" not in ln:
            return short(ln)
    return short(lines[0])


# --- steps: the one place that reads a stored tool call ---------------------------------------------------


def steps_of(calls: Sequence[ToolCallRow], project: str) -> list[Step]:
    """The session's tool calls as :class:`Step`s, from the fields the readers decided and stored (kind, command,
    path, exit code, failed, by_user, output without the agent's wrapper): nothing is re-parsed here."""
    out: list[Step] = []
    for i, call in enumerate(calls):
        kind = call.kind or ToolKind.OTHER.value
        command = call.command if kind == ToolKind.SHELL.value else None
        out.append(
            Step(
                key=call.key,
                seq=i,
                ts=call.started_at,
                tool=base_tool(call.name or "").lower(),
                name=(call.name or "").rsplit("__", 1)[-1],
                kind=kind,
                command=command,
                path=relpath(call.path, project) if call.path else None,
                failed=bool(call.failed),
                by_user=bool(call.by_user),
                output=body(call.output),
                args=tool_args(call.input),
                exit_code=call.exit_code,
                parts=chain(command) if command else [],
            )
        )
    return out


# --- sessions ---------------------------------------------------------------------------------------------


@dataclass
class SessionView:
    """One session's facts for the detectors."""

    agent: str
    key: str
    project: str
    machine: str
    steps: list[Step]

    def later_ok(self, step: Step, window: int = RECOVERY_WINDOW) -> list[Step]:
        return [s for s in self.steps if s.seq > step.seq and not s.failed and not s.by_user][:window]

    def failure(self, step: Step | None, signature: str, **values: Any) -> Failure:
        ts = values.pop("ts", None) or (step.ts if step else None)
        if values.get("scope") == "machine" and (_WINDOWS_ABS.match(self.machine) or signature.startswith("power")):
            # On Windows each agent runs its own shell (Claude Git Bash, Codex and Gemini PowerShell) with its own
            # PATH: what one agent's shell lacks is a fact for that agent only.
            values.setdefault("agent_only", self.agent)
        return Failure(
            kind=values.pop("kind", "tool_error"),
            agent=self.agent,
            session_key=self.key,
            project=self.project,
            ts=ts,
            signature=signature,
            command=short(self.local(values.pop("command", None))),
            error=short(self.local(values.pop("error", None))),
            fix=short(self.local(values.pop("fix", None))),
            tool_call_key=step.key if step else None,
            machine=self.machine,
            **values,
        )

    def local(self, text: str | None) -> str | None:
        """Project paths made relative: lessons and evidence name no machine paths."""
        if text is None or not self.project:
            return text
        for root in {self.project, self.project.replace("\\", "/")}:
            text = text.replace(root.rstrip("/\\") + "/", "").replace(root.rstrip("/\\") + "\\", "")
        return text


def _load(db: Database, session_id: int) -> tuple[SessionRow, list[ToolCallRow], list[EventRow]] | None:
    with db.sessions() as s:
        session = s.get(SessionRow, session_id)
        if session is None:
            return None
        calls = list(
            s.execute(
                select(ToolCallRow)
                .where(ToolCallRow.session_id == session_id)
                .order_by(ToolCallRow.started_at, ToolCallRow.id)
            ).scalars()
        )
        events = list(
            s.execute(
                select(EventRow)
                .where(EventRow.session_id == session_id, EventRow.kind == "user_prompt")
                .order_by(EventRow.ts, EventRow.seq)
            ).scalars()
        )
        s.expunge_all()
    return session, calls, events


def observe_session(db: Database, session_id: int, into: Observations | None = None) -> Observations:
    """The failures of one session (in timeline order) and what worked in it."""
    # lazy: error_classes imports this module
    from headroom.learn.error_classes import classify

    seen = into if into is not None else Observations()
    loaded = _load(db, session_id)
    if loaded is None:
        return seen
    session, calls, events = loaded
    project = session.project_root or session.cwd or ""
    view = SessionView(
        session.agent, session.key, project, machine_of(session.cwd or project), steps_of(calls, project)
    )
    found: list[Failure] = []
    for step in view.steps:
        if step.by_user:
            continue
        if not step.failed:
            _record_ok(seen, view, step)
            continue
        failure = classify(view, step)
        if failure is not None:
            found.append(failure)
    for event in events:
        if event.role not in (None, "user"):
            continue
        rule = rule_text(event.text or "")
        if rule is not None:
            sig = "rule:" + " ".join(re.findall(r"\w+", rule.lower()))[:80]
            found.append(view.failure(None, sig, kind="user_rule", ts=event.ts, error=rule, explicit=True))
    found.sort(key=lambda f: (f.ts or datetime.min, f.kind, f.signature))
    if session.repository:
        found = [replace(f, repository=session.repository) for f in found]
    seen.failures.extend(found)
    return seen


def _record_ok(seen: Observations, view: SessionView, step: Step) -> None:
    if step.ts is None:
        return
    for program in step.programs:
        key = (view.machine, program)
        if key not in seen.program_ok or seen.program_ok[key] < step.ts:
            seen.program_ok[key] = step.ts
    if step.path and step.kind in (READ, EDIT, WRITE):
        pkey = (project_key(view.project), step.path)
        if pkey not in seen.path_ok or seen.path_ok[pkey] < step.ts:
            seen.path_ok[pkey] = step.ts


def session_failures(db: Database, session_id: int) -> list[Failure]:
    """Every failure of one session, in timeline order."""
    return observe_session(db, session_id).failures


def sessions_query(
    project: str | None = None, agent: str | None = None, since: datetime | None = None, *, machine: str | None = None
) -> Any:
    """The sessions a failure search covers (sub-agents included: their mistakes are the agent's too)."""
    query = select(SessionRow.id).order_by(SessionRow.started_at, SessionRow.id)
    if project is not None:
        query = query.where(
            or_(SessionRow.project_root == project, SessionRow.cwd == project, SessionRow.repository == project)
        )
    if agent is not None:
        query = query.where(SessionRow.agent == agent)
    if since is not None:
        query = query.where(or_(SessionRow.ended_at >= since, SessionRow.started_at >= since))
    return query


def observe(
    db: Database, *, project: str | None = None, agent: str | None = None, since: datetime | None = None
) -> Observations:
    """The failures of every matching session (``since``: sessions active since then, failures from then)."""
    with db.sessions() as s:
        ids = list(s.execute(sessions_query(project, agent, since)).scalars())
    seen = Observations()
    for session_id in ids:
        observe_session(db, session_id, seen)
    if since is not None:
        seen.failures = [f for f in seen.failures if f.ts is None or f.ts >= since]
    return seen


def find_failures(
    db: Database, *, project: str | None = None, agent: str | None = None, since: datetime | None = None
) -> list[Failure]:
    return observe(db, project=project, agent=agent, since=since).failures
