"""memory: Windows file paths that were joined onto the session's folder are the files' own paths again

Until this revision a file read by its absolute Windows path (``c:/Users/ada/vault/notes.md``, as Claude Code
and Gemini CLI log it on Windows) was "resolved" against the session's folder with POSIX rules, which take
no drive-letter path for absolute: the sighting's path became ``c:\\users\\ada\\vault/c:/Users/ada/vault/notes.md``
and the item's title the same (517 of the sightings of the public Windows sessions in the test fixtures). A
read stored since keeps the agent's own path, so the same file read before and after the upgrade would never
be linked as versions of one path (``MemoryStore._link_same_path``); the stored rows are mended here: the
path is what follows the second drive letter. No schema change; older clients can use the database as before.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 11:40:00.000000
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A separator, then a drive letter and its separator: a Windows path's start where no path can have one
# (``:`` is not allowed in a Windows file name), so what follows is the agent's own absolute path.
_JOINED = re.compile(r"[\\/](?P<own>[A-Za-z]:[\\/].*)\Z", re.DOTALL)
# The rows that may hold one, found by the server (``!`` escapes, so a backslash is a plain character on both).
_LIKELY = " OR ".join(f"{{column}} LIKE '%{sep}_:{end}%' ESCAPE '!'" for sep in "/\\" for end in "/\\")


def own_path(path: str) -> str:
    """The path the agent named, out of one joined onto a folder (unchanged when it is not such a path)."""
    found = _JOINED.search(path)
    return found.group("own") if found else path


def _mend(conn: sa.Connection, table: str, column: str) -> None:
    rows = conn.execute(sa.text(f"SELECT id, {column} FROM {table} WHERE {_LIKELY.format(column=column)}")).all()
    changed = []
    for ident, value in rows:
        mended = own_path(value)
        if mended != value:
            changed.append({"id": ident, "value": mended})
    if changed:
        conn.execute(sa.text(f"UPDATE {table} SET {column} = :value WHERE id = :id"), changed)


def upgrade() -> None:
    conn = op.get_bind()
    _mend(conn, "memory_sightings", "path")
    _mend(conn, "memory_items", "title")


def downgrade() -> None:
    """Nothing to undo: the mended paths are what a fresh read stores."""
