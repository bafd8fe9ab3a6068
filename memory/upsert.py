"""Writes that may race another daemon on the same database: insert-on-conflict, and retries.

With many developers' daemons on one PostgreSQL database (issue 17), "look it up, insert it if absent" is a
race: two daemons both find nothing and the second insert fails with a unique violation, aborting its whole
transaction (a memory feed batch, an ingest chunk). Every row that may race is written with one
``INSERT ... ON CONFLICT`` statement instead (SQLite and PostgreSQL share the API). What can still fail
under concurrency, a deadlock or a serialization failure, is retried whole by :func:`retrying`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

log = logging.getLogger("headroom.memory")

T = TypeVar("T")

#: SQLSTATEs worth trying again: serialization failure, deadlock, and a unique violation met by a statement
#: that had looked first (a race lost between its look and its write; the next try finds the winner's row).
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "23505"})


def insert_for(session_or_dialect: Session | str) -> Any:
    """The dialect's ``insert`` (with ``on_conflict_do_…``) for a session's database or a dialect name."""
    name = session_or_dialect if isinstance(session_or_dialect, str) else session_or_dialect.get_bind().dialect.name
    return postgresql.insert if name == "postgresql" else sqlite.insert


def upsert(
    session: Session,
    model: Any,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    *,
    update: Sequence[str] = (),
) -> Any:
    """``INSERT rows ON CONFLICT (keys) DO UPDATE SET update`` (``DO NOTHING`` when ``update`` is empty).

    ``keys`` must be the columns of a unique constraint or primary key of ``model``'s table.
    """
    stmt = insert_for(session)(model).values(list(rows))
    if not update:
        return stmt.on_conflict_do_nothing(index_elements=list(keys))
    return stmt.on_conflict_do_update(index_elements=list(keys), set_={n: stmt.excluded[n] for n in update})


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed transaction may succeed when run again (deadlock, serialization, a lost race)."""
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if state in RETRYABLE_SQLSTATES:
            return True
        if isinstance(exc, OperationalError) and "deadlock" in str(orig).lower():
            return True
    return False


def retrying(work: Callable[[], T], *, attempts: int = 5, what: str = "write", base_s: float = 0.05) -> T:
    """Run ``work`` (one whole transaction) again when it fails with a retryable error, with jittered
    backoff; the last failure is raised. ``work`` must open its own transaction, so a retry starts clean."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except (OperationalError, IntegrityError, DBAPIError) as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            delay = base_s * (2 ** (attempt - 1)) * (0.5 + random.random())
            log.info("%s: %s, trying again (%d/%d)", what, type(exc.orig).__name__, attempt, attempts)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


__all__ = ["RETRYABLE_SQLSTATES", "insert_for", "is_retryable", "retrying", "upsert"]
