"""Queries behind ``headroom stats`` and ``headroom sessions``: token totals, failures, timelines.

Token totals come from the deduplicated ``usage`` table grouped by its stored UTC ``day``; weeks and
months are folded from days in Python (a few hundred rows at most), which keeps the SQL portable between
SQLite and PostgreSQL and fast on large mirrors. Per-day figures follow ccusage's definitions exactly:
``input_tokens`` excludes cache reads and writes, ``output_tokens`` includes reasoning.

Failure figures go beyond what ccusage reports: failed tool calls and their rate, an estimate of the
tokens that failed calls put into the context (their input and output text at ~4 characters a token, the
same rule of thumb the agents' own UIs use), repeated failures (a command that already failed earlier in
the same session failing again), and the commands that fail most.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session as DBSession

from headroom.learn.knowledge import last_command_words
from headroom.learn.mirror import agent_failure
from headroom.learn.model import REASONING_OUTSIDE_OUTPUT
from headroom.learn.projects import display_names
from headroom.memory.models import Event, Session, ToolCall, Usage

TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
)
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Filters:
    agent: str | None = None
    project: str | None = None
    since: date | None = None
    until: date | None = None


def _session_filter(query: Any, filters: Filters, *, agent_column: Any = None) -> Any:
    """Apply the agent and project filters (the project lives on sessions: join them before)."""
    if filters.agent:
        query = query.where((Session.agent if agent_column is None else agent_column) == filters.agent)
    if filters.project:
        query = query.where(Session.project_root.contains(filters.project, autoescape=True))
    return query


def token_rows(dbs: DBSession, by: str, filters: Filters) -> list[dict[str, Any]]:
    """Token and failure totals grouped ``by`` one of :data:`GROUPINGS`."""
    if by in ("day", "week", "month"):
        return _period_rows(dbs, by, filters)
    if by == "session":
        return session_rows(dbs, filters, failed=False, limit=None)
    return _dimension_rows(dbs, by, filters)


def _period_rows(dbs: DBSession, by: str, filters: Filters) -> list[dict[str, Any]]:
    u = Usage
    query: Any = select(u.day, u.agent, func.count(), *(func.sum(getattr(u, f)) for f in TOKEN_FIELDS)).group_by(
        u.day, u.agent
    )
    if filters.project:
        query = query.join(Session, Session.id == u.session_id)
    query = _day_filter(_session_filter(query, filters, agent_column=u.agent).where(u.day.is_not(None)), u.day, filters)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for day, agent, calls, *tokens in dbs.execute(query):
        row = rows.setdefault((_period(day, by), agent), _blank(by, _period(day, by), agent))
        row["model_calls"] += calls
        for name, amount in zip(TOKEN_FIELDS, tokens):
            row[name] += int(amount or 0)
    t = ToolCall
    failed = agent_failure(t)
    calls_query: Any = (
        select(
            t.day,
            Session.agent,
            func.sum(case((t.by_user.is_(False), 1), else_=0)),
            func.sum(case((failed, 1), else_=0)),
            func.sum(
                case(
                    (failed, func.coalesce(t.output_size, 0) + func.coalesce(func.length(t.input), 0)),
                    else_=0,
                )
            ),
        )
        .join(Session, Session.id == t.session_id)
        .where(t.day.is_not(None))
        .group_by(t.day, Session.agent)
    )
    calls_query = _day_filter(_session_filter(calls_query, filters), t.day, filters)
    for day, agent, count, failures, failed_chars in dbs.execute(calls_query):
        row = rows.setdefault((_period(day, by), agent), _blank(by, _period(day, by), agent))
        row["tool_calls"] += int(count or 0)
        row["failed_tool_calls"] += int(failures or 0)
        row["failed_call_tokens"] += int(failed_chars or 0) // CHARS_PER_TOKEN
    result = sorted(rows.values(), key=lambda r: (r[by], r["agent"]))
    for row in result:
        _finish(row)
    return result


def _dimension_rows(dbs: DBSession, by: str, filters: Filters) -> list[dict[str, Any]]:
    column = Session.agent if by == "agent" else Session.project_root
    s = Session
    query: Any = select(
        column,
        func.count(),
        func.sum(s.turns),
        func.sum(s.tool_calls),
        func.sum(s.failed_tool_calls),
        func.sum(case((s.agent.in_(REASONING_OUTSIDE_OUTPUT), s.reasoning_tokens), else_=0)),
        *(func.sum(getattr(s, f)) for f in TOKEN_FIELDS),
    ).group_by(column)
    query = _started_filter(_session_filter(query, filters), filters)
    result = []
    for key, sessions, turns, calls, failures, separate, *tokens in dbs.execute(query):
        row: dict[str, Any] = {by: key, "sessions": sessions, "turns": int(turns or 0)}
        row.update({name: int(amount or 0) for name, amount in zip(TOKEN_FIELDS, tokens)})
        row["tool_calls"] = int(calls or 0)
        row["failed_tool_calls"] = int(failures or 0)
        _finish(row, int(separate or 0))
        result.append(row)
    if by == "project":  # six projects named `calc` must read apart: the shortest path suffix that does
        names = display_names(row["project"] for row in result)
        for row in result:
            row["name"] = names.get(row["project"], "(no project)")
    return sorted(result, key=lambda r: -r["total_tokens"])


def session_rows(dbs: DBSession, filters: Filters, *, failed: bool, limit: int | None) -> list[dict[str, Any]]:
    """One row per session, newest first."""
    query: Any = _started_filter(_session_filter(select(Session), filters), filters)
    if failed:
        query = query.where((Session.failed_tool_calls > 0) | (Session.api_errors > 0))
    query = query.order_by(Session.started_at.desc().nulls_last(), Session.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [session_dict(s) for (s,) in dbs.execute(query)]


def session_dict(s: Session) -> dict[str, Any]:
    """Everything known about one session, as the CLI shows it and ``--json`` prints it."""
    duration = (s.ended_at - s.started_at).total_seconds() if s.started_at and s.ended_at else None
    row: dict[str, Any] = {
        "session": s.key,
        "agent": s.agent,
        "kind": s.kind,
        "parent": s.parent_key,
        "title": s.title,
        "project": s.project_root,
        "cwd": s.cwd,
        "git_branch": s.git_branch,
        "cli_version": s.cli_version,
        "models": s.models.split(",") if s.models else [],
        "started_at": iso(s.started_at),
        "ended_at": iso(s.ended_at),
        "duration_s": duration,
        "turns": s.turns,
        "tool_calls": s.tool_calls,
        "failed_tool_calls": s.failed_tool_calls,
        "api_errors": s.api_errors,
        "interruptions": s.interruptions,
        "compactions": s.compactions,
    }
    row.update({name: getattr(s, name) for name in TOKEN_FIELDS})
    _finish(row)
    return row


def failing_commands(dbs: DBSession, filters: Filters, limit: int = 10) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The commands (or tools) that fail most, and totals of failures and repeated failures.

    A repeated failure is a failed call whose command already failed earlier in the same session: the
    agent retried without fixing the cause, which is exactly what lessons should prevent.
    """
    t = ToolCall
    query: Any = (
        select(t.session_id, Session.agent, t.name, func.substr(t.command, 1, 2000), t.started_at)
        .join(Session, Session.id == t.session_id)
        .where(agent_failure(t))
        .order_by(t.session_id, t.started_at)
    )
    query = _day_filter(_session_filter(query, filters), t.day, filters)
    stats: dict[str, dict[str, Any]] = {}
    seen_in_session: set[tuple[int, str]] = set()
    repeated = total = 0
    for session_id, agent, name, command_line, started in dbs.execute(query):
        command = command_signature(name, command_line)
        total += 1
        if (session_id, command) in seen_in_session:
            repeated += 1
        seen_in_session.add((session_id, command))
        entry = stats.setdefault(
            command,
            {"command": command, "failures": 0, "sessions": set(), "agents": set(), "last_seen": None},
        )
        entry["failures"] += 1
        entry["sessions"].add(session_id)
        entry["agents"].add(agent)
        if started and (entry["last_seen"] is None or started > entry["last_seen"]):
            entry["last_seen"] = started
    top = sorted(stats.values(), key=lambda e: (-e["failures"], e["command"]))[:limit]
    rows = [
        {
            "command": e["command"],
            "failures": e["failures"],
            "sessions": len(e["sessions"]),
            "agents": sorted(e["agents"]),
            "last_seen": iso(e["last_seen"]),
        }
        for e in top
    ]
    return rows, {"failed_tool_calls": total, "repeated_failures": repeated}


def command_signature(tool: str | None, command: str | None) -> str:
    """A short name for what a tool call ran: ``npm test``, ``pytest``, or the tool's name.

    ``command`` is the stored command line (the reader already removed ``bash -lc`` and argv wrappers); the
    last command of a chain is what failed (``cd x && npm test | tail`` → ``npm test``).
    """
    name = tool or "?"
    if not command or not command.strip():
        return name
    words = last_command_words(command, pipeline_head=True)
    if not words:
        return name
    program = words[0].rsplit("/", 1)[-1]
    if len(words) > 1 and re.fullmatch(r"[a-z][a-z0-9:_-]*", words[1]):
        return f"{program} {words[1]}"
    return program


def timeline(dbs: DBSession, session: Session) -> list[dict[str, Any]]:
    """The session's events in order, with each tool call's name, status and exit code inline."""
    calls = {c.key: c for (c,) in dbs.execute(select(ToolCall).where(ToolCall.session_id == session.id))}
    events = dbs.execute(
        select(Event).where(Event.session_id == session.id).order_by(Event.ts.asc().nulls_first(), Event.seq, Event.id)
    )
    rows = []
    for (e,) in events:
        row: dict[str, Any] = {"ts": iso(e.ts), "kind": e.kind, "text": e.text, "sidechain": e.sidechain}
        if e.status_code is not None:
            row["status_code"] = e.status_code
        call = calls.pop(e.tool_call_key, None) if e.tool_call_key else None
        if call is not None:
            row.update(_call_fields(call))
        rows.append(row)
    for call in calls.values():  # calls whose timeline event the log did not carry
        rows.append(
            {
                "ts": iso(call.started_at),
                "kind": "tool_call",
                "text": None,
                "sidechain": False,
                **_call_fields(call),
            }
        )
    rows.sort(key=lambda r: r["ts"] or "")
    return rows


def _call_fields(call: ToolCall) -> dict[str, Any]:
    return {
        "tool": call.name,
        "tool_call": call.key,
        "status": call.status,
        "exit_code": call.exit_code,
        "tool_kind": call.kind,
        "command": call.command,
        "path": call.path,
        "failed": call.failed,
        "by_user": call.by_user,
        "input": call.input,
        "output_size": call.output_size,
        "output": call.output,
        "duration_ms": call.duration_ms,
    }


def find_session(dbs: DBSession, ident: str) -> list[Session]:
    """Sessions whose key is ``ident`` or starts with it (a prefix is enough, as with git hashes)."""
    exact = list(dbs.execute(select(Session).where(Session.key == ident)).scalars())
    if exact:
        return exact
    pattern = ident.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return list(dbs.execute(select(Session).where(Session.key.like(pattern, escape="\\")).limit(10)).scalars())


def _day_filter(query: Any, column: Any, filters: Filters) -> Any:
    if filters.since:
        query = query.where(column >= filters.since)
    if filters.until:
        query = query.where(column <= filters.until)
    return query


def _started_filter(query: Any, filters: Filters) -> Any:
    if filters.since:
        query = query.where(
            func.coalesce(Session.ended_at, Session.started_at) >= datetime.combine(filters.since, datetime.min.time())
        )
    if filters.until:
        query = query.where(
            Session.started_at < datetime.combine(filters.until + timedelta(days=1), datetime.min.time())
        )
    return query


def _period(day: date, by: str) -> str:
    if by == "week":  # ISO weeks start on Monday
        return (day - timedelta(days=day.weekday())).isoformat()
    if by == "month":
        return day.strftime("%Y-%m")
    return day.isoformat()


def _blank(by: str, period: str, agent: str) -> dict[str, Any]:
    row: dict[str, Any] = {by: period, "agent": agent, "model_calls": 0}
    row.update(dict.fromkeys(TOKEN_FIELDS, 0))
    row.update(tool_calls=0, failed_tool_calls=0, failed_call_tokens=0)
    return row


def _finish(row: dict[str, Any], separate_reasoning: int | None = None) -> None:
    """Add the derived columns. The total counts reasoning where the output leaves it out (ccusage's total).

    ``separate_reasoning``: those reasoning tokens, for rows that mix agents; else the row's own agent says.
    """
    if separate_reasoning is None:
        separate_reasoning = row["reasoning_tokens"] if row.get("agent") in REASONING_OUTSIDE_OUTPUT else 0
    row["total_tokens"] = sum(row[name] for name in TOKEN_FIELDS if name != "reasoning_tokens") + separate_reasoning
    calls = row.get("tool_calls", 0)
    row["failure_rate"] = round(row.get("failed_tool_calls", 0) / calls, 4) if calls else 0.0


def iso(value: datetime | None) -> str | None:
    """A naive UTC datetime as ISO-8601 with a Z."""
    return value.isoformat(timespec="seconds") + "Z" if value else None


def totals(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Column sums of numeric fields, for the table footer."""
    summed: dict[str, int] = defaultdict(int)
    for row in rows:
        for key, value in row.items():
            if isinstance(value, int) and not isinstance(value, bool):
                summed[key] += value
    return dict(summed)
