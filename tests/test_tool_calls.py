"""Tool calls decided once by the readers, stored, and read by stats, memory and learn (issue 15).

The fixture under tests/fixtures/tool_calls mirrors three real cases on all three agents: a command the
user typed after ``!`` (Codex ``user_shell``, Claude ``<bash-input>``), a grep/rg/diff that found nothing
(exit 1, no output), and Codex code mode (a JavaScript ``exec`` script and the ``exec_command`` it ran).
Everything goes through real ingestion into a real SQLite file.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from headroom.daemon import analytics
from headroom.daemon.ingest import Ingestor
from headroom.learn.knowledge import describe_call, is_failure, is_no_match, unwrap_output
from headroom.learn.mirror import backfill_tool_fields
from headroom.learn.model import ToolKind
from headroom.memory.db import Database, open_database
from headroom.memory.models import EventRow, SessionRow, SourceFileRow, ToolCallRow

pytestmark = pytest.mark.both_backends  # each test runs on SQLite and on PostgreSQL (marked pg, slow)

FIXTURES = Path(__file__).parent / "fixtures" / "tool_calls"


def _roots(base: Path) -> dict[Any, list[Path]]:
    return {
        "claude": [base / "claude" / "projects"],
        "codex": [base / "codex" / "sessions"],
        "gemini": [base / "gemini" / "tmp"],
    }


@pytest.fixture
def db(db: Database) -> Database:
    """The shared database, with the fixtures' sessions ingested."""
    Ingestor(db, _roots(FIXTURES)).scan()
    return db


def _calls(db: Database) -> dict[str, ToolCallRow]:
    with db.sessions() as s:
        return {c.key: c for c in s.execute(select(ToolCallRow)).scalars()}


def test_user_commands_are_not_agent_failures(db: Database) -> None:
    calls = _calls(db)
    typo = calls["u-0001"]  # the user's `!nmp install`
    assert (typo.name, typo.kind, typo.command, typo.exit_code) == ("user_shell", "shell", "nmp install", 127)
    assert typo.by_user and typo.failed is False and typo.status == "error"
    assert calls["u-0002"].by_user and not calls["u-0002"].failed
    # Claude's `!` bash mode is the harness's text, never a tool call.
    assert not [c for c in calls.values() if c.command and "nmp" in c.command and not c.by_user]
    with db.sessions() as s:
        codex = s.execute(select(SessionRow).where(SessionRow.agent == "codex")).scalar_one()
        assert codex.tool_calls == 4 and codex.failed_tool_calls == 2  # G1 G2 X1 X2; the user's two are not counted


def test_no_match_is_not_a_failure_on_any_agent(db: Database) -> None:
    calls = _calls(db)
    grep, rg, diff = calls["call_G1"], calls["toolu_rg"], calls["run_shell_command_1776679202000_0"]
    assert (grep.command, grep.exit_code, grep.output, grep.failed) == ("grep -rn TODO src", 1, "", False)
    assert (rg.command, rg.exit_code, rg.output, rg.failed) == ("cd /srv/shop && rg -n TODO src", 1, "", False)
    assert (diff.command, diff.exit_code, diff.output, diff.failed) == ("diff -q a.txt b.txt", 1, "", False)
    # Real failures with the same exit code stay failures, their wrapper removed from the output.
    assert calls["call_G2"].failed and calls["call_G2"].output == 'npm error Missing script: "test"\n'
    assert calls["toolu_py"].failed and calls["toolu_py"].output == "/bin/bash: python: command not found"
    firebase = calls["run_shell_command_1776679203000_0"]
    assert firebase.failed and firebase.output == "bash: firebase: command not found"


def test_code_mode_script_and_its_command_are_one_call(db: Database) -> None:
    calls = _calls(db)
    assert not [key for key in calls if key.startswith("exec-")]
    script = calls["call_X1"]
    assert (script.name, script.kind, script.command) == ("exec", "shell", "cat missing.txt")
    assert (script.status, script.exit_code, script.failed) == ("error", 1, True)
    assert script.output == "cat: missing.txt: No such file or directory\n" and script.ended_at is not None
    with db.sessions() as s:
        events = s.execute(select(EventRow.tool_call_key).where(EventRow.kind == "tool_call")).scalars().all()
    assert "exec-aaaa-0001" not in events and events.count("call_X1") == 1


def test_stats_failures_read_the_stored_fields(db: Database) -> None:
    with db.sessions() as s:
        top, summary = analytics.failing_commands(s, analytics.Filters())
        days = analytics.token_rows(s, "day", analytics.Filters())
    assert summary == {"failed_tool_calls": 4, "repeated_failures": 0}
    assert sorted(row["command"] for row in top) == ["cat", "firebase deploy", "npm test", "python"]
    assert sum(r["tool_calls"] for r in days) == 4 + 2 + 2 and sum(r["failed_tool_calls"] for r in days) == 4


def test_memory_reads_a_cat_as_a_file_whatever_the_shell_tool() -> None:
    from headroom.learn.knowledge import from_tool_call

    for name, raw in (
        ("shell_command", '{"command": "cat README.md"}'),
        ("exec", 'const r = await tools.exec_command({ cmd: "cat README.md" });'),
        ("Bash", '{"command": "cat README.md"}'),
    ):
        kind, command, path = describe_call(name, raw)
        found = from_tool_call(kind, name, command, path, "# Shop\nA list.\n", raw, "/srv/shop")
        assert found is not None and (found.kind, found.path) == ("file_read", "/srv/shop/README.md"), name


@pytest.mark.parametrize(
    ("command", "output", "answer"),
    [
        ("grep -c x f", "", True),
        ('cd a && grep "x|y" f', "", True),
        ("git diff --exit-code", "", True),
        ("git check-ignore -v notes.md", "", True),
        ("tasklist | findstr Setup.exe", "", True),
        ("[ -f x ]", "", True),
        ("test -d build", "\n", True),
        ("grep x f", "grep: f: No such file or directory", False),  # exit 2 is usual, but output is an error
        ("npm test", "", False),
        ("grep x f | npm test", "", False),
    ],
)
def test_no_match_rule(command: str, output: str, answer: bool) -> None:
    assert is_no_match(command, 1, output) is answer
    assert is_failure("error", 1, command, output) is (not answer)
    assert is_failure("error", 2, command, output) is True
    assert is_failure("cancelled", 1, command, output) is False


def test_wrappers_are_removed_once() -> None:
    assert unwrap_output("Exit code 2\nFAILED x") == "FAILED x"
    assert unwrap_output("<tool_use_error>File does not exist.</tool_use_error>") == "File does not exist."
    assert unwrap_output("Output: (empty)\nExit Code: 1\nProcess Group PGID: 3") == ""
    assert unwrap_output("<untrusted_context>\nOutput: ok\nProcess Group PGID: 3\n</untrusted_context>") == "ok"
    assert describe_call("shell", '{"command": ["powershell.exe", "-Command", "npm test"]}')[1] == "npm test"
    assert describe_call("apply_patch", "*** Begin Patch\n*** Update File: src/a.py\n@@")[:3:2] == (
        ToolKind.EDIT,
        "src/a.py",
    )


def test_a_database_from_before_gives_the_answers_of_a_fresh_ingest(tmp_path: Path, db: Database) -> None:
    """Migration 0006 on rows written by the old readers: wrapped outputs, no fields, code mode as two calls."""
    logs = tmp_path / "logs"
    shutil.copytree(FIXTURES, logs)
    old = open_database(f"sqlite:///{tmp_path / 'old' / 'headroom.db'}")
    Ingestor(old, _roots(logs)).scan()
    with old.transaction() as s:  # make the rows look like the old reader's
        s.execute(update(ToolCallRow).values(kind=None, command=None, path=None, failed=None, by_user=False))
        s.execute(
            update(ToolCallRow)
            .where(ToolCallRow.key == "call_G1")
            .values(output="Exit code: 1\nWall time: 0.1 seconds\nOutput:\n")
        )
        s.execute(update(ToolCallRow).where(ToolCallRow.key.like("u-%")).values(name=None, input=None))
        session_id = s.execute(select(ToolCallRow.session_id).where(ToolCallRow.key == "call_X1")).scalar_one()
        s.execute(
            update(ToolCallRow).where(ToolCallRow.key == "call_X1").values(status="ok", exit_code=None, output="x")
        )
        s.add(
            ToolCallRow(
                session_id=session_id,
                key="exec-aaaa-0001",
                name="exec_command",
                status="error",
                exit_code=1,
                input='["/bin/bash","-lc","cat missing.txt"]',
                output="cat: missing.txt: No such file or directory\n",
                started_at=s.execute(select(ToolCallRow.started_at).where(ToolCallRow.key == "call_X1")).scalar_one(),
            )
        )
        s.add(EventRow(session_id=session_id, key="oX", kind="tool_call", tool_call_key="exec-aaaa-0001", seq=0))
        s.flush()
        backfill_tool_fields(s.connection())  # what migration 0006 runs
        offsets = s.execute(select(SourceFileRow.agent, SourceFileRow.offset)).all()
    assert {agent for agent, offset in offsets if offset == 0} == {"codex"}  # re-read: user_shell is only in the log
    Ingestor(old, _roots(logs)).scan()
    fields = ("name", "kind", "command", "path", "status", "exit_code", "output", "failed", "by_user")
    fresh = {k: tuple(getattr(c, f) for f in fields) for k, c in _calls(db).items()}
    upgraded = {k: tuple(getattr(c, f) for f in fields) for k, c in _calls(old).items()}
    assert upgraded == fresh
    with db.sessions() as a, old.sessions() as b:
        assert analytics.failing_commands(a, analytics.Filters()) == analytics.failing_commands(b, analytics.Filters())


def test_code_mode_counts_like_plain_mode_on_the_generated_logs(tmp_path: Path, shared: Path) -> None:
    """Codex driven through code mode and without it, same scenarios: the same calls, the same failures."""
    counts = {}
    for variant in ("", ".code-mode"):
        database = open_database(f"sqlite:///{tmp_path / f'db{variant}' / 'headroom.db'}")
        roots = [
            shared / "fixtures" / "generated" / "codex" / f"{s}{variant}"
            for s in ("fail-then-fix", "test-fix-correction")
        ]
        Ingestor(database, {"codex": roots}).scan()
        with database.sessions() as s:
            calls = s.execute(select(ToolCallRow)).scalars().all()
            counts[variant] = (len(calls), sorted(c.command or c.path or "" for c in calls if c.failed))
            assert not [c.key for c in calls if c.key.startswith("exec-")]
    assert counts[""] == counts[".code-mode"]


def test_migration_0006_runs_on_open_over_old_rows(tmp_path: Path) -> None:
    """A DB at revision 0005 with rows as the old readers wrote them: opening it upgrades and fills the fields."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from headroom.memory.db import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0005")
    engine = create_engine(url)
    with engine.begin() as conn:  # the tables 0006 leaves alone take their model defaults
        # Plain SQL: the models now carry columns (user_id, machine_id, ...) that revision 0005 has not.
        conn.execute(
            text(
                "INSERT INTO sessions (id, agent, key, kind, turns, events, tool_calls, failed_tool_calls, api_errors,"
                " interruptions, compactions, input_tokens, output_tokens, cache_read_tokens, cache_creation_tokens,"
                " reasoning_tokens, stale) VALUES (1, 'claude', 's', 'main', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO tool_calls (session_id, key, name, input, status, output, exit_code) VALUES "
                "(1, 'a', 'Bash', '{\"command\": \"grep -rn TODO src\"}', 'error', 'Exit code 1', 1),"
                "(1, 'b', 'Bash', '{\"command\": \"npm test\"}', 'error', 'Exit code 1\nMissing script', 1),"
                "(1, 'c', 'Read', '{\"file_path\": \"/p/a.py\"}', 'ok', 'x', NULL)"
            )
        )
        first = datetime(2026, 1, 1)
        for agent in ("codex", "claude"):
            conn.execute(
                text(
                    'INSERT INTO source_files (agent, path, device, inode, size, mtime_ns, "offset", state,'
                    " fingerprint, records, missing, first_seen) VALUES (:a, :p, 0, 0, 0, 0, 99, '{}', 'f', 0, 0, :t)"
                ),
                {"a": agent, "p": f"/x/{agent}.jsonl", "t": first},
            )
    engine.dispose()
    db = open_database(url)
    with db.sessions() as s:
        rows = {
            c.key: (c.kind, c.command, c.path, c.output, c.failed, c.by_user)
            for c in s.execute(select(ToolCallRow)).scalars()
        }
        offsets = dict(s.execute(select(SourceFileRow.agent, SourceFileRow.offset)).all())
        failed = s.execute(select(SessionRow.failed_tool_calls, SessionRow.stale)).one()
    assert rows == {
        "a": ("shell", "grep -rn TODO src", None, "", False, False),
        "b": ("shell", "npm test", None, "Missing script", True, False),
        "c": ("read", None, "/p/a.py", "x", False, False),
    }
    assert offsets == {"codex": 0, "claude": 99}  # Codex logs are read again (user_shell is only there)
    assert failed[1]  # counters are recomputed by the next ingest pass
