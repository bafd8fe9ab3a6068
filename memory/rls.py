"""Private by default on a shared PostgreSQL: a role per user and row-level security (issue 17).

Each developer's daemon connects as a role of its own (``headroom team add-user NAME`` creates it). The table
``team_members`` maps a role to the user id its rows carry, and ``headroom_user()`` returns the mapped id of
the connected role (``current_user``, which a client cannot change by a ``SET`` of its own, unlike a custom
setting). The policies compare rows with it:

- transcripts (``sessions``, ``events``, ``tool_calls``), proxy records (``proxy_requests``, ``block_memo``)
  and the machine's own bookkeeping (``source_files``, ``ingest_issues``): only the owner's rows;
- memory: an item is readable when it is the user's or its ``visibility`` is ``team``; a sighting when it is
  the user's or of a team item; a vector when its item is readable. Only the owner deletes an item or its
  sightings, so ``memory forget`` and ``redact --apply`` never reach another user's rows.

``usage`` (token counts and costs, no text), ``lessons`` (redacted, the shared knowledge a team reviews),
``state_values`` and ``scheduler_jobs`` stay readable by every member: team statistics and the team-wide
jobs need them. The table owner (the admin who ran ``headroom db upgrade``) and superusers bypass the
policies, as PostgreSQL does: a single developer connecting as the owner sees everything, as on SQLite.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from headroom.memory.db import Database

#: Tables whose rows only their owner may see.
OWNER_ONLY = (
    "sessions",
    "events",
    "tool_calls",
    "proxy_requests",
    "block_memo",
    "source_files",
    "ingest_issues",
)
_ME = "headroom_user()"

SETUP = (
    "CREATE TABLE IF NOT EXISTS team_members (role name PRIMARY KEY, user_id varchar(64) NOT NULL UNIQUE, "
    "created_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'))",
    # STABLE: evaluated once per statement, not per row.
    "CREATE OR REPLACE FUNCTION headroom_user() RETURNS text LANGUAGE sql STABLE AS "
    "$$ SELECT user_id::text FROM team_members WHERE role = current_user $$",
)


def policies() -> list[str]:
    """The statements that enable row-level security and create the policies (idempotent with DROP first)."""
    out: list[str] = []
    for table in OWNER_ONLY:
        out += [
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"DROP POLICY IF EXISTS owner_only ON {table}",
            f"CREATE POLICY owner_only ON {table} USING (user_id = {_ME}) WITH CHECK (user_id = {_ME})",
        ]
    readable = f"(visibility = 'team' OR user_id = {_ME})"
    out += [
        "ALTER TABLE memory_items ENABLE ROW LEVEL SECURITY",
        *(
            f"DROP POLICY IF EXISTS {p} ON memory_items"
            for p in ("items_read", "items_add", "items_change", "items_drop")
        ),
        f"CREATE POLICY items_read ON memory_items FOR SELECT USING {readable}",
        f"CREATE POLICY items_add ON memory_items FOR INSERT WITH CHECK (user_id = {_ME})",
        f"CREATE POLICY items_change ON memory_items FOR UPDATE USING {readable} WITH CHECK {readable}",
        f"CREATE POLICY items_drop ON memory_items FOR DELETE USING (user_id = {_ME})",
        "ALTER TABLE memory_sightings ENABLE ROW LEVEL SECURITY",
        *(f"DROP POLICY IF EXISTS {p} ON memory_sightings" for p in ("sightings_read", "sightings_own")),
        "CREATE POLICY sightings_read ON memory_sightings FOR SELECT USING "
        f"(user_id = {_ME} OR item_id IN (SELECT id FROM memory_items WHERE visibility = 'team'))",
        # PERMISSIVE policies are OR-ed per command: writes need the row to be the user's.
        f"CREATE POLICY sightings_own ON memory_sightings FOR ALL USING (user_id = {_ME}) WITH CHECK (user_id = {_ME})",
        "ALTER TABLE memory_vectors ENABLE ROW LEVEL SECURITY",
        "DROP POLICY IF EXISTS vectors_of_readable ON memory_vectors",
        # Subject to memory_items' own policy: a vector is as readable as its item (derived data: whoever may
        # read the item may embed it again).
        "CREATE POLICY vectors_of_readable ON memory_vectors USING (item_id IN (SELECT id FROM memory_items)) "
        "WITH CHECK (item_id IN (SELECT id FROM memory_items))",
    ]
    return out


def install(conn: Connection) -> None:
    """Create the members table, ``headroom_user()`` and the policies (revision 0009, PostgreSQL only)."""
    for statement in (*SETUP, *policies()):
        conn.execute(text(statement))


_ROLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.@-]{0,62}$")


def add_user(conn: Connection, user: str, *, role: str | None = None, password: str | None = None) -> str:
    """Create (or update) the login role for ``user`` with the grants a daemon needs; returns the role name.

    Members may read and write every table (the policies decide which rows), but not ``team_members`` or
    ``alembic_version`` beyond reading: they cannot change who they are, nor the schema.
    """
    role = role or user
    if not _ROLE.match(role):
        raise ValueError(f"not a usable role name: {role!r} (letters, digits, _ . @ -; up to 63 characters)")
    if not user or len(user) > 64:
        raise ValueError("the user id must be 1 to 64 characters")
    quoted = '"' + role + '"'
    exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first() is not None
    if not exists:
        conn.execute(text(f"CREATE ROLE {quoted} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS"))
    if password is not None:
        # The password as a literal (roles take no bind parameters); quotes doubled.
        conn.execute(text(f"ALTER ROLE {quoted} PASSWORD '" + password.replace("'", "''") + "'"))
    database = conn.execute(text("SELECT current_database()")).scalar_one()
    for statement in (
        f'GRANT CONNECT ON DATABASE "{database}" TO {quoted}',
        f"GRANT USAGE ON SCHEMA public TO {quoted}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}",
        f"REVOKE INSERT, UPDATE, DELETE ON team_members, alembic_version FROM {quoted}",
    ):
        conn.execute(text(statement))
    conn.execute(
        text(
            "INSERT INTO team_members (role, user_id) VALUES (:r, :u) "
            "ON CONFLICT (role) DO UPDATE SET user_id = EXCLUDED.user_id"
        ),
        {"r": role, "u": user},
    )
    return role


def member_user(conn: Connection) -> str | None:
    """The user id the connected role is mapped to; None for the owner or an unmapped role (no policies bind)."""
    try:
        with conn.begin_nested():
            return conn.execute(text("SELECT headroom_user()")).scalar()
    except Exception:  # before revision 0009 there is no such function
        return None


def is_team_database(db: Database) -> bool:
    """A PostgreSQL database with team members (roles made by ``headroom team add-user``): shared by several
    developers, so what reaches everyone (a repository's shared files) goes through review."""
    if db.is_sqlite:
        return False
    try:
        with db.engine.connect() as conn:
            return conn.execute(text("SELECT EXISTS (SELECT 1 FROM team_members)")).scalar() is True
    except DBAPIError:  # before revision 0009: no members table
        return False
