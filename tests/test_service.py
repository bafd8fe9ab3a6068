"""The daemon as a whole: backfill then follow, one per user, clean stop, and kill -9 losing nothing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from headroom.daemon.config import load_config
from headroom.daemon.ingest import Ingestor
from headroom.daemon.service import Service
from headroom.memory.db import open_database
from tests.helpers import (
    SESSION,
    claude_record,
    claude_session_lines,
    claude_tree,
    copy_tree,
    db_counts,
    expected_counts,
)

DAEMON = [sys.executable, "-c", "from headroom.daemon.cli import main; main()"]


def wait_for(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {seconds}s")


def scalar(db_file: Path, sql: str) -> int:
    """Read the daemon's DB from outside, as another process would (WAL allows it)."""
    if not db_file.exists():
        return 0
    conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute(sql).fetchone()[0] or 0)
    except sqlite3.OperationalError:  # the schema is not created yet
        return 0
    finally:
        conn.close()


def test_backfill_then_follow_live_appends(claude_root: Path, isolated_home: Path) -> None:
    path = claude_tree(claude_root)
    lines = claude_session_lines(4)
    path.write_bytes(b"".join(lines))
    config = load_config()
    config.watcher.debounce_ms = 50
    service = Service(config)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        db_file = isolated_home / "headroom.db"
        backfilled = expected_counts("claude", [(path, claude_root)])["events"]
        wait_for(lambda: scalar(db_file, "select count(*) from events") == backfilled)
        for n in range(100, 105):  # each new line is visible within a second or so
            with path.open("ab") as handle:
                handle.write(json.dumps(claude_record("prompt", n, text=f"live {n}")).encode() + b"\n")
            started = time.monotonic()
            wait_for(lambda n=n: scalar(db_file, f"select count(*) from events where key = 'u{n}'") == 1, 5)
            assert time.monotonic() - started < 3
        wait_for(lambda: scalar(db_file, "select turns from sessions") == 9)
        # A root that appears after start-up (an agent installed later) is picked up.
        codex_home = Path(os.environ["CODEX_HOME"])
        rollout = (
            codex_home
            / "sessions"
            / "2026"
            / "05"
            / "01"
            / "rollout-2026-05-01T10-00-00-019b0000-0000-7000-8000-000000000001.jsonl"
        )
        rollout.parent.mkdir(parents=True)
        rollout.write_text(
            json.dumps(
                {
                    "timestamp": "2026-05-01T10:00:00Z",
                    "type": "session_meta",
                    "payload": {
                        "id": "019b0000-0000-7000-8000-000000000001",
                        "cwd": "/w",
                        "cli_version": "0.80.0",
                    },
                }
            )
            + "\n",
            encoding="utf-8",
        )
        wait_for(lambda: scalar(db_file, "select count(*) from sessions where agent = 'codex'") == 1, 15)
    finally:
        service.request_stop()
        thread.join(10)
    assert not thread.is_alive()


def _daemon(env: dict[str, str], output: Path) -> subprocess.Popen[bytes]:
    """Start ``headroom daemon run``; its output goes to a file (a full pipe would block it)."""
    with output.open("ab") as sink:
        return subprocess.Popen([*DAEMON, "daemon", "run"], env=env, stdout=sink, stderr=subprocess.STDOUT)


def test_one_daemon_per_user_and_a_clean_sigterm(claude_root: Path, isolated_home: Path, tmp_path: Path) -> None:
    claude_tree(claude_root).write_bytes(b"".join(claude_session_lines(2)))
    env = dict(os.environ)
    output = tmp_path / "daemon.out"
    first = _daemon(env, output)
    try:
        wait_for(lambda: scalar(isolated_home / "headroom.db", "select count(*) from sessions") == 1)
        second = subprocess.run([*DAEMON, "daemon", "run"], env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert f"already running (pid {first.pid}" in second.stderr
        status = subprocess.run([*DAEMON, "daemon", "status"], env=env, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0 and str(first.pid) in status.stdout
        started = time.monotonic()
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=15)
        out = output.read_text(encoding="utf-8")
        assert first.returncode == 0, out
        assert time.monotonic() - started < 5
        assert "received SIGTERM, stopping" in out and out.rstrip().endswith("stopped")
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    status = subprocess.run([*DAEMON, "daemon", "status"], env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 3


def _corpus(root: Path, shared_dir: Path | None, sessions: int) -> None:
    """Many synthetic Claude sessions (and the real fixtures, when present)."""
    folder = root / "-home-dev-src-shop"
    folder.mkdir(parents=True, exist_ok=True)
    template = b"".join(claude_session_lines(150))
    for i in range(sessions):
        fresh = f"{i:08d}-2222-4333-8444-555555555555"
        (folder / f"{fresh}.jsonl").write_bytes(
            template.replace(SESSION.encode(), fresh.encode()).replace(b'"msg_', f'"m{i}_'.encode())
        )
    if shared_dir is not None:
        copy_tree(shared_dir / "fixtures" / "sessions" / "claude" / "projects", root)


def finish_backfill(env: dict[str, str], output: Path, db_file: Path, total: int) -> int | None:
    """Start the daemon again, let it read all ``total`` bytes and settle, SIGTERM it; its exit code."""
    proc = _daemon(env, output)
    try:
        wait_for(lambda: scalar(db_file, "select sum(offset) from source_files") == total, 180)
        wait_for(lambda: scalar(db_file, "select count(*) from sessions where stale") == 0, 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return proc.returncode


def assert_same_as_a_clean_ingest(db_file: Path, claude_root: Path, clean_file: Path) -> dict[str, int]:
    """The daemon's DB holds exactly the rows one uninterrupted ingest gives (into ``clean_file``): its counts."""
    clean = open_database(f"sqlite:///{clean_file}")
    daemon_db = open_database(f"sqlite:///{db_file}")
    try:
        Ingestor(clean, {"claude": [claude_root]}).scan()
        expected = db_counts(clean)
        assert db_counts(daemon_db) == expected  # nothing lost, nothing doubled
        return expected
    finally:
        clean.close()
        daemon_db.close()


@pytest.mark.slow
def test_sigkill_mid_ingest_loses_and_duplicates_nothing(
    claude_root: Path, isolated_home: Path, tmp_path: Path
) -> None:
    shared_candidate = Path(__file__).resolve().parents[2] / "shared"
    _corpus(claude_root, shared_candidate if (shared_candidate / "fixtures").is_dir() else None, sessions=150)
    total = sum(p.stat().st_size for p in claude_root.rglob("*.jsonl"))
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "config.toml").write_text("[ingest]\nchunk_mb = 0.05\n", encoding="utf-8")
    db_file = isolated_home / "headroom.db"
    env = dict(os.environ)
    kills = 0
    output = tmp_path / "daemon.out"
    for fraction in (0.15, 0.45, 0.75):  # kill -9 three times, at different points of the backfill
        proc = _daemon(env, output)
        try:
            wait_for(lambda f=fraction: scalar(db_file, "select sum(offset) from source_files") >= f * total, 120)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        kills += 1
        assert scalar(db_file, "select sum(offset) from source_files") < total, "the backfill finished before the kill"
    returncode = finish_backfill(env, output, db_file, total)
    assert kills == 3 and returncode == 0, output.read_text(encoding="utf-8")[-3000:]
    expected = assert_same_as_a_clean_ingest(db_file, claude_root, tmp_path / "clean.db")
    assert expected["events"] > 60_000
    sums = "select sum(turns), sum(tool_calls), sum(failed_tool_calls) from sessions"
    with (
        contextlib.closing(sqlite3.connect(db_file)) as daemon_conn,
        contextlib.closing(sqlite3.connect(tmp_path / "clean.db")) as clean_conn,
    ):
        assert daemon_conn.execute(sums).fetchone() == clean_conn.execute(sums).fetchone()
