"""Secrets at rest (DESIGN invariant 4): what headroom keeps holds no secret, except its two byte-exact caches.

A Claude Code session with planted secrets of every kind (in the prompt, commands, tool outputs, a file the agent
wrote, the assistant's text) is ingested by the real CLI, fed to the memory and mined for lessons; then every byte
of every file under HEADROOM_HOME (the database and its WAL included) is searched for the secrets. Rows stored by an
older version are cleaned by ``headroom memory redact --scan``; lesson rows are redacted by the database layer
whatever writes them; the CCR folder is owner-only even when it already existed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from redaction_corpus import (
    ANT,
    AWS_ID,
    AWS_SECRET,
    GH,
    GL,
    HEXKEY,
    JWT,
    OAI,
    OPENSSH,
    PEM,
    PEM_BODY,
    PW,
    PW_SYM,
    STRIPE,
)
from sqlalchemy import insert, select

from headroom.daemon.cli import cli
from headroom.engine.ccr import CCREntry, content_id
from headroom.memory.ccr_store import FileCCRStore
from headroom.memory.db import Database
from headroom.memory.models import EventRow, LessonRow, SessionRow, ToolCallRow

pytestmark = pytest.mark.both_backends  # each test runs on SQLite and on PostgreSQL (marked pg, slow)

SID = "44444444-4444-4444-8444-444444444444"
# What must not be found at rest: every planted secret, and each line of the PEM bodies.
SECRETS = [ANT, AWS_ID, AWS_SECRET, GH, GL, HEXKEY, JWT, OAI, PW, PW_SYM, STRIPE, *PEM_BODY.split("\n")]


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _record(n: int, kind: str, message: Mapping[str, object], cwd: Path, **extra: object) -> str:
    record = {
        "parentUuid": None if n == 1 else f"e0000000-0000-4000-8000-{n - 1:012d}",
        "isSidechain": False,
        "userType": "external",
        "cwd": str(cwd),
        "sessionId": SID,
        "version": "2.1.197",
        "gitBranch": "main",
        "type": kind,
        "uuid": f"e0000000-0000-4000-8000-{n:012d}",
        "timestamp": f"2026-11-30T10:{n:02d}:00.000Z",
        "message": message,
        **extra,
    }
    return json.dumps(record)


def _assistant(n: int, cwd: Path, *content: dict[str, object]) -> str:
    message = {
        "id": f"msg_0{n}",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-20250514",
        "content": list(content),
        "stop_reason": "tool_use",
        "usage": {
            "input_tokens": 1000,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 50,
        },
    }
    return _record(n, "assistant", message, cwd, requestId=f"req_0{n}")


def _result(n: int, cwd: Path, tool: str, output: str, *, error: bool = False) -> str:
    content = [{"type": "tool_result", "tool_use_id": tool, "content": output, "is_error": error}]
    return _record(n, "user", {"role": "user", "content": content}, cwd, toolUseResult=output)


def _bash(tool: str, command: str) -> dict[str, object]:
    return {"type": "tool_use", "id": tool, "name": "Bash", "input": {"command": command, "description": "run"}}


def write_session(projects: Path, project: Path) -> Path:
    """A session shaped like a real Claude Code log, secrets planted where agents meet them."""
    env_file = "\n".join(
        [
            "AWS_ACCESS_KEY_ID=" + AWS_ID,
            "AWS_SECRET_ACCESS_KEY=" + AWS_SECRET,
            "GITHUB_TOKEN=" + GH,
            "OPENAI_API_KEY=" + OAI,
            "STRIPE_SECRET_KEY=" + STRIPE,
            "DATABASE_PASS=" + PW,
            "DATABASE_URL=postgres://app:" + PW_SYM + "@db.internal:5432/app",
        ]
    )
    lines = [
        _record(
            1,
            "user",
            {"role": "user", "content": f"Deploy it. The Anthropic key is {ANT} and the db password is {PW}."},
            project,
        ),
        _assistant(2, project, {"type": "text", "text": "Checking the environment."}, _bash("toolu_01", "cat .env")),
        _result(3, project, "toolu_01", env_file),
        _assistant(4, project, _bash("toolu_02", f"mysql -uroot -p{PW} shop -e 'select 1'")),
        _result(5, project, "toolu_02", "Exit code 127\n/bin/bash: line 1: mysql: command not found", error=True),
        _assistant(6, project, _bash("toolu_03", f"docker compose exec db mysql -uroot -p{PW} shop -e 'select 1'")),
        _result(7, project, "toolu_03", "1\n1"),
        _assistant(8, project, _bash("toolu_04", f"curl -s -H 'X-API-Key: {HEXKEY}' https://api.example.com/v1/me")),
        _result(9, project, "toolu_04", json.dumps({"token": JWT, "user": "dev"})),
        _assistant(10, project, _bash("toolu_05", "cat ~/.ssh/id_rsa ~/.ssh/id_ed25519")),
        _result(11, project, "toolu_05", PEM + "\n" + OPENSSH),
        _assistant(
            12,
            project,
            {
                "type": "tool_use",
                "id": "toolu_06",
                "name": "Write",
                "input": {
                    "file_path": str(project / ".env.local"),
                    "content": env_file + "\nGITLAB_TOKEN=" + GL + "\n",
                },
            },
        ),
        _result(13, project, "toolu_06", f"File created successfully at: {project / '.env.local'}"),
        _assistant(14, project, {"type": "text", "text": f"Done; I used the key {ANT[:40]}… and {GH}."}),
    ]
    folder = projects / str(project).replace("/", "-")
    folder.mkdir(parents=True)
    log = folder / f"{SID}.jsonl"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return log


def files_under(root: Path, *, skip: tuple[str, ...] = ()) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not any(part in skip for part in path.relative_to(root).parts):
            yield path


def assert_no_secret_in(paths: list[Path]) -> None:
    leaks = []
    for path in paths:
        data = path.read_bytes()
        for secret in SECRETS:
            if secret.encode() in data:
                leaks.append(f"{path.name}: {secret[:12]}…")
    assert not leaks, leaks


def assert_no_secret_in_tables(db_file: Path, skip: tuple[str, ...] = ("block_memo",)) -> None:
    conn = sqlite3.connect(db_file)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            if table in skip:
                continue
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                blob = "\x1f".join(str(v) for v in row)
                found = [s[:12] for s in SECRETS if s in blob]
                assert not found, (table, found)
    finally:
        conn.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "work" / "shop"
    (folder / ".git").mkdir(parents=True)
    return folder


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX paths in the fixture")
def test_nothing_kept_holds_a_secret_after_ingest_feed_and_learn(
    claude_root: Path, project: Path, isolated_home: Path
) -> None:
    write_session(claude_root, project)
    ingested = json.loads(run("ingest", "--json").output)
    assert ingested["files_by_status"] == {"ingested": 1}
    run("memory", "stats")  # feeds the memory from the mirror
    run("memory", "search", "-p", str(project), "env", "--text-only")
    run("learn", "-p", str(project), "--apply")
    run("sessions")
    run("stats")

    db_file = isolated_home / "headroom.db"
    conn = sqlite3.connect(db_file)
    try:
        outputs = [r[0] for r in conn.execute("SELECT output FROM tool_calls WHERE output IS NOT NULL")]
        assert conn.execute("SELECT count(*) FROM memory_items").fetchone()[0] > 0
    finally:
        conn.close()
    assert any("[REDACTED:aws_access_key]" in o for o in outputs)  # the mirror was written, redacted
    assert any("[REDACTED:private_key]" in o for o in outputs)
    assert_no_secret_in_tables(db_file)
    assert_no_secret_in(list(files_under(isolated_home, skip=("ccr",))))
    modes = {str(p.relative_to(isolated_home)): stat.S_IMODE(p.stat().st_mode) for p in isolated_home.rglob("*")}
    assert {name: mode for name, mode in modes.items() if mode & 0o077} == {}  # owner-only, as the README says
    # What learn wrote into the project is redacted too (the managed block of CLAUDE.local.md, its journal).
    assert_no_secret_in([p for p in files_under(project) if ".git" not in p.parts])


@pytest.mark.sqlite_only  # reads the file's bytes, free pages and WAL included
def test_rows_stored_before_redaction_are_cleaned_by_the_scan(db: Database, isolated_home: Path) -> None:
    # An older version wrote the mirror, a lesson and a recorded error in clear.
    with db.transaction() as s:
        s.execute(
            insert(LessonRow).values(  # Core insert: as an old version, without the ORM's redaction
                key="k1",
                project="",
                kind="command",
                signature="mysql -p" + PW,
                text="Run `mysql -p" + PW + "` through docker.",
                names=json.dumps(["mysql -p" + PW]),
                evidence=json.dumps([{"command": "mysql -p" + PW, "error": "not found"}]),
                created_at=datetime(2026, 11, 1),
                updated_at=datetime(2026, 11, 1),
            )
        )
        sid = s.execute(
            insert(SessionRow)
            .values(agent="claude", key="s1", title="key " + ANT, stale=False)
            .returning(SessionRow.id)
        ).scalar_one()
        s.execute(insert(EventRow).values(session_id=sid, key="e1", kind="user_prompt", text="key " + GH))
        s.execute(
            insert(ToolCallRow).values(
                session_id=sid,
                key="t1",
                name="Bash",
                input=json.dumps({"command": "curl -H 'X-API-Key: " + HEXKEY + "' x"}),
                output=PEM,
                status="ok",
            )
        )
    dry = json.loads(run("memory", "redact", "--scan", "--dry-run", "--json").output)
    assert dry["stored"]["by_table"] == {"sessions": 1, "events": 1, "tool_calls": 1, "lessons": 1}
    run("memory", "redact", "--scan")
    db.engine.dispose()  # let go of pooled connections so every byte is on disk
    assert_no_secret_in_tables(isolated_home / "headroom.db")
    assert_no_secret_in(list(files_under(isolated_home, skip=("ccr",))))  # no copy in free pages or the WAL
    again = json.loads(run("memory", "redact", "--scan", "--dry-run", "--json").output)
    assert again["stored"]["rows"] == 0
    conn = sqlite3.connect(isolated_home / "headroom.db")
    try:
        names, inp = conn.execute("SELECT l.names, t.input FROM lessons l, tool_calls t").fetchone()
    finally:
        conn.close()
    assert json.loads(names) == ["mysql -p[REDACTED:cli_password]"]  # JSON stays JSON
    assert json.loads(inp)["command"] == "curl -H 'X-API-Key: [REDACTED:env_secret]' x"


def test_lesson_rows_are_redacted_whatever_writes_them(db: Database) -> None:
    with db.transaction() as s:
        s.add(
            LessonRow(
                key="k2",
                project="",
                kind="command",
                signature="sshpass -p " + PW,
                text="Use the deploy key " + GH + ", not sshpass -p " + PW,
                names=json.dumps(["sshpass -p " + PW]),
                evidence=json.dumps([{"command": "sshpass -p " + PW, "error": None}]),
                created_at=datetime(2026, 11, 1),
                updated_at=datetime(2026, 11, 1),
            )
        )
    with db.transaction() as s:
        row = s.query(LessonRow).one()
        row.retired_reason = "superseded by " + AWS_ID
    with db.sessions() as s:
        row = s.query(LessonRow).one()
        stored = " ".join([row.signature, row.text, row.names, row.evidence, row.retired_reason or ""])
    assert not [secret for secret in SECRETS if secret in stored]
    assert json.loads(row.names) == ["sshpass -p [REDACTED:cli_password]"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_ccr_folder_is_made_owner_only_even_when_it_already_existed(tmp_path: Path) -> None:
    root = tmp_path / "ccr"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)  # as an older version, or a restored backup, left it
    old = os.umask(0)
    try:
        store = FileCCRStore(root)
        text = "the original, secrets and all: " + GH
        store.put(CCREntry(content_id(text), text))
    finally:
        os.umask(old)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    files = list(files_under(root))
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    assert all(stat.S_IMODE(p.parent.stat().st_mode) == 0o700 for p in files)


def test_the_daemon_redacts_rows_an_older_version_stored_in_clear(
    db: Database, isolated_home: Path, claude_root: Path
) -> None:
    """After an upgrade (or a change of the rules), the daemon cleans old rows by itself, once, after its backfill."""
    import threading
    import time

    from headroom.daemon.config import load_config
    from headroom.daemon.service import Service
    from headroom.memory.models import StateValueRow
    from headroom.memory.rescan import RULES_STATE, rules_fingerprint

    with db.transaction() as s:  # Core inserts: as an older version wrote them, in clear
        sid = s.execute(
            insert(SessionRow)
            .values(agent="claude", key="s1", title="key " + ANT, stale=False)
            .returning(SessionRow.id)
        ).scalar_one()
        s.execute(insert(EventRow).values(session_id=sid, key="e1", kind="user_prompt", text="key " + GH))
    service = Service(load_config())
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 90  # a daemon's start on PostgreSQL under a loaded CI took past 30 s
        while time.monotonic() < deadline:
            with db.sessions() as s:
                # SQLite keeps one fingerprint; PostgreSQL one per machine (a pass cleans only its user's rows).
                values = s.execute(select(StateValueRow.value).where(StateValueRow.name == RULES_STATE)).scalars()
                if rules_fingerprint() in set(values):
                    break
            time.sleep(0.1)
        else:
            raise AssertionError("the daemon did not run its redaction pass within 90 s")
    finally:
        service.request_stop()
        thread.join(10)
    assert not thread.is_alive()
    db.engine.dispose()
    assert_no_secret_in_tables(isolated_home / "headroom.db")
    # Recorded: the next start has nothing to do, and a new database never needs the pass at all.
    assert json.loads(run("memory", "redact", "--scan", "--dry-run", "--json").output)["stored"]["rows"] == 0
