"""proxy savings: the conversation, its project, the holdout mark and the watchdog's fallback per request (issue 18)

``conversation`` is a hash of the agent's own session id (or of its first user message), never the id
itself; ``holdout`` marks a request of a conversation sent uncompressed on purpose (the comparison group of
``stats --proxy``); ``fallback`` says why a conversation went lossless (``cache``: its cache reads dropped
after compression started; ``cost``: it cost more per token than without the proxy);
``tokens_removed_prefix`` is the part of the removed tokens that sat in messages sent before (they would
have been cache reads). Old rows keep NULL / 0: they count as treated rows of no known conversation.

Revision ID: 0011
Revises: 0007
Create Date: 2026-12-06 21:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("proxy_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("conversation", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("project", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("holdout", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("fallback", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("tokens_removed_prefix", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.create_index(batch_op.f("ix_proxy_requests_conversation"), ["conversation"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("proxy_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_proxy_requests_conversation"))
        batch_op.drop_column("tokens_removed_prefix")
        batch_op.drop_column("fallback")
        batch_op.drop_column("holdout")
        batch_op.drop_column("project")
        batch_op.drop_column("conversation")
