"""NUL characters in logs (issue 17): stored as U+FFFD on every backend; a file the database refuses is a
logged, counted skip with a one-line error, and later files are still read."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from headroom.daemon.cli import cli
from headroom.daemon.config import load_config
from headroom.daemon.ingest import Ingestor
from headroom.memory.db import Database, open_database
from headroom.memory.nul import NUL_REPLACEMENT
from tests.helpers import claude_record, claude_tree


def nul_session(root: Path, name: str) -> Path:
    """A Claude log whose prompt, tool output and reply carry NUL characters (JSON ``\\u0000``, as agents
    write them when a tool printed a binary file), plus one line with a raw NUL byte."""
    sid = str(uuid.uuid4())
    records = [
        claude_record("prompt", 0, text="what is in \x00 this file?"),
        claude_record("tool_use", 1, command="cat logo.png"),
        claude_record("tool_result", 2, call=1, output="\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + "x" * 5000),
        claude_record("text", 3, text="it is a PNG\x00 image"),
    ]
    lines = [json.dumps({**r, "sessionId": sid}).encode() + b"\n" for r in records]
    lines.insert(2, b'{"type": "user", "broken\x00 line"}\n')
    path = claude_tree(root, name)
    path.write_bytes(b"".join(lines))
    return path


def ingest_cli(url: str | None, monkeypatch: pytest.MonkeyPatch) -> str:
    if url:
        monkeypatch.setenv("HEADROOM_DATABASE_URL", url)
    result = CliRunner().invoke(cli, ["ingest"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def check_stored(db: Database) -> None:
    with db.engine.connect() as conn:
        outputs = conn.execute(text("SELECT output FROM tool_calls WHERE output IS NOT NULL")).scalars().all()
        prompts = conn.execute(text("SELECT text FROM events WHERE kind = 'user_prompt'")).scalars().all()
        assert conn.execute(text("SELECT count(*) FROM sessions")).scalar_one() == 2
    png = next(o for o in outputs if "PNG" in o)
    assert "\x00" not in png and NUL_REPLACEMENT in png and png.endswith("x" * 5000)  # the rest is kept
    assert "what is in \ufffd this file?" in prompts


def test_nul_characters_are_stored_as_replacement_on_sqlite(claude_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nul_session(claude_root, "a-nul")
    nul_session(claude_root, "b-nul")
    ingest_cli(None, monkeypatch)
    db = open_database(load_config().database_url)
    try:
        check_stored(db)
    finally:
        db.close()


@pytest.mark.pg
@pytest.mark.slow
def test_nul_characters_do_not_abort_a_scan_on_postgres(
    pg_url: str, claude_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nul_session(claude_root, "a-nul")
    nul_session(claude_root, "b-nul")
    ingest_cli(pg_url, monkeypatch)
    db = open_database(pg_url)
    try:
        check_stored(db)
    finally:
        db.close()


@pytest.mark.pg
@pytest.mark.slow
def test_a_file_the_database_refuses_is_a_counted_skip_and_later_files_are_read(
    pg_db: Database, claude_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A session id longer than the column (String(255)): PostgreSQL refuses the row, SQLite would not.
    bad = claude_tree(claude_root, "a-bad")
    records = [claude_record("prompt", 0, text="x" * 4000), claude_record("text", 1)]
    bad.write_bytes(b"".join(json.dumps({**r, "sessionId": "s" * 300}).encode() + b"\n" for r in records))
    nul_session(claude_root, "b-good")
    caplog.set_level(logging.WARNING, logger="headroom.ingest")
    report = Ingestor(pg_db, {"claude": [claude_root]}).scan()
    assert report.statuses["failed"] == 1 and report.statuses["ingested"] == 1 and report.problems >= 1
    warnings = [r.getMessage() for r in caplog.records if "not stored" in r.getMessage()]
    assert len(warnings) == 1 and len(warnings[0]) < 400 and "xxxx" not in warnings[0]  # one line, no content
    with pg_db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sessions")).scalar_one() == 1
        issue = conn.execute(text("SELECT kind, count, detail FROM ingest_issues WHERE path LIKE '%a-bad%'")).one()
    assert issue[0] == "not_stored" and issue[1] == 1 and "\n" not in issue[2]
