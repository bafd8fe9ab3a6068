"""Team lessons on a real PostgreSQL with two developers' roles: shared files only through `learn review`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, select, text

from headroom.daemon.cli import cli
from headroom.learn import apply as learn_apply
from headroom.learn.apply import run_learn
from headroom.learn.journal import Journal
from headroom.learn.lessons import sync
from headroom.memory import identity
from headroom.memory.api import Memory
from headroom.memory.db import Database, open_database
from headroom.memory.models import LessonRow
from tests.helpers import point_agents_at
from tests.pg import PgServer, act_as, run_ok
from tests.test_learn_lifecycle import NOW, add_sessions, draft

pytestmark = [pytest.mark.pg, pytest.mark.slow]


@pytest.fixture
def urls(
    pg_server: PgServer, pg_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    monkeypatch.setenv("HEADROOM_HOME", str(tmp_path / "hh"))
    none = tmp_path / "none"
    point_agents_at(monkeypatch, tmp_path, none / "claude", none / "codex", none / "gemini")
    act_as(monkeypatch, "admin", pg_db.url)
    for user in ("alice", "bob"):
        run_ok("team", "add-user", user)
    name = urlsplit(pg_db.url).path.lstrip("/")
    yield {"owner": pg_db.url, "alice": pg_server.url(name, "alice"), "bob": pg_server.url(name, "bob")}
    identity.reset()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    folder = tmp_path / "shop"
    folder.mkdir()
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    (folder / "logs").mkdir()
    return folder


def test_a_lesson_two_developers_learned_reaches_the_shared_file_only_when_accepted(
    urls: dict[str, str], repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = draft(str(repo), "path:log", "Server logs are in `logs/`, not `log/`.", names=("logs",))
    other = draft(str(repo), "cmd:make", "Run the tests with `make test`, not `pytest`.")
    monkeypatch.setattr(learn_apply, "mine_db", lambda *a, **k: [logs, other])

    act_as(monkeypatch, "alice", urls["alice"])
    db = open_database(urls["alice"])
    try:
        add_sessions(db, repo, ["claude", "codex"], start=NOW)
        done = run_learn(db, str(repo), journal=Journal(tmp_path / "ja"), apply_personal=True, apply_shared=True)
    finally:
        db.close()
    # Personal files stay automatic; the shared AGENTS.md gets nothing unreviewed on a team's database.
    assert [p.target.path.name for p in done.written] == ["CLAUDE.local.md"]
    assert "Server logs are in `logs/`" in (repo / "CLAUDE.local.md").read_text()
    assert not (repo / "AGENTS.md").exists()
    assert json.loads(run_ok("learn", "review", "--json").output) == []  # one developer: no proposal yet

    act_as(monkeypatch, "bob", urls["bob"])
    db = open_database(urls["bob"])
    try:
        add_sessions(db, repo, ["claude", "codex"], start=NOW + timedelta(days=1))
        sync(db, [logs, other])
    finally:
        db.close()
    pending = json.loads(run_ok("learn", "review", "--json").output)
    assert {p["key"] for p in pending} == {logs.key, other.key}
    assert all(p["seen_by"] == ["alice", "bob"] and p["team_status"] == "pending" for p in pending)
    assert pending[0]["evidence"] and "error" in pending[0]["evidence"][0]
    listing = run_ok("learn", "review").output
    assert "seen by alice, bob" in listing and logs.key[:10] in listing

    accepted = json.loads(run_ok("learn", "review", "--accept", logs.key[:8], "--json").output)
    assert accepted["team_status"] == "accepted" and accepted["written"] == [str(repo / "AGENTS.md")]
    shared = (repo / "AGENTS.md").read_text()
    assert "Server logs are in `logs/`" in shared and "make test" not in shared
    rejected = json.loads(run_ok("learn", "review", "--reject", other.key[:8], "--json").output)
    assert rejected == {"key": other.key, "team_status": "rejected", "written": []}
    assert json.loads(run_ok("learn", "review", "--json").output) == []
    decided = json.loads(run_ok("learn", "review", "--all", "--json").output)
    assert {p["team_status"] for p in decided} == {"accepted", "rejected"}

    # The accepted lesson is a team item of the memory: Alice finds it, though Bob saved it.
    act_as(monkeypatch, "alice", urls["alice"])
    db = open_database(urls["alice"])
    try:
        hits = Memory(db).search("server logs", project=str(repo)).hits
        assert [(h.item.kind, h.item.title) for h in hits][:1] == [
            ("lesson", "Server logs are in `logs/`, not `log/`.")
        ]
        run_learn(db, str(repo), journal=Journal(tmp_path / "ja"), apply_personal=True, apply_shared=True)
        shared = (repo / "AGENTS.md").read_text()
        assert "logs/" in shared and "make test" not in shared  # rejected: never in the shared file
        assert "make test" in (repo / "CLAUDE.local.md").read_text()  # her personal file has it regardless
    finally:
        db.close()
    owner = create_engine(urls["owner"])
    try:
        with owner.connect() as conn:
            decided_by = conn.execute(text("SELECT team_decided_by FROM lessons ORDER BY key")).scalars().all()
        assert decided_by == ["bob", "bob"]
    finally:
        owner.dispose()


def test_review_refuses_unknown_or_ambiguous_keys(urls: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    act_as(monkeypatch, "bob", urls["bob"])
    for args, message in (
        (["--accept", "abc"], "at least 4 characters"),
        (["--accept", "zzzzzz"], "no team proposal"),
        (["--accept", "abcd", "--reject", "abcd"], "not both"),
    ):
        result = CliRunner().invoke(cli, ["learn", "review", *args])
        assert result.exit_code == 1 and message in result.output, result.output


def test_one_developer_on_sqlite_never_gets_proposals(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'one.db'}")
    try:
        lesson = draft("/p", "path:log", "Server logs are in `logs/`.")
        sync(db, [lesson])
        sync(db, [lesson])
        with db.sessions() as s:
            row = s.execute(select(LessonRow)).scalar_one()
        assert row.team_status is None and len(json.loads(row.seen_by)) == 1
    finally:
        db.close()
