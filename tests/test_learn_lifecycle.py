"""Lessons in the DB and in the agents' files: sync, write, activate, review, report, undo, and the schedule."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from headroom.daemon.cli import cli
from headroom.daemon.config import load_config
from headroom.daemon.learn_service import LearnJobs, idle_projects, journal_for, learn_projects
from headroom.daemon.scheduler import Scheduler
from headroom.learn import apply as learn_apply
from headroom.learn import lessons as learn_lessons
from headroom.learn.apply import run_learn
from headroom.learn.journal import Journal
from headroom.learn.lessons import activate, report, review, sync
from headroom.learn.mining import Evidence, LessonDraft
from headroom.memory.db import Database, open_database
from headroom.memory.models import LessonRow, SessionRow, ToolCallRow
from headroom.memory.store import utcnow

pytestmark = pytest.mark.both_backends  # each test runs on SQLite and on PostgreSQL (marked pg, slow)

NOW = datetime(2026, 11, 21, 12, 0)


def draft(project: str, signature: str, text: str, *, sessions: int = 2, names: tuple[str, ...] = ()) -> LessonDraft:
    evidence = tuple(
        Evidence(agent, f"s{i}", NOW - timedelta(days=i), f"cmd {i}", "error: boom")
        for i, agent in enumerate(["claude", "codex"][:sessions])
    )
    return LessonDraft(
        key=f"k-{signature}",
        project=project,
        scope="project" if project else "environment",
        kind="tool_error",
        signature=signature,
        text=text,
        names=names,
        evidence=evidence,
        sessions=sessions,
        count=sessions,
        first_seen=NOW - timedelta(days=3),
        last_seen=NOW - timedelta(days=1),
        corrected_by_user=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "shop"
    folder.mkdir()
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    (folder / "logs").mkdir()
    return folder


def add_sessions(db: Database, project: Path, agents: list[str], start: datetime = NOW) -> None:
    with db.transaction() as s:
        for i, agent in enumerate(agents):
            s.add(
                SessionRow(
                    agent=agent,
                    key=f"{agent}-{start.isoformat()}-{i}",
                    cwd=str(project),
                    project_root=str(project),
                    started_at=start + timedelta(minutes=i),
                    ended_at=start + timedelta(minutes=i + 1),
                )
            )


def test_sync_keeps_one_row_per_key_and_retired_stays_retired(db: Database) -> None:
    d = draft("/p", "path:log/server.log", "Server logs are in `logs/`, not `log/`.")
    assert sync(db, [d], now=NOW).new == 1
    assert sync(db, [d], now=NOW).unchanged == 1
    assert sync(db, [draft("/p", "path:log/server.log", "Server logs are in `logs/`.", sessions=2)]).updated == 1
    learn_lessons.retire(db, [d.key], "by hand")
    sync(db, [d], now=NOW)
    with db.sessions() as s:
        (row,) = s.execute(select(LessonRow)).scalars()
    assert row.status == "retired" and row.retired_reason == "by hand"


def test_lesson_text_and_evidence_are_redacted(db: Database) -> None:
    secret = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    sync(db, [draft("/p", "cmd:curl", f"Pass the token from the env, not `curl -H 'Authorization: token {secret}'`.")])
    with db.sessions() as s:
        (row,) = s.execute(select(LessonRow)).scalars()
    assert secret not in row.text and secret not in row.evidence


def test_dry_run_writes_nothing_and_apply_respects_personal_and_shared(
    db: Database, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_sessions(db, project, ["claude", "codex"], start=utcnow() - timedelta(hours=1))
    lessons = [draft(str(project), "path:log", "Server logs are in `logs/`, not `log/`.", names=("logs",))]
    monkeypatch.setattr(learn_apply, "mine_db", lambda *a, **k: lessons)
    journal = Journal(tmp_path / "journal")
    dry = run_learn(db, str(project), journal=journal)
    assert {p.target.agent for p in dry.plans} == {"claude", "codex"} and not dry.written
    assert not (project / "CLAUDE.local.md").exists() and not (project / "AGENTS.md").exists()
    done = run_learn(db, str(project), journal=journal, apply_personal=True)
    assert [p.target.path.name for p in done.written] == ["CLAUDE.local.md"]  # AGENTS.md would be shared by git
    assert "Server logs are in `logs/`" in (project / "CLAUDE.local.md").read_text()
    assert not (project / "AGENTS.md").exists()
    assert "/CLAUDE.local.md" in (project / ".git" / "info" / "exclude").read_text().splitlines()
    with db.sessions() as s:
        (row,) = s.execute(select(LessonRow)).scalars()
    assert row.status == "active" and row.sessions_before == 2
    both = run_learn(db, str(project), journal=journal, apply_personal=True, apply_shared=True)
    assert [p.target.path.name for p in both.written] == ["AGENTS.md"]
    journal.undo()
    assert not (project / "AGENTS.md").exists()
    journal.undo()
    assert not (project / "CLAUDE.local.md").exists()


def test_review_retires_what_no_longer_fits(db: Database, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gone = draft(str(project), "path:old", "Build with `scripts/old-build.sh`.", names=("scripts/old-build.sh",))
    stale = draft(str(project), "cmd:stale", "Run `make lint` before committing.")
    useless = draft(str(project), "cmd:useless", "Use `python3`, not `python`.")
    sync(db, [gone, stale, useless], now=NOW)
    activate(db, [gone.key, stale.key, useless.key], now=NOW)
    with db.transaction() as s:
        s.execute(select(LessonRow))  # keep the session open for the update below
        for row in s.execute(select(LessonRow)).scalars():
            if row.key == stale.key:
                row.expires_at = NOW - timedelta(days=1)
            if row.key == useless.key:
                row.sessions_before, row.recurring_before = 10, 2
    add_sessions(db, project, ["claude", "codex", "gemini", "claude"], start=NOW + timedelta(days=1))
    monkeypatch.setattr(learn_lessons, "recurrences", lambda db, sig, project, **kw: 3 if sig == "cmd:useless" else 0)
    result = review(db, now=NOW + timedelta(days=2))
    assert result.retired == {"scripts/old-build.sh no longer exists": 1, "expired": 1, "did not help": 1}
    rows = {r["key"]: r for r in report(db)}
    assert rows[useless.key]["before"] == "2/10" and rows[useless.key]["after"] == "3/4"


def test_a_lesson_that_helps_stays(db: Database, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helpful = draft(str(project), "cmd:helpful", "Run the tests with `python3 -m unittest -v`.")
    sync(db, [helpful], now=NOW)
    activate(db, [helpful.key], now=NOW)
    add_sessions(db, project, ["claude", "codex", "gemini"], start=NOW + timedelta(days=1))
    monkeypatch.setattr(learn_lessons, "recurrences", lambda *a, **k: 0)
    assert review(db, now=NOW + timedelta(days=2)).retired == {}
    assert report(db)[0]["status"] == "active" and report(db)[0]["after"] == "0/3"


def test_idle_sessions_are_learned_once(db: Database, project: Path) -> None:
    now = utcnow()
    add_sessions(db, project, ["claude"], start=now - timedelta(minutes=40))
    assert idle_projects(db, timedelta(minutes=15), now=now) == [str(project)]
    assert idle_projects(db, timedelta(minutes=15), now=now + timedelta(minutes=5)) == []  # the cursor moved


def test_the_scheduler_runs_its_jobs(db: Database, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config()
    add_sessions(db, project, ["claude"], start=utcnow() - timedelta(days=1))
    seen: list[list[str]] = []
    monkeypatch.setattr(
        "headroom.daemon.learn_service.learn_projects", lambda config, db, projects, **kw: seen.append(projects) or {}
    )
    jobs = LearnJobs(config, db)
    scheduler = Scheduler(db)
    jobs.register(scheduler)
    scheduler.start()
    try:
        assert set(scheduler.health()["jobs"]) == {"learn-idle", "learn-nightly"}
        scheduler.execute("learn-nightly")
    finally:
        scheduler.stop()
    assert seen == [[str(project)]] and "review" in jobs.last


def test_one_failing_project_does_not_stop_the_others(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(db: Database, project: str, **kw: object) -> object:
        raise RuntimeError("unreadable")

    monkeypatch.setattr("headroom.learn.apply.run_learn", boom)
    totals = learn_projects(load_config(), db, ["/a", "/b"])
    assert totals["failed"] == 2


def test_cli_dry_run_apply_report_undo(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config()
    config.paths.ensure()
    db = open_database(config.database_url)
    add_sessions(db, project, ["claude"])
    db.close()
    lessons = [draft(str(project), "path:log", "Server logs are in `logs/`, not `log/`.", names=("logs",))]
    monkeypatch.setattr(learn_apply, "mine_db", lambda *a, **k: lessons)
    runner = CliRunner()
    dry = runner.invoke(cli, ["learn", "-p", str(project)], catch_exceptions=False)
    assert dry.exit_code == 0 and "would change" in dry.output and "+- Server logs" in dry.output
    assert ": 1 lesson mined" in dry.output and "(would change; 1 lesson)" in dry.output  # not "1 lessons"
    assert not (project / "CLAUDE.local.md").exists()
    done = runner.invoke(cli, ["learn", "-p", str(project), "--apply", "--json"], catch_exceptions=False)
    files = json.loads(done.output)["files"]
    assert files[0]["written"] and (project / "CLAUDE.local.md").exists()
    rep = runner.invoke(cli, ["learn", "report", "--json"], catch_exceptions=False)
    assert json.loads(rep.output)[0]["status"] == "active"
    undo = runner.invoke(cli, ["learn", "undo"], catch_exceptions=False)
    assert "restored" in undo.output and not (project / "CLAUDE.local.md").exists()
    assert journal_for(config).entries()


def test_a_project_that_is_gone_is_skipped_not_written(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = tmp_path / "deleted-checkout"
    lessons = [draft(str(gone), "path:log", "Server logs are in `logs/`, not `log/`.")]
    monkeypatch.setattr(learn_apply, "mine_db", lambda *a, **k: lessons)
    run = run_learn(db, str(gone), journal=Journal(tmp_path / "j"), apply_personal=True, apply_shared=True)
    assert run.skipped and "not on this machine" in run.skipped[0] and not run.written
    assert [d.text for d in run.drafts] == ["Server logs are in `logs/`, not `log/`."]  # shown, with the reason
    assert report(db) == []  # nothing written, so nothing stored as proposed


def test_an_environment_lesson_goes_when_its_program_does(db: Database) -> None:
    real = draft("", "not-found:python", "Use `sh`, not `python`.", names=("sh",))
    fake = draft("", "not-found:pip", "Use `no-such-program-xyz`, not `pip`.", names=("no-such-program-xyz install",))
    sync(db, [real, fake], now=NOW)
    activate(db, [real.key, fake.key], now=NOW)
    assert review(db, now=NOW + timedelta(days=1)).retired == {"no-such-program-xyz is no longer installed": 1}


def test_the_daemon_writes_only_lessons_from_two_days_or_a_user_rule(
    db: Database, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_sessions(db, project, ["claude"])
    one_day = draft(str(project), "timeout", "Run `npm test` with a longer timeout.")
    two_days = replace(draft(str(project), "zsh-glob-brackets", "Quote paths with `[id]`."), days=2, auto_ok=True)
    rule = replace(
        draft(str(project), "rule:make", "Always run `make check`.", sessions=1), corrected_by_user=True, auto_ok=True
    )
    monkeypatch.setattr(learn_apply, "mine_db", lambda *a, **k: [one_day, two_days, rule])
    run_learn(db, str(project), journal=Journal(tmp_path / "j"), apply_personal=True, auto=True)
    text = (project / "CLAUDE.local.md").read_text(encoding="utf-8")
    assert "Quote paths" in text and "Always run `make check`." in text and "longer timeout" not in text
    # Asked by hand (`learn --apply`), the one-day lesson is written too.
    run_learn(db, str(project), journal=Journal(tmp_path / "j"), apply_personal=True)
    assert "longer timeout" in (project / "CLAUDE.local.md").read_text(encoding="utf-8")


def test_a_machine_fact_retires_once_the_program_ran(db: Database, project: Path) -> None:
    fact = replace(draft("", "not-found:python", "Use `python3`: `python` is not installed."), scope="machine")
    sync(db, [fact], now=NOW)
    activate(db, [fact.key], now=NOW)
    assert review(db, now=NOW + timedelta(hours=1)).retired == {}
    add_sessions(db, project, ["claude"], start=NOW)
    with db.transaction() as s:
        session = s.execute(select(SessionRow)).scalars().first()
        assert session is not None
        s.add(
            ToolCallRow(
                session_id=session.id,
                key="t1",
                name="Bash",
                kind="shell",
                command="python -V",
                status="ok",
                failed=False,
                started_at=NOW + timedelta(minutes=5),
                output="Python 3.12.1",
            )
        )
    assert review(db, now=NOW + timedelta(hours=2)).retired == {"python ran successfully since": 1}


def test_report_names_a_hash_only_gemini_project_briefly(database_url: str) -> None:
    """A legacy Gemini folder whose root no other log names stays a hash: the table shows its first 8 hex
    digits as unresolved, not a 71-character ``sha256:…`` (the JSON keeps the stored key)."""
    load_config().paths.ensure()
    db = open_database(database_url)
    hashed = "sha256:" + "80f4c1d2" * 8
    lesson = draft(hashed, "path:log", "Server logs are in `logs/`, not `log/`.")
    sync(db, [lesson], now=NOW)
    db.close()
    runner = CliRunner()
    table = runner.invoke(cli, ["learn", "report"], catch_exceptions=False, terminal_width=200)
    assert "(unresolved 80f4c1d2)" in table.output and "sha256:" not in table.output
    rows = json.loads(runner.invoke(cli, ["learn", "report", "--json"], catch_exceptions=False).output)
    assert rows[0]["project"] == hashed
