"""a revision number on events and tool calls, so the memory feed sees a row the mirror rewrote (issue 17)

The mirror upserts: a prompt or a tool output can be rewritten after the memory feed has passed its row (a
live-tailed log whose later lines complete what an earlier one began). The feed follows row ids, so such a
rewrite was never fed (the team load test: 0.3 % of private items missing against a read of the finished
logs). An update that changes what the feed reads from a row stamps it with its machine's next revision; the
feed follows that number with a second cursor per machine. New rows, and rows written before, keep 0.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 03:05:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("events", "tool_calls")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("revision", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
            batch_op.create_index(f"ix_{table}_machine_id_revision", ["machine_id", "revision"], unique=False)


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_machine_id_revision")
            batch_op.drop_column("revision")
