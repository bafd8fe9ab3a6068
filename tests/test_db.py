"""The database: created owner-only, upgraded on open (serialised), refused when newer than the code."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text

from headroom.memory.db import alembic_config, open_database
from headroom.memory.errors import DatabaseTooNew


def test_a_blank_database_is_created_private_and_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "data" / "headroom.db"
    db = open_database(f"sqlite:///{path}")
    try:
        (current,) = db.engine.connect().execute(text("select version_num from alembic_version")).one()
        assert current == db.revision()
        assert {"sessions", "events", "tool_calls", "usage", "source_files", "ingest_issues"} <= set(
            inspect(db.engine).get_table_names()
        )
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        with db.engine.connect() as conn:
            assert conn.execute(text("pragma journal_mode")).scalar() == "wal"
            assert conn.execute(text("pragma busy_timeout")).scalar() == 30000
    finally:
        db.close()


def test_a_database_from_a_newer_headroom_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    db = open_database(url)
    with db.engine.begin() as conn:
        conn.execute(text("update alembic_version set version_num = 'f00dfeed9999'"))
    db.close()
    with pytest.raises(DatabaseTooNew, match=r"f00dfeed9999.*newer headroom"):
        open_database(url)


def test_an_old_database_is_upgraded_on_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "base")  # an empty DB stamped at nothing, as a first install left it
    db = open_database(url)
    try:
        assert db.revision() is not None
    finally:
        db.close()


def _open_and_report(url: str, queue: multiprocessing.Queue[str]) -> None:
    db = open_database(url)
    queue.put(db.revision() or "")
    db.close()


def test_concurrent_first_opens_are_serialised(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[str] = ctx.Queue()
    workers = [ctx.Process(target=_open_and_report, args=(url, queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
        worker.close()
    revisions = {queue.get(timeout=5) for _ in workers}
    queue.close()
    queue.join_thread()
    assert len(revisions) == 1 and revisions != {""}


def test_models_and_migrations_agree(tmp_path: Path) -> None:
    """`alembic check`: the models have no change that a migration does not carry."""
    url = f"sqlite:///{tmp_path / 'check.db'}"
    open_database(url).close()
    command.check(alembic_config(url))


def test_the_head_constant_is_the_newest_migration(tmp_path: Path) -> None:
    from alembic.script import ScriptDirectory

    from headroom.migrations import HEAD

    assert ScriptDirectory.from_config(alembic_config(f"sqlite:///{tmp_path / 'x.db'}")).get_current_head() == HEAD
