"""Incremental ingestion: exactly once, whatever the chunking, crashes, rewrites and bad input."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from headroom.daemon.ingest import FileProgress, Ingestor, LogFile
from headroom.memory.db import Database, open_database
from headroom.memory.models import IngestIssueRow, SessionRow, SourceFileRow, ToolCallRow, UsageRow
from tests.helpers import claude_record, claude_session_lines, claude_tree, db_counts, expected_counts

pytestmark = pytest.mark.both_backends  # each test runs on SQLite and on PostgreSQL (marked pg, slow)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "claude" / "projects"
    path.mkdir(parents=True)
    return path


def ingestor(db: Database, root: Path, **kwargs: int) -> Ingestor:
    return Ingestor(db, {"claude": [root]}, **kwargs)


def issues(db: Database) -> dict[str, int]:
    with db.sessions() as dbs:
        return {i.kind: i.count for i in dbs.execute(select(IngestIssueRow)).scalars()}


def test_backfill_equals_whole_read(db: Database, root: Path) -> None:
    path = claude_tree(root)
    path.write_bytes(b"".join(claude_session_lines(12)))
    report = ingestor(db, root).scan()
    assert report.files == 1 and report.problems == 0
    assert db_counts(db) == expected_counts("claude", [(path, root)])
    with db.sessions() as dbs:
        session = dbs.execute(select(SessionRow)).scalar_one()
    assert (session.turns, session.tool_calls, session.failed_tool_calls) == (12, 12, 4)
    assert session.cwd == "/home/dev/src/shop" and session.git_branch == "main"


def test_appends_in_arbitrary_pieces_give_the_same_rows(db: Database, root: Path) -> None:
    data = b"".join(claude_session_lines(10))
    path = claude_tree(root)
    ing = ingestor(db, root, chunk_bytes=700)
    written = 0
    for size in (1, 50, 333, 999, 2, 4096, 77):  # cuts fall mid-line, mid-character, on newlines
        while written < len(data):
            piece = data[written : written + size]
            with path.open("ab") as handle:
                handle.write(piece)
            written += len(piece)
            ing.ingest_file(LogFile("claude", root, path))
            if written % 5 == 0:
                break
    assert written == len(data)
    ing.ingest_file(LogFile("claude", root, path))
    ing.refresh()
    assert db_counts(db) == expected_counts("claude", [(path, root)])


def test_a_torn_last_line_waits_for_its_newline(db: Database, root: Path) -> None:
    lines = claude_session_lines(2)
    path = claude_tree(root)
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][:40])
    ing = ingestor(db, root)
    assert ing.ingest_file(LogFile("claude", root, path)).status == "waiting"
    before = db_counts(db)["events"]
    with path.open("ab") as handle:
        handle.write(lines[-1][40:])
    ing.ingest_file(LogFile("claude", root, path))
    assert db_counts(db)["events"] == before + 1
    assert issues(db) == {}


def test_reingesting_is_idempotent_even_from_offset_zero(db: Database, root: Path) -> None:
    path = claude_tree(root)
    path.write_bytes(b"".join(claude_session_lines(6)))
    ingestor(db, root).scan()
    first = db_counts(db)
    with db.transaction() as dbs:  # forget every offset: a full re-read must upsert, not duplicate
        dbs.execute(SourceFileRow.__table__.delete())
    ingestor(db, root).scan()
    assert db_counts(db) == first


def test_truncation_and_replacement_are_reread(db: Database, root: Path) -> None:
    path = claude_tree(root)
    lines = claude_session_lines(6)
    path.write_bytes(b"".join(lines))
    ing = ingestor(db, root)
    ing.scan()
    path.write_bytes(b"".join(lines[:4]))  # truncated in place
    assert ing.ingest_file(LogFile("claude", root, path)).status == "ingested"
    replacement = path.with_suffix(".new")
    other = [json.dumps(claude_record("prompt", 500 + i, text=f"other {i}")).encode() + b"\n" for i in range(30)]
    replacement.write_bytes(b"".join(other))
    os.replace(replacement, path)  # a new inode with other first bytes
    outcome = ing.ingest_file(LogFile("claude", root, path))
    assert outcome.status == "ingested" and outcome.records == 30
    ing.refresh()
    with db.sessions() as dbs:
        turns = dbs.execute(select(SessionRow.turns)).scalar_one()
    assert turns == 6 + 30  # what was read before stays; the replacement's prompts are added


def test_a_renamed_file_keeps_its_offset(db: Database, root: Path) -> None:
    path = claude_tree(root)
    path.write_bytes(b"".join(claude_session_lines(3)))
    ing = ingestor(db, root)
    ing.scan()
    moved = path.with_name("22222222-2222-4333-8444-555555555555.jsonl")
    path.rename(moved)
    outcome = ing.ingest_file(LogFile("claude", root, moved))
    assert outcome.bytes_read == 0  # resumed at the old offset, nothing re-read
    with db.sessions() as dbs:
        rows = dbs.execute(select(SourceFileRow.path, SourceFileRow.offset)).all()
    assert rows == [(str(moved), moved.stat().st_size)]


def test_deleted_logs_keep_their_data(db: Database, root: Path) -> None:
    path = claude_tree(root)
    path.write_bytes(b"".join(claude_session_lines(3)))
    ing = ingestor(db, root)
    ing.scan()
    before = db_counts(db)
    path.unlink()  # the agent's 30-day retention
    report = ing.scan()
    assert report.missing == 1
    assert db_counts(db) == before
    with db.sessions() as dbs:
        assert dbs.execute(select(SourceFileRow.missing)).scalar_one() is True


def test_bad_lines_are_counted_and_skipped(db: Database, root: Path) -> None:
    good = claude_session_lines(3)
    path = claude_tree(root)
    junk = [
        b'{"type": "user", "message": {"content": "unterminated\n',  # malformed JSON
        b"\x00\x01\x02\xff\xfe binary junk \x00\n",  # binary
        b"\xff\xfe\xfd not utf-8 at all\n",  # non-UTF-8
        b"[1, 2, 3]\n",  # JSON, but not an object
        b"\n   \n",  # blank lines are not problems
    ]
    path.write_bytes(good[0] + junk[0] + good[1] + junk[1] + junk[2] + good[2] + junk[3] + junk[4] + b"".join(good[3:]))
    report = ingestor(db, root).scan()
    assert report.problems == 4
    assert issues(db) == {"malformed_json": 1, "binary_junk": 1, "not_utf8": 1, "not_an_object": 1}
    assert db_counts(db) == expected_counts("claude", [(path, root)])
    assert db_counts(db)["events"] > 0


def test_an_oversized_line_is_skipped_without_loading_it(db: Database, root: Path) -> None:
    lines = claude_session_lines(2)
    path = claude_tree(root)
    huge = json.dumps(claude_record("prompt", 90, text="x" * 3_000_000)).encode() + b"\n"
    path.write_bytes(lines[0] + huge + b"".join(lines[1:]))
    ing = ingestor(db, root, max_line_bytes=1 << 20, chunk_bytes=64 << 10)
    report = ing.scan()
    assert issues(db) == {"oversized_line": 1}
    assert report.problems == 1
    with db.sessions() as dbs:
        assert dbs.execute(select(SessionRow.turns)).scalar_one() == 2  # the huge prompt is the one skipped


def test_an_empty_file_is_fine(db: Database, root: Path) -> None:
    path = claude_tree(root)
    path.write_bytes(b"")
    report = ingestor(db, root).scan()
    assert report.files == 1 and report.problems == 0
    assert db_counts(db)["sessions"] == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_is_counted(db: Database, root: Path) -> None:
    path = claude_tree(root)
    path.write_bytes(b"".join(claude_session_lines(1)))
    path.chmod(0)
    report = ingestor(db, root).scan()
    assert report.statuses["unreadable"] == 1
    assert issues(db) == {"permission_denied": 1}


def test_permission_denied_on_open_is_counted(db: Database, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root in CI, where chmod 0 does not stop reads: make open() refuse like the kernel would.
    path = claude_tree(root)
    path.write_bytes(b"".join(claude_session_lines(1)))
    real_open = open

    def refusing_open(file: object, *args: object, **kwargs: object) -> object:
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", refusing_open)
    report = ingestor(db, root).scan()
    assert report.statuses["unreadable"] == 1
    assert issues(db) == {"permission_denied": 1}


def test_a_symlink_loop_does_not_trap_discovery(db: Database, root: Path) -> None:
    path = claude_tree(root)
    path.write_bytes(b"".join(claude_session_lines(1)))
    (root / "-home-dev-src-shop" / "loop").symlink_to(root)  # a folder link back to the root
    (root / "-home-dev-src-shop" / "self.jsonl").symlink_to(root / "-home-dev-src-shop" / "self.jsonl")
    report = ingestor(db, root).scan()
    assert report.files == 1
    assert db_counts(db)["sessions"] == 1


def test_a_file_that_vanishes_before_it_is_read(db: Database, root: Path) -> None:
    path = claude_tree(root)
    path.write_bytes(b"".join(claude_session_lines(1)))
    ing = ingestor(db, root)
    item = LogFile("claude", root, path)
    path.unlink()
    assert ing.ingest_file(item).status == "missing"


def test_a_file_that_shrinks_mid_read_is_reread_next_time(db: Database, root: Path) -> None:
    path = claude_tree(root)
    lines = claude_session_lines(40)
    path.write_bytes(b"".join(lines))
    ing = ingestor(db, root, chunk_bytes=4096)
    calls = {"n": 0}
    original = ing._commit

    def commit_then_truncate(*args: object, **kwargs: object) -> object:
        result = original(*args, **kwargs)  # type: ignore[arg-type]
        calls["n"] += 1
        if calls["n"] == 2:
            path.write_bytes(b"".join(lines[:8]))  # the agent rewrote the file while we were reading it
        return result

    ing._commit = commit_then_truncate  # type: ignore[method-assign]
    ing.ingest_file(LogFile("claude", root, path))
    ing._commit = original  # type: ignore[method-assign]
    ing.ingest_file(LogFile("claude", root, path))
    with db.sessions() as dbs:
        offset = dbs.execute(select(SourceFileRow.offset)).scalar_one()
    assert offset == path.stat().st_size


def test_a_locked_database_is_retried_not_fatal(tmp_path: Path, root: Path) -> None:
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    db = open_database(url)
    path = claude_tree(root)
    path.write_bytes(b"".join(claude_session_lines(2)))
    holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    released = threading.Event()

    def release() -> None:
        time.sleep(1.0)
        holder.execute("COMMIT")
        released.set()

    threading.Thread(target=release, daemon=True).start()
    report = ingestor(db, root).scan()  # waits within the busy timeout, then succeeds
    assert released.is_set()
    assert report.records > 0
    assert db_counts(db)["sessions"] == 1
    holder.close()
    db.close()


def test_tool_call_results_complete_calls_from_an_earlier_chunk(db: Database, root: Path) -> None:
    lines = claude_session_lines(1, fail_every=1)
    path = claude_tree(root)
    path.write_bytes(b"".join(lines[:2]))
    ing = ingestor(db, root)
    ing.scan()
    with db.sessions() as dbs:
        assert dbs.execute(select(ToolCallRow.status)).scalar_one() == "pending"
    with path.open("ab") as handle:
        handle.write(b"".join(lines[2:]))
    ing.scan()
    with db.sessions() as dbs:
        call = dbs.execute(select(ToolCallRow)).scalar_one()
    assert (call.name, call.status, call.exit_code) == ("Bash", "error", 1)
    assert json.loads(call.input or "{}")["command"] == "npm test -- 0"


def test_a_retracted_codex_call_leaves_no_usage_row(db: Database) -> None:
    # Our Codex fixtures hold a sub-agent whose first call is withdrawn once its replay is recognised.
    home = Path(__file__).resolve().parent / "fixtures" / "codex" / "home"
    roots = [home / "sessions", home / "archived_sessions"]
    Ingestor(db, {"codex": roots}).scan()
    with db.sessions() as dbs:
        zero = dbs.execute(
            select(func.count())
            .select_from(UsageRow)
            .where(
                UsageRow.input_tokens
                + UsageRow.output_tokens
                + UsageRow.cache_read_tokens
                + UsageRow.cache_creation_tokens
                == 0
            )
        ).scalar_one()
        assert dbs.execute(select(func.count()).select_from(UsageRow)).scalar_one() > 0
    assert zero == 0


def test_file_progress_is_read_from_its_row(db: Database, root: Path) -> None:
    """The progress of a file is a typed record made from its ``source_files`` row (no dict passed around)."""
    path = claude_tree(root)
    path.write_bytes(b"".join(claude_session_lines(3)))
    ingestor(db, root).ingest_file(LogFile("claude", root, path))
    with db.sessions() as dbs:
        row = dbs.execute(select(SourceFileRow.__table__)).mappings().one()
    progress = FileProgress.of(row)
    assert (progress.id, progress.path, progress.offset) == (row["id"], str(path), path.stat().st_size)
    assert progress.records == row["records"] > 0 and progress.fingerprint == row["fingerprint"]
