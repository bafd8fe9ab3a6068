"""The statusline's figures: a session's cost, today's cost, what the proxy saved in it, the active lessons.

Why plain SQL with ``:name`` parameters and nothing imported at module level but the standard library: the
same queries serve ``headroom statusline`` (run on every redraw of Claude Code's status bar, under 50 ms, with
``sqlite3`` on the local database and prices from the small rate card, see :mod:`headroom.daemon.statusline`)
and ``headroom stats --session ID`` (any database, through SQLAlchemy's ``text()``), so Claude Code, Codex and
Gemini users see the same figures.

Tokens saved by the proxy are summed over the proxy's requests of this conversation: ``proxy_requests``
names a conversation by ``conversation``, a hash of the agent and its session id (the proxy's
``conversation_key``); a database without that column shows no saved figure rather than a wrong one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.orm import Session

Execute = Callable[[str, dict[str, Any]], Sequence[Sequence[Any]]]
#: A rate card entry (:meth:`headroom.daemon.pricing.Rates.to_json`): plain lists, so that pricing from the card
#: needs neither the price table nor the pricing module.
Card = dict[str, Any]
SUMS = ", ".join(
    f"sum(u.{name})"
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens", "reasoning_tokens")
)
SUMS_1H = SUMS + ", sum(u.cache_write_1h_tokens)"  # a database migrated to 0010 splits Claude's cache writes
REASONING_APART = ("gemini",)  # learn.model.REASONING_OUTSIDE_OUTPUT, kept here without the import


def bucket_sql(thresholds: Sequence[int]) -> str:
    """SQL: the index of the largest long-context threshold a usage row's prompt exceeds."""
    prompt = "(u.input_tokens + u.cache_read_tokens + u.cache_creation_tokens)"
    whens = " ".join(f"WHEN {prompt} > {int(t)} THEN {i + 1}" for i, t in reversed(list(enumerate(thresholds))))
    return f"CASE {whens} ELSE 0 END" if thresholds else "0"


def session_usage_sql(thresholds: Sequence[int], has_1h: bool = True) -> str:
    """Usage of a session and its sub-agents, per model, day and tier bucket (through ``ix_usage_session_id``)."""
    bucket = bucket_sql(thresholds)
    return (
        f"SELECT u.model, u.agent, u.day, {bucket}, count(*), {SUMS_1H if has_1h else SUMS} FROM usage u "
        "WHERE u.session_id IN (SELECT id FROM sessions WHERE agent = :agent AND key = :key "
        "UNION ALL SELECT id FROM sessions WHERE parent_key = :key) "
        f"GROUP BY u.model, u.agent, u.day, {bucket}"
    )


def today_usage_sql(thresholds: Sequence[int], has_1h: bool = True) -> str:
    """All agents' usage since the local midnight, per model, day and tier bucket.

    The local day spans at most two UTC days: ``day IN`` lets the (day, ...) index find the rows.
    """
    bucket = bucket_sql(thresholds)
    return (
        f"SELECT u.model, u.agent, u.day, {bucket}, count(*), {SUMS_1H if has_1h else SUMS} FROM usage u "
        "WHERE u.day IN (:first_day, :last_day) AND u.ts >= :start AND u.ts < :end "
        f"GROUP BY u.model, u.agent, u.day, {bucket}"
    )


SAVED_SQL = (
    "SELECT count(*), coalesce(sum(tokens_before - tokens_after), 0) FROM proxy_requests WHERE conversation = :conv"
)
LESSONS_SQL = "SELECT count(*) FROM lessons WHERE status = 'active'"
PROJECT_LESSONS_SQL = "SELECT count(*) FROM lessons WHERE status = 'active' AND (project = :project OR project = '')"


def conversation(agent: str, session_key: str) -> str:
    """The proxy's hash of a conversation named by its session id (``proxy.savings.conversation_key``)."""
    try:
        # lazy: hashlib loads OpenSSL (milliseconds) on every status line
        from _blake2 import blake2b  # hashlib's own blake2b, without loading OpenSSL (milliseconds)
    except ImportError:  # pragma: no cover - a Python built without it
        # lazy: the fallback of the line above
        from hashlib import blake2b
    return blake2b(f"{agent}\0session\0{session_key}".encode(), digest_size=16).hexdigest()


def day_bounds(tz: tzinfo | None, now: datetime | None = None) -> dict[str, str]:
    """Today's local midnights as naive UTC text (as ``usage.ts`` compares), and the UTC days between.

    ``tz`` None: the process's local zone through the ``time`` module (``TZ`` is honoured), which spares the
    statusline the zoneinfo import.
    """
    moment = now or datetime.now(UTC)
    if tz is None:
        local = time.localtime(moment.timestamp())
        first = time.mktime((local.tm_year, local.tm_mon, local.tm_mday, 0, 0, 0, 0, 0, -1))
        last = time.mktime((local.tm_year, local.tm_mon, local.tm_mday + 1, 0, 0, 0, 0, 0, -1))
        start = datetime.fromtimestamp(first, UTC)
        end = datetime.fromtimestamp(last, UTC)
    else:
        day = moment.astimezone(tz).date()
        start = datetime.combine(day, datetime.min.time(), tz).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tz).astimezone(UTC)
    return {
        "start": start.strftime("%Y-%m-%d %H:%M:%S"),
        "end": end.strftime("%Y-%m-%d %H:%M:%S"),
        "first_day": start.date().isoformat(),
        "last_day": (end - timedelta(seconds=1)).date().isoformat(),
    }


class Priced:
    """A running total: USD of what could be priced, and the calls whose model could not."""

    def __init__(self) -> None:
        self.usd = 0.0
        self.calls = 0
        self.unpriced = 0

    def text(self) -> str:
        if not self.unpriced:
            return f"${self.usd:.2f}"
        if self.unpriced == self.calls:
            return "— (unpriced)"
        return f"${self.usd:.2f}+"


def card_cost(entry: Card, inp: int, out: int, read: int, write: int, hour: int, prompt: int) -> float:
    """USD of some tokens at a rate card entry's rates (the arithmetic of ``pricing.cost_from_rates``)."""
    rates = entry["rates"]
    for start, tier in entry.get("tiers", ()):
        if prompt > start:
            rates = tier
    r_in, r_out, r_read, r_write, r_hour = (float(x) for x in rates)
    hour = min(hour, write)
    return (inp * r_in + out * r_out + read * r_read + (write - hour) * r_write + hour * r_hour) / 1e6


def total(
    rows: Sequence[Sequence[Any]], thresholds: Sequence[int], rates_of: Callable[[str | None, str, date], Card | None]
) -> Priced:
    """Price grouped usage rows (model, agent, day, bucket, calls, six sums) with ``rates_of``."""
    out = Priced()
    for model, agent, day, bucket, calls, *sums in rows:
        inp, outp, read, write, reasoning, hour = (int(x or 0) for x in [*sums, 0][:6])
        if not (inp or outp or read or write or reasoning):
            continue
        out.calls += int(calls)
        when = day if isinstance(day, date) else date.fromisoformat(str(day)[:10]) if day else datetime.now(UTC).date()
        rates = rates_of(model, agent, when)
        if rates is None:
            out.unpriced += int(calls)
            continue
        if agent in REASONING_APART:
            outp += reasoning
        prompt = thresholds[int(bucket) - 1] + 1 if bucket else 0
        out.usd += card_cost(rates, inp, outp, read, write, hour, prompt)
    return out


def figures(
    execute: Execute,
    *,
    agent: str,
    session_key: str,
    project: str | None,
    tz: tzinfo | None,
    thresholds: Sequence[int],
    rates_of: Callable[[str | None, str, date], Card | None],
    has_conversation: bool,
    has_1h: bool = True,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The four figures of one session, and the line the statusline prints."""
    params = {"agent": agent, "key": session_key}
    session = total(execute(session_usage_sql(thresholds, has_1h), params), thresholds, rates_of)
    today = total(execute(today_usage_sql(thresholds, has_1h), day_bounds(tz, now)), thresholds, rates_of)
    saved: int | None = None
    requests = 0
    if has_conversation:
        row = execute(SAVED_SQL, {"conv": conversation(agent, session_key)})[0]
        requests, saved = int(row[0] or 0), int(row[1] or 0)
    if project:
        lessons = int(execute(PROJECT_LESSONS_SQL, {"project": project})[0][0] or 0)
    else:
        lessons = int(execute(LESSONS_SQL, {})[0][0] or 0)
    result: dict[str, Any] = {
        "session": session_key,
        "agent": agent,
        "session_cost_usd": round(session.usd, 6) if session.calls > session.unpriced or not session.calls else None,
        "session_calls": session.calls,
        "session_unpriced_calls": session.unpriced,
        "today_cost_usd": round(today.usd, 6) if today.calls > today.unpriced or not today.calls else None,
        "today_unpriced_calls": today.unpriced,
        "proxy_requests": requests,
        "tokens_saved": saved,
        "active_lessons": lessons,
    }
    parts = [f"session {session.text()}", f"today {today.text()}"]
    if saved is not None and requests:
        parts.append(f"saved {_tokens(saved)} tok")
    parts.append(f"{lessons} lesson{'s' if lessons != 1 else ''}")
    result["line"] = " · ".join(parts)
    return result


def _tokens(value: int) -> str:
    for limit, suffix in ((1_000_000, "M"), (1_000, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}"
    return str(value)


def session_figures(dbs: Session, ident: str, *, tz: tzinfo, state_dir: Path) -> dict[str, Any]:
    """``stats --session ID``: the statusline's figures for any agent's session, through SQLAlchemy."""
    # lazy: the status line imports this module; only `stats --session` needs these
    import click
    from sqlalchemy import inspect, text

    from headroom.daemon import analytics, pricing

    found = analytics.find_session(dbs, ident)
    if not found:
        raise click.ClickException(f"no session matches {ident!r} (see `headroom sessions`)")
    if len(found) > 1:
        raise click.ClickException(f"{ident!r} matches several sessions: {', '.join(s.key for s in found[:5])}")
    session = found[0]
    inspector = inspect(dbs.connection())
    columns = {c["name"] for c in inspector.get_columns("proxy_requests")}
    usage_columns = {c["name"] for c in inspector.get_columns("usage")}

    def execute(sql: str, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        return [tuple(row) for row in dbs.execute(text(sql), params)]

    def rates_of(model: str | None, agent: str, day: date) -> Card | None:
        found = pricing.rates(model, provider=agent, when=day)
        return None if found is None else found.to_json()

    return figures(
        execute,
        agent=session.agent,
        session_key=session.key,
        project=session.project_root,
        tz=tz,
        thresholds=pricing.tier_thresholds(),
        rates_of=rates_of,
        has_conversation="conversation" in columns,
        has_1h="cache_write_1h_tokens" in usage_columns,
    )
