"""Redact what is already stored outside the memory items: the session mirror, lessons, recorded errors.

Text is redacted as it is written (DESIGN invariant 4), but the rules grow and older databases predate them, so
``headroom memory redact --scan`` runs today's rules over every stored text column and, with ``apply``, rewrites
the rows that change. The memory items have their own scan (:meth:`MemoryStore.redact_scan`: a changed item gets a
new hash and may merge); the CCR originals and the block memo are left alone on purpose: they are the two byte-exact
caches, owner-only and expiring.

Rows are read by id in batches and each batch is redacted with one :func:`redact_many` call. With ``apply``, SQLite
runs with ``secure_delete`` (old cells are zeroed) and the WAL is checkpointed and truncated at the end, so the old
text does not linger in free pages or in the WAL file.
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

from sqlalchemy import Table, Text, func, select, text, update

from headroom.memory import models as orm
from headroom.memory import redact, redact_values
from headroom.memory.db import Database
from headroom.memory.identity import current_machine, current_user
from headroom.memory.redact import redact_json, redact_many
from headroom.memory.store import get_state, set_state

BATCH = 500

# Columns that name or key things: never rewritten (a key must stay stable for idempotent upserts).
_NOT_TEXT = frozenset({"key", "name", "status", "kind", "agent", "project", "cwd", "project_root"})
# JSON documents: redacted string by string, so they stay valid JSON.
_JSON = frozenset({("lessons", "names"), ("lessons", "evidence")})


def _tables() -> list[Table]:
    return [
        orm.SessionRow.__table__,  # type: ignore[list-item]
        orm.EventRow.__table__,  # type: ignore[list-item]
        orm.ToolCallRow.__table__,  # type: ignore[list-item]
        orm.IngestIssueRow.__table__,  # type: ignore[list-item]
        orm.LessonRow.__table__,  # type: ignore[list-item]
        orm.ProxyRequestRow.__table__,  # type: ignore[list-item]
    ]


def _text_columns(table: Table) -> list[str]:
    """Every free-text column of ``table``: Text typed and not an identifier (new columns are covered by type)."""
    return [c.name for c in table.c if isinstance(c.type, Text) and c.name not in _NOT_TEXT]


def redact_stored(db: Database, *, apply: bool = False) -> dict[str, Any]:
    """Find stored rows that today's redaction would change; with ``apply``, rewrite them. Returns counts per table.

    On a shared database (PostgreSQL) only the user's own rows (and ownerless ones from before user ids): a
    teammate's are theirs to clean, even when this connection is the owner's and could reach them (issue 17)."""
    rows_changed: dict[str, int] = {}
    for table in _tables():
        columns = _text_columns(table)
        if not columns:
            continue
        changed = _scan_table(db, table, columns, apply)
        if changed:
            rows_changed[table.name] = changed
    if apply and rows_changed:
        db.compact()  # checkpoints and truncates the WAL (and VACUUMs when much is free): no old copy stays there
    return {"rows": sum(rows_changed.values()), "by_table": rows_changed, "applied": apply}


#: The state value that records which rules the stored text was last redacted with.
RULES_STATE = "redact.rules"


def rules_fingerprint() -> str:
    """A digest of the redaction rules' source: when they change, text stored under the old ones is worth a pass."""
    digest = hashlib.sha256()
    for module in (redact, redact_values):
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:16]


def note_rules_applied(db: Database, fingerprint: str | None = None) -> None:
    """Record that everything stored is redacted by today's rules (a pass just ran, or nothing was stored yet)."""
    value = fingerprint or rules_fingerprint()
    with db.transaction() as s:
        set_state(s, RULES_STATE, value, _rules_scope(db))


def _rules_scope(db: Database) -> str:
    """Where the rules' fingerprint is kept: the database's on SQLite (one person's); on a shared database each
    machine's, since a pass cleans only its user's rows (another user's daemon makes its own pass)."""
    return "" if db.is_sqlite else current_machine()


def stored_anything(db: Database) -> bool:
    """Whether the mirror holds any session yet (a new database needs no redaction pass: rows are redacted as
    they are written)."""
    with db.sessions() as s:
        return bool(s.execute(select(func.count()).select_from(orm.SessionRow)).scalar())


def redact_if_rules_changed(db: Database) -> dict[str, Any] | None:
    """Apply today's rules to what is stored once per change of the rules (the daemon calls it after its
    backfill: an upgrade from a version that stored the mirror in clear, or new rules, cleans old rows without
    the user having to know about ``memory redact --scan``). None when the stored text is already current."""
    fingerprint = rules_fingerprint()
    with db.sessions() as s:
        if get_state(s, RULES_STATE, _rules_scope(db)) == fingerprint:
            return None
    report = redact_stored(db, apply=True)
    note_rules_applied(db, fingerprint)
    return report


def _scan_table(db: Database, table: Table, columns: list[str], apply: bool) -> int:
    ident = table.c.id
    last, changed = 0, 0
    while True:
        with db.sessions() as s:
            mine = [] if db.is_sqlite else [table.c.user_id.in_([current_user(), ""])]
            batch = s.execute(
                select(ident, *(table.c[name] for name in columns))
                .where(ident > last, *mine)
                .order_by(ident)
                .limit(BATCH)
            ).all()
        if not batch:
            return changed
        last = batch[-1][0]
        new_values: dict[int, dict[str, str]] = {}
        for index, name in enumerate(columns, start=1):
            values = [row[index] if isinstance(row[index], str) else None for row in batch]
            if (table.name, name) in _JSON:
                cleaned: list[str | None] = [redact_json(v) if v else v for v in values]
            else:
                cleaned = redact_many(values)
            for row, old, new in zip(batch, values, cleaned):
                if new is not None and new != old:
                    new_values.setdefault(row[0], {})[name] = new
        changed += len(new_values)
        if apply and new_values:
            with db.transaction() as s:
                if db.is_sqlite:
                    s.execute(text("PRAGMA secure_delete = ON"))
                for row_id, cleaned_row in new_values.items():
                    s.execute(update(table).where(ident == row_id).values(**cleaned_row))
