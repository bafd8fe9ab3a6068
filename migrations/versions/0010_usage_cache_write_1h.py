"""usage: the 1-hour part of Claude's cache writes, priced at its own rate (issue 18)

Claude logs its cache writes split into 5-minute and 1-hour writes (``cache_creation.ephemeral_1h_input_tokens``);
the 1-hour ones cost 2x the input rate instead of 1.25x, so a cost within 1 % of the bill needs the split.
``cache_creation_tokens`` keeps the whole (ccusage's figure); ``cache_write_1h_tokens`` is its 1-hour part.
Rows ingested before this revision keep 0 (their writes are priced at the 5-minute rate), as a re-read copy of
a call with the same totals never replaces the stored one.

The (day, agent) index becomes (day, agent, model): pricing groups usage by model too, and with the model in
the index that grouping stays an index scan (warm ``stats --by day`` as fast as before pricing).

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-06 21:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("usage", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cache_write_1h_tokens", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.drop_index("ix_usage_day_agent")
        batch_op.create_index("ix_usage_day_agent_model", ["day", "agent", "model"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("usage", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_day_agent_model")
        batch_op.create_index("ix_usage_day_agent", ["day", "agent"], unique=False)
        batch_op.drop_column("cache_write_1h_tokens")
