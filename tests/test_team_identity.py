"""Who writes a row (issue 17): the identity, its config and environment, and the columns every write fills."""

from __future__ import annotations

import getpass
import stat
from pathlib import Path

import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import inspect, text

from headroom.daemon.config import load_config
from headroom.daemon.errors import ConfigError
from headroom.memory import identity
from headroom.memory.db import alembic_config, open_database
from headroom.memory.models import OWNED_TABLES, Base


def test_default_identity_is_the_login_and_a_stored_machine_id(isolated_home: Path) -> None:
    first = identity.current()
    assert first.user == getpass.getuser()
    stored = isolated_home / "state" / identity.MACHINE_ID_FILE
    assert stored.read_text().strip() == first.machine and len(first.machine) == 16
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    identity.reset()
    assert identity.current() == first  # generated once, then read back


def test_config_and_environment_set_the_identity(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "config.toml").write_text('[team]\nuser = "ada"\nmachine = "ada-laptop"\n')
    config = load_config()
    assert config.identity == identity.Identity("ada", "ada-laptop") == identity.current()
    monkeypatch.setenv("HEADROOM_USER", "grace")
    monkeypatch.setenv("HEADROOM_MACHINE", " grace-desk\t")
    assert load_config().identity == identity.Identity("grace", "grace-desk")  # env wins; control characters dropped


def test_a_wrong_team_setting_names_the_key(isolated_home: Path) -> None:
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "config.toml").write_text("[team]\nuser = 3\n")
    with pytest.raises(ConfigError, match=r"config.toml:2: 'team.user' must be a str"):
        load_config()
    (isolated_home / "config.toml").write_text('[team]\nname = "x"\n')
    with pytest.raises(ConfigError, match=r"unknown setting 'team.name'"):
        load_config()


def test_every_owned_table_has_the_columns(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'h.db'}")
    try:
        found = inspect(db.engine)
        for table in (*OWNED_TABLES, "state_values"):
            names = {c["name"] for c in found.get_columns(table)}
            assert {"user_id", "machine_id"} <= names, table
        owned = {t.name for t in Base.metadata.sorted_tables if "machine_id" in t.c and "user_id" in t.c}
        assert owned == {*OWNED_TABLES}
    finally:
        db.close()


def test_ingest_stamps_every_row_with_the_identity(real_logs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from headroom.daemon.cli import cli

    monkeypatch.setenv("HEADROOM_USER", "ada")
    monkeypatch.setenv("HEADROOM_MACHINE", "m-ada")
    result = CliRunner().invoke(cli, ["ingest"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    db = open_database(load_config().database_url)
    try:
        with db.engine.connect() as conn:
            for table in ("source_files", "sessions", "events", "tool_calls", "usage"):
                owners = conn.execute(text(f"SELECT DISTINCT user_id, machine_id FROM {table}")).all()
                assert owners == [("ada", "m-ada")], table
    finally:
        db.close()
    import json

    def listed(*options: str) -> list[dict[str, object]]:
        out = CliRunner().invoke(cli, ["sessions", "--json", "-n", "0", "--no-refresh", *options]).output
        return list(json.loads(out))

    everyone = listed()
    assert everyone and listed("--user", "ada") == everyone and listed("--machine", "m-ada") == everyone
    assert listed("--user", "bob") == [] and listed("--machine", "m-bob") == []
    assert {(r["user"], r["machine"]) for r in everyone} == {("ada", "m-ada")}


def test_an_old_sqlite_database_is_stamped_with_the_local_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADROOM_USER", "ada")
    monkeypatch.setenv("HEADROOM_MACHINE", "m-ada")
    identity.reset()
    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "0007")
    db = open_database(url, upgrade=False)
    with db.engine.begin() as conn:
        conn.execute(
            text(
                'INSERT INTO source_files (agent, path, device, inode, size, mtime_ns, "offset", records, missing,'
                " first_seen) VALUES ('claude', '/x.jsonl', 1, 2, 3, 4, 3, 1, 0, '2026-01-01')"
            )
        )
        conn.execute(text("INSERT INTO state_values (name, value) VALUES ('memory_feed.tool_calls', '7')"))
        conn.execute(text("INSERT INTO state_values (name, value) VALUES ('memory.generation', '3')"))
    db.close()
    db = open_database(url)
    try:
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT user_id, machine_id FROM source_files")).one() == ("ada", "m-ada")
            state = dict(conn.execute(text("SELECT name, machine_id FROM state_values")).all())
        assert state == {"memory_feed.tool_calls": "m-ada", "memory.generation": ""}
    finally:
        db.close()


def test_doctor_reports_this_machines_files_only(real_logs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from headroom.daemon.cli import cli

    monkeypatch.setenv("HEADROOM_MACHINE", "m-one")
    assert CliRunner().invoke(cli, ["ingest"], catch_exceptions=False).exit_code == 0

    def ingested() -> int:
        result = CliRunner().invoke(cli, ["doctor", "--json"], catch_exceptions=False)
        import json

        report = json.loads(result.output[result.output.index("{") :])
        return sum(a["files_ingested"] for a in report["agents"].values())

    assert ingested() > 0
    monkeypatch.setenv("HEADROOM_MACHINE", "m-other")  # another machine on the same database
    assert ingested() == 0
