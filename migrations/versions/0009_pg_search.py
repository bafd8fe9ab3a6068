"""team search and privacy: tsvector + GIN, pgvector HNSW, item visibility, row-level security (issue 17)

Both backends: ``memory_items.visibility`` ('private' by default, 'team' for what is shared with a team). Rows
from before are private, but for file reads (what a repository holds), which are team. Lessons get the team
review's columns (``seen_by``, ``team_status``, who decided and when).

SQLite keeps FTS5 (revision 0003) and its local vector index: nothing else changes there.

On PostgreSQL, roles per user and row-level security (:mod:`headroom.memory.rls`): the members table, the
``headroom_user()`` function and the policies.

On PostgreSQL, ``memory_items.search_tsv`` is a generated column: the 'simple' configuration (no stemming, no
stop words, so identifiers survive) over the title (weight A) and the first :data:`TSV_CHARS` characters of the
content, after the same split the query side makes (:func:`headroom.memory.pgsearch.split_words`): camelCase
is cut at each lower-to-upper step and everything that is not a letter or digit separates words, as FTS5's
unicode61 tokenizer does (``snake_case`` and ``a/b/c.py`` become words). A GIN index serves ``@@``.

When the server has the ``vector`` extension, ``memory_vectors.embedding`` holds each vector as a pgvector value
beside the float32 bytes; an HNSW index (cosine) per dimension is an expression index over
``embedding::vector(dim)``, partial on ``dim``, so models of different sizes can share the column. The index for
384 dimensions (the default model) is made here; another model's is made on first use
(:mod:`headroom.memory.pgvectors`). Vectors stored before this revision are copied over.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 21:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import text
from sqlalchemy.engine import Connection

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TSV_CHARS = 100_000  # a tsvector holds at most 1 MB; 100k characters of words stay far below it
DEFAULT_DIM = 384


def _norm(expr: str) -> str:
    camel = f"regexp_replace({expr}, '([[:lower:][:digit:]])([[:upper:]])', '\\1 \\2', 'g')"
    return f"regexp_replace({camel}, '[^[:alnum:]]+', ' ', 'g')"


_TITLE = "coalesce(title, '')"
TSV_EXPR = (
    f"setweight(to_tsvector('simple'::regconfig, {_norm(_TITLE)}), 'A') || "
    f"to_tsvector('simple'::regconfig, {_norm(f'left(content, {TSV_CHARS})')})"
)


def upgrade() -> None:
    with op.batch_alter_table("memory_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("visibility", sa.String(length=8), server_default="private", nullable=False))
    op.execute("UPDATE memory_items SET visibility = 'team' WHERE kind = 'file_read'")
    with op.batch_alter_table("lessons", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seen_by", sa.Text(), server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("team_status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("team_decided_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("team_decided_at", sa.DateTime(), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    from headroom.memory import rls

    rls.install(bind)
    op.execute(f"ALTER TABLE memory_items ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS ({TSV_EXPR}) STORED")
    op.execute("CREATE INDEX ix_memory_items_search_tsv ON memory_items USING gin (search_tsv)")
    available = bind.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).first()
    if available is None:
        return  # no pgvector on this server: every daemon keeps its local vector index
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute("ALTER TABLE memory_vectors ADD COLUMN embedding vector")
    _copy_vectors(bind)
    op.execute(
        f"CREATE INDEX ix_memory_vectors_hnsw_{DEFAULT_DIM} ON memory_vectors USING hnsw "
        f"((embedding::vector({DEFAULT_DIM})) vector_cosine_ops) WHERE dim = {DEFAULT_DIM}"
    )


def _copy_vectors(bind: Connection) -> None:
    """float32 bytes -> pgvector values, so vectors stored before this revision are searchable at once."""
    import numpy as np

    last = 0
    while True:
        rows = bind.execute(
            text("SELECT item_id, vector FROM memory_vectors WHERE item_id > :last ORDER BY item_id LIMIT 1000"),
            {"last": last},
        ).all()
        if not rows:
            return
        last = int(rows[-1][0])
        for item_id, raw in rows:
            values = np.frombuffer(bytes(raw), dtype="<f4")
            literal = "[" + ",".join(repr(float(v)) for v in values) + "]"
            bind.execute(
                text("UPDATE memory_vectors SET embedding = CAST(:v AS vector) WHERE item_id = :i"),
                {"v": literal, "i": int(item_id)},
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _downgrade_pg()
    with op.batch_alter_table("lessons", schema=None) as batch_op:
        for column in ("team_decided_at", "team_decided_by", "team_status", "seen_by"):
            batch_op.drop_column(column)
    with op.batch_alter_table("memory_items", schema=None) as batch_op:
        batch_op.drop_column("visibility")


def _downgrade_pg() -> None:
    from headroom.memory import rls

    for table in (*rls.OWNER_ONLY, "memory_items", "memory_sightings", "memory_vectors"):
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    for statement in rls.policies():
        if statement.startswith("CREATE POLICY"):
            name, table = statement.split()[2], statement.split()[4]
            op.execute(f"DROP POLICY IF EXISTS {name} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS headroom_user()")
    op.execute("DROP TABLE IF EXISTS team_members")
    op.execute("ALTER TABLE memory_vectors DROP COLUMN IF EXISTS embedding")  # drops its indexes too
    op.execute("DROP INDEX IF EXISTS ix_memory_items_search_tsv")
    op.execute("ALTER TABLE memory_items DROP COLUMN IF EXISTS search_tsv")
