"""A session's counters and bounds, derived from its rows: what ``sessions`` and ``stats`` read without a join.

The mirror's writers (:mod:`headroom.learn.mirror`) only mark a session ``stale``; :func:`refresh_sessions`
recomputes the stale ones from their events, tool calls and usage in a few grouped queries, so a file read in
many chunks costs one recount, not one per chunk. :func:`agent_failure` is the one definition of a failed
tool call of the agent that every count uses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, bindparam, case, func, select, update
from sqlalchemy.orm import Session

from headroom.learn import model as m
from headroom.memory import models as orm

_SESSIONS: Table = orm.SessionRow.__table__  # type: ignore[assignment]
_EVENTS: Table = orm.EventRow.__table__  # type: ignore[assignment]
_TOOLS: Table = orm.ToolCallRow.__table__  # type: ignore[assignment]
_USAGE: Table = orm.UsageRow.__table__  # type: ignore[assignment]
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")


def refresh_sessions(dbs: Session, limit: int = 500) -> int:
    """Recompute the counters and bounds of up to ``limit`` stale sessions. Returns how many."""
    stale = [r for (r,) in dbs.execute(select(_SESSIONS.c.id).where(_SESSIONS.c.stale).limit(limit))]
    if not stale:
        return 0
    values: dict[int, dict[str, Any]] = {sid: _empty_counters() for sid in stale}
    ev = _EVENTS.c
    kinds = dbs.execute(
        select(ev.session_id, ev.kind, func.count(), func.min(ev.ts), func.max(ev.ts))
        .where(ev.session_id.in_(stale))
        .group_by(ev.session_id, ev.kind)
    )
    counted = {
        m.EventKind.USER_PROMPT.value: "turns",
        m.EventKind.API_ERROR.value: "api_errors",
        m.EventKind.INTERRUPT.value: "interruptions",
        m.EventKind.COMPACTION.value: "compactions",
    }
    for sid, kind, count, first, last in kinds:
        row = values[sid]
        row["events"] += count
        if kind in counted:
            row[counted[kind]] += count
        _widen(row, first, last)
    tc = _TOOLS.c
    calls = dbs.execute(
        select(
            tc.session_id,
            func.sum(case((tc.by_user.is_(False), 1), else_=0)),  # the user's own commands are not the agent's
            func.sum(case((agent_failure(tc), 1), else_=0)),
            func.min(tc.started_at),
            func.max(func.coalesce(tc.ended_at, tc.started_at)),
        )
        .where(tc.session_id.in_(stale))
        .group_by(tc.session_id)
    )
    for sid, count, failed, first, last in calls:
        values[sid]["tool_calls"] = int(count or 0)
        values[sid]["failed_tool_calls"] = int(failed or 0)
        _widen(values[sid], first, last)
    us = _USAGE.c
    sums = dbs.execute(
        select(
            us.session_id,
            us.model,
            func.min(us.ts),
            func.max(us.ts),
            *(func.sum(us[name]) for name in (*TOKEN_COLUMNS, "reasoning_tokens")),
        )
        .where(us.session_id.in_(stale))
        .group_by(us.session_id, us.model)
        .order_by(us.session_id, func.min(us.ts))
    )
    for sid, model, first, last, *tokens in sums:
        row = values[sid]
        for name, amount in zip((*TOKEN_COLUMNS, "reasoning_tokens"), tokens):
            row[name] += int(amount or 0)
        if model and model not in row["models"]:
            row["models"].append(model)
        _widen(row, first, last)
    bounds = dbs.execute(
        select(_SESSIONS.c.id, _SESSIONS.c.started_at, _SESSIONS.c.ended_at).where(_SESSIONS.c.id.in_(stale))
    )
    for sid, started, ended in bounds:
        _widen(values[sid], started, ended)
    rows = [
        {**row, "models": ",".join(row["models"]) or None, "stale": False, "sid": sid} for sid, row in values.items()
    ]
    dbs.connection().execute(_REFRESHED, rows)  # one executemany: every row has the same columns
    return len(stale)


_REFRESHED = update(_SESSIONS).where(_SESSIONS.c.id == bindparam("sid"))


def _empty_counters() -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(
        (
            "turns",
            "events",
            "tool_calls",
            "failed_tool_calls",
            "api_errors",
            "interruptions",
            "compactions",
            *TOKEN_COLUMNS,
            "reasoning_tokens",
        ),
        0,
    )
    row["models"] = []
    row["started_at"] = None
    row["ended_at"] = None
    return row


def _widen(row: dict[str, Any], first: datetime | None, last: datetime | None) -> None:
    if first is not None and (row["started_at"] is None or first < row["started_at"]):
        row["started_at"] = first
    if last is not None and (row["ended_at"] is None or last > row["ended_at"]):
        row["ended_at"] = last


def agent_failure(columns: Any) -> Any:
    """The SQL condition for a failed tool call of the agent: the stored ``failed`` flag, never a user's command.

    ``columns`` is ``ToolCall.__table__.c`` or the ``ToolCall`` model; every failure count uses this.
    """
    return and_(columns.failed.is_(True), columns.by_user.is_(False))
