"""The ``stats_rows`` request on the daemon's local socket: ``headroom stats`` answered by the running daemon.

A CLI that runs the analytics queries itself first imports SQLAlchemy and the ORM models, most of a warm
``stats --no-refresh`` (bench/README.md, Ingest); the daemon has them imported and its DB open, and keeps the
DB current, so the CLI asks it first (daemon/local_client.py) and queries the DB itself only without a daemon.
The answer is what the CLI would compute: :func:`~headroom.daemon.analytics.token_rows` and, when asked, the
proxy's summary, as JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from headroom.daemon import analytics
from headroom.daemon.groupings import GROUPINGS
from headroom.daemon.pricing import table_version
from headroom.daemon.proxy.savings_report import savings_summary
from headroom.daemon.proxy.stats import proxy_summary
from headroom.daemon.zones import BadTimezone, zone
from headroom.memory.db import Database


def _day(request: dict[str, Any], key: str) -> date | None:
    value = request.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a date (YYYY-MM-DD) or null")
    return date.fromisoformat(value)  # ValueError: the caller answers an error


def _text(request: dict[str, Any], key: str) -> str | None:
    value = request.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} must be a string or null")
    return value


def proxy_figures(db: Database, since: date | None, agent: str | None, project: str | None) -> dict[str, Any]:
    """The proxy's request totals with, under "savings", the cost and savings figures and the holdout comparison
    (what ``stats`` prints below its table, whether the CLI or the daemon computes it)."""
    summary = proxy_summary(db, since=since, agent=agent)
    summary["savings"] = savings_summary(db, since=since, agent=agent, project=project)
    return summary


def stats_request(db: Database) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """``{"by", "agent", "project", "model", "user", "machine", "since", "until", "tz", "proxy"}`` ->
    ``{"rows": [...], "proxy": {...}, "prices": {...}}``: the days are the CLI's, in the zone it names."""

    def handle(request: dict[str, Any]) -> dict[str, Any]:
        by = request.get("by", "day")
        if by not in GROUPINGS:
            raise ValueError(f"by must be one of {', '.join(GROUPINGS)}")
        agent, since = _text(request, "agent"), _day(request, "since")
        project = _text(request, "project")
        try:
            tz = zone(_text(request, "tz") or "UTC")
        except BadTimezone as exc:
            raise ValueError(str(exc)) from None
        filters = analytics.Filters(
            agent=agent,
            project=project,
            since=since,
            until=_day(request, "until"),
            model=_text(request, "model"),
            user=_text(request, "user"),
            machine=_text(request, "machine"),
            tz=tz,
        )
        with db.sessions() as dbs:
            rows = analytics.token_rows(dbs, str(by), filters)
        out: dict[str, Any] = {"rows": rows}
        if request.get("proxy"):  # a table: the proxy's figures below it, and the prices' caption
            out["proxy"] = proxy_figures(db, since, agent, project)
            out["prices"] = table_version()
        return out

    return handle
