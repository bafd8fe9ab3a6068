"""``stats --by block``: 5-hour billing blocks, by ccusage's rules, per agent.

Why per agent: a block is a provider's usage window (Claude's 5-hour limit), and each agent bills its own
provider. The rules are ccusage's (``identifySessionBlocks``): the model calls are taken in time order; a block
starts at the first call's hour, floored (in UTC, as ccusage does), and lasts 5 hours; a call later than the
block's end, or more than 5 hours after the previous call, starts a new block. A block is active while its
5 hours have not run out and its last call is less than 5 hours old.

Each call is priced on its own here (its tier from its own prompt size): blocks are few and a user looks at
the recent ones, so the per-row loop is fine.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from headroom.daemon import costs
from headroom.daemon.groupings import finish_row
from headroom.memory.models import SessionRow, UsageRow

if TYPE_CHECKING:
    from headroom.daemon.analytics import Filters

BLOCK = timedelta(hours=5)


def block_rows(dbs: Session, filters: Filters, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per (block, agent), oldest first, with tokens, cost and whether the block is still running."""
    # lazy: analytics imports this module
    from headroom.daemon.analytics import TOKEN_FIELDS, iso, usage_where

    u = UsageRow
    query: Any = (
        select(u.ts, u.agent, u.model, *(getattr(u, f) for f in costs.SUMS))
        .where(u.ts.is_not(None), *usage_where(filters))
        .order_by(u.agent, u.ts)
    )
    if filters.project:
        query = query.join(SessionRow, SessionRow.id == u.session_id)
    current = (now or datetime.now(UTC)).replace(tzinfo=None)
    rows: list[dict[str, Any]] = []
    for agent, start, calls in _blocks(dbs.execute(query)):
        last = calls[-1][0]
        spend = costs.Spend()
        row: dict[str, Any] = {
            "block": _shown(start, filters),
            "end": _shown(start + BLOCK, filters),
            "agent": agent,
            "started_at": iso(start),
            "last_call_at": iso(last),
            "active": current - last < BLOCK and current < start + BLOCK,
            "model_calls": len(calls),
            **dict.fromkeys(TOKEN_FIELDS, 0),
        }
        for ts, _agent, model, *amounts in calls:
            tokens = {name: int(value or 0) for name, value in zip(costs.SUMS, amounts)}
            for name, value in tokens.items():
                row[name] = row.get(name, 0) + value
            prompt = tokens["input_tokens"] + tokens["cache_read_tokens"] + tokens["cache_creation_tokens"]
            spend.add(_priced(model, agent, ts, prompt, tokens))
        row.update(spend.fields())
        finish_row(row)
        rows.append(row)
    return sorted(rows, key=lambda r: (r["started_at"], r["agent"]))


def _blocks(records: Any) -> Iterator[tuple[str, datetime, list[Any]]]:
    """(agent, block start, the block's calls) from calls ordered by agent, then time."""
    agent: str | None = None
    start: datetime | None = None
    calls: list[Any] = []
    for record in records:
        ts, who = record[0], record[1]
        if who != agent or start is None or ts - start > BLOCK or ts - calls[-1][0] > BLOCK:
            if calls and agent is not None and start is not None:
                yield agent, start, calls
            agent, start, calls = who, ts.replace(minute=0, second=0, microsecond=0), []
        calls.append(record)
    if calls and agent is not None and start is not None:
        yield agent, start, calls


def _priced(model: str | None, agent: str, ts: datetime, prompt: int, tokens: dict[str, int]) -> costs.Spend:
    """One call's cost, at the tier of its own prompt (``price_sum`` adds Gemini's thoughts to its output)."""
    return costs.price_sum(model, agent, ts.date(), prompt, 1, tokens)


def _shown(moment: datetime, filters: Filters) -> str:
    """A naive UTC instant in the chosen zone, to the minute."""
    return moment.replace(tzinfo=UTC).astimezone(filters.tz).strftime("%Y-%m-%d %H:%M")
