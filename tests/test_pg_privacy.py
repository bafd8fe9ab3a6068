"""Private by default on a real PostgreSQL: two developers' roles, row-level security, and the commands.

Alice ingests a real Claude log (a prompt about payroll, a tool output holding a token) and saves a private
note, a team note and a repository file read; Bob connects as his own role. Bob reads none of Alice's private
rows, by the commands or by raw SQL, and his forget / redact act on nothing of hers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from headroom.daemon.cli import cli
from headroom.memory.api import Memory
from headroom.memory.db import open_database
from headroom.memory.errors import DatabaseError
from tests.helpers import CWD, claude_record, claude_tree, point_agents_at
from tests.pg import act_as, run_ok

pytestmark = [pytest.mark.pg, pytest.mark.slow]

TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


def _alice_writes(pg_team: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    act_as(monkeypatch, "alice", pg_team["alice"])
    log = claude_tree(tmp_path / "claude-a" / "projects")
    lines = [
        claude_record("prompt", 0, text="draft the payroll migration plan for billing"),
        claude_record("tool_use", 1, command="cat secrets.env"),
        claude_record("tool_result", 2, call=1, output=f"GITHUB_TOKEN={TOKEN}\npayroll ready"),
        claude_record("text", 3),
    ]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    point_agents_at(monkeypatch, tmp_path / "a", tmp_path / "claude-a", tmp_path / "none", tmp_path / "none")
    run_ok("ingest")
    run_ok("memory", "search", "payroll", "--text-only", "--all-projects")  # catches up and feeds the memory
    private = json.loads(run_ok("memory", "save", "alice private note about payroll", "-p", CWD, "--json").output)
    shared = json.loads(run_ok("memory", "save", "release with make release", "--team", "-p", CWD, "--json").output)
    db = open_database(pg_team["alice"])
    try:
        read = Memory(db).put("def app():\n    return 42\n", "file_read", project=CWD, path=f"{CWD}/src/app.py")
    finally:
        db.close()
    assert read.item_id is not None
    return {"private": private["id"], "team": shared["id"], "read": read.item_id}


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def test_bob_cannot_read_alices_private_rows_by_raw_sql(
    pg_team: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _alice_writes(pg_team, tmp_path, monkeypatch)
    owner = create_engine(pg_team["owner"])
    bob = create_engine(pg_team["bob"])
    try:
        # Alice's transcript is in the database, and its tool output was redacted on write (issue 14).
        assert _count(owner, "SELECT count(*) FROM sessions WHERE user_id = 'alice'") == 1
        with owner.connect() as conn:
            outputs = " ".join(r[0] or "" for r in conn.execute(text("SELECT output FROM tool_calls")))
            contents = " ".join(r[0] for r in conn.execute(text("SELECT content FROM memory_items")))
        assert "payroll ready" in outputs and TOKEN not in outputs and TOKEN not in contents
        assert _count(owner, "SELECT count(*) FROM memory_items WHERE content LIKE '%payroll%'") >= 2

        for table in ("sessions", "events", "tool_calls", "source_files"):
            assert _count(bob, f"SELECT count(*) FROM {table}") == 0, table
        assert _count(bob, "SELECT count(*) FROM memory_items WHERE content LIKE '%payroll%'") == 0
        with bob.connect() as conn:
            seen = {r[0] for r in conn.execute(text("SELECT id FROM memory_items"))}
            # A custom setting is no way in: the policies follow the role, not a variable the client sets.
            conn.execute(text("SELECT set_config('headroom.user', 'alice', false)"))
            assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 0
        assert seen == {ids["team"], ids["read"]}
        assert _count(bob, "SELECT count(*) FROM memory_vectors") == 0  # nothing embedded here; readable anyway
        with bob.connect() as conn:
            sightings = conn.execute(text("SELECT DISTINCT item_id FROM memory_sightings")).scalars().all()
        assert set(sightings) == {ids["team"], ids["read"]}
        for sql in (
            "UPDATE team_members SET user_id = 'alice' WHERE role = 'bob'",
            "SET ROLE alice",
            "DELETE FROM alembic_version",
        ):
            with bob.connect() as conn, pytest.raises(DBAPIError):
                conn.execute(text(sql))
        with bob.begin() as conn:  # deletes reach nothing of Alice's, not even her team items
            assert conn.execute(text("DELETE FROM memory_items")).rowcount == 0
            assert conn.execute(text("DELETE FROM sessions")).rowcount == 0
    finally:
        owner.dispose()
        bob.dispose()


def test_commands_act_only_within_what_bob_owns(
    pg_team: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _alice_writes(pg_team, tmp_path, monkeypatch)
    owner = create_engine(pg_team["owner"])
    with owner.begin() as conn:  # a secret today's rules would catch, stored before they existed
        conn.execute(
            text("UPDATE memory_items SET content = content || ' ' || :t WHERE id IN (:a, :b)"),
            {"t": TOKEN, "a": ids["private"], "b": ids["team"]},
        )
    act_as(monkeypatch, "bob", pg_team["bob"])
    point_agents_at(monkeypatch, tmp_path / "b", tmp_path / "none", tmp_path / "none", tmp_path / "none")
    mine = json.loads(run_ok("memory", "save", "bob private note about payroll", "-p", CWD, "--json").output)["id"]
    found = json.loads(run_ok("memory", "search", "payroll", "--all-projects", "--text-only", "--json").output)
    assert [h["id"] for h in found["hits"]] == [mine]
    found = json.loads(run_ok("memory", "search", "release", "-p", CWD, "--text-only", "--json").output)
    assert [h["id"] for h in found["hits"]] == [ids["team"]]
    sessions = json.loads(run_ok("sessions", "--json").output)
    assert sessions == [] or all(s.get("user", "bob") == "bob" for s in sessions)

    db = open_database(pg_team["bob"])
    try:
        memory = Memory(db)
        assert memory.get(ids["private"]) is None and memory.get(ids["team"]) is not None
        assert memory.forget([ids["private"], ids["team"], ids["read"]]) == 0
        scan = memory.store.redact_scan(apply=True)
        assert ids["team"] not in scan["ids"] and ids["private"] not in scan["ids"]
    finally:
        db.close()
    assert _count(owner, f"SELECT count(*) FROM memory_items WHERE id IN ({ids['private']}, {ids['team']})") == 2
    assert _count(owner, f"SELECT count(*) FROM memory_items WHERE content LIKE '%{TOKEN}%'") == 2

    act_as(monkeypatch, "alice", pg_team["alice"])
    db = open_database(pg_team["alice"])
    try:
        scan = Memory(db).store.redact_scan(apply=True)
        assert {ids["private"], ids["team"]} <= set(scan["ids"])
    finally:
        db.close()
    assert _count(owner, f"SELECT count(*) FROM memory_items WHERE content LIKE '%{TOKEN}%'") == 0
    owner.dispose()


def test_a_role_used_with_another_users_identity_is_refused_clearly(
    pg_team: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    act_as(monkeypatch, "mallory", pg_team["bob"])
    with pytest.raises(DatabaseError, match="belongs to team user 'bob'"):
        open_database(pg_team["bob"])


def test_add_user_refuses_bad_names_and_sqlite(
    pg_team: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    act_as(monkeypatch, "admin", pg_team["owner"])
    result = CliRunner().invoke(cli, ["team", "add-user", 'x"; DROP TABLE sessions; --'])
    assert result.exit_code == 1 and "not a usable role name" in result.output
    monkeypatch.setenv("HEADROOM_DATABASE_URL", f"sqlite:///{tmp_path / 'one.db'}")
    result = CliRunner().invoke(cli, ["team", "add-user", "carol"])
    assert result.exit_code == 1 and "PostgreSQL" in result.output
