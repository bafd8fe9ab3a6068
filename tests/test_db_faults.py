"""The database file going wrong under a real daemon: deleted, replaced by another file, damaged mid-file.

Each test runs ``headroom daemon run`` as a subprocess over real files, reads its health as a user would
(``headroom daemon status --json``, ``headroom doctor``), and checks what the database holds afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from headroom.memory.db import open_database
from headroom.memory.errors import DatabaseError
from tests.helpers import claude_record, claude_session_lines, claude_tree
from tests.test_service import DAEMON, _corpus, _daemon, scalar, wait_for


def _cli(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*DAEMON, *args], env=dict(os.environ), capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def _database_health() -> dict[str, Any]:
    out = _cli("daemon", "status", "--json").stdout
    health = json.loads(out).get("health") or {}
    return dict(health.get("database") or {})


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _remember(db_file: Path, name: str, value: str) -> None:
    """A row only the database holds (no log can rebuild it), written as another process would."""
    conn = sqlite3.connect(db_file, timeout=30)
    try:
        with conn:
            conn.execute("INSERT INTO state_values (name, value) VALUES (?, ?)", (name, value))
    finally:
        conn.close()


def _append_prompt(log: Path, n: int) -> None:
    with log.open("ab") as handle:
        handle.write(json.dumps(claude_record("prompt", n, text=f"after {n}")).encode() + b"\n")


def test_a_deleted_database_is_restored_with_everything_and_health_says_so(
    claude_root: Path, isolated_home: Path, tmp_path: Path
) -> None:
    log = claude_tree(claude_root)
    log.write_bytes(b"".join(claude_session_lines(3)))
    db_file = isolated_home / "headroom.db"
    proc = _daemon(dict(os.environ), tmp_path / "daemon.out")
    try:
        wait_for(lambda: scalar(db_file, "select count(*) from sessions where not stale") == 1, 60)
        wait_for(lambda: _database_health().get("state") == "ok", 30)
        _remember(db_file, "only-in-the-db", "427 proxy rows")
        for side in ("", "-wal", "-shm"):  # what `rm headroom.db*` does
            Path(f"{db_file}{side}").unlink(missing_ok=True)
        _append_prompt(log, 500)  # received after the deletion: must not be lost either
        wait_for(lambda: scalar(db_file, "select count(*) from events where key = 'u500'") == 1, 30)
        health = _database_health()
        assert health["state"] == "ok", health
        assert any("was deleted while the daemon ran: restored" in r for r in health["recoveries"]), health
        assert "restored it with everything written so far" in (tmp_path / "daemon.out").read_text()
        _append_prompt(log, 501)
        wait_for(lambda: scalar(db_file, "select count(*) from events where key = 'u501'") == 1, 30)
    finally:
        _stop(proc)
    assert proc.returncode == 0
    conn = sqlite3.connect(db_file)
    try:  # after the restart what the daemon had before and after the deletion is all there
        assert conn.execute("select value from state_values where name = 'only-in-the-db'").fetchone() == (
            "427 proxy rows",
        )
        assert conn.execute("select count(*) from events where key in ('u500', 'u501')").fetchone() == (2,)
    finally:
        conn.close()
    assert oct(db_file.stat().st_mode & 0o777) == "0o600"


def test_a_replaced_database_is_used_and_the_old_one_kept_beside_it(
    claude_root: Path, isolated_home: Path, tmp_path: Path
) -> None:
    log = claude_tree(claude_root)
    log.write_bytes(b"".join(claude_session_lines(3)))
    db_file = isolated_home / "headroom.db"
    proc = _daemon(dict(os.environ), tmp_path / "daemon.out")
    try:
        wait_for(lambda: scalar(db_file, "select count(*) from sessions where not stale") == 1, 60)
        _remember(db_file, "old-file", "kept")
        other = tmp_path / "other.db"
        conn = sqlite3.connect(other)
        conn.execute("CREATE TABLE mine (x)")
        conn.close()
        # Another database moved into place (a backup put back, say), without the old one's WAL.
        os.replace(other, db_file)
        for side in ("-wal", "-shm"):
            Path(f"{db_file}{side}").unlink(missing_ok=True)
        wait_for(lambda: any("was replaced by another file" in r for r in _database_health()["recoveries"]), 30)
        wait_for(lambda: scalar(db_file, "select count(*) from sessions where not stale") == 1, 30)  # re-ingested
        assert _database_health()["state"] == "ok"
    finally:
        _stop(proc)
    kept = list(isolated_home.glob("headroom.db.orphaned-*"))
    assert len(kept) == 1
    assert scalar(kept[0], "select count(*) from state_values where name = 'old-file'") == 1
    assert scalar(db_file, "select count(*) from mine") == 0  # the user's table is still there


def _corrupt_middle(db_file: Path) -> int:
    """Overwrite pages in the middle of a checkpointed database with garbage; how many pages it has."""
    conn = sqlite3.connect(db_file)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    with db_file.open("r+b") as handle:
        for page in range(pages // 2, pages // 2 + 4):
            handle.seek(page * page_size)
            handle.write(bytes((i * 37 + 11) % 256 for i in range(page_size)))
    return int(pages)


def test_a_damaged_database_is_reported_and_the_rebuild_command_restores_it(
    claude_root: Path, isolated_home: Path, tmp_path: Path
) -> None:
    _corpus(claude_root, None, sessions=6)
    db_file = isolated_home / "headroom.db"
    _cli("ingest", check=True)
    _remember(db_file, "unused", "x")
    conn = sqlite3.connect(db_file)
    with conn:
        conn.execute(
            "INSERT INTO lessons (key, project, scope, kind, signature, text, names, evidence, status, count, "
            "sessions, corrected_by_user, created_at, updated_at) VALUES ('k1', '/p', 'project', 'tool_error', "
            "'sig', 'use logs/', '[]', '[]', 'active', 2, 2, 0, '2026-11-01 10:00:00', '2026-11-01 10:00:00')"
        )
    conn.close()
    expected = scalar(db_file, "select count(*) from events")
    assert _corrupt_middle(db_file) > 40
    assert _cli("stats", "--no-refresh").returncode != 0  # what the user saw: "database disk image is malformed"

    doctor = _cli("doctor")
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert "damaged" in doctor.stdout and "headroom ingest --rebuild" in doctor.stdout

    proc = _daemon(dict(os.environ), tmp_path / "daemon.out")
    try:
        wait_for(lambda: _database_health().get("state") == "damaged", 60)
        health = _database_health()
        assert "headroom ingest --rebuild" in health["last_error"], health
        status = _cli("daemon", "status").stdout
        assert "database: damaged" in status and "headroom ingest --rebuild" in status
        refused = _cli("ingest", "--rebuild")
        assert refused.returncode == 1 and "stop it first" in refused.stderr
    finally:
        _stop(proc)
    assert "is damaged" in (tmp_path / "daemon.out").read_text()

    rebuilt = _cli("ingest", "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "moved the old database to" in rebuilt.stderr
    assert list(isolated_home.glob("headroom.db.broken-*"))
    assert scalar(db_file, "select count(*) from events") == expected
    assert scalar(db_file, "select count(*) from lessons") == 1  # copied back from the readable pages
    assert _cli("stats", "--no-refresh").returncode == 0
    assert "integrity check: ok" in _cli("doctor", check=True).stdout


def test_the_nightly_compaction_checks_first_and_leaves_a_damaged_file_alone(
    claude_root: Path, isolated_home: Path
) -> None:
    _corpus(claude_root, None, sessions=6)
    _cli("ingest", check=True)
    db_file = isolated_home / "headroom.db"
    db = open_database(f"sqlite:///{db_file}")
    try:
        assert db.compact()["size_after"] > 0 and db.integrity is not None and db.integrity["ok"]
    finally:
        db.close()
    _corrupt_middle(db_file)
    size = db_file.stat().st_size
    db = open_database(f"sqlite:///{db_file}")
    try:
        with pytest.raises(DatabaseError, match=r"not compacted: the database .* is damaged"):
            db.compact(min_free_fraction=0.0, min_free_bytes=0)  # would VACUUM a sound file
        assert db.integrity is not None and not db.integrity["ok"] and db.integrity["problems"]
        assert "headroom ingest --rebuild" in (db.integrity_problem() or "")
    finally:
        db.close()
    assert db_file.stat().st_size == size
