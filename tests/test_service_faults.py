"""The daemon under faults: a full disk under the database, SIGTERM in the middle of ingestion and of a
lesson write, and a crash between writing a lesson file and recording it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.pool import Pool

from headroom.daemon import follow as follow_module
from headroom.daemon.service import Service
from headroom.memory.db import open_database
from tests.helpers import claude_record, claude_session_lines, claude_tree, move_next_run
from tests.test_service import (
    _corpus,
    _daemon,
    assert_same_as_a_clean_ingest,
    finish_backfill,
    scalar,
    wait_for,
)

DEFAULT_MAX_PAGES = 1073741823  # SQLite's default max_page_count


@pytest.fixture
def page_limit() -> Iterator[dict[str, int | None]]:
    """Cap the size of every SQLite database opened meanwhile (``PRAGMA max_page_count`` on each checkout).

    SQLite then fails writes exactly as on a full disk (SQLITE_FULL, "database or disk is full"); raising
    the cap is the space coming back. A real full file system needs a mount, which a test cannot make.
    """
    limit: dict[str, int | None] = {"pages": None}

    def on_checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if isinstance(dbapi_conn, sqlite3.Connection):
            dbapi_conn.execute(f"PRAGMA max_page_count={limit['pages'] or DEFAULT_MAX_PAGES}")

    event.listen(Pool, "checkout", on_checkout)
    yield limit
    event.remove(Pool, "checkout", on_checkout)


def big_results(first: int, count: int, size: int = 20_000) -> bytes:
    """Tool calls with large, distinct outputs: enough new pages to overflow a capped database."""
    lines = []
    for i in range(count):
        n = first + 2 * i
        lines.append(claude_record("tool_use", n, command=f"cat big-{i}.log"))
        output = "".join(f"{i}:{j} lorem ipsum dolor\n" for j in range(size // 24))
        lines.append(claude_record("tool_result", n + 1, call=n, output=output))
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def test_a_full_disk_pauses_ingestion_and_it_resumes_when_space_returns(
    running_service: Service,
    claude_root: Path,
    isolated_home: Path,
    tmp_path: Path,
    page_limit: dict[str, int | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(follow_module, "FULL_RETRY_SECONDS", 0.2)
    monkeypatch.setattr(follow_module, "FULL_RETRY_MAX_SECONDS", 0.5)
    db_file = isolated_home / "headroom.db"
    log = claude_tree(claude_root)
    log.write_bytes(b"".join(claude_session_lines(2)))
    wait_for(lambda: scalar(db_file, "select count(*) from sessions") == 1)
    wait_for(lambda: running_service.scheduler is not None)
    page_limit["pages"] = scalar(db_file, "pragma page_count")  # from now on the file cannot grow
    with log.open("ab") as handle:
        handle.write(big_results(100, 150))
    size = log.stat().st_size

    def ingest_state() -> str:
        return str(running_service.health()["components"]["ingest"]["state"])

    wait_for(lambda: ingest_state() == "paused: disk full", 30)
    health = running_service.health()["components"]["ingest"]
    assert "ingestion paused" in health["last_error"] and "disk is full" in health["last_error"]
    assert scalar(db_file, "select sum(offset) from source_files") < size
    time.sleep(1.5)  # several retries fail while the disk stays full; the daemon keeps going
    assert ingest_state() == "paused: disk full"
    page_limit["pages"] = None  # space is back
    wait_for(lambda: ingest_state() == "running", 30)
    wait_for(lambda: scalar(db_file, "select sum(offset) from source_files") == size, 30)
    assert running_service.health()["components"]["ingest"]["last_error"] is None
    wait_for(lambda: scalar(db_file, "select count(*) from sessions where stale") == 0)
    assert_same_as_a_clean_ingest(db_file, claude_root, tmp_path / "clean.db")


def _sigterm_when(proc: subprocess.Popen[bytes], condition: Callable[[], bool]) -> float:
    """SIGTERM the daemon once ``condition`` holds; the seconds it took to exit (killed if it never does)."""
    try:
        wait_for(condition, 120)
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        return time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_sigterm_during_ingestion_stops_fast_and_the_restart_finishes_the_job(
    claude_root: Path, isolated_home: Path, tmp_path: Path
) -> None:
    _corpus(claude_root, None, sessions=60)
    total = sum(p.stat().st_size for p in claude_root.rglob("*.jsonl"))
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "config.toml").write_text("[ingest]\nchunk_mb = 0.05\n", encoding="utf-8")
    db_file = isolated_home / "headroom.db"
    output = tmp_path / "daemon.out"
    proc = _daemon(dict(os.environ), output)
    stopped_in = _sigterm_when(proc, lambda: scalar(db_file, "select sum(offset) from source_files") >= 0.3 * total)
    out = output.read_text(encoding="utf-8")
    assert proc.returncode == 0 and out.rstrip().endswith("stopped"), out[-2000:]
    assert stopped_in < 5, f"took {stopped_in:.1f}s to stop"
    assert scalar(db_file, "select sum(offset) from source_files") < total, "the backfill finished before SIGTERM"
    assert finish_backfill(dict(os.environ), output, db_file, total) == 0
    assert_same_as_a_clean_ingest(db_file, claude_root, tmp_path / "clean.db")


# A daemon whose learn run is made slow (or killed) inside the lesson file's atomic write: the mining is
# replaced by one fixed lesson, everything else (scheduler, job store, learn apply, journal, writer) is real.
LEARN_DRIVER = """
import os, signal, sys, time
from datetime import datetime, timedelta
from pathlib import Path
from headroom.daemon import learn_service
from headroom.learn import apply as learn_apply, writers
from headroom.learn.mining import Evidence, LessonDraft

project = os.environ["T_PROJECT"]
seen = datetime(2026, 11, 20, 12, 0)
lesson = LessonDraft(
    key="k-logs", project=project, scope="project", kind="tool_error", signature="path:log",
    text="Server logs are in `logs/`, not `log/`: use `logs/server.log`.", names=("logs",),
    evidence=tuple(Evidence(a, f"s{i}", seen - timedelta(days=i), "cat log/server.log", "No such file")
                   for i, a in enumerate(["claude", "codex"])),
    sessions=2, count=2, first_seen=seen - timedelta(days=2), last_seen=seen, corrected_by_user=False,
    days=2, auto_ok=True,
)
learn_apply.mine_db = lambda *a, **k: [lesson]
learn_service.recent_projects = lambda *a, **k: [project]
real_write = writers._write_atomic

def write(path, data):
    Path(os.environ["T_MARKER"]).write_text("writing", encoding="utf-8")
    time.sleep(float(os.environ.get("T_DELAY", "0")))
    real_write(path, data)
    if os.environ.get("T_KILL_AFTER_WRITE"):
        os.kill(os.getpid(), signal.SIGKILL)  # a crash after the file is written, before the DB says so

writers._write_atomic = write
from headroom.daemon.cli import main
sys.argv = ["headroom", "daemon", "run"]
main()
"""


def _learn_daemon(env: dict[str, str], output: Path, **extra: str) -> subprocess.Popen[bytes]:
    with output.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-c", LEARN_DRIVER], env={**env, **extra}, stdout=sink, stderr=subprocess.STDOUT
        )


def _nightly_due_now(db_file: Path) -> None:
    """Make the stored nightly job overdue, as after a night the daemon was down: it runs at start."""
    db = open_database(f"sqlite:///{db_file}")
    try:
        move_next_run(db, "learn-nightly", datetime.now().astimezone() - timedelta(minutes=1))
    finally:
        db.close()


def _lesson_state(db_file: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db_file)
    try:
        return conn.execute("select key, status from lessons").fetchall()
    finally:
        conn.close()


@pytest.mark.slow
def test_sigterm_during_a_lesson_write_and_a_crash_after_it(
    claude_root: Path, isolated_home: Path, tmp_path: Path
) -> None:
    project = tmp_path / "shop"
    project.mkdir()
    records = [claude_record(kind, n, cwd=str(project)) for n, kind in enumerate(["prompt", "text"])]
    claude_tree(claude_root).write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records))
    db_file, output, marker = isolated_home / "headroom.db", tmp_path / "daemon.out", tmp_path / "writing"
    env = {**os.environ, "T_PROJECT": str(project), "T_MARKER": str(marker)}
    first = _daemon(env, output)  # a first start stores the jobs and ingests the session
    try:
        wait_for(lambda: scalar(db_file, "select count(*) from sessions where not stale") == 1)
        wait_for(lambda: scalar(db_file, "select count(*) from scheduler_jobs") == 6)
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
    target = project / "CLAUDE.local.md"

    # 1. SIGTERM while the lesson file is being written: the write completes, then the daemon stops.
    _nightly_due_now(db_file)
    proc = _learn_daemon(env, output, T_DELAY="2")
    stopped_in = _sigterm_when(proc, marker.exists)
    out = output.read_text(encoding="utf-8")
    assert proc.returncode == 0 and out.rstrip().endswith("stopped"), out[-3000:]
    assert stopped_in < 8, f"took {stopped_in:.1f}s to stop"
    text = target.read_text(encoding="utf-8")
    assert text.count("Server logs are in `logs/`") == 1 and text.count("headroom:lessons:end") == 1
    assert not list(project.glob("*.headroom-tmp"))  # no temp file left behind
    assert _lesson_state(db_file) == [("k-logs", "active")]
    journal = isolated_home / "learn" / "journal.jsonl"
    assert journal.read_text(encoding="utf-8").count('"op": "write"') == 1

    # 2. A crash (kill -9) right after the file is written and before the DB records it, then a restart.
    target.unlink()
    with sqlite3.connect(db_file) as conn:
        conn.execute("update lessons set status = 'proposed', activated_at = null")
    marker.unlink()
    _nightly_due_now(db_file)
    proc = _learn_daemon(env, output, T_KILL_AFTER_WRITE="1")
    assert proc.wait(timeout=60) == -signal.SIGKILL
    written = target.read_bytes()
    assert written.count(b"Server logs are in `logs/`") == 1
    assert _lesson_state(db_file) == [("k-logs", "proposed")]  # the crash came before activation
    _nightly_due_now(db_file)  # (a run killed midway is retried at its next time; here: now)
    proc = _learn_daemon(env, output)
    try:
        wait_for(lambda: _lesson_state(db_file) == [("k-logs", "active")], 60)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert target.read_bytes() == written  # not written twice, the lesson not doubled
    assert journal.read_text(encoding="utf-8").count('"op": "write"') == 2  # run 1 and the crashed run only
