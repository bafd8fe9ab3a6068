"""sessions: Gemini CLI's own "System: Please continue." is no prompt of the user's

Gemini CLI sends that text as a user message by itself (after an invalid stream, or when its next-speaker
check says the model should go on). The reader took it for a prompt: a turn in ``sessions`` and ``stats``,
and a user message for learn (twelve times in one real session). The reader now stores it as a meta event;
here the stored ones become meta events too and their sessions are marked stale, so the next ingestion pass
counts their turns again. No schema change; older clients can use the database as before.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 11:35:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONTINUE = "System: Please continue."

_sessions = sa.table("sessions", sa.column("id", sa.Integer), sa.column("agent"), sa.column("stale", sa.Boolean))
_events = sa.table(
    "events", sa.column("id", sa.Integer), sa.column("session_id", sa.Integer), sa.column("kind"), sa.column("text")
)


def upgrade() -> None:
    conn = op.get_bind()
    gemini = sa.select(_sessions.c.id).where(_sessions.c.agent == "gemini")
    harness = sa.and_(_events.c.kind == "user_prompt", _events.c.text == CONTINUE, _events.c.session_id.in_(gemini))
    touched = [sid for (sid,) in conn.execute(sa.select(_events.c.session_id).where(harness).distinct())]
    if not touched:
        return
    conn.execute(sa.update(_events).where(harness).values(kind="meta"))
    conn.execute(sa.update(_sessions).where(_sessions.c.id.in_(touched)).values(stale=True))


def downgrade() -> None:
    """Nothing to undo: a meta event is what a fresh read stores."""
