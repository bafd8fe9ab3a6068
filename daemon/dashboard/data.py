"""What ``GET /dashboard/data.json`` returns: one JSON document with every figure the dashboard page draws.

One function, :func:`dashboard_data`, reads the same tables as ``headroom stats``, ``headroom lessons`` and
``headroom memory stats`` and shapes them for charts: every day of the window is present (a day without
requests is a zero bar, not a gap), agents are listed once so the page can give each a stable colour, and
numbers are plain ints and floats. It never reads tool outputs, events or memory contents: the page is
served without a token, so nothing beyond aggregates, project paths and the (already redacted) lesson
texts may appear here.

The dollar figures are an *estimate*: saved tokens times a list price of uncached input tokens for the
model's family (:data:`PRICES`). Saved tokens that would have been cache reads cost far less, so the real
saving is usually lower; the page says so next to every dollar amount.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any, TypedDict

from sqlalchemy import case, func, select

from headroom.daemon.analytics import Filters, iso, project_column, token_rows
from headroom.daemon.pricing import table_version
from headroom.daemon.providers import PROVIDERS
from headroom.daemon.proxy.savings_report import savings_summary
from headroom.learn.lessons import report
from headroom.memory.db import Database
from headroom.memory.models import ProxyRequestRow, SessionRow
from headroom.memory.store import MemoryStore

DEFAULT_DAYS = 30
MAX_DAYS = 366
MAX_LESSONS = 200

#: Estimate only: list price in USD per million *uncached input* tokens, by model family. The first family
#: whose name occurs in the request's model id wins, so the more specific names come first.
PRICES: tuple[tuple[str, float], ...] = (
    ("opus", 15.0),
    ("sonnet", 3.0),
    ("haiku", 1.0),
    ("gpt-5-mini", 0.25),
    ("gpt-5-nano", 0.05),
    ("gpt-5", 1.25),
    ("codex-mini", 1.5),
    ("gpt-4.1-mini", 0.4),
    ("gpt-4.1", 2.0),
    ("gpt-4o-mini", 0.15),
    ("gpt-4o", 2.5),
    ("o4-mini", 1.1),
    ("o3", 2.0),
    ("gemini-2.5-pro", 1.25),
    ("gemini-2.5-flash-lite", 0.1),
    ("gemini-2.5-flash", 0.3),
    ("gemini", 0.3),
)
#: Estimate only: the price used when the model is unknown or in no family above, by provider (each provider's
#: ``list_input_price``).
PROVIDER_PRICES: dict[str, float] = {name: spec.list_input_price for name, spec in PROVIDERS.items()}
FALLBACK_PRICE = 3.0
PRICE_NOTE = (
    "estimate: saved tokens × list price of uncached input tokens (USD per million) for the model family; "
    "tokens that would have been cache reads cost less, so the real saving is usually lower"
)


class Figures(TypedDict):
    """The proxy's savings of one agent (on one day, or in all): requests, tokens before and after, $ estimate."""

    requests: int
    tokens_before: int
    tokens_after: int
    tokens_saved: int
    saved_ratio: float
    usd_estimate: float


class SavingsDay(TypedDict):
    day: str
    agents: dict[str, Figures]


class Savings(TypedDict):
    agents: list[str]
    days: list[SavingsDay]
    by_agent: dict[str, Figures]
    total: Figures


class SpendDay(TypedDict):
    day: str
    agents: dict[str, float | None]


class Spend(TypedDict):
    total_usd: float
    unpriced_calls: int
    by_agent: dict[str, float]
    days: list[SpendDay]
    table: dict[str, str]


class ProjectFigures(TypedDict):
    project: str
    name: str
    sessions: int
    failed_sessions: int
    session_failure_rate: float
    tool_calls: int
    failed_tool_calls: int
    failure_rate: float
    api_errors: int
    total_tokens: int
    cost_usd: float | None
    unpriced_calls: int


class TeamFigures(TypedDict):
    users: list[dict[str, Any]]
    machines: list[dict[str, Any]]


class LessonItem(TypedDict):
    project: str
    kind: str
    status: str
    retired_reason: str | None
    text: str
    sessions: int | None
    count: int
    corrected_by_user: bool
    last_seen: str | None
    activated_at: str | None
    before: Any
    after: Any


class Lessons(TypedDict):
    total: int
    by_status: dict[str, int]
    items: list[LessonItem]


class MemoryFigures(TypedDict):
    items: int
    chars: int
    by_kind: dict[str, int]
    sightings_by_agent: dict[str, int]
    projects: int
    redactions: int
    db_bytes: int


class Prices(TypedDict):
    note: str
    usd_per_million_input: dict[str, float]
    by_provider: dict[str, float]


class Dashboard(TypedDict):
    """The whole of ``/dashboard/data.json``."""

    generated_at: str | None
    days: int
    since: str
    until: str
    prices: Prices
    savings: Savings
    spend: Spend
    proxy_savings: dict[str, Any]
    projects: list[ProjectFigures]
    team: TeamFigures | None
    lessons: Lessons
    memory: MemoryFigures


class _Sums:
    """Running sums of one savings bucket (what :class:`Figures` is made from)."""

    __slots__ = ("requests", "tokens_after", "tokens_before", "usd_estimate")

    def __init__(self) -> None:
        self.requests = self.tokens_before = self.tokens_after = 0
        self.usd_estimate = 0.0

    def add(self, requests: int, before: int, after: int, usd: float) -> None:
        self.requests += requests
        self.tokens_before += before
        self.tokens_after += after
        self.usd_estimate += usd

    def figures(self) -> Figures:
        before, after = self.tokens_before, self.tokens_after
        return {
            "requests": self.requests,
            "tokens_before": before,
            "tokens_after": after,
            "tokens_saved": before - after,
            "saved_ratio": round((before - after) / before, 4) if before else 0.0,
            "usd_estimate": round(self.usd_estimate, 4),
        }


def price_per_million(model: str | None, provider: str | None = None) -> float:
    """The estimated USD price of a million input tokens of ``model`` (see :data:`PRICES`)."""
    name = (model or "").lower()
    for family, price in PRICES:
        if family in name:
            return price
    return PROVIDER_PRICES.get(provider or "", FALLBACK_PRICE)


def dashboard_data(db: Database, days: int = DEFAULT_DAYS, *, today: date | None = None) -> Dashboard:
    """Every figure of the dashboard for the last ``days`` UTC days (today included)."""
    days = max(1, min(int(days), MAX_DAYS))
    until = today or datetime.now(timezone.utc).date()
    since = until - timedelta(days=days - 1)
    return {
        "generated_at": iso(datetime.now(timezone.utc).replace(tzinfo=None)),
        "days": days,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "prices": {
            "note": PRICE_NOTE,
            "usd_per_million_input": dict(PRICES),
            "by_provider": dict(PROVIDER_PRICES),
        },
        "savings": savings(db, since, until),
        "spend": spend(db, since, until),
        # Cost, the estimated saving priced per request, the measured holdout comparison, watchdog fallbacks.
        "proxy_savings": savings_summary(db, since=since, until=until),
        "projects": projects(db, since, until),
        "team": team(db, since, until),
        "lessons": lessons(db),
        "memory": memory(db),
    }


def savings(db: Database, since: date, until: date) -> Savings:
    """Tokens the proxy saved (``tokens_before - tokens_after``) per UTC day and agent, with a $ estimate."""
    t = ProxyRequestRow
    query = (
        select(
            t.day,
            t.agent,
            t.provider,
            t.model,
            func.count(),
            func.coalesce(func.sum(t.tokens_before), 0),
            func.coalesce(func.sum(t.tokens_after), 0),
        )
        .where(t.day >= since, t.day <= until)
        .group_by(t.day, t.agent, t.provider, t.model)
    )
    with db.sessions() as s:
        rows = list(s.execute(query))
    per_day: dict[str, dict[str, _Sums]] = {}
    by_agent: dict[str, _Sums] = {}
    for day, agent, provider, model, requests, tokens_before, tokens_after in rows:
        before, after = int(tokens_before), int(tokens_after)
        usd = (before - after) * price_per_million(model, provider) / 1e6
        for bucket in (
            per_day.setdefault(_day(day), {}).setdefault(agent, _Sums()),
            by_agent.setdefault(agent, _Sums()),
        ):
            bucket.add(int(requests), before, after, usd)
    agents = sorted(by_agent)
    timeline: list[SavingsDay] = []
    for n in range((until - since).days + 1):
        name = (since + timedelta(days=n)).isoformat()
        on_day = per_day.get(name, {})
        timeline.append({"day": name, "agents": {a: on_day[a].figures() for a in agents if a in on_day}})
    total = _Sums()
    for sums in by_agent.values():
        total.add(sums.requests, sums.tokens_before, sums.tokens_after, sums.usd_estimate)
    return {
        "agents": agents,
        "days": timeline,
        "by_agent": {a: by_agent[a].figures() for a in agents},
        "total": total.figures(),
    }


def spend(db: Database, since: date, until: date) -> Spend:
    """What the agents' calls cost at list price per UTC day and agent (``stats --by day -z UTC``'s figures).

    ``total_usd`` sums what the price table prices; ``unpriced_calls`` counts the calls it does not (never $0).
    """
    with db.sessions() as s:
        rows = token_rows(s, "day", Filters(since=since, until=until))
    by_agent: dict[str, float] = {}
    days: dict[str, dict[str, float | None]] = {}
    unpriced = 0
    for row in rows:
        unpriced += int(row.get("unpriced_calls") or 0)
        usd = row.get("cost_usd")
        days.setdefault(str(row["day"]), {})[row["agent"]] = None if usd is None else round(usd, 6)
        if usd is not None:
            by_agent[row["agent"]] = by_agent.get(row["agent"], 0.0) + usd
    return {
        "total_usd": round(sum(by_agent.values()), 6),
        "unpriced_calls": unpriced,
        "by_agent": {agent: round(usd, 6) for agent, usd in sorted(by_agent.items())},
        "days": [{"day": day, "agents": agents} for day, agents in sorted(days.items())],
        "table": table_version(),
    }


def projects(db: Database, since: date, until: date) -> list[ProjectFigures]:
    """Sessions, failed sessions and the tool-call failure rate of every project active in the window."""
    filters = Filters(since=since, until=until)
    with db.sessions() as s:
        rows = token_rows(s, "project", filters)
        project = project_column()  # a repository's checkouts are one project (as token_rows groups them)
        failed_query: Any = select(
            project,
            func.sum(case(((SessionRow.failed_tool_calls > 0) | (SessionRow.api_errors > 0), 1), else_=0)),
            func.coalesce(func.sum(SessionRow.api_errors), 0),
        ).group_by(project)
        # The same window as token_rows: a session counts when it was active on a day in [since, until].
        failed_query = failed_query.where(
            func.coalesce(SessionRow.ended_at, SessionRow.started_at) >= datetime.combine(since, datetime.min.time()),
            SessionRow.started_at < datetime.combine(until + timedelta(days=1), datetime.min.time()),
        )
        failed = {project: (int(n or 0), int(errors or 0)) for project, n, errors in s.execute(failed_query)}
    out: list[ProjectFigures] = []
    for row in rows:
        failed_sessions, api_errors = failed.get(row["project"], (0, 0))
        sessions = int(row["sessions"])
        out.append(
            {
                "project": row["project"] or "(no project)",
                "name": row["name"],
                "sessions": sessions,
                "failed_sessions": failed_sessions,
                "session_failure_rate": round(failed_sessions / sessions, 4) if sessions else 0.0,
                "tool_calls": row["tool_calls"],
                "failed_tool_calls": row["failed_tool_calls"],
                "failure_rate": row["failure_rate"],
                "api_errors": api_errors,
                "total_tokens": row["total_tokens"],
                "cost_usd": row.get("cost_usd"),
                "unpriced_calls": row.get("unpriced_calls", 0),
            }
        )
    out.sort(key=lambda r: (-r["failure_rate"], -r["sessions"], r["project"]))
    return out


def team(db: Database, since: date, until: date) -> TeamFigures | None:
    """Sessions, tool calls, failures and tokens per user and per machine, when the database holds more than
    one of either (a team's shared PostgreSQL, issue 17); None for one person's database, which shows as before.
    """
    filters = Filters(since=since, until=until)
    with db.sessions() as s:
        by = {dim: token_rows(s, dim, filters) for dim in ("user", "machine")}
    if len(by["user"]) < 2 and len(by["machine"]) < 2:
        return None
    fields = ("sessions", "tool_calls", "failed_tool_calls", "failure_rate", "total_tokens")

    def shaped(dim: str) -> list[dict[str, Any]]:
        rows = [{"name": row[dim] or "(unknown)", **{f: row[f] for f in fields}} for row in by[dim]]
        return sorted(rows, key=lambda r: (-r["total_tokens"], r["name"]))

    return {"users": shaped("user"), "machines": shaped("machine")}


def lessons(db: Database) -> Lessons:
    """The lessons (texts are redacted when they are stored) with their before/after recurrence."""
    rows = report(db)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    status_order = {"active": 0, "proposed": 1, "retired": 2}
    rows.sort(key=lambda r: (status_order.get(r["status"], 3), -(r["sessions"] or 0), r["key"]))
    items: list[LessonItem] = [
        {
            "project": r["project"],
            "kind": r["kind"],
            "status": r["status"],
            "retired_reason": r["retired_reason"],
            "text": r["text"],
            "sessions": r["sessions"],
            "count": r["count"],
            "corrected_by_user": bool(r["corrected_by_user"]),
            "last_seen": iso(r["last_seen"]),
            "activated_at": iso(r["activated_at"]),
            "before": r["before"],
            "after": r["after"],
        }
        for r in rows[:MAX_LESSONS]
    ]
    return {"total": len(rows), "by_status": dict(sorted(counts.items())), "items": items}


def memory(db: Database) -> MemoryFigures:
    """The shared memory's size: items by kind, stored characters, and the database file's size."""
    stats = MemoryStore(db).stats()
    return {
        "items": stats["items"],
        "chars": stats["chars"],
        "by_kind": stats["by_kind"],
        "sightings_by_agent": stats["sightings_by_agent"],
        "projects": stats["projects"],
        "redactions": stats["redactions"],
        "db_bytes": stats["db_bytes"],
    }


def _day(value: date | str) -> str:
    return value if isinstance(value, str) else value.isoformat()
