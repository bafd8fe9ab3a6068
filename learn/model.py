"""The normalized session model that every agent reader produces.

Claude Code, Codex CLI and Gemini CLI log the same things (prompts, tool calls, token usage, harness
errors) in three unrelated formats that change monthly. Readers translate each record into the small
vocabulary below; everything downstream (ingestion, stats, lessons, memory) sees only this model.

Every item carries a *key* that is stable across re-reads of the same log: ingestion upserts on it, so
reading a file twice, or re-reading it after a truncation or an in-place rewrite, never duplicates a row.
Items are *partial* updates: a tool call is first seen without its result and completed by a later
record, a session's bounds grow as its records arrive. ``None`` always means "this record says nothing
about it", never "clear it".
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

Agent = Literal["claude", "codex", "gemini"]
AGENTS: tuple[Agent, ...] = ("claude", "codex", "gemini")


class ToolStatus(str, enum.Enum):
    """How a tool call ended. ``pending`` until its result is seen."""

    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"
    REJECTED = "rejected"  # refused by the user or by a policy before it ran
    PENDING = "pending"


class ToolKind(str, enum.Enum):
    """What a tool call did, whatever the agent calls the tool (decided once, by the reader)."""

    SHELL = "shell"  # ran a command line
    READ = "read"  # read a file
    EDIT = "edit"  # changed part of a file (edit, patch)
    WRITE = "write"  # wrote a whole file
    SEARCH = "search"  # searched or listed files (grep, glob, ls tools)
    FETCH = "fetch"  # fetched a web page or searched the web
    TASK = "task"  # delegated to a sub-agent
    OTHER = "other"  # plans, todo lists, MCP tools, anything else


class EventKind(str, enum.Enum):
    """What one timeline entry of a session is."""

    USER_PROMPT = "user_prompt"  # a prompt the human typed (starts a turn)
    ASSISTANT_TEXT = "assistant_text"
    REASONING = "reasoning"
    TOOL_CALL = "tool_call"  # the details live in ToolCall; the event places it on the timeline
    API_ERROR = "api_error"
    INTERRUPT = "interrupt"  # the user stopped the agent
    COMPACTION = "compaction"
    CONTEXT_OVERFLOW = "context_overflow"
    META = "meta"  # injected context, titles, hook output: kept, not counted
    UNKNOWN = "unknown"  # a record type this reader does not know: kept raw


class Merge(str, enum.Enum):
    """How two usage records with the same key combine."""

    MAX = "max"  # Claude streams one line per content block; the largest copy is the final one
    LAST = "last"  # Gemini re-appends a message whenever it changes; the last copy wins


@dataclass(slots=True)
class SessionInfo:
    """What a record tells about its session. Fields left ``None`` are unknown, not empty."""

    key: str
    parent_key: str | None = None
    subagent_id: str | None = None
    kind: Literal["main", "subagent"] | None = None
    title: str | None = None
    cwd: str | None = None
    project_root: str | None = None
    git_branch: str | None = None
    cli_version: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None

    def merge(self, other: SessionInfo) -> None:
        """Fold a later record's facts into this one (first non-empty value wins, bounds widen)."""
        for name in ("parent_key", "subagent_id", "kind", "cwd", "project_root", "git_branch"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(other, name))
        # The newest title and CLI version win: both change during a session (renames, upgrades).
        if other.title is not None:
            self.title = other.title
        if other.cli_version is not None:
            self.cli_version = other.cli_version
        self.started_at = _min_ts(self.started_at, other.started_at)
        self.ended_at = _max_ts(self.ended_at, other.ended_at)


@dataclass(slots=True)
class Event:
    """One entry of a session's timeline."""

    session_key: str
    key: str
    kind: EventKind
    ts: datetime | None = None
    seq: int = 0  # position in the log (byte offset or index): orders events with equal timestamps
    role: str | None = None
    text: str | None = None
    tool_call_key: str | None = None
    status_code: int | None = None  # HTTP status of an API error
    sidechain: bool = False
    raw: str | None = None  # the record as logged, for kinds we cannot model (UNKNOWN)


@dataclass(slots=True)
class ToolCall:
    """A tool call, or the half of one that a record carries (call side or result side).

    The reader decides what the call *was* (``kind``, ``command``, ``path``) and how it *ended*
    (``status``, ``exit_code``, ``failed``, ``output`` without the agent's wrapper), once, with the helpers
    of :mod:`headroom.learn.knowledge`; nothing downstream re-parses arguments or outputs for these facts.
    """

    session_key: str
    key: str
    name: str | None = None
    input: str | None = None  # JSON text of the arguments
    started_at: datetime | None = None
    kind: ToolKind | None = None
    command: str | None = None  # SHELL: the command line the shell ran, the agent's wrapper removed
    path: str | None = None  # READ/EDIT/WRITE/SEARCH: the target path as logged
    # Result side; ``status`` is None on the call side.
    status: ToolStatus | None = None
    output: str | None = None  # the tool's output, the agent's wrapper (exit-code headers, tags) removed
    output_size: int | None = None  # characters of the full output, even when ``output`` is cut
    exit_code: int | None = None
    # THE definition of a failure (see knowledge.is_failure): an error status or a non-zero exit, except
    # "no match" answers; cancelled and rejected calls are not failures. None: not known yet.
    failed: bool | None = None
    by_user: bool = False  # a command the user ran (Codex ``!cmd``): never an agent failure
    ended_at: datetime | None = None
    duration_ms: int | None = None


@dataclass(slots=True)
class Usage:
    """Tokens billed for one model call. ``input_tokens`` excludes cache reads and writes."""

    session_key: str
    key: str  # unique per agent across all files: a resumed log that repeats a call is one call
    ts: datetime | None
    model: str | None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_1h_tokens: int = 0  # Claude: the part of cache_creation_tokens written for one hour
    merge: Merge = Merge.MAX
    sidechain: bool = False

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_creation_tokens


# Agents whose logged output count leaves the reasoning ("thoughts") tokens out, so that a total adds them
# (as ccusage's does). Codex's output tokens already include reasoning, Claude logs none apart.
REASONING_OUTSIDE_OUTPUT: frozenset[Agent] = frozenset({"gemini"})


@dataclass(slots=True)
class Batch:
    """What a reader extracted from a run of records, ready to be written in one transaction."""

    sessions: dict[str, SessionInfo] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: list[Usage] = field(default_factory=list)
    # Everything here replays records already logged in another file (Claude's compaction and side-question
    # agents copy their parent's history): ingestion adds what is new and never overwrites what is known.
    replay: bool = False

    def session(self, info: SessionInfo) -> None:
        """Record what is known about a session, merging with earlier records of this batch."""
        known = self.sessions.get(info.key)
        if known is None:
            self.sessions[info.key] = info
        else:
            known.merge(info)

    def __len__(self) -> int:
        return len(self.events) + len(self.tool_calls) + len(self.usage)


def _min_ts(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _max_ts(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


_FRACTION = re.compile(r"\.(\d+)")


def parse_ts(value: object) -> datetime | None:
    """Parse the agents' ISO-8601 timestamps (or epoch seconds/ms) into naive UTC datetimes.

    Naive UTC keeps the DB portable (SQLite has no time zones) and comparisons cheap. Python 3.10's
    ``fromisoformat`` rejects ``Z`` and fractions other than 3 or 6 digits, so both are normalised.
    Anything unparsable gives ``None``: a bad timestamp must not lose the record.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000 if value > 10**11 else value
        try:
            return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(tzinfo=None)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or len(value) < 10:
        return None
    if value[-1] == "Z" and len(value) in (20, 24, 27):  # the common shapes, already UTC: fast path
        try:
            return datetime.fromisoformat(value[:-1])
        except ValueError:
            pass
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    match = _FRACTION.search(text)
    if match and len(match.group(1)) not in (3, 6):
        digits = (match.group(1) + "000000")[:6]
        text = text[: match.start()] + "." + digits + text[match.end() :]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def as_int(value: object) -> int:
    """A token count from a log field: missing, null or malformed counts as 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return 0
