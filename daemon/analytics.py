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
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session

from headroom.daemon import costs
from headroom.daemon.groupings import (
    CHARS_PER_TOKEN,
    DIMENSIONS,
    GROUPINGS,
    TOKEN_FIELDS,
    PeriodRows,
    finish_row,
    totals,
)
from headroom.learn.counters import agent_failure
from headroom.learn.knowledge import last_command_words
from headroom.learn.model import REASONING_OUTSIDE_OUTPUT
from headroom.learn.projects import REPO_PREFIX, display_names, repository_name
from headroom.memory.models import EventRow, SessionRow, ToolCallRow, UsageRow

# The groupings and the footer sums need no SQLAlchemy: they live apart, for the CLI's fast path.
# (PeriodRows too: the CLI's SQLite fast path, daemon/stats_fast.py, fills the same rows)

__all__ = ["CHARS_PER_TOKEN", "DIMENSIONS", "GROUPINGS", "TOKEN_FIELDS", "totals"]


@dataclass(frozen=True)
class Filters:
    """What to count. Days are in ``tz`` (default UTC: the stored day); ``model`` matches part of a model name."""

    agent: str | None = None
    project: str | None = None
    since: date | None = None
    until: date | None = None
    model: str | None = None
    tz: tzinfo = UTC
    user: str | None = None
    machine: str | None = None

    @property
    def local(self) -> bool:
        return not costs.is_utc(self.tz)

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """``since``/``until`` as naive UTC instants: the local midnights that open and close the range."""

        def utc(day: date) -> datetime:
            return datetime.combine(day, datetime.min.time(), self.tz).astimezone(UTC).replace(tzinfo=None)

        return (
            utc(self.since) if self.since else None,
            utc(self.until + timedelta(days=1)) if self.until else None,
        )

    @property
    def on_sessions(self) -> bool:
        """Whether a filter needs the sessions table (a query on usage or tool calls joins it then)."""
        return bool(self.project or self.user or self.machine)


def usage_where(filters: Filters) -> list[Any]:
    """The clauses that select the usage rows ``filters`` asks for (the project needs sessions joined)."""
    u = UsageRow
    out: list[Any] = []
    if filters.agent:
        out.append(u.agent == filters.agent)
    if filters.project:
        out.append(
            SessionRow.project_root.contains(filters.project, autoescape=True)
            | SessionRow.repository.contains(filters.project, autoescape=True)
        )
    if filters.user:
        out.append(SessionRow.user_id == filters.user)
    if filters.machine:
        out.append(SessionRow.machine_id == filters.machine)
    if filters.model:
        out.append(u.model.contains(filters.model, autoescape=True))
    if filters.local:
        start, end = filters.bounds()
        if start:
            out.append(u.ts >= start)
        if end:
            out.append(u.ts < end)
    else:
        if filters.since:
            out.append(u.day >= filters.since)
        if filters.until:
            out.append(u.day <= filters.until)
    return out


def project_column() -> Any:
    """A session's project: its repository when known (one project across machines and paths, issue 17),
    else its folder."""
    return func.coalesce(SessionRow.repository, SessionRow.project_root)


def _session_filter(query: Any, filters: Filters, *, agent_column: Any = None) -> Any:
    """Apply the agent, project, user and machine filters (they live on sessions: join them before)."""
    if filters.agent:
        query = query.where((SessionRow.agent if agent_column is None else agent_column) == filters.agent)
    if filters.project:
        query = query.where(
            SessionRow.project_root.contains(filters.project, autoescape=True)
            | SessionRow.repository.contains(filters.project, autoescape=True)
        )
    if filters.user:
        query = query.where(SessionRow.user_id == filters.user)
    if filters.machine:
        query = query.where(SessionRow.machine_id == filters.machine)
    return query


def token_rows(dbs: Session, by: str, filters: Filters) -> list[dict[str, Any]]:
    """Token and failure totals grouped ``by`` one of :data:`GROUPINGS`."""
    if by in ("day", "week", "month"):
        return _period_rows(dbs, by, filters)
    if by == "session":
        return session_rows(dbs, filters, failed=False, limit=None)
    if by == "model":
        return _model_rows(dbs, filters)
    if by == "block":
        # lazy: blocks imports this module
        from headroom.daemon.blocks import block_rows

        return block_rows(dbs, filters)
    return _dimension_rows(dbs, by, filters)


def _period_rows(dbs: Session, by: str, filters: Filters) -> list[dict[str, Any]]:
    rows = PeriodRows(by)
    for _, day, _utc, agent, spend, tokens, calls in costs.grouped(
        dbs, [], where=usage_where(filters), join_sessions=filters.on_sessions, tz=filters.tz
    ):
        if day is None:
            continue
        rows.add_usage(day, agent, spend, tokens, calls)
    t = ToolCallRow
    failed = agent_failure(t)
    day_col = costs.hour_expr(dbs, t.started_at) if filters.local else t.day  # local days fold from hours
    calls_query: Any = (
        select(
            day_col,
            SessionRow.agent,
            func.sum(case((t.by_user.is_(False), 1), else_=0)),
            func.sum(case((failed, 1), else_=0)),
            func.sum(
                case(
                    (failed, func.coalesce(t.output_size, 0) + func.coalesce(func.length(t.input), 0)),
                    else_=0,
                )
            ),
        )
        .join(SessionRow, SessionRow.id == t.session_id)
        .where((t.started_at if filters.local else t.day).is_not(None))
        .group_by(day_col, SessionRow.agent)
    )
    calls_query = _session_filter(calls_query, filters)
    if filters.local:
        start, end = filters.bounds()
        calls_query = calls_query.where(t.started_at >= start) if start else calls_query
        calls_query = calls_query.where(t.started_at < end) if end else calls_query
    else:
        calls_query = _day_filter(calls_query, t.day, filters)
    if filters.model:  # tool calls belong to no model: only the usage rows answer a --model question
        calls_query = calls_query.where(literal(False))
    for stored, agent, count, failures, failed_chars in dbs.execute(calls_query):
        day = costs.local_day(str(stored), filters.tz)[0] if filters.local else stored
        rows.add_calls(day, agent, count, failures, failed_chars)
    return rows.finished()


def _model_rows(dbs: Session, filters: Filters) -> list[dict[str, Any]]:
    """One row per (model, agent): calls, tokens and cost; the model's name as logged."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    spends: dict[tuple[str, str], costs.Spend] = defaultdict(costs.Spend)
    for (model,), _day, _utc, agent, spend, tokens, calls in costs.grouped(
        dbs, [UsageRow.model], where=usage_where(filters), join_sessions=filters.on_sessions, tz=filters.tz
    ):
        key = (model or "(unknown)", agent)
        row = rows.setdefault(
            key, {"model": key[0], "agent": agent, "model_calls": 0, **dict.fromkeys(TOKEN_FIELDS, 0)}
        )
        row["model_calls"] += calls
        for name, amount in tokens.items():
            row[name] = row.get(name, 0) + amount
        spends[key].add(spend)
    for key, row in rows.items():
        row.update(spends[key].fields())
        finish_row(row)
    return sorted(rows.values(), key=lambda r: (-(r["cost_usd"] or 0), -r["total_tokens"], r["model"]))


def spend_by(dbs: Session, column: Any, filters: Filters) -> tuple[dict[Any, costs.Spend], dict[Any, dict[str, int]]]:
    """Cost and usage-derived token sums per value of a sessions ``column`` (agent, project root, id)."""
    spends: dict[Any, costs.Spend] = defaultdict(costs.Spend)
    sums: dict[Any, dict[str, int]] = defaultdict(lambda: dict.fromkeys(TOKEN_FIELDS, 0))
    for (key,), _day, _utc, _agent, spend, tokens, _calls in costs.grouped(
        dbs, [column], where=usage_where(filters), join_sessions=True, tz=filters.tz
    ):
        spends[key].add(spend)
        for name, amount in tokens.items():
            sums[key][name] = sums[key].get(name, 0) + amount
    return spends, sums


def _dimension_rows(dbs: Session, by: str, filters: Filters) -> list[dict[str, Any]]:
    column = {
        "agent": SessionRow.agent,
        "user": SessionRow.user_id,
        "machine": SessionRow.machine_id,
    }.get(by, project_column())
    s = SessionRow
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
    spends, sums = spend_by(dbs, column, filters)
    for key, sessions, turns, calls, failures, logged_apart, *tokens in dbs.execute(query):
        separate = int(logged_apart or 0)
        if filters.model and key not in sums:
            continue
        row: dict[str, Any] = {by: key, "sessions": sessions, "turns": int(turns or 0)}
        row.update({name: int(amount or 0) for name, amount in zip(TOKEN_FIELDS, tokens)})
        if filters.model:  # the session counters cover every model: the usage rows of this one instead
            row.update(sums[key])
            separate = sums[key]["reasoning_tokens"] if by == "agent" and key in REASONING_OUTSIDE_OUTPUT else 0
        row["tool_calls"] = int(calls or 0)
        row["failed_tool_calls"] = int(failures or 0)
        row.update(spends[key].fields())
        finish_row(row, separate)
        result.append(row)
    if by == "project":  # six projects named `calc` must read apart: the shortest path suffix that does
        names = display_names(row["project"] for row in result if not _is_repository(row["project"]))
        for row in result:
            key = row["project"]
            row["name"] = repository_name(key) if _is_repository(key) else names.get(key, "(no project)")
    return sorted(result, key=lambda r: -r["total_tokens"])


def _is_repository(key: str | None) -> bool:
    return bool(key) and str(key).startswith(REPO_PREFIX)


def session_rows(dbs: Session, filters: Filters, *, failed: bool, limit: int | None) -> list[dict[str, Any]]:
    """One row per session, newest first."""
    query: Any = _started_filter(_session_filter(select(SessionRow), filters), filters)
    if failed:
        query = query.where((SessionRow.failed_tool_calls > 0) | (SessionRow.api_errors > 0))
    if filters.model:
        used = select(UsageRow.session_id).where(UsageRow.model.contains(filters.model, autoescape=True))
        query = query.where(SessionRow.id.in_(used))
    query = query.order_by(SessionRow.started_at.desc().nulls_last(), SessionRow.id.desc())
    if limit is not None:
        query = query.limit(limit)
    sessions = [s for (s,) in dbs.execute(query)]
    return with_costs(dbs, sessions, Filters(model=filters.model))


def with_costs(dbs: Session, sessions: list[SessionRow], filters: Filters | None = None) -> list[dict[str, Any]]:
    """:func:`session_dict` of each session with its cost and, where it has no title, its first prompt."""
    wanted = filters or Filters()
    rows = []
    for start in range(0, len(sessions), 500):  # SQLite's bound-parameter limit
        chunk = sessions[start : start + 500]
        ids = [s.id for s in chunk]
        spends: dict[int, costs.Spend] = defaultdict(costs.Spend)
        sums: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(TOKEN_FIELDS, 0))
        where = [UsageRow.session_id.in_(ids), *usage_where(Filters(model=wanted.model))]
        for (sid,), _day, _utc, _agent, spend, tokens, _calls in costs.grouped(dbs, [UsageRow.session_id], where=where):
            spends[sid].add(spend)
            for name, amount in tokens.items():
                sums[sid][name] = sums[sid].get(name, 0) + amount
        prompts = first_prompts(dbs, [s.id for s in chunk if not s.title])
        for s in chunk:
            row = session_dict(s)
            if wanted.model:
                row.update(sums[s.id])
                finish_row(row)
            row.update(spends[s.id].fields())
            row["first_prompt"] = prompts.get(s.id)
            row["title"] = s.title or prompts.get(s.id)
            rows.append(row)
    return rows


def first_prompts(dbs: Session, ids: list[int], width: int = 120) -> dict[int, str]:
    """The first user prompt of each session (one line, clipped): ccusage's session title."""
    if not ids:
        return {}
    e = EventRow
    first = (
        select(e.session_id, func.min(e.id).label("first"))
        .where(e.session_id.in_(ids), e.kind == "user_prompt", e.text.is_not(None))
        .group_by(e.session_id)
        .subquery()
    )
    out = {}
    for sid, text in dbs.execute(
        select(e.session_id, func.substr(e.text, 1, 4 * width)).join(first, e.id == first.c.first)
    ):
        line = " ".join(str(text or "").split())
        if line:
            out[int(sid)] = line if len(line) <= width else line[: width - 1] + "…"
    return out


def session_dict(s: SessionRow) -> dict[str, Any]:
    """Everything known about one session, as the CLI shows it and ``--json`` prints it."""
    duration = (s.ended_at - s.started_at).total_seconds() if s.started_at and s.ended_at else None
    row: dict[str, Any] = {
        "session": s.key,
        "agent": s.agent,
        "kind": s.kind,
        "parent": s.parent_key,
        "title": s.title,
        "project": s.project_root,
        "repository": s.repository,
        "user": s.user_id,
        "machine": s.machine_id,
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
    finish_row(row)
    return row


def failing_commands(dbs: Session, filters: Filters, limit: int = 10) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The commands (or tools) that fail most, and totals of failures and repeated failures.

    A repeated failure is a failed call whose command already failed earlier in the same session: the
    agent retried without fixing the cause, which is exactly what lessons should prevent.
    """
    t = ToolCallRow
    query: Any = (
        select(t.session_id, SessionRow.agent, t.name, func.substr(t.command, 1, 2000), t.started_at)
        .join(SessionRow, SessionRow.id == t.session_id)
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


def timeline(dbs: Session, session: SessionRow) -> list[dict[str, Any]]:
    """The session's events in order, with each tool call's name, status and exit code inline."""
    calls = {c.key: c for (c,) in dbs.execute(select(ToolCallRow).where(ToolCallRow.session_id == session.id))}
    events = dbs.execute(
        select(EventRow)
        .where(EventRow.session_id == session.id)
        .order_by(EventRow.ts.asc().nulls_first(), EventRow.seq, EventRow.id)
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


def _call_fields(call: ToolCallRow) -> dict[str, Any]:
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


def find_session(dbs: Session, ident: str) -> list[SessionRow]:
    """Sessions whose key is ``ident`` or starts with it (a prefix is enough, as with git hashes)."""
    exact = list(dbs.execute(select(SessionRow).where(SessionRow.key == ident)).scalars())
    if exact:
        return exact
    pattern = ident.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return list(dbs.execute(select(SessionRow).where(SessionRow.key.like(pattern, escape="\\")).limit(10)).scalars())


def _day_filter(query: Any, column: Any, filters: Filters) -> Any:
    if filters.since:
        query = query.where(column >= filters.since)
    if filters.until:
        query = query.where(column <= filters.until)
    return query


def _started_filter(query: Any, filters: Filters) -> Any:
    if filters.since:
        query = query.where(
            func.coalesce(SessionRow.ended_at, SessionRow.started_at)
            >= datetime.combine(filters.since, datetime.min.time())
        )
    if filters.until:
        query = query.where(
            SessionRow.started_at < datetime.combine(filters.until + timedelta(days=1), datetime.min.time())
        )
    return query


def iso(value: datetime | None) -> str | None:
    """A naive UTC datetime as ISO-8601 with a Z."""
    return value.isoformat(timespec="seconds") + "Z" if value else None
