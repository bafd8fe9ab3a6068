"""What ``headroom stats --by`` groups by and the table's footer sums, apart from the queries: the CLI builds its
choices and prints a daemon's answer without importing SQLAlchemy (daemon/analytics.py re-exports them)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from headroom.daemon.spend import Spend
from headroom.learn.model import REASONING_OUTSIDE_OUTPUT

GROUPINGS = ("day", "week", "month", "session", "project", "agent", "model", "block", "user", "machine")
#: The dimensions grouped on the sessions table (the periods group on usage rows).
DIMENSIONS = ("project", "agent", "user", "machine")
TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
)
CHARS_PER_TOKEN = 4


def totals(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Column sums of numeric fields, for the table footer."""
    summed: dict[str, int] = defaultdict(int)
    for row in rows:
        for key, value in row.items():
            if isinstance(value, int) and not isinstance(value, bool):
                summed[key] += value
    return dict(summed)


def period_key(day: date, by: str) -> str:
    """The row key of a day grouped by day, ISO week (its Monday) or month."""
    if by == "week":  # ISO weeks start on Monday
        return (day - timedelta(days=day.weekday())).isoformat()
    if by == "month":
        return day.strftime("%Y-%m")
    return day.isoformat()


def blank_row(by: str, period: str, agent: str) -> dict[str, Any]:
    row: dict[str, Any] = {by: period, "agent": agent, "model_calls": 0}
    row.update(dict.fromkeys(TOKEN_FIELDS, 0))
    row.update(tool_calls=0, failed_tool_calls=0, failed_call_tokens=0)
    return row


def finish_row(row: dict[str, Any], separate_reasoning: int | None = None) -> None:
    """Add the derived columns. The total counts reasoning where the output leaves it out (ccusage's total).

    ``separate_reasoning``: those reasoning tokens, for rows that mix agents; else the row's own agent says.
    """
    if separate_reasoning is None:
        separate_reasoning = row["reasoning_tokens"] if row.get("agent") in REASONING_OUTSIDE_OUTPUT else 0
    row["total_tokens"] = sum(row[name] for name in TOKEN_FIELDS if name != "reasoning_tokens") + separate_reasoning
    calls = row.get("tool_calls", 0)
    row["failure_rate"] = round(row.get("failed_tool_calls", 0) / calls, 4) if calls else 0.0


class PeriodRows:
    """The rows of ``stats --by day|week|month`` being summed: usage per (period, agent) with its spend, then the
    tool calls. The ORM path (analytics) and the sqlite3 path (stats_fast) both fill one, so their tables stay
    the same bytes."""

    def __init__(self, by: str) -> None:
        self.by = by
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.spends: dict[tuple[str, str], Spend] = defaultdict(Spend)

    def _row(self, day: date, agent: str) -> tuple[tuple[str, str], dict[str, Any]]:
        key = (period_key(day, self.by), agent)
        return key, self.rows.setdefault(key, blank_row(self.by, key[0], agent))

    def add_usage(self, day: date, agent: str, spend: Spend, tokens: dict[str, int], calls: int) -> None:
        key, row = self._row(day, agent)
        row["model_calls"] += calls
        for name, amount in tokens.items():
            row[name] = row.get(name, 0) + amount
        self.spends[key].add(spend)

    def add_calls(self, day: date, agent: str, count: int | None, failures: int | None, chars: int | None) -> None:
        """One grouped tool-call row: calls, failed calls, characters of failed output."""
        _, row = self._row(day, agent)
        row["tool_calls"] += int(count or 0)
        row["failed_tool_calls"] += int(failures or 0)
        row["failed_call_tokens"] += int(chars or 0) // CHARS_PER_TOKEN

    def finished(self) -> list[dict[str, Any]]:
        """The rows with their cost fields, sorted by period then agent, derived columns added."""
        for key, row in self.rows.items():
            row.update(self.spends[key].fields())
        result = sorted(self.rows.values(), key=lambda r: (r[self.by], r["agent"]))
        for row in result:
            finish_row(row)
        return result
