"""What ``headroom stats --by`` groups by and the table's footer sums, apart from the queries: the CLI builds its
choices and prints a daemon's answer without importing SQLAlchemy (daemon/analytics.py re-exports them)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

GROUPINGS = ("day", "week", "month", "session", "project", "agent", "model", "block", "user", "machine")
#: The dimensions grouped on the sessions table (the periods group on usage rows).
DIMENSIONS = ("project", "agent", "user", "machine")


def totals(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Column sums of numeric fields, for the table footer."""
    summed: dict[str, int] = defaultdict(int)
    for row in rows:
        for key, value in row.items():
            if isinstance(value, int) and not isinstance(value, bool):
                summed[key] += value
    return dict(summed)
