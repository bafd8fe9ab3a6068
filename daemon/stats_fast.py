"""``headroom stats --by day|week|month --no-refresh`` on a SQLite database with the standard library only.

Why: without a daemon to ask (daemon/stats_request.py), a warm ``stats`` spent ~85 % of its time importing
SQLAlchemy, the ORM models and the 30,000-line price table, and ~2x ccusage's time in all. The plain per-period
table needs two grouped queries and a price per (model, agent, day), so this module runs those queries through
``sqlite3`` and prices from a small cache of the rates it has looked up before (``state/stats-rates.json``),
touching the price table only for a (model, agent, day) it has not seen. The rows are built by the same helpers
as :func:`headroom.daemon.analytics.token_rows` (``groupings``, ``spend``) from the same SQL, in the same
order, so the output is the same to the byte (tests/test_stats_fast.py compares them on the fixtures).

Anything else goes the normal way (:func:`fast_rows` returns None): PostgreSQL, a database whose schema is not
this code's, the project/user/machine/model filters, ``--refresh``, or a table whose proxy section would have
something to show. Local time zones are supported as analytics does them (hours in SQL, folded into local days).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from headroom.daemon import pricing
from headroom.daemon.groupings import PeriodRows
from headroom.daemon.spend import SUMS, Spend, local_day, price_sum
from headroom.daemon.statusline import configured_url, data_and_state_dirs
from headroom.daemon.zones import BadTimezone, is_utc, zone
from headroom.learn.model import AGENTS
from headroom.memory.files import write_atomic
from headroom.migrations import HEAD

PERIODS = ("day", "week", "month")
CACHE_NAME = "stats-rates.json"
CACHE_FORMAT = 1
#: As the ORM's engine waits for a writer (memory/db.py BUSY_TIMEOUT_MS).
BUSY_TIMEOUT_S = 30.0
_PROMPT = "usage.input_tokens + usage.cache_read_tokens + usage.cache_creation_tokens"
_SUM_COLUMNS = ", ".join(f"sum(usage.{name})" for name in SUMS)
_FAILED = "tool_calls.failed IS 1 AND tool_calls.by_user IS 0"  # learn.counters.agent_failure, as SQLite spells it
_HOUR = "%Y-%m-%d %H"  # costs.hour_expr on SQLite


@dataclass
class FastAnswer:
    rows: list[dict[str, Any]]
    prices: dict[str, str]  # the price table's identity, for the table's caption (pricing.table_version)


def sqlite_file(url: str) -> Path | None:
    """The file of a plain ``sqlite:///PATH`` URL; None for anything else (another backend, URL options)."""
    if not url.startswith("sqlite:///") or "?" in url:
        return None
    path = url.removeprefix("sqlite:///")
    return Path(path) if path and path != ":memory:" else None


def fast_rows(
    url: str,
    state_dir: Path,
    by: str,
    *,
    agent: str | None,
    since: date | None,
    until: date | None,
    table: bool,
    tz: tzinfo = UTC,
) -> FastAnswer | None:
    """The rows of ``stats --by BY`` (days in ``tz``) as :func:`analytics.token_rows` gives them, or None when this
    path does not apply (see the module doc) and the caller must take the normal one."""
    path = sqlite_file(url)
    if by not in PERIODS or path is None or not path.is_file():
        return None
    try:
        conn = _connect(path)
    except sqlite3.Error:
        return None
    try:
        return _answer(conn, state_dir, by, Window(agent, since, until, tz), table)
    except sqlite3.Error:
        return None  # a locked, damaged or unexpected database: the normal path says what is wrong
    finally:
        conn.close()


def _connect(path: Path) -> sqlite3.Connection:
    """Read-only, as memory/db.py opens a database for reading (``immutable`` where no writer can be)."""
    shm = path.with_name(path.name + "-shm")
    flags = "mode=ro" if shm.exists() or os.access(path.parent, os.W_OK) else "mode=ro&immutable=1"
    conn = sqlite3.connect(f"file:{quote(str(path.absolute()))}?{flags}", uri=True, timeout=BUSY_TIMEOUT_S)
    conn.execute("PRAGMA query_only=1")
    return conn


@dataclass(frozen=True)
class Window:
    """What to count: analytics.Filters' agent, since, until and zone (the other filters take the normal path)."""

    agent: str | None
    since: date | None
    until: date | None
    tz: tzinfo

    @property
    def local(self) -> bool:
        return not is_utc(self.tz)

    def bounds(self) -> tuple[str | None, str | None]:
        """analytics.Filters.bounds as SQLAlchemy binds a DateTime on SQLite (text that sorts as time does)."""

        def utc(day: date) -> str:
            moment = datetime.combine(day, time.min, self.tz).astimezone(UTC).replace(tzinfo=None)
            return moment.strftime("%Y-%m-%d %H:%M:%S.%f")

        return (
            utc(self.since) if self.since else None,
            utc(self.until + timedelta(days=1)) if self.until else None,
        )


def _answer(conn: sqlite3.Connection, state_dir: Path, by: str, window: Window, table: bool) -> FastAnswer | None:
    version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    if version != [(HEAD,)]:
        return None  # an older or newer schema: the normal path upgrades it or explains
    if table and conn.execute("SELECT 1 FROM proxy_requests LIMIT 1").fetchone():
        return None  # the table would be followed by the proxy's figures: those are computed the normal way
    cache = RateCache(state_dir / CACHE_NAME)
    try:
        rows = _period_rows(conn, by, window, cache)
    finally:
        cache.save()
    if rows is None:
        return None
    return FastAnswer(rows, cache.table_info())


def _usage_where(window: Window) -> tuple[list[str], list[Any]]:
    clauses, params = [], []  # analytics.usage_where's order
    if window.agent:
        clauses.append("usage.agent = ?")
        params.append(window.agent)
    if window.local:
        start, end = window.bounds()
        if start:
            clauses.append("usage.ts >= ?")
            params.append(start)
        if end:
            clauses.append("usage.ts < ?")
            params.append(end)
    else:
        if window.since:
            clauses.append("usage.day >= ?")
            params.append(window.since.isoformat())
        if window.until:
            clauses.append("usage.day <= ?")
            params.append(window.until.isoformat())
    return clauses, params


def _day(value: Any) -> date:
    return date.fromisoformat(str(value)[:10])


Key = tuple[Any, Any, Any]  # (stored day, or UTC hour as text in a local zone; agent; model)


def _grouped(
    conn: sqlite3.Connection, window: Window, cache: RateCache
) -> list[tuple[date, Any, Spend, dict[str, int], int]] | None:
    """:func:`headroom.daemon.costs.grouped` with no keys: the same two queries, sums and prices, in its order."""
    clauses, params = _usage_where(window)
    local = window.local
    day_col, day_params = ("strftime(?, usage.ts)", [_HOUR]) if local else ("usage.day", [])
    where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
    groups: dict[Key, tuple[int, dict[str, int]]] = {}
    longest: dict[Key, int] = {}
    sql = (
        f"SELECT {day_col}, usage.agent, usage.model, max({_PROMPT}), count(*), {_SUM_COLUMNS} FROM usage "
        f"{where}GROUP BY {day_col}, usage.agent, usage.model"
    )
    for row in conn.execute(sql, [*day_params, *params, *day_params]):
        if row[0] is None:
            return None  # a row without a day: the normal path decides what that means
        key = (row[0] if local else _day(row[0]), row[1], row[2])
        groups[key] = (int(row[4]), {name: int(amount or 0) for name, amount in zip(SUMS, row[5:], strict=True)})
        longest[key] = int(row[3] or 0)

    def days(key: Key) -> tuple[date, date]:  # (shown day, UTC day)
        return local_day(str(key[0]), window.tz) if local else (key[0], key[0])

    over: dict[Key, list[int]] = {}
    for key in groups:
        found = cache.rates(key[2], provider=key[1], when=days(key)[1])
        starts = sorted(start for start, _ in found.tiers) if found is not None else []
        if starts and longest[key] > starts[0]:
            over[key] = starts
    tiers = sorted({start for starts in over.values() for start in starts})
    long_rows: list[tuple[Key, int, int, dict[str, int]]] = []
    if over:
        floor = "CASE " + " ".join(f"WHEN ({_PROMPT} > ?) THEN ?" for _ in tiers) + " ELSE ? END"
        floor_params: list[Any] = [v for t in reversed(tiers) for v in (t, t)] + [0]
        models = sorted({str(key[2]) for key in over})
        conditions = [*clauses, f"usage.model IN ({', '.join('?' * len(models))})", f"{_PROMPT} > ?"]
        bound = [*day_params, *floor_params, *params, *models, tiers[0]]
        if not local:  # the days concerned, through the (day, agent, model) index
            stored = sorted({key[0].isoformat() for key in over})
            conditions.append(f"usage.day IN ({', '.join('?' * len(stored))})")
            bound.extend(stored)
        bound.extend([*day_params, *floor_params])
        sql = (
            f"SELECT {day_col}, usage.agent, usage.model, {floor}, count(*), {_SUM_COLUMNS} FROM usage "
            f"WHERE {' AND '.join(conditions)} GROUP BY {day_col}, usage.agent, usage.model, {floor}"
        )
        for row in conn.execute(sql, bound):
            key = (row[0] if local else _day(row[0]), row[1], row[2])
            if key not in over:
                continue  # a model with tiers on a day none of its calls reached them (another model's floor)
            tokens = {name: int(amount or 0) for name, amount in zip(SUMS, row[5:], strict=True)}
            long_rows.append((key, int(row[3]), int(row[4]), tokens))
            calls, rest = groups[key]
            groups[key] = (calls - int(row[4]), {name: rest[name] - tokens[name] for name in SUMS})
    parts = [(key, 0, calls, tokens) for key, (calls, tokens) in groups.items() if calls]
    out = []
    for key, prompt_floor, calls, tokens in [*parts, *long_rows]:
        shown, utc_day = days(key)
        prompt_size = prompt_floor + 1 if prompt_floor else 0
        spend = price_sum(key[2], key[1], utc_day, prompt_size, calls, tokens, cache.rates)
        out.append((shown, key[1], spend, tokens, calls))
    return out


def _period_rows(conn: sqlite3.Connection, by: str, window: Window, cache: RateCache) -> list[dict[str, Any]] | None:
    """``analytics._period_rows`` without the sessions filters: usage sums, then tool calls."""
    priced = _grouped(conn, window, cache)
    if priced is None:
        return None
    rows = PeriodRows(by)
    for day, agent_name, spend, tokens, calls in priced:
        rows.add_usage(day, agent_name, spend, tokens, calls)
    local = window.local
    day_col, call_params = ("strftime(?, tool_calls.started_at)", [_HOUR]) if local else ("tool_calls.day", [])
    where = ["tool_calls.started_at IS NOT NULL" if local else "tool_calls.day IS NOT NULL"]
    if window.agent:
        where.append("sessions.agent = ?")
        call_params.append(window.agent)
    start, end = window.bounds() if local else (window.since, window.until)
    for clause, value in zip(
        ("tool_calls.started_at >= ?", "tool_calls.started_at < ?")
        if local
        else ("tool_calls.day >= ?", "tool_calls.day <= ?"),
        (start, end),
        strict=True,
    ):
        if value:
            where.append(clause)
            call_params.append(value if isinstance(value, str) else value.isoformat())
    sql = (
        f"SELECT {day_col}, sessions.agent, sum(CASE WHEN (tool_calls.by_user IS 0) THEN 1 ELSE 0 END), "
        f"sum(CASE WHEN ({_FAILED}) THEN 1 ELSE 0 END), sum(CASE WHEN ({_FAILED}) THEN "
        "coalesce(tool_calls.output_size, 0) + coalesce(length(tool_calls.input), 0) ELSE 0 END) "
        "FROM tool_calls JOIN sessions ON sessions.id = tool_calls.session_id "
        f"WHERE {' AND '.join(where)} GROUP BY {day_col}, sessions.agent"
    )
    if local:
        call_params.append(_HOUR)
    for stored, agent_name, count, failures, failed_chars in conn.execute(sql, call_params):
        rows.add_calls(
            local_day(str(stored), window.tz)[0] if local else _day(stored), agent_name, count, failures, failed_chars
        )
    return rows.finished()


class RateCache:
    """Rates per (model as logged, agent, UTC day), as :func:`pricing.rates` gave them, kept in a JSON file.

    The file names the price table's data file and this code's pricing module with their sizes and modification
    times: when either changes (a package upgrade), the cache starts empty and every rate is looked up again.
    A lookup the file lacks imports the table (what the normal path pays on every run) and is added.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any] | None] = {}
        self.table: dict[str, str] | None = None
        self.dirty = False
        self._stamp: dict[str, list[Any]] | None = None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            stamp = data["stamp"]
            current = data.get("format") == CACHE_FORMAT and stamp.get("pricing") == _file_stamp(pricing.__file__)
            if current and stamp.get("table") == _file_stamp(stamp["table"][0]):
                self.entries = dict(data["rates"])
                self.table = dict(data["table"])
                self._stamp = stamp
        except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
            pass
        self._parsed: dict[str, pricing.Rates | None] = {}

    def rates(self, model: str | None, *, provider: str | None = None, when: date | None = None) -> Any:
        """:func:`pricing.rates` for a stored UTC day, from the file when it has the answer."""
        if model is None or when is None:
            return pricing.rates(model, provider=provider, when=when)
        key = f"{model}\x1f{provider or ''}\x1f{when.isoformat()}"
        if key in self._parsed:
            return self._parsed[key]
        if key in self.entries:
            stored = self.entries[key]
            found = None if stored is None else pricing.Rates.from_json(stored)
        else:
            self._prime()
            found = pricing.rates(model, provider=provider, when=when)
            self.entries[key] = None if found is None else found.to_json()
            self.dirty = True
        self._parsed[key] = found
        return found

    def _prime(self) -> None:
        """The table is about to be read: (re)stamp the cache with it, dropping entries of another table."""
        if self._stamp is not None:
            return
        # lazy: the price table's module is read only when the rate cache is stale (it costs ~0.2 s)
        from genai_prices import data as price_data

        self._stamp = {"pricing": _file_stamp(pricing.__file__), "table": _file_stamp(str(price_data.__file__))}
        self.table = pricing.table_version()
        self.entries = {}
        self.dirty = True

    def table_info(self) -> dict[str, str]:
        if self.table is None:
            self._prime()
        assert self.table is not None
        return self.table

    def save(self) -> None:
        if not self.dirty or self._stamp is None:
            return
        document = {"format": CACHE_FORMAT, "stamp": self._stamp, "table": self.table, "rates": self.entries}
        with contextlib.suppress(OSError):  # a read-only state dir: look the rates up again next time
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(self.path, json.dumps(document).encode(), fsync=False)
        self.dirty = False


def _file_stamp(path: str | None) -> list[Any]:
    """[path, size, mtime_ns] of a file, or [path] when it cannot be read (never equal to a real stamp)."""
    if not path:
        return [path]
    try:
        st = os.stat(path)
    except OSError:
        return [path]
    return [path, st.st_size, st.st_mtime_ns]


def quick_main(args: list[str]) -> int | None:
    """``headroom stats [--by day|week|month] [--agent A] [--since D] [--until D] [-z Z] --json --no-refresh``
    answered before the click CLI is imported (daemon/entry.py); None: anything else, for the CLI to handle.

    Why: importing the CLI (click, rich, the pydantic config) is ~0.3 s of CPU, several times these queries. The
    database and state folder are found as ``headroom statusline`` finds them (``HEADROOM_HOME``, XDG folders,
    ``database_url``); a config file that does not parse, a ``--config``, a relative date (``7d``), a bad zone
    or any other option goes to the CLI, which explains. The output is the CLI's own JSON (same bytes:
    tests/test_stats_fast.py). A running daemon is not asked: it would give the same rows, more slowly.
    """
    options: dict[str, str] = {}
    flags: set[str] = set()
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg in ("--json", "--no-refresh"):
            flags.add(arg)
        elif arg in ("--by", "--agent", "--since", "--until", "-z", "--timezone") and rest:
            options["-z" if arg == "--timezone" else arg] = rest.pop(0)
        else:
            return None
    if flags != {"--json", "--no-refresh"} or options.get("--by", "day") not in PERIODS:
        return None
    if os.environ.get("HEADROOM_STATS_FAST", "1") == "0":
        return None
    agent = options.get("--agent")
    if agent is not None and agent not in AGENTS:
        return None
    try:
        tz = zone(options.get("-z"))
        since, until = (date.fromisoformat(options[k]) if k in options else None for k in ("--since", "--until"))
    except (BadTimezone, ValueError):
        return None
    data_dir, state_dir = data_and_state_dirs()
    url = configured_url(data_dir, strict=True)
    if url is None:
        return None
    by = options.get("--by", "day")
    answer = fast_rows(url, state_dir, by, agent=agent, since=since, until=until, tz=tz, table=False)
    if answer is None:
        return None
    # common.emit_json's options, and click.echo's newline
    text = orjson.dumps(answer.rows, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str).decode()
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return 0
