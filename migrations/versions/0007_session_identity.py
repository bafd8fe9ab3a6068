"""session identity: replayed Claude histories, bookkeeping-only files, projects (issue 15)

No schema change. Rows ingested before this revision are brought to what a fresh ingest gives now
(``headroom.daemon.ingest_upgrade.upgrade_identity``): Claude's ``agent-acompact-*`` / ``agent-aside_question-*``
files stop being sessions of their own and are read again into their parent session, files holding only
bookkeeping records stop being sessions, Gemini files in legacy sha256 folders are read again so that
their project resolves, and stored projects fold worktrees and Windows spellings into one.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 19:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from headroom.daemon.ingest_upgrade import upgrade_identity

    upgrade_identity(op.get_bind())


def downgrade() -> None:
    """Nothing to undo in the schema; the rows stay as the newer readers made them."""
