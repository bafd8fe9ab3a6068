"""Bulk upserts for the session mirror: one SQLAlchemy statement run for many rows at the driver's speed.

On SQLite a statement is compiled once per row shape and run with the driver's ``executemany`` on plain
tuples: SQLAlchemy's per-row parameter processing costs more than SQLite's insert itself, and this is the
backfill's hot path. Values are converted exactly as SQLAlchemy would store them. Other backends take the
ordinary path. (Split from ``learn/mirror.py``, which decides *what* is written.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, DateTime
from sqlalchemy.orm import Session

_COMPILED: dict[tuple[Any, ...], tuple[str, tuple[tuple[str, Any], ...], Callable[..., list[tuple[Any, ...]]]]] = {}
_FROM_ROW = object()


def execute_many(
    dbs: Session,
    stmt: Any,
    rows: list[dict[str, Any]],
    cache_key: tuple[Any, ...],
    session_ids: Mapping[str, int] | None = None,
) -> None:
    """Run one upsert for many rows (see the module doc); ``cache_key`` names the statement, with the rows' shape.

    ``session_ids``: the rows' ``session_id`` holds a session key, stored as the id this maps it to (the rows
    themselves are left as they are, so they can be written again in a transaction run again).
    """
    if not rows:
        return
    bind = dbs.get_bind()
    if bind.dialect.name != "sqlite":
        if session_ids is not None:
            rows = [{**row, "session_id": session_ids[row["session_id"]]} for row in rows]
        dbs.execute(stmt, rows)
        return
    key = (*cache_key, tuple(rows[0]), session_ids is not None)
    compiled = _COMPILED.get(key)
    if compiled is None:
        statement = stmt.compile(dialect=bind.dialect, column_keys=list(rows[0]))
        # Binds come from the row; columns the rows leave out take their scalar Python default (as
        # SQLAlchemy would), and literals of the ON CONFLICT clause their compiled value.
        columns, given, fixed = stmt.table.c, set(rows[0]), statement.params
        binds = tuple(
            (
                name,
                _FROM_ROW
                if name in given
                else columns[name].default.arg
                if name in columns and columns[name].default is not None
                else fixed[name],
            )
            for name in statement.positiontup or ()
        )
        compiled = (str(statement), binds, _row_builder(binds, columns, remapped=session_ids is not None))
        _COMPILED[key] = compiled
    sql, binds, build = compiled
    # A callable default (the writer's user and machine ids) is asked once per batch, as it may change.
    fixed = [sqlite_value(value(None) if callable(value) else value) for _, value in binds]
    dbs.connection().exec_driver_sql(sql, build(rows, fixed, sqlite_value, session_ids))


def _row_builder(
    binds: tuple[tuple[str, Any], ...], columns: Any, *, remapped: bool = False
) -> Callable[..., list[tuple[Any, ...]]]:
    """A function turning rows (dicts) into the statement's parameter tuples, written for this shape.

    One list comprehension with every position spelled out: the backfill builds millions of values, and a
    generator over the binds calling a converter per value was a few per cent of it. Values of the column types
    SQLAlchemy converts for SQLite (datetime, date, bool) go through :func:`sqlite_value`; the rest are stored
    as they are, which is what it does with them too.
    """
    converted = (DateTime, Date, Boolean)
    parts = []
    for index, (name, value) in enumerate(binds):
        if value is not _FROM_ROW:
            parts.append(f"fixed[{index}]")
        elif remapped and name == "session_id":
            parts.append("ids[row['session_id']]")
        elif name in columns and isinstance(columns[name].type, converted):
            parts.append(f"convert(row[{name!r}])")
        else:
            parts.append(f"row[{name!r}]")
    source = f"def build(rows, fixed, convert, ids):\n    return [({', '.join(parts)},) for row in rows]\n"
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # names are the statement's own bind names, quoted by repr
    return namespace["build"]  # type: ignore[no-any-return]


def sqlite_value(value: Any) -> Any:
    """``value`` as SQLAlchemy's SQLite types would bind it (the driver is given plain tuples here)."""
    kind = type(value)
    if kind is datetime:  # as SQLAlchemy stores it: always with microseconds, so text order is time order
        text = value.isoformat(" ")
        return text if value.microsecond else text + ".000000"
    if kind is date:
        return value.isoformat()
    if kind is bool:
        return int(value)
    return value


__all__ = ["execute_many", "sqlite_value"]
