"""row-level security for the rest of the shared tables: usage, state values, lessons, scheduler jobs (issue 17)

Both backends: ``scheduler_jobs.user_id`` (apscheduler writes only its three columns, so the value comes from a
server default: ``''`` on SQLite, the connected member's user id on PostgreSQL).

PostgreSQL only: the policies of :func:`headroom.memory.rls.shared_table_policies` and the function
``headroom_join_lessons`` (see :mod:`headroom.memory.rls`). Jobs stored before this revision get the user of
their machine (the machine's sessions or cursors say whose it is); a job of a machine with neither stays the
owner's, and its daemon registers its jobs again at its next start.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 01:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PG_DEFAULT = "coalesce(headroom_user(), '')"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        with op.batch_alter_table("scheduler_jobs", schema=None) as batch_op:
            batch_op.add_column(sa.Column("user_id", sa.String(length=64), server_default="", nullable=False))
        return
    from headroom.memory import rls

    op.execute(f"ALTER TABLE scheduler_jobs ADD COLUMN user_id varchar(64) NOT NULL DEFAULT {PG_DEFAULT}")
    op.execute(
        "UPDATE scheduler_jobs AS j SET user_id = o.user_id FROM "
        "(SELECT DISTINCT ON (machine_id) machine_id, user_id FROM "
        "(SELECT machine_id, user_id FROM sessions UNION ALL SELECT machine_id, user_id FROM state_values) AS a "
        "WHERE machine_id <> '' AND user_id <> '' ORDER BY machine_id, user_id) AS o "
        "WHERE split_part(j.id, '/', 1) = o.machine_id"
    )
    for statement in rls.shared_table_policies():
        op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        from headroom.memory import rls

        for table in rls.SHARED_TABLES:
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        for statement in rls.shared_table_policies():
            if statement.startswith("CREATE POLICY"):
                name, table = statement.split()[2], statement.split()[4]
                op.execute(f"DROP POLICY IF EXISTS {name} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS headroom_join_lessons(text[])")
    with op.batch_alter_table("scheduler_jobs", schema=None) as batch_op:
        batch_op.drop_column("user_id")
