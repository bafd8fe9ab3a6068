"""What ``headroom stats --by`` groups by, apart from the queries: the CLI builds its choices from it without
importing SQLAlchemy (daemon/analytics.py re-exports it)."""

from __future__ import annotations

GROUPINGS = ("day", "week", "month", "session", "project", "agent")
