"""Row-level security of the tables revision 0012 covers, on a real PostgreSQL with two members' roles.

Alice ingests a real Claude log (usage rows), keeps a cursor, mines a lesson of her own and has one accepted for
the team, and her daemon's scheduler stores its jobs; Bob connects as his own role. Bob reads none of her usage,
cursors, private lessons or jobs, reads the accepted lesson, and a lesson both mine meets in one row. The owner's
``memory redact --scan`` cleans only the owner's rows.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from headroom.learn.lessons import sync
from headroom.learn.mining import LessonDraft
from headroom.memory import identity
from headroom.memory.db import open_database
from headroom.memory.store import set_state
from tests.helpers import SESSION, claude_record, claude_tree, point_agents_at
from tests.pg import act_as, run_ok

pytestmark = [pytest.mark.pg, pytest.mark.slow]

TOKEN = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"


def _draft(key: str, text_: str) -> LessonDraft:
    now = datetime(2026, 12, 1, 12, 0)
    return LessonDraft(
        key=key, project="git:github.com/acme/shop", scope="project", kind="command", signature=f"sig {key}",
        text=text_, names=(), evidence=(), sessions=2, count=2, first_seen=now, last_seen=now,
        corrected_by_user=False,
    )  # fmt: skip


def _ingest(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, user: str, url: str, output: str) -> None:
    act_as(monkeypatch, user, url)
    session = SESSION[: -len(user)] + "".join(f"{ord(c) % 10}" for c in user)  # each user's own session id
    log = claude_tree(tmp_path / f"claude-{user}" / "projects", session)
    lines = [
        claude_record("prompt", 0, text=f"{user} asks about payroll"),
        claude_record("tool_use", 1, command="cat notes.txt"),
        claude_record("tool_result", 2, call=1, output=output),
        claude_record("text", 3),
    ]
    body = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)  # as Claude writes it
    log.write_text(body.replace(SESSION, session).replace('"msg_', f'"msg_{user}_').replace('"req_', f'"req_{user}_'))
    none = tmp_path / "none"
    point_agents_at(monkeypatch, tmp_path / user, tmp_path / f"claude-{user}", none, none)
    run_ok("ingest")


def _rows(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def test_a_member_reads_only_its_usage_state_jobs_and_lessons(
    pg_team: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apscheduler.triggers.interval import IntervalTrigger

    from headroom.daemon.scheduler import Scheduler

    _ingest(monkeypatch, tmp_path, "alice", pg_team["alice"], "payroll ready")
    db = open_database(pg_team["alice"])
    try:
        with db.transaction() as s:
            set_state(s, "feed.cursor", "41", identity.current_machine())
        sync(db, [_draft("k-private", "alice's own lesson"), _draft("k-team", "run make test before pushing")])
        scheduler = Scheduler(db)
        scheduler.add("ingest", lambda: None, IntervalTrigger(hours=1))
        scheduler.start()
        scheduler.stop()
    finally:
        db.close()
    owner, alice, bob = (create_engine(pg_team[u]) for u in ("owner", "alice", "bob"))
    try:
        with owner.begin() as conn:  # a reviewer accepted one of them for the team
            conn.execute(text("UPDATE lessons SET team_status = 'accepted' WHERE key = 'k-team'"))
        assert _rows(owner, "SELECT DISTINCT user_id FROM usage") == [("alice",)]
        assert _rows(alice, "SELECT id FROM scheduler_jobs") == [("alice-laptop/ingest",)]
        assert _rows(owner, "SELECT user_id FROM scheduler_jobs") == [("alice",)]  # filled by the server
        for table in ("usage", "scheduler_jobs"):
            assert _rows(bob, f"SELECT count(*) FROM {table}") == [(0,)], table
        assert _rows(bob, "SELECT count(*) FROM state_values WHERE machine_id <> ''") == [(0,)]
        assert _rows(bob, "SELECT key FROM lessons ORDER BY key") == [("k-team",)]
        assert _rows(alice, "SELECT key FROM lessons ORDER BY key") == [("k-private",), ("k-team",)]
        with bob.begin() as conn:  # nothing of hers to change or remove either
            assert conn.execute(text("UPDATE usage SET input_tokens = 0")).rowcount == 0
            assert conn.execute(text("DELETE FROM scheduler_jobs")).rowcount == 0
            assert conn.execute(text("DELETE FROM lessons")).rowcount == 0
            assert conn.execute(text("UPDATE state_values SET value = 'x' WHERE machine_id <> ''")).rowcount == 0
        for sql in (  # nor a row in her name: a job planted in her machine's rows would be code her daemon runs
            "INSERT INTO scheduler_jobs (id, job_state, user_id) VALUES ('alice-laptop/x', '\\x00', 'alice')",
            "INSERT INTO lessons (key, project, scope, kind, signature, text, names, evidence, status, sessions, "
            "count, corrected_by_user, created_at, updated_at, user_id, machine_id) VALUES ('k-x', '', 'project', "
            "'c', 's', 't', '[]', '[]', 'proposed', 0, 0, false, now(), now(), 'alice', 'm')",
        ):
            with bob.begin() as conn, pytest.raises(DBAPIError):
                conn.execute(text(sql))
        # A member's stats --by user: its own figures only (the team-wide view is the owner's).
        act_as(monkeypatch, "bob", pg_team["bob"])
        by_user = json.loads(run_ok("stats", "--by", "user", "--json").output)
        assert "alice" not in json.dumps(by_user)
    finally:
        for engine in (owner, alice, bob):
            engine.dispose()


def test_two_members_mining_one_lesson_meet_in_one_proposal(
    pg_team: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    act_as(monkeypatch, "alice", pg_team["alice"])
    db = open_database(pg_team["alice"])
    try:
        sync(db, [_draft("k-both", "run make test before pushing"), _draft("k-hers", "hers alone")])
    finally:
        db.close()
    act_as(monkeypatch, "bob", pg_team["bob"])
    db = open_database(pg_team["bob"])
    try:
        report = sync(db, [_draft("k-both", "run make test before pushing")])  # was a unique-key failure
    finally:
        db.close()
    assert report.new == 0
    owner = create_engine(pg_team["owner"])
    bob = create_engine(pg_team["bob"])
    try:
        rows = _rows(owner, "SELECT key, user_id, seen_by, team_status FROM lessons ORDER BY key")
        assert rows == [
            ("k-both", "alice", json.dumps(["alice", "bob"]), "pending"),
            ("k-hers", "alice", json.dumps(["alice"]), None),
        ]
        assert _rows(bob, "SELECT key FROM lessons") == [("k-both",)]  # he mined it too; hers alone stays hers
    finally:
        owner.dispose()
        bob.dispose()


def test_owner_redact_scan_cleans_only_the_owners_rows(
    pg_team: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ingest(monkeypatch, tmp_path, "alice", pg_team["alice"], "payroll ready")
    _ingest(monkeypatch, tmp_path, "admin", pg_team["owner"], "admin output")
    owner = create_engine(pg_team["owner"])
    try:
        with owner.begin() as conn:  # a secret today's rules catch, stored before they existed
            conn.execute(text("UPDATE tool_calls SET output = output || ' ' || :t"), {"t": TOKEN})
        act_as(monkeypatch, "admin", pg_team["owner"])
        report = json.loads(run_ok("memory", "redact", "--scan", "--json").output)
        assert report["stored"]["by_table"] == {"tool_calls": 1}
        leaked = _rows(owner, f"SELECT user_id FROM tool_calls WHERE output LIKE '%{TOKEN}%'")
        assert leaked == [("alice",)]  # hers is hers to clean
        act_as(monkeypatch, "alice", pg_team["alice"])
        run_ok("memory", "redact", "--scan")
        assert _rows(owner, f"SELECT count(*) FROM tool_calls WHERE output LIKE '%{TOKEN}%'") == [(0,)]
    finally:
        owner.dispose()


def test_team_adopt_gives_rows_from_before_identities_to_their_developer(
    pg_team: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database one developer used alone before revision 0008 holds rows of nobody (``''``): no member's role
    reads them, until the owner runs ``team adopt``; the member's daemon then goes on from them, reading
    nothing twice."""
    _ingest(monkeypatch, tmp_path, "alice", pg_team["alice"], "payroll ready")
    owner, alice, bob = (create_engine(pg_team[u]) for u in ("owner", "alice", "bob"))
    tables = ("source_files", "sessions", "events", "tool_calls", "usage")
    try:
        with owner.begin() as conn:  # the database as revision 0008 left a shared one
            conn.execute(text("INSERT INTO state_values (machine_id, user_id, name, value) VALUES "
                              "('alice-laptop', 'alice', 'memory_feed.tool_calls', '7')"))  # fmt: skip
            for table in (*tables, "state_values"):
                conn.execute(text(f"UPDATE {table} SET user_id = '', machine_id = ''"))
        before = {t: _rows(owner, f"SELECT count(*) FROM {t}")[0][0] for t in tables}
        assert all(before.values()) and _rows(alice, "SELECT count(*) FROM sessions") == [(0,)]

        act_as(monkeypatch, "admin", pg_team["owner"])
        dry = json.loads(run_ok("team", "adopt", "alice", "--machine", "alice-laptop", "--dry-run", "--json").output)
        assert dry["rows"]["sessions"] == before["sessions"] and dry["rows"]["state_values"] == 1
        assert _rows(owner, "SELECT count(*) FROM sessions WHERE user_id = ''") == [(before["sessions"],)]
        done = run_ok("team", "adopt", "alice", "--machine", "alice-laptop").output
        assert f"gave {sum(v for k, v in dry['rows'].items() if '.' not in k)} unowned row(s)" in done

        assert _rows(owner, "SELECT count(*) FROM sessions WHERE user_id = ''") == [(0,)]
        assert _rows(alice, "SELECT count(*) FROM sessions") == [(before["sessions"],)]
        assert _rows(alice, "SELECT value FROM state_values WHERE machine_id = 'alice-laptop'") == [("7",)]
        assert _rows(bob, "SELECT count(*) FROM sessions") == [(0,)]
        act_as(monkeypatch, "alice", pg_team["alice"])
        run_ok("ingest")  # her daemon meets the same log again: its source row is hers now, nothing is read twice
        assert {t: _rows(owner, f"SELECT count(*) FROM {t}")[0][0] for t in tables} == before
    finally:
        for engine in (owner, alice, bob):
            engine.dispose()


def test_team_adopt_needs_postgres() -> None:
    from click.testing import CliRunner

    from headroom.daemon.cli import cli

    result = CliRunner().invoke(cli, ["team", "adopt", "alice", "--machine", "m1"])
    assert result.exit_code == 1 and "PostgreSQL" in result.output
