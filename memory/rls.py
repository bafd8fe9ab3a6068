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

Revision 0012 covers the rest (:func:`shared_table_policies`):

- ``usage``: only the owner's rows. Token counts carry no text, but each row says when a teammate worked, in
  which session, with which model: a member's ``stats --by user`` shows the member alone; the team-wide
  figures are the admin's (the owner role's) view, as on the dashboard of whoever runs as the owner.
- ``state_values``: a machine's cursors are its user's; the database-wide values (``machine_id = ''``: the
  memory's generation counter) are read and bumped by everyone.
- ``lessons``: a member reads the lessons it mined (its own rows, and rows of the same key mined first by a
  teammate, which list it in ``seen_by``) and those accepted for the team; it inserts only as itself and
  deletes only its own. Whether a teammate mined the same lesson is hidden from a plain query, so
  ``headroom_join_lessons(keys)`` (SECURITY DEFINER, run by each sync) adds the caller to ``seen_by`` of the
  existing rows of the keys it is about to write: two developers mining one lesson meet in one row (a
  team proposal) without either reading the other's other lessons.
- ``scheduler_jobs``: a ``user_id`` column filled by the server (``headroom_user()``) and owner-only rows. The
  daemon scopes its jobs to its machine by the id's prefix; the policy stops a member reading or writing (a
  pickled job is code to apscheduler) any other user's machine's jobs, and the owner's store reads only rows
  with an empty ``user_id``, so a member cannot plant a job in it either.

The table owner (the admin who ran ``headroom db upgrade``) and superusers bypass the
policies, as PostgreSQL does: a single developer connecting as the owner sees everything, as on SQLite.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

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


#: What a member may read of a lesson: its own, one a teammate mined too (listed in ``seen_by`` as a JSON
#: string, compared as text so a damaged value denies rather than errs), or one accepted for the team.
_LESSON_READABLE = f"(user_id = {_ME} OR position(to_json({_ME})::text in seen_by) > 0 OR team_status = 'accepted')"

JOIN_LESSONS = """
CREATE OR REPLACE FUNCTION headroom_join_lessons(keys text[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    -- Inside a SECURITY DEFINER function current_user is the function's owner: the caller is session_user.
    me text := (SELECT user_id::text FROM team_members WHERE role = session_user);
    r record;
    users jsonb;
    n integer := 0;
BEGIN
    IF me IS NULL THEN
        RETURN 0;  -- the owner sees every row already
    END IF;
    FOR r IN SELECT id, seen_by FROM lessons
             WHERE key = ANY(keys) AND user_id <> me AND position(to_json(me)::text in seen_by) = 0
             FOR UPDATE
    LOOP
        BEGIN
            users := r.seen_by::jsonb;
        EXCEPTION WHEN others THEN
            users := '[]'::jsonb;
        END;
        IF jsonb_typeof(users) <> 'array' THEN
            users := '[]'::jsonb;
        END IF;
        SELECT coalesce(jsonb_agg(u ORDER BY u), '[]'::jsonb) INTO users
          FROM (SELECT jsonb_array_elements_text(users) AS u UNION SELECT me) AS t;
        UPDATE lessons SET seen_by = users::text WHERE id = r.id;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$
"""


def shared_table_policies() -> list[str]:
    """Revision 0012: the policies of ``usage``, ``state_values``, ``lessons`` and ``scheduler_jobs`` (see the
    module doc), and the function that lets two members' syncs of one lesson meet."""
    lessons = ("lessons_read", "lessons_add", "lessons_change", "lessons_drop")
    return [
        "ALTER TABLE usage ENABLE ROW LEVEL SECURITY",
        "DROP POLICY IF EXISTS owner_only ON usage",
        f"CREATE POLICY owner_only ON usage USING (user_id = {_ME}) WITH CHECK (user_id = {_ME})",
        "ALTER TABLE state_values ENABLE ROW LEVEL SECURITY",
        "DROP POLICY IF EXISTS own_or_shared ON state_values",
        f"CREATE POLICY own_or_shared ON state_values USING (machine_id = '' OR user_id = {_ME}) "
        f"WITH CHECK (machine_id = '' OR user_id = {_ME})",
        "ALTER TABLE lessons ENABLE ROW LEVEL SECURITY",
        *(f"DROP POLICY IF EXISTS {p} ON lessons" for p in lessons),
        f"CREATE POLICY lessons_read ON lessons FOR SELECT USING {_LESSON_READABLE}",
        f"CREATE POLICY lessons_add ON lessons FOR INSERT WITH CHECK (user_id = {_ME})",
        f"CREATE POLICY lessons_change ON lessons FOR UPDATE USING {_LESSON_READABLE} WITH CHECK {_LESSON_READABLE}",
        f"CREATE POLICY lessons_drop ON lessons FOR DELETE USING (user_id = {_ME})",
        JOIN_LESSONS,
        "ALTER TABLE scheduler_jobs ENABLE ROW LEVEL SECURITY",
        "DROP POLICY IF EXISTS owner_only ON scheduler_jobs",
        f"CREATE POLICY owner_only ON scheduler_jobs USING (user_id = {_ME}) WITH CHECK (user_id = {_ME})",
    ]


#: The tables revision 0012 puts under row-level security.
SHARED_TABLES = ("usage", "state_values", "lessons", "scheduler_jobs")


def join_lessons(conn: Connection | Session, keys: list[str]) -> None:
    """Join the existing rows of ``keys`` that a teammate mined first (PostgreSQL at 0012; a no-op for the owner)."""
    if keys:
        conn.execute(text("SELECT headroom_join_lessons(CAST(:keys AS text[]))"), {"keys": keys})


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
