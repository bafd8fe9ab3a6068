"""Deterministic failure detection over the session mirror: what went wrong in a session, and what fixed it.

Lessons (:mod:`headroom.learn.mining`) are only as good as the failures they are mined from, so this module
is deliberately literal: no model, only the signals the three agents actually log.

- **tool_error**: a failed tool call: the ``failed`` flag the readers stored (``knowledge.is_failure``: "no
  match" answers and the user's own ``!`` commands are not failures); kind, command and path are stored too.
- **edit_failed**: an edit that did not apply (Claude "String to replace not found" / "File has not been read
  yet", Gemini "Could not find an exact match", Codex "apply_patch verification failed").
- **test_failure**: a failing test command (pytest, unittest, npm test, …).
- **loop**: the same normalized command run ≥ 3 times in a session, at least twice failing (re-running a
  passing test suite is work, not a loop).
- **user_correction**: a prompt right after an assistant action that opens with a correction ("no,",
  "that's not what I wanted", "wrong", "don't", "instead" …). Conservative on purpose: a false correction
  becomes a lesson on its own.
- **interrupt** and **context_overflow**: the events the readers already classify.

A failure's *signature* is what groups it across sessions and what later detects its recurrence, so it is
normalized: the command is split with shlex, env assignments and a leading ``cd DIR &&`` are dropped, paths
inside the project are made relative, and numbers, hashes and temp names are masked. A failed command whose
program is missing is an *environment* signature (``not-found:python``); a missing path is ``path:DIR/FILE``
when it names a directory (a wrong location) and ``missing-file:FILE`` otherwise; anything else is
``cmd:…``. The signature never depends on whether the session recovered, so the same mistake groups across
sessions that did and did not find the fix.

The *fix* is the recovery that followed in the same session: the next successful call of the same program
(within a few calls) that differs in the failing path, one argument, or the interpreter's name.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from headroom.learn.knowledge import base_tool, tool_args, unwrap_output
from headroom.learn.model import ToolKind
from headroom.memory.db import Database
from headroom.memory.models import Event, Session, ToolCall
from headroom.memory.redact import redact_text

KINDS = ("tool_error", "loop", "user_correction", "interrupt", "test_failure", "edit_failed", "context_overflow")

LOOP_MIN_RUNS = 3
LOOP_MIN_FAILURES = 2
RECOVERY_WINDOW = 8  # how many later calls of the session may hold the working variant
MAX_TEXT = 200


@dataclass(frozen=True)
class Failure:
    """One failure in one session, normalized for grouping (see the module docstring)."""

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


_CLAUDE_EXIT = re.compile(r"\A(?:Error: )?Exit code (-?\d+)\n")
_NOT_FOUND = (
    re.compile(r"(?:^|\s)(?:[\w./-]+: )?(?:line \d+: )?([\w.+-]+): (?:command )?not found\b", re.MULTILINE),
    re.compile(r"command not found: ([\w.+-]+)"),
    re.compile(r"'([\w.+-]+)' is not recognized as an internal or external command"),
)
_NO_SUCH = re.compile(r"([^\s:'\"`]+)['\"`]?: No such file or directory")
_FILE_NOT_FOUND = re.compile(r"(?:File not found|File does not exist|ENOENT[^'\"]*)[:.]?\s*['\"]?([^\s'\"]*)")
_EDIT_NO_MATCH = re.compile(
    r"String to replace not found|File has not been read yet|Could not find an exact match|"
    r"0 occurrences found|apply_patch verification failed|Failed to find expected lines",
)
_PATCH_FILE = re.compile(r"(?:Failed to find expected lines in|\*\*\* (?:Update|Delete) File:) ([^\n:]+)")
_ERROR_LINE = re.compile(
    r"error|fail|not found|no such|denied|cannot|can't|could not|unable|exception|traceback|invalid|fatal",
    re.IGNORECASE,
)
_TEST_CMD = re.compile(
    r"\b(?:pytest|py\.test|unittest|nose2?|tox|nox|jest|vitest|mocha|rspec|phpunit|ctest)\b|"
    r"\b(?:npm|yarn|pnpm|bun|deno|go|cargo|mvn|gradle|gradlew|make|dotnet|mix|swift)\s+(?:run\s+)?test\b",
)
_ENV_ASSIGN = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*=")
_HASH = re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,}\b")
_NUMBER = re.compile(r"(?<![\w.])\d+(?![\w])")
_TMP_NAME = re.compile(r"\btmp[\w.-]*[0-9][\w.-]*|/tmp/[^\s/]+")
_CORRECTION_LEAD = re.compile(
    r"\A\s*(?:no\b[,.!:;]?|nope\b|wrong\b|that'?s wrong|that is wrong|this is wrong|don'?t\b|do not\b|stop\b|"
    r"instead\b|undo\b|revert\b|not like that\b|that'?s not (?:right|it|correct)|that is not (?:right|it|correct))",
    re.IGNORECASE,
)
_CORRECTION_ANY = re.compile(
    r"not (?:quite |exactly )?what i (?:wanted|asked|meant)|that'?s not (?:quite )?(?:right|what)|"
    r"you (?:broke|forgot|ignored|misunderstood)|i (?:said|told you)\b",
    re.IGNORECASE,
)
_CORRECTION_PREFIX = re.compile(
    r"\A\s*(?:(?:no|nope|wrong)\b[,.!:;]?\s*|that'?s not (?:quite |exactly )?what i (?:wanted|asked|meant)[.:;,!]?\s*|"
    r"that is not (?:quite |exactly )?what i (?:wanted|asked|meant)[.:;,!]?\s*)+",
    re.IGNORECASE,
)
_WINDOWS_ABS = re.compile(r"\A[A-Za-z]:[\\/]")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_REDIRECT = re.compile(r"\s\d*(?:>>?|<|&>)(?:&\d+|\s*[^\s&|;]+)")
MIN_CORRECTION_WORDS = 4
_HARNESS_PROMPT = re.compile(r"\A\s*(?:\[Request interrupted|<|Caveat:|/\w)")


def short(text: str | None, limit: int = MAX_TEXT) -> str | None:
    """Redacted, one-line-ish, at most ``limit`` characters."""
    if text is None:
        return None
    text = redact_text(text.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def relpath(path: str, project: str) -> str:
    """A path as the lesson should name it: relative to the project, never an absolute machine path.

    Windows paths (``C:\\code\\app\\x.ts``, logged by Claude on Windows) are compared case-insensitively
    and come back with forward slashes.
    """
    if _WINDOWS_ABS.match(path) or (project and _WINDOWS_ABS.match(project)):
        norm, root = path.replace("\\", "/"), project.replace("\\", "/").rstrip("/")
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


def mask(text: str) -> str:
    """Mask what differs between runs of the same mistake: temp names, hashes, numbers."""
    text = _TMP_NAME.sub("TMP", text)
    text = _HASH.sub("HASH", text)
    return _NUMBER.sub("N", text)


def split_command(command: str, project: str) -> list[str]:
    """The words of a command's first real step: env assignments and a leading ``cd DIR &&`` dropped."""
    try:
        lexer = shlex.shlex(_REDIRECT.sub(" ", " " + command).strip(), posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError:
        words = command.split()
    while words:
        while words and _ENV_ASSIGN.match(words[0]):
            words.pop(0)
        if len(words) >= 3 and words[0] == "cd" and words[2] in ("&&", ";"):
            words = words[3:]
            continue
        break
    for i, word in enumerate(words):
        if word in ("&&", "||", ";", "|"):
            words = words[:i]
            break
    return [relpath(w, project) if w.startswith("/") else w for w in words]


def normalize_command(command: str, project: str) -> str:
    return mask(redact_text(" ".join(split_command(command, project))))[:160]


def _body(output: str | None) -> str:
    text = _ANSI.sub("", unwrap_output(output or ""))
    m = _CLAUDE_EXIT.match(text)
    if m:
        text = text[m.end() :]
    return re.sub(r"</?tool_use_error>", "", text)


def error_line(output: str | None) -> str | None:
    """The key line of an error output: the first that reads like an error, else the first non-empty one."""
    lines = [ln.strip().removeprefix("Output: ") for ln in _body(output).splitlines() if ln.strip()]
    if not lines:
        return None
    for ln in lines:
        if _ERROR_LINE.search(ln) and not set(ln) <= set("=-_ ") and "\u2713" not in ln:
            return short(ln)
    return short(lines[0])


def _failed(call: ToolCall) -> bool:
    """The readers' one failure definition (stored with the call); a user's own command never counts."""
    return bool(call.failed) and not call.by_user


@dataclass
class _Call:
    """A tool call of the session in a shape the detectors can compare."""

    row: ToolCall
    base: str
    words: list[str]  # shell words (empty for non-shell calls)
    path: str | None  # the file a read/edit call names, relative to the project
    failed: bool
    seq: int


def _path_arg(args: Any, project: str) -> str | None:
    if isinstance(args, dict):
        for key in ("file_path", "absolute_path", "path", "filePath"):
            value = args.get(key)
            if isinstance(value, str) and value:
                return relpath(value, project)
    return None


def _prepare(calls: Sequence[ToolCall], project: str) -> list[_Call]:
    out: list[_Call] = []
    for i, call in enumerate(calls):
        base = base_tool(call.name or "")
        args = tool_args(call.input)
        words: list[str] = []
        if call.kind == ToolKind.SHELL.value:
            command = call.command
            if command is None:
                # Codex "code mode" wraps each real call in a JS ``exec`` script; the inner exec_command is
                # logged on its own, so only an apply_patch failure (which has no inner record) is kept.
                if base == "exec" and _EDIT_NO_MATCH.search(call.output or ""):
                    base = "apply_patch"
                else:
                    continue
            else:
                words = split_command(command, project)
                if not words:
                    continue
        path = relpath(call.path, project) if call.path else _path_arg(args, project)
        if base == "apply_patch" and path is None:
            m = _PATCH_FILE.search(call.output or "") or _PATCH_FILE.search(call.input or "")
            path = relpath(m.group(1).strip(), project) if m else None
            if path is None and isinstance(args, dict) and len(args) == 1:
                path = relpath(next(iter(args)), project)
        out.append(_Call(call, base, words, path, _failed(call), i))
    return out


def _one_word_diff(a: list[str], b: list[str]) -> int | None:
    """The index of the only differing word of two equally long commands, else None."""
    if len(a) != len(b):
        return None
    diffs = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    return diffs[0] if len(diffs) == 1 else None


def _similar(a: str, b: str) -> bool:
    """A plausible correction of one word: another flag, or a close spelling (not some other file)."""
    return (a.startswith("-") and b.startswith("-")) or difflib.SequenceMatcher(None, a, b).ratio() >= 0.75


def _program_variant(failed: str, other: str) -> bool:
    """``python`` → ``python3``, ``pip`` → ``pip3``, ``node`` → ``nodejs``: another name of the same program."""
    return failed != other and (other.startswith(failed) or failed.startswith(other))


class _Detector:
    def __init__(self, session: Session, calls: list[_Call]) -> None:
        self.session = session
        self.project = session.project_root or session.cwd or ""
        self.calls = calls

    def failure(self, kind: str, call: _Call | None, signature: str, **extra: Any) -> Failure:
        row = call.row if call else None
        command = extra.pop("command", None)
        if command is None and call is not None:
            command = shlex.join(call.words) if call.words else call.path
        return Failure(
            kind=kind,
            agent=self.session.agent,
            session_key=self.session.key,
            project=self.project,
            ts=extra.pop("ts", None) or (row.started_at if row else None),
            signature=signature,
            command=short(command),
            error=self.local(extra.pop("error", None)),
            fix=short(extra.pop("fix", None)),
            tool_call_key=row.key if row else None,
        )

    def local(self, text: str | None) -> str | None:
        """Project paths in an error line made relative: lessons and evidence name no machine paths."""
        if text is None or not self.project:
            return text
        return text.replace(self.project.rstrip("/") + "/", "").replace(self.project, ".")

    def later_ok(self, call: _Call) -> list[_Call]:
        later = [c for c in self.calls if c.seq > call.seq and not c.failed]
        return later[:RECOVERY_WINDOW]

    def shell(self, call: _Call) -> Failure:
        words, out = call.words, call.row.output
        body = _body(out)
        program = words[0]
        err = error_line(out)
        for pattern in _NOT_FOUND:
            m = pattern.search(body)
            if m and m.group(1) in (program, os.path.basename(program)):
                fix = None
                for c in self.later_ok(call):
                    if c.words and c.words[1:] == words[1:] and _program_variant(program, c.words[0]):
                        fix = c.words[0]
                        break
                name = os.path.basename(program)
                return self.failure("tool_error", call, f"not-found:{name}", error=err, fix=fix)
        missing = None
        for m in _NO_SUCH.finditer(body):
            candidate = relpath(m.group(1), self.project)
            if not re.search(r"[./]", candidate.strip("./")):
                continue  # "3: No such file" from a tool that took an option's value for a path
            if candidate in words or any(w.endswith(candidate) for w in words[1:]):
                missing = candidate
                break
        if missing is not None:
            fix = None
            idx = next((i for i, w in enumerate(words) if w == missing or w.endswith(missing)), None)
            for c in self.later_ok(call):
                if c.words and c.words[0] == program and idx is not None and _one_word_diff(words, c.words) == idx:
                    fix = c.words[idx]
                    break
            prefix = "path" if "/" in missing.strip("/") else "missing-file"
            return self.failure("tool_error", call, f"{prefix}:{mask(missing)}", error=err, fix=fix)
        normalized = normalize_command(" ".join(words), self.project)
        if _TEST_CMD.search(" ".join(words)):
            fix = None
            for c in self.calls:
                if c.seq > call.seq and not c.failed and c.words == words:
                    fix = " ".join(c.words)
                    break
            return self.failure("test_failure", call, f"test:{normalized}", error=err, fix=fix)
        fix = None
        for c in self.later_ok(call):
            idx = _one_word_diff(words, c.words) if c.words and c.words[0] == program else None
            if idx is not None and _similar(words[idx], c.words[idx]):
                fix = shlex.join(c.words)
                break
        return self.failure("tool_error", call, f"cmd:{normalized}", error=err, fix=fix)

    def other(self, call: _Call) -> Failure | None:
        out = call.row.output or ""
        err = error_line(out)
        edit = call.row.kind == ToolKind.EDIT.value or call.base == "apply_patch"  # also a patch in code mode
        if edit and (_EDIT_NO_MATCH.search(out) or call.base == "apply_patch"):
            m = re.search(r"[^\n]*(?:" + _EDIT_NO_MATCH.pattern + r")[^\n]*", out)
            err = short(re.sub(r"</?tool_use_error>", "", m.group(0)).strip()) if m else err
            target = mask(call.path) if call.path else "?"
            return self.failure("edit_failed", call, f"edit-no-match:{target}", error=err, command=call.path)
        if call.row.kind == ToolKind.READ.value and call.path and _FILE_NOT_FOUND.search(_body(out)):
            fix = None
            for c in self.later_ok(call)[:3]:
                same_name = c.path and os.path.basename(c.path) == os.path.basename(call.path)
                if c.base == call.base and same_name and c.path != call.path:
                    fix = c.path
                    break
            prefix = "path" if "/" in call.path.strip("/") else "missing-file"
            return self.failure("tool_error", call, f"{prefix}:{mask(call.path)}", error=err, fix=fix)
        if call.row.status != "error":
            return None
        first = mask((err or "").lower())[:60]
        return self.failure("tool_error", call, f"tool:{call.base}:{first}", error=err)

    def tool_failures(self) -> list[Failure]:
        found: list[Failure] = []
        for call in self.calls:
            if not call.failed:
                continue
            failure = self.shell(call) if call.words else self.other(call)
            if failure is not None:
                found.append(failure)
        return found

    def loops(self) -> list[Failure]:
        runs: dict[str, list[_Call]] = {}
        for call in self.calls:
            if call.words:
                runs.setdefault(normalize_command(" ".join(call.words), self.project), []).append(call)
        found = []
        for normalized, calls in runs.items():
            failures = [c for c in calls if c.failed]
            if len(calls) >= LOOP_MIN_RUNS and len(failures) >= LOOP_MIN_FAILURES:
                last = failures[-1]
                found.append(
                    self.failure(
                        "loop",
                        last,
                        f"loop:{normalized}",
                        error=short(f"ran {len(calls)} times, {len(failures)} failed: {error_line(last.row.output)}"),
                    )
                )
        return found


def correction_text(prompt: str) -> str | None:
    """The requirement a correcting prompt states, without its "that's not what I wanted" lead-in."""
    text = prompt.strip()
    if _HARNESS_PROMPT.match(text):
        return None
    head = text[:160]
    if not (_CORRECTION_LEAD.match(head) or _CORRECTION_ANY.search(head)):
        return None
    rest = _CORRECTION_PREFIX.sub("", text).strip() or text
    return rest


def _events(db: Database, session_id: int) -> list[Event]:
    with db.sessions() as s:
        rows = s.execute(
            select(Event)
            .where(
                Event.session_id == session_id,
                Event.kind.in_(("user_prompt", "tool_call", "assistant_text", "interrupt", "context_overflow")),
            )
            .order_by(Event.ts, Event.seq)
        ).scalars()
        return list(rows)


def session_failures(db: Database, session_id: int) -> list[Failure]:
    """Every failure of one session, in timeline order."""
    with db.sessions() as s:
        session = s.get(Session, session_id)
        if session is None:
            return []
        calls = list(
            s.execute(
                select(ToolCall).where(ToolCall.session_id == session_id).order_by(ToolCall.started_at, ToolCall.id)
            ).scalars()
        )
        s.expunge_all()
    detector = _Detector(session, _prepare(calls, session.project_root or session.cwd or ""))
    found = detector.tool_failures() + detector.loops()
    last_action: Event | None = None
    for event in _events(db, session_id):
        if event.kind in ("tool_call", "assistant_text"):
            last_action = event
        elif event.kind == "user_prompt" and event.role in (None, "user"):
            text = correction_text(event.text or "") if last_action is not None else None
            if text is not None and len(text.split()) >= MIN_CORRECTION_WORDS:
                sig = "correction:" + " ".join(re.findall(r"\w+", mask(text.lower())))[:80]
                found.append(
                    detector.failure(
                        "user_correction",
                        None,
                        sig,
                        ts=event.ts,
                        error=short(text),
                        command=short(last_action.text if last_action else None),
                    )
                )
            last_action = None
        elif event.kind == "interrupt":
            last_tool = last_action.text if last_action is not None and last_action.kind == "tool_call" else None
            what = (last_tool or "turn").lower()
            found.append(
                detector.failure(
                    "interrupt",
                    None,
                    f"interrupt:{mask(what.lower())[:60]}",
                    ts=event.ts,
                    error=short(event.text),
                    command=short(what),
                )
            )
        elif event.kind == "context_overflow":
            found.append(
                detector.failure("context_overflow", None, "context-overflow", ts=event.ts, error=short(event.text))
            )
    found.sort(key=lambda f: (f.ts or datetime.min, f.kind, f.signature))
    return found


def sessions_query(project: str | None = None, agent: str | None = None, since: datetime | None = None) -> Any:
    """The sessions a failure search covers (sub-agents included: their mistakes are the agent's too)."""
    query = select(Session.id).order_by(Session.started_at, Session.id)
    if project is not None:
        query = query.where(or_(Session.project_root == project, Session.cwd == project))
    if agent is not None:
        query = query.where(Session.agent == agent)
    if since is not None:
        query = query.where(or_(Session.ended_at >= since, Session.started_at >= since))
    return query


def find_failures(
    db: Database, *, project: str | None = None, agent: str | None = None, since: datetime | None = None
) -> list[Failure]:
    """The failures of every matching session (``since``: sessions active since then, failures from then)."""
    with db.sessions() as s:
        ids = list(s.execute(sessions_query(project, agent, since)).scalars())
    found: list[Failure] = []
    for session_id in ids:
        found.extend(f for f in session_failures(db, session_id) if since is None or f.ts is None or f.ts >= since)
    return found
