"""USD cost of the ``usage`` rows, grouped any way analytics needs, in the user's time zone.

Why SQL groups and not row by row: ``stats`` runs on mirrors of millions of rows and must stay as fast as before
pricing existed. The rows are summed in the database per (key, day, agent, model) and each sum is priced once
(prices are cached per model and day in :mod:`headroom.daemon.pricing`). Long-context calls are the exception:
a provider bills *every* token of a request above a threshold at the higher rate, so a 200k-token request must
never be summed with short ones and priced at the short rate; :func:`grouped` sums those apart (per threshold
exceeded), for the models the table prices that way only.

A non-UTC time zone (``--timezone``) needs the hour of each row rather than its stored UTC day; the hour is
computed in SQL (``strftime`` on SQLite, ``date_trunc`` on PostgreSQL) and folded into local days here.

A call whose model the table does not price is counted (``unpriced_calls``, ``unpriced_models``), never added
as $0: a row whose calls are all unpriced has ``cost_usd`` ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, tzinfo
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from headroom.daemon import pricing
from headroom.daemon.spend import SUMS, Spend, local_day, price_sum
from headroom.daemon.zones import BadTimezone, is_utc, zone
from headroom.memory.models import SessionRow, UsageRow

__all__ = ["SUMS", "BadTimezone", "Spend", "grouped", "is_utc", "local_day", "price_sum", "zone"]


def hour_expr(dbs: Session, column: Any) -> Any:
    """SQL: ``column`` truncated to the hour, as text ``YYYY-MM-DD HH`` (the two dialects spell it apart)."""
    if dbs.get_bind().dialect.name == "postgresql":
        return func.to_char(func.date_trunc("hour", column), "YYYY-MM-DD HH24")
    return func.strftime("%Y-%m-%d %H", column)


def grouped(
    dbs: Session,
    keys: list[Any],
    *,
    where: Iterable[Any] = (),
    join_sessions: bool = False,
    tz: tzinfo | None = None,
) -> Iterator[tuple[tuple[Any, ...], date | None, date | None, str, Spend, dict[str, int], int]]:
    """Usage summed per ``keys`` + day + agent + model, priced; long-context calls apart.

    Yields (key values, local day, UTC day, agent, spend, token sums, calls). With a non-UTC ``tz`` the day is
    the row's local day (from its hour); otherwise the stored UTC day.

    Two queries, so that pricing costs the common case little: the sums per (keys, day, agent, model), which
    the (day, agent, model) index serves as a scan, then, only for the models the table prices by prompt size,
    the rows above their smallest threshold, per threshold exceeded. Those are priced at their tier and taken
    out of their group's sums; the rest is priced at the base rates.
    """
    u = UsageRow
    local = tz is not None and not is_utc(tz)
    day_col = hour_expr(dbs, u.ts) if local else u.day
    clauses = list(where)

    def base(*extra: Any) -> Any:
        query: Any = select(
            *keys, day_col, u.agent, u.model, *extra, func.count(), *(func.sum(getattr(u, f)) for f in SUMS)
        )
        if join_sessions:
            query = query.join(SessionRow, SessionRow.id == u.session_id)
        for clause in clauses:
            query = query.where(clause)
        return query

    n = len(keys)
    prompt = u.input_tokens + u.cache_read_tokens + u.cache_creation_tokens
    groups: dict[tuple[Any, ...], tuple[int, dict[str, int]]] = {}
    longest: dict[tuple[Any, ...], int] = {}
    for row in dbs.execute(base(func.max(prompt)).group_by(*keys, day_col, u.agent, u.model)):
        tokens = {name: int(amount or 0) for name, amount in zip(SUMS, row[n + 5 :])}
        groups[tuple(row[: n + 3])] = (int(row[n + 4]), tokens)
        longest[tuple(row[: n + 3])] = int(row[n + 3] or 0)
    # The groups holding a call past one of its model's thresholds: only those need their long calls apart.
    over = {key: starts for key in groups if (starts := _starts(key, n, local, tz)) and longest[key] > starts[0]}
    tiers = sorted({start for starts in over.values() for start in starts})
    long_rows: list[tuple[tuple[Any, ...], int, int, dict[str, int]]] = []
    if over:
        floor = case(*((prompt > t, t) for t in reversed(tiers)), else_=0)
        query = base(floor).where(u.model.in_(sorted({key[n + 2] for key in over})), prompt > tiers[0])
        if not local:  # the days concerned, through the (day, agent, model) index
            query = query.where(u.day.in_(sorted({key[n] for key in over})))
        for row in dbs.execute(query.group_by(*keys, day_col, u.agent, u.model, floor)):
            if tuple(row[: n + 3]) not in over:
                continue  # a model with tiers on a day none of its calls reached them (another model's floor)
            tokens = {name: int(amount or 0) for name, amount in zip(SUMS, row[n + 5 :])}
            long_rows.append((tuple(row[: n + 3]), int(row[n + 3]), int(row[n + 4]), tokens))
            calls, rest = groups[tuple(row[: n + 3])]
            groups[tuple(row[: n + 3])] = (
                calls - int(row[n + 4]),
                {name: rest[name] - tokens[name] for name in SUMS},
            )
    parts = [(key, 0, calls, tokens) for key, (calls, tokens) in groups.items() if calls]
    for key, prompt_floor, calls, tokens in [*parts, *long_rows]:
        day_value, agent, model = key[n], key[n + 1], key[n + 2]
        shown: date | None
        utc_day: date | None
        if local and day_value is not None and tz is not None:
            shown, utc_day = local_day(str(day_value), tz)
        else:
            shown = utc_day = _as_date(day_value)
        prompt_size = prompt_floor + 1 if prompt_floor else 0
        spend = price_sum(model, agent, utc_day, prompt_size, calls, tokens)
        yield key[:n], shown, utc_day, agent, spend, tokens, calls


def _utc(day_value: Any, local: bool, tz: tzinfo | None) -> date | None:
    if local and day_value is not None and tz is not None:
        return local_day(str(day_value), tz)[1]
    return _as_date(day_value)


def _starts(key: tuple[Any, ...], n: int, local: bool, tz: tzinfo | None) -> list[int]:
    """The long-context thresholds of a group's model on its day (keys + day + agent + model), ascending."""
    found = pricing.rates(key[n + 2], provider=key[n + 1], when=_utc(key[n], local, tz))
    return sorted(start for start, _ in found.tiers) if found is not None else []


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def rate_card_path(state_dir: Path) -> Path:
    """Where the statusline's rate card lives (rewritten by ``stats`` and by the statusline on a miss)."""
    return state_dir / "rate-card.json"
