"""Alembic environment: uses the connection handed over by ``open_database``, else the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.types import NullType

from headroom.memory.models import Base

PG_ONLY_COLUMNS = frozenset({"search_tsv", "embedding"})
PG_ONLY_INDEX_PREFIXES = ("ix_memory_items_search_tsv", "ix_memory_vectors_hnsw")

# pgvector's column type, unknown to SQLAlchemy: reflected as NullType instead of a warning (the column is left
# out of the comparison anyway).
ischema_names.setdefault("vector", NullType)

config = context.config
target_metadata = Base.metadata


def _include_name(name: str | None, type_: str, _parent: object) -> bool:
    """Leave what has no model out of model comparison: SQLite's FTS5 tables, PostgreSQL's search columns
    and their indexes (revision 0009) and the row-level security helpers."""
    if name is None:
        return True
    if type_ == "table" and (name.startswith("memory_fts") or name == "team_members"):
        return False
    if type_ == "column" and name in PG_ONLY_COLUMNS:
        return False
    return not (type_ == "index" and name.startswith(PG_ONLY_INDEX_PREFIXES))


def _configure(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things in place
        compare_type=True,
        include_name=_include_name,
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        render_as_batch=True,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
