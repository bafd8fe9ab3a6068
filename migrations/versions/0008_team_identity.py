"""team identity: user_id and machine_id on every row a machine writes (issue 17)

Many developers' daemons may share one PostgreSQL database: every table a machine writes gets ``user_id`` and
``machine_id`` (NOT NULL, ``''`` for rows of nobody in particular). What is a machine's own becomes keyed per
machine: a source file (the same path on two machines is two files), its ingest issues, and the small state
values (a machine's cursors; database-wide values keep machine ``''``). A memory sighting is also its user's:
two developers saving the same note are two sightings. ``sessions.repository`` names the repository a
session's project is a checkout of (its normalized git remote), so that one repository checked out at different
paths on different machines is one project; ``project_root`` stays the machine's own folder.

A SQLite database belongs to the one person whose machine upgrades it: its rows are stamped with that
identity. A shared PostgreSQL database is left at ``''``: the upgrading machine cannot tell whose rows they are.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 21:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNED = (
    "source_files",
    "ingest_issues",
    "sessions",
    "events",
    "tool_calls",
    "usage",
    "proxy_requests",
    "memory_items",
    "memory_sightings",
    "block_memo",
    "lessons",
)
#: State values that are one machine's (the feeds' and learn's cursors); the others stay database-wide.
MACHINE_STATE = ("memory_feed.tool_calls", "memory_feed.prompts", "learn.idle_checked_until")


def _column(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=64), server_default="", nullable=False)


def upgrade() -> None:
    for table in OWNED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(_column("user_id"))
            batch_op.add_column(_column("machine_id"))
    with op.batch_alter_table("state_values", schema=None, recreate="always") as batch_op:
        batch_op.add_column(_column("machine_id"))
        batch_op.add_column(_column("user_id"))
    with op.batch_alter_table("state_values", schema=None) as batch_op:
        batch_op.drop_constraint("pk_state_values", type_="primary")
        batch_op.create_primary_key("pk_state_values", ["machine_id", "name"])

    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        from headroom.memory.identity import current

        me = current()
        for table in OWNED:
            op.execute(sa.text(f"UPDATE {table} SET user_id = :u, machine_id = :m").bindparams(u=me.user, m=me.machine))
        op.execute(sa.text("UPDATE state_values SET user_id = :u").bindparams(u=me.user))
        names = ", ".join(f"'{n}'" for n in MACHINE_STATE)
        op.execute(sa.text(f"UPDATE state_values SET machine_id = :m WHERE name IN ({names})").bindparams(m=me.machine))
        from headroom.learn.projects import repository_of

        roots = bind.execute(sa.text("SELECT DISTINCT project_root FROM sessions WHERE project_root IS NOT NULL"))
        for (root,) in list(roots):
            repository = repository_of(root)
            if repository:
                op.execute(
                    sa.text("UPDATE sessions SET repository = :r WHERE project_root = :p").bindparams(
                        r=repository, p=root
                    )
                )

    with op.batch_alter_table("source_files", schema=None) as batch_op:
        batch_op.drop_constraint("uq_source_files_path", type_="unique")
        batch_op.drop_index("ix_source_files_device_inode")
        batch_op.create_unique_constraint(batch_op.f("uq_source_files_machine_id_path"), ["machine_id", "path"])
        batch_op.create_index(
            "ix_source_files_machine_id_device_inode", ["machine_id", "device", "inode"], unique=False
        )
    with op.batch_alter_table("ingest_issues", schema=None) as batch_op:
        batch_op.drop_constraint("uq_ingest_issues_path_kind", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_ingest_issues_machine_id_path_kind"), ["machine_id", "path", "kind"]
        )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("repository", sa.Text(), nullable=True))
        batch_op.create_index("ix_sessions_repository", ["repository"], unique=False)
        batch_op.create_index("ix_sessions_user_id", ["user_id"], unique=False)
        batch_op.create_index("ix_sessions_machine_id", ["machine_id"], unique=False)
    with op.batch_alter_table("usage", schema=None) as batch_op:
        batch_op.create_index("ix_usage_user_id_day", ["user_id", "day"], unique=False)
        batch_op.create_index("ix_usage_machine_id_day", ["machine_id", "day"], unique=False)
    with op.batch_alter_table("proxy_requests", schema=None) as batch_op:
        batch_op.create_index("ix_proxy_requests_user_id_day", ["user_id", "day"], unique=False)
        batch_op.create_index("ix_proxy_requests_machine_id_day", ["machine_id", "day"], unique=False)
    with op.batch_alter_table("memory_sightings", schema=None) as batch_op:
        batch_op.drop_constraint("uq_memory_sightings_item_id_agent_session_key_tool_call_key", type_="unique")
        batch_op.create_unique_constraint(
            "uq_memory_sightings_item_user_meeting", ["item_id", "user_id", "agent", "session_key", "tool_call_key"]
        )
        batch_op.create_index("ix_memory_sightings_user_id", ["user_id"], unique=False)
    with op.batch_alter_table("lessons", schema=None) as batch_op:
        batch_op.create_index("ix_lessons_user_id", ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lessons", schema=None) as batch_op:
        batch_op.drop_index("ix_lessons_user_id")
    with op.batch_alter_table("memory_sightings", schema=None) as batch_op:
        batch_op.drop_index("ix_memory_sightings_user_id")
        batch_op.drop_constraint("uq_memory_sightings_item_user_meeting", type_="unique")
        batch_op.create_unique_constraint(
            "uq_memory_sightings_item_id_agent_session_key_tool_call_key",
            ["item_id", "agent", "session_key", "tool_call_key"],
        )
    for table, names in (
        ("proxy_requests", ("ix_proxy_requests_user_id_day", "ix_proxy_requests_machine_id_day")),
        ("usage", ("ix_usage_user_id_day", "ix_usage_machine_id_day")),
        ("sessions", ("ix_sessions_user_id", "ix_sessions_machine_id", "ix_sessions_repository")),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in names:
                batch_op.drop_index(name)
            if table == "sessions":
                batch_op.drop_column("repository")
    with op.batch_alter_table("ingest_issues", schema=None) as batch_op:
        batch_op.drop_constraint("uq_ingest_issues_machine_id_path_kind", type_="unique")
        batch_op.create_unique_constraint("uq_ingest_issues_path_kind", ["path", "kind"])
    with op.batch_alter_table("source_files", schema=None) as batch_op:
        batch_op.drop_index("ix_source_files_machine_id_device_inode")
        batch_op.drop_constraint("uq_source_files_machine_id_path", type_="unique")
        batch_op.create_unique_constraint("uq_source_files_path", ["path"])
        batch_op.create_index("ix_source_files_device_inode", ["device", "inode"], unique=False)
    with op.batch_alter_table("state_values", schema=None) as batch_op:
        batch_op.drop_constraint("pk_state_values", type_="primary")
        batch_op.create_primary_key("pk_state_values", ["name"])
        batch_op.drop_column("user_id")
        batch_op.drop_column("machine_id")
    for table in OWNED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("machine_id")
            batch_op.drop_column("user_id")
