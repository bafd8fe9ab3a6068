"""``headroom db upgrade`` / ``db status``: a shared PostgreSQL is upgraded on purpose only, never by a client on
connect; a schema ahead of a client is used only inside the window the upgrade recorded. SQLite upgrades on open."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from headroom.daemon.cli import cli
from headroom.memory.db import MIN_CLIENT_KEY, alembic_config, open_database
from headroom.memory.errors import DatabaseNeedsUpgrade, DatabaseTooNew
from headroom.migrations import HEAD, MIN_CLIENT_REVISION


def _migrate_to(url: str, revision: str) -> None:
    """Put an empty database at an older revision, as an older headroom's upgrade left it."""
    from alembic import command

    engine = create_engine(url)
    try:
        cfg = alembic_config(url)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()


def _sql(url: str, statement: str, **params: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement), params)
    finally:
        engine.dispose()


def _previous(revision: str) -> str:
    return f"{int(revision) - 1:04d}"


@pytest.mark.pg
@pytest.mark.slow
def test_client_refuses_a_schema_behind_and_db_upgrade_fixes_it(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    older = _previous(HEAD)
    _migrate_to(pg_url, older)
    monkeypatch.setenv("HEADROOM_DATABASE_URL", pg_url)

    with pytest.raises(
        DatabaseNeedsUpgrade, match=rf"at revision {older}, this headroom needs {HEAD}: run `headroom db"
    ):
        open_database(pg_url)
    result = CliRunner().invoke(cli, ["sessions"])
    assert result.exit_code == 1
    assert "the team database" in result.output and "run `headroom db upgrade`" in result.output
    assert len(result.output.strip().splitlines()) == 1
    engine = create_engine(pg_url)  # the client changed nothing
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == older
    engine.dispose()

    status = CliRunner().invoke(cli, ["db", "status", "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["revision"] == older
    assert json.loads(status.output)["state"].startswith("behind")

    upgraded = CliRunner().invoke(cli, ["db", "upgrade", "--json"])
    assert upgraded.exit_code == 0, upgraded.output
    assert json.loads(upgraded.output) == {"before": older, "after": HEAD, "upgraded": True}
    again = CliRunner().invoke(cli, ["db", "upgrade"])
    assert again.exit_code == 0 and "nothing to do" in again.output

    db = open_database(pg_url)  # a client now connects
    try:
        assert db.revision() == HEAD
        with db.engine.connect() as conn:
            recorded = conn.execute(
                text("SELECT value FROM state_values WHERE machine_id = '' AND name = :n"), {"n": MIN_CLIENT_KEY}
            ).scalar()
        assert recorded == MIN_CLIENT_REVISION
    finally:
        db.close()
    assert CliRunner().invoke(cli, ["sessions"]).exit_code == 0


@pytest.mark.pg
@pytest.mark.slow
def test_schema_ahead_is_used_only_inside_the_recorded_window(pg_url: str) -> None:
    open_database(pg_url, shared_upgrade=True).close()
    _sql(pg_url, "UPDATE alembic_version SET version_num = '9001'")  # a newer headroom's upgrade

    _sql(pg_url, "UPDATE state_values SET value = :v WHERE machine_id = '' AND name = :n", v=HEAD, n=MIN_CLIENT_KEY)
    db = open_database(pg_url)  # inside the window: this client may go on
    try:
        assert db.revision() == "9001"
    finally:
        db.close()
    db = open_database(pg_url, shared_upgrade=True)  # an older admin's upgrade leaves a newer schema alone
    db.close()

    _sql(pg_url, "UPDATE state_values SET value = '9000' WHERE machine_id = '' AND name = :n", n=MIN_CLIENT_KEY)
    with pytest.raises(DatabaseTooNew, match="needs a client at revision 9000 or later"):
        open_database(pg_url)

    _sql(pg_url, "DELETE FROM state_values WHERE name = :n", n=MIN_CLIENT_KEY)  # no window recorded: refused
    with pytest.raises(DatabaseTooNew, match="written by a newer headroom"):
        open_database(pg_url)


@pytest.mark.pg
@pytest.mark.slow
def test_db_status_on_postgres(pg_server: object, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    open_database(pg_url, shared_upgrade=True).close()
    monkeypatch.setenv("HEADROOM_DATABASE_URL", pg_url)
    monkeypatch.setenv("HEADROOM_USER", "ada")
    result = CliRunner().invoke(cli, ["db", "status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["backend"] == "postgresql" and status["state"] == "current"
    assert status["revision"] == status["client_revision"] == HEAD
    assert status["min_client_revision"] == MIN_CLIENT_REVISION
    assert status["size_bytes"] > 1_000_000  # pg_database_size: a real database is megabytes
    assert status["user"] == "ada" and status["pool"]["pool_size"] + status["pool"]["max_overflow"] <= 5
    assert status["warnings"] == []

    with_password = pg_url.replace("postgres@", "postgres:s3cret@")  # the test server trusts its socket
    monkeypatch.setenv("HEADROOM_DATABASE_URL", with_password)
    shown = CliRunner().invoke(cli, ["db", "status"])
    assert shown.exit_code == 0, shown.output
    assert "s3cret" not in shown.output
    assert "warning: database_url holds a password" in shown.output and ".pgpass" in shown.output
    doctor = CliRunner().invoke(cli, ["doctor", "--json"])
    report = json.loads(doctor.output)
    assert report["database"]["size_bytes"] > 1_000_000
    assert [w for w in report["database"]["warnings"] if ".pgpass" in w], report["database"]
    assert "s3cret" not in doctor.output


@pytest.mark.pg
@pytest.mark.slow
def test_postgres_pool_is_small(pg_db: object) -> None:
    from headroom.memory.db import Database

    assert isinstance(pg_db, Database)
    pool = pg_db.engine.pool
    assert pool.size() == 2  # type: ignore[attr-defined]
    assert pool._max_overflow == 3  # type: ignore[attr-defined]


def test_sqlite_still_upgrades_on_open_and_db_commands_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    _migrate_to(url, _previous(HEAD))
    db = open_database(url)  # one person's file: upgraded on open, as before
    try:
        assert db.revision() == HEAD
    finally:
        db.close()
    monkeypatch.setenv("HEADROOM_DATABASE_URL", url)
    upgraded = CliRunner().invoke(cli, ["db", "upgrade"])
    assert upgraded.exit_code == 0 and "nothing to do" in upgraded.output, upgraded.output
    result = CliRunner().invoke(cli, ["db", "status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["backend"] == "sqlite" and status["state"] == "current" and status["pool"] is None
    assert status["size_bytes"] == (tmp_path / "one.db").stat().st_size + (
        (tmp_path / "one.db-wal").stat().st_size if (tmp_path / "one.db-wal").exists() else 0
    )


def test_db_upgrade_creates_a_new_sqlite_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADROOM_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    result = CliRunner().invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"from revision none to {HEAD}" in result.output


@pytest.mark.pg
@pytest.mark.slow
def test_daemon_does_not_upgrade_a_shared_schema(
    pg_url: str, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headroom.daemon.config import load_config
    from headroom.daemon.service import Service

    older = _previous(HEAD)
    _migrate_to(pg_url, older)
    monkeypatch.setenv("HEADROOM_DATABASE_URL", pg_url)
    with pytest.raises(DatabaseNeedsUpgrade, match="run `headroom db upgrade`"):
        Service(load_config()).run()
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == older
    engine.dispose()
