"""The schema and the CLI's ingest on a real PostgreSQL: the migrations run and the session mirror fills."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from headroom.memory.db import Database

pytestmark = [pytest.mark.pg, pytest.mark.slow]


def test_migrations_reach_head_with_pgvector(pg_db: Database) -> None:
    with pg_db.engine.connect() as conn:
        tables = {r[0] for r in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))}
        assert {"sessions", "events", "tool_calls", "memory_items", "lessons"} <= tables
    assert pg_db.revision() is not None
    assert pg_db.engine.dialect.name == "postgresql"


def test_pg_server_has_pgvector(pg_db: Database) -> None:
    with pg_db.engine.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        version = conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar()
    assert version is not None and tuple(int(p) for p in version.split(".")[:2]) >= (0, 5)  # HNSW since 0.5


def test_ingest_real_logs_into_postgres(pg_url: str, real_logs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from headroom.daemon.cli import cli

    monkeypatch.setenv("HEADROOM_DATABASE_URL", pg_url)
    result = CliRunner().invoke(cli, ["ingest"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    from headroom.memory.db import open_database

    db = open_database(pg_url)
    try:
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM sessions")).scalar_one() > 0
    finally:
        db.close()
