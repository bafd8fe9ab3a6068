"""tool-call fields: kind, command, path, failed, by_user, decided once by the readers

Existing rows get the same fields a fresh ingest would give them: each row is described again with the
readers' own functions (``headroom.learn.knowledge``: kind, command line, path, unwrapped output, the one
failure definition), a Codex code-mode command logged as its own call is folded into the ``exec`` script
that ran it (as the reader now does), and Codex files are read again from the start so that commands the
user typed after ``!`` (``source: "user_shell"``, not kept by the old reader) are marked ``by_user``. Rows
whose log file is gone keep what can be derived from the rows.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 19:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PAGE = 1000


def upgrade() -> None:
    with op.batch_alter_table("tool_calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("command", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("path", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("failed", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("by_user", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_index(batch_op.f("ix_tool_calls_day_failed"), ["day", "failed"], unique=False)
    from headroom.learn.mirror import backfill_tool_fields

    backfill_tool_fields(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("tool_calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tool_calls_day_failed"))
        batch_op.drop_column("by_user")
        batch_op.drop_column("failed")
        batch_op.drop_column("path")
        batch_op.drop_column("command")
        batch_op.drop_column("kind")
