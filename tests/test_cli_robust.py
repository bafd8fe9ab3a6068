"""The command line when things around it are wrong: hostile text in logs, a broken or missing config, a
read-only data dir, missing files, a closed pipe; and the modes of everything headroom creates."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from headroom.daemon.cli import cli
from tests.helpers import claude_record, claude_session_lines, claude_tree
from tests.test_service import _daemon, scalar, wait_for

CLI = [sys.executable, "-m", "headroom.daemon.cli"]

# What a web page or a tool's output can put in a session log: OSC 52 (sets the clipboard), OSC 0 (window
# title), clear screen + cursor home, an 8-bit CSI, a bell; and the text around them that must stay.
HOSTILE = "run \x1b]52;c;ZWNobyBwd25lZA==\x07this\x1b]0;pwned\x1b\\ now\x1b[2J\x1b[H\x9b31m ok\x07\tdone\nline2"
ESCAPES = ("\x1b", "\x9b", "\x07")


def run(*args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def cli_process(*args: str, env: dict[str, str] | None = None, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [*CLI, *args], env=env or dict(os.environ), capture_output=True, text=True, timeout=120, **kw
    )


def test_printable_keeps_text_newlines_and_tabs_and_drops_every_control_sequence() -> None:
    from headroom.daemon.cli.common import printable

    assert printable(HOSTILE) == "run this now ok\tdone\nline2"
    assert printable("half an OSC \x1b]52;c;AAAA") == "half an OSC "
    assert printable("naïve 日本 [bold]x[/]") == "naïve 日本 [bold]x[/]"
    assert printable(None) == ""


@pytest.fixture
def hostile_log(claude_root: Path) -> Path:
    log = claude_tree(claude_root)
    lines = [
        claude_record("prompt", 0, text=HOSTILE),
        claude_record("tool_use", 1, command="cat x \x1b]52;c;ZWNobyBwd25lZA==\x07"),
        claude_record("tool_result", 2, call=1, error=True, output="Exit code 1\n\x1b[2Jboom\x1b]0;pwned\x07"),
        claude_record("text", 3, text="reply \x1b]0;pwned\x07"),
    ]
    log.write_bytes(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
    return log


def test_sessions_and_stats_print_no_escape_sequences_from_logs(hostile_log: Path) -> None:
    run("ingest")
    session = json.loads(run("sessions", "--json").output)[0]["session"]
    for args in (
        ("sessions", "show", session, "--full"),
        ("sessions", "show", session),
        ("sessions",),
        ("stats", "--by", "project", "--no-refresh"),
        ("stats", "--failures", "--no-refresh"),
    ):
        out = run(*args).output
        assert not any(seq in out for seq in ESCAPES), (args, out)
    shown = run("sessions", "show", session, "--full").output
    assert "run this now ok" in shown and "boom" in shown and "cat x" in shown
    assert "ZWNobyBwd25lZA==" not in shown.replace("\\u001b]52;c;ZWNobyBwd25lZA==", "")  # only JSON-escaped
    assert "pwned" not in shown


def test_memory_show_and_search_print_no_escape_sequences(tmp_path: Path, isolated_home: Path) -> None:
    project = tmp_path / "proj"
    (project / ".git").mkdir(parents=True)
    saved = json.loads(run("memory", "save", "-p", str(project), "Use uv, not pip.", "--json").output)
    # `memory save` refuses control characters; an item from older data or another writer may still hold them.
    import sqlite3

    conn = sqlite3.connect(isolated_home / "headroom.db")
    with conn:
        conn.execute(
            "UPDATE memory_items SET title = ?, content = ? WHERE id = ?",
            (f"uv {HOSTILE}", f"Use uv {HOSTILE}", saved["id"]),
        )
    conn.close()
    shown = run("memory", "show", str(saved["id"])).output
    found = run("memory", "search", "-p", str(project), "uv", "--text-only").output
    for out in (shown, found):
        assert not any(seq in out for seq in ESCAPES), out
    assert "run this now ok" in shown


# -- config -----------------------------------------------------------------------------------------------


BROKEN = '[proxy]\nport = 8787\n[ingest]\nchunk_mb = "four"\n'


def test_diagnosis_commands_work_with_a_broken_config_and_say_where(isolated_home: Path) -> None:
    isolated_home.mkdir(parents=True, exist_ok=True)
    config = isolated_home / "config.toml"
    config.write_text(BROKEN, encoding="utf-8")
    doctor = run("doctor", ok=False)
    assert doctor.exit_code == 1
    assert f"{config}:4: 'ingest.chunk_mb' must be a positive number" in doctor.output
    assert "paths" in doctor.output and "database" in doctor.output  # the rest of the report is there
    status = run("daemon", "status", ok=False)
    assert status.exit_code == 3 and f"{config}:4:" in status.output and "not running" in status.output
    logs = run("daemon", "logs")
    assert "no log yet" in logs.output
    config.write_text("[proxy\nport = 1\n", encoding="utf-8")  # not TOML at all: line and column
    assert "line 1" in run("doctor", ok=False).output
    stats = run("stats", ok=False)  # an ordinary command still refuses the broken file
    assert stats.exit_code == 1 and str(config) in stats.output


def test_a_missing_config_file_given_by_name_is_an_error(tmp_path: Path) -> None:
    result = run("--config", str(tmp_path / "missing.toml"), "stats", ok=False)
    assert result.exit_code == 2 and "missing.toml" in result.output and "does not exist" in result.output


def test_doctor_shows_the_config_file_it_was_given(tmp_path: Path) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text("[ingest]\nchunk_mb = 2\n", encoding="utf-8")
    out = run("--config", str(mine), "doctor").output
    assert f"config_file: {mine}" in out


def test_doctor_shows_only_its_own_data_dirs_proxy(isolated_home: Path, tmp_path: Path) -> None:
    """Another headroom (another data dir) runs a proxy on the configured port: not ours to show."""
    other = dict(os.environ, HEADROOM_HOME=str(tmp_path / "other-home"))
    port_file = tmp_path / "port"
    proxy = subprocess.Popen(
        [*CLI, "proxy", "--port", "0"], env=other, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        state_dir = tmp_path / "other-home" / "state"
        wait_for(lambda: any(state_dir.glob("proxy-*.json")), 30)  # a standalone proxy's own registration
        url = json.loads(next(state_dir.glob("proxy-*.json")).read_text())["url"]
        port_file.write_text(url.rsplit(":", 1)[1])
        isolated_home.mkdir(parents=True, exist_ok=True)
        (isolated_home / "config.toml").write_text(f"[proxy]\nport = {port_file.read_text()}\n", encoding="utf-8")
        env = dict(os.environ)
        env.pop("HEADROOM_PROXY_PORT", None)
        report = json.loads(cli_process("doctor", "--json", env=env).stdout)
        assert report["proxy"]["url"] is None, report["proxy"]
        # Its own proxy.json naming that other process is not believed either (it cannot prove our secret).
        (isolated_home / "state").mkdir(parents=True, exist_ok=True)
        (isolated_home / "state" / "proxy.json").write_text(json.dumps({"url": url, "pid": 1}))
        assert json.loads(cli_process("doctor", "--json", env=env).stdout)["proxy"]["url"] is None
        # The other data dir's doctor does see it.
        assert json.loads(cli_process("doctor", "--json", env=other).stdout)["proxy"]["url"] == url
    finally:
        proxy.terminate()
        proxy.wait(30)


# -- errors that name the file and the problem ------------------------------------------------------------


def test_compress_on_a_missing_file_or_a_folder_names_it(tmp_path: Path) -> None:
    missing = run("compress", str(tmp_path / "nope.log"), ok=False)
    assert missing.exit_code == 1
    assert f"{tmp_path / 'nope.log'}: No such file or directory" in missing.output
    assert "unexpected" not in missing.output
    folder = run("compress", str(tmp_path), ok=False)
    assert f"{tmp_path}: Is a directory" in folder.output and "unexpected" not in folder.output


def test_a_closed_pipe_ends_the_command_quietly(isolated_home: Path) -> None:
    """`headroom daemon logs -n 200000 | head -1`: the reader goes away after one line; no error, no traceback."""
    log = isolated_home / "state" / "logs" / "daemon.log"
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"2026-12-01 10:00:00,000 INFO headroom: line {i} {'x' * 80}\n" for i in range(200_000)))
    piped = subprocess.run(
        f"{' '.join(CLI)} daemon logs -n 200000 | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert piped.stdout.startswith("2026-12-01 10:00:00,000 INFO headroom: line 0")
    assert piped.stderr == "", piped.stderr


# -- a read-only data dir ---------------------------------------------------------------------------------


def _can_mount_read_only() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=30)
    return probe.returncode == 0


def read_only(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with ``home`` mounted read-only in a private mount namespace (root included: EROFS)."""
    script = f'mount --bind "{home}" "{home}" && mount -o remount,bind,ro "{home}" && exec "$@"'
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", *CLI, *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def ingested(hostile_log: Path, isolated_home: Path, tmp_path: Path) -> Iterator[Path]:
    project = tmp_path / "proj"
    (project / ".git").mkdir(parents=True)
    assert cli_process("memory", "save", "-p", str(project), "Use uv, not pip.").returncode == 0
    assert cli_process("ingest").returncode == 0
    yield project


@pytest.mark.skipif(not _can_mount_read_only(), reason="needs root and `unshare -m` to mount the data dir read-only")
def test_read_only_commands_work_on_a_read_only_data_dir(ingested: Path, isolated_home: Path) -> None:
    """Why a mount: the tests run as root, and root ignores file modes, so a chmod'ed folder proves nothing;
    a read-only bind mount in a private mount namespace refuses every write with EROFS, root or not."""
    for args in (
        ("stats", "--no-refresh"),
        ("stats",),
        ("sessions",),
        ("sessions", "--no-refresh", "--json"),
        ("doctor",),
        ("memory", "search", "-p", str(ingested), "uv"),
    ):
        result = read_only(isolated_home, *args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert "unexpected" not in result.stderr
    assert "Use uv" in read_only(isolated_home, "memory", "search", "-p", str(ingested), "uv").stdout
    assert "opened read-only" in read_only(isolated_home, "doctor").stdout
    # A command that must write says which folder and why, in one line.
    failed = read_only(isolated_home, "ingest")
    assert failed.returncode == 1 and "Read-only file system" in failed.stderr, failed.stderr
    assert "unexpected" not in failed.stderr and "headroom keeps its data there" in failed.stderr


@pytest.mark.skipif(not _can_mount_read_only(), reason="needs root and `unshare -m` to mount the data dir read-only")
def test_a_read_only_data_dir_with_an_old_schema_says_it_needs_an_upgrade(ingested: Path, isolated_home: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(isolated_home / "headroom.db")
    with conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    conn.close()
    result = read_only(isolated_home, "stats", "--no-refresh")
    assert result.returncode == 1
    assert "needs an upgrade" in result.stderr and "write access" in result.stderr, result.stderr


# -- modes ------------------------------------------------------------------------------------------------


def test_everything_headroom_creates_is_owner_only_under_umask_022(
    claude_root: Path, isolated_home: Path, tmp_path: Path
) -> None:
    claude_tree(claude_root).write_bytes(b"".join(claude_session_lines(2)))
    old = os.umask(0o022)
    try:
        proc = _daemon(dict(os.environ), tmp_path / "daemon.out")
        try:
            wait_for(lambda: scalar(isolated_home / "headroom.db", "select count(*) from sessions") == 1, 60)
            wait_for((isolated_home / "state" / "daemon.pid").exists, 30)
            project = tmp_path / "proj"
            (project / ".git").mkdir(parents=True)
            assert cli_process("memory", "save", "-p", str(project), "Use uv, not pip.").returncode == 0
            assert cli_process("compress", str(tmp_path / "daemon.out")).returncode == 0
            loose = []
            for path in [isolated_home, *isolated_home.rglob("*")]:
                mode = path.stat().st_mode & 0o777
                want = 0o700 if path.is_dir() else 0o600
                if mode & 0o077:
                    loose.append(f"{path.relative_to(isolated_home)} {oct(mode)} (want {oct(want)})")
            assert not loose, loose
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        os.umask(old)


# -- the backfill progress bar on a terminal --------------------------------------------------------------


def test_the_backfill_bar_is_gone_once_backfill_ends(claude_root: Path, isolated_home: Path) -> None:
    """On a terminal (a pty), the bar's redraws stop when backfill ends: nothing of it after "started in"."""
    import pty
    import select
    import signal
    import time

    claude_tree(claude_root).write_bytes(b"".join(claude_session_lines(30)))
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="120", LINES="40")
    env.pop("NO_COLOR", None)
    master, slave = pty.openpty()
    proc = subprocess.Popen([*CLI, "daemon", "run"], env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    seen = b""

    def read_for(seconds: float) -> None:
        nonlocal seen
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    return

    try:
        deadline = time.monotonic() + 60
        while b"started in" not in seen and time.monotonic() < deadline:
            read_for(0.2)
        assert b"started in" in seen, seen[-2000:]
        assert b"backfilling agent logs" in seen  # the bar was there, on the terminal
        read_for(2.0)  # the bar refreshes 10 times a second while it lives
        after = seen[seen.index(b"started in") :]
        assert b"backfilling" not in after and b"\x1b[2K" not in after, after[-1000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        os.close(master)


def test_learn_report_prints_no_escape_sequences(isolated_home: Path) -> None:
    import sqlite3

    run("ingest")
    conn = sqlite3.connect(isolated_home / "headroom.db")
    with conn:
        conn.execute(
            "INSERT INTO lessons (key, project, scope, kind, signature, text, names, evidence, status, count, "
            "sessions, corrected_by_user, created_at, updated_at) VALUES ('k1', ?, 'project', 'tool_error', "
            "'sig', ?, '[]', '[]', 'active', 2, 2, 0, '2026-11-01 10:00:00', '2026-11-01 10:00:00')",
            ("/src/sh\x1b]0;pwned\x07op", f"Use logs/ {HOSTILE}"),
        )
    conn.close()
    out = run("learn", "report").output
    assert not any(seq in out for seq in ESCAPES), out
    assert "Use logs/ run this now ok" in out and "pwned" not in out
