"""``headroom daemon install|uninstall|start|stop|restart|status|logs``.

The service manager is replaced by a recorder (``daemon_cmd.RUNNER``), so the exact commands are asserted
without touching the machine's systemd or launchd; the unit file itself is checked by the real
``systemd-analyze verify``, and stopping a hand-started daemon signals a real process.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from headroom.daemon.cli import cli, daemon_cmd
from headroom.daemon.install import (
    LAUNCHD_LABEL,
    follow,
    render_plist,
    render_unit,
    service_spec,
    tail_lines,
    terminate,
)
from headroom.daemon.paths import paths

UNIT = "headroom.service"


class FakeManager:
    """Records every command; answers like a reachable systemd/launchd (or an unreachable one)."""

    def __init__(self, *, reachable: bool = True) -> None:
        self.reachable = reachable
        self.calls: list[list[str]] = []
        self.loaded = False  # launchd: whether the agent is bootstrapped

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        args = list(argv)
        self.calls.append(args)
        out, code = "", 0
        if args[:3] == ["systemctl", "--user", "is-system-running"]:
            out, code = ("running\n", 0) if self.reachable else ("offline\n", 1)
        elif args[:3] == ["systemctl", "--user", "is-active"]:
            out = "active\n"
        elif args[:3] == ["systemctl", "--user", "is-enabled"]:
            out = "enabled\n"
        elif args[:2] == ["launchctl", "print"]:
            code = 0 if self.reachable and (args[2].count("/") == 1 or self.loaded) else 113
            out = "\tstate = running\n" if code == 0 else ""
        elif args[:2] == ["launchctl", "bootstrap"]:
            self.loaded = True
        elif args[:2] == ["launchctl", "bootout"]:
            self.loaded = False
        return subprocess.CompletedProcess(args, code, out, "" if code == 0 else "Failed to connect to bus")


@pytest.fixture
def manager(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeManager:
    fake = FakeManager()
    monkeypatch.setattr(daemon_cmd, "RUNNER", fake)
    monkeypatch.setattr(daemon_cmd, "PLATFORM", "linux")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    return fake


def invoke(*args: str, code: int = 0, stdin: str | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def unit_file(tmp_path: Path) -> Path:
    return tmp_path / "xdg-config" / "systemd" / "user" / UNIT


SYSTEMCTL = ["systemctl", "--user"]


# -- rendering ---------------------------------------------------------------------------------------------


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    env = {"HEADROOM_HOME": str(tmp_path / "odd home %h $USER"), "CODEX_HOME": "/srv/codex"}
    spec = service_spec(paths(), config_file=tmp_path / "my config.toml", environ=env)
    folder = tmp_path / "units"
    folder.mkdir()
    (folder / UNIT).write_text(render_unit(spec), encoding="utf-8")
    runtime = tmp_path / "runtime"  # --user needs a runtime dir even to verify a file
    runtime.mkdir(mode=0o700)
    done = subprocess.run(
        [analyze, "--user", "verify", str(folder / UNIT)],
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # unknown keys are only warnings: there must be none


def test_unit_content(tmp_path: Path) -> None:
    env = {"HEADROOM_HOME": "/data/head room", "PATH": "/usr/bin", "HEADROOM_EMBEDDINGS": "off"}
    unit = render_unit(service_spec(paths(), config_file=Path("/etc/h/config.toml"), environ=env))
    lines = unit.splitlines()
    exec_start = next(line for line in lines if line.startswith("ExecStart="))
    assert exec_start == f"ExecStart={sys.executable} -m headroom.daemon.cli --config /etc/h/config.toml daemon run"
    assert 'Environment="HEADROOM_HOME=/data/head room"' in lines
    assert "Environment=HEADROOM_EMBEDDINGS=off" in lines
    assert not any("PATH=" in line for line in lines)  # only the variables that change the daemon
    for expected in (
        "Restart=on-failure",
        "RestartSec=5",
        "Type=exec",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=15",
        "LimitNOFILE=65536",
        "NoNewPrivileges=yes",
        "WantedBy=default.target",
    ):
        assert expected in lines
    unit_section = unit.split("[Service]")[0]
    assert "StartLimitIntervalSec=" in unit_section and "StartLimitBurst=" in unit_section
    assert "ProtectHome" not in unit  # the daemon reads ~/.claude and writes into projects


def test_plist_round_trip(tmp_path: Path) -> None:
    spec = service_spec(paths(), environ={"HEADROOM_HOME": str(tmp_path / "hh")})
    data = plistlib.loads(render_plist(spec))
    assert data["Label"] == LAUNCHD_LABEL
    assert data["ProgramArguments"] == [sys.executable, "-m", "headroom.daemon.cli", "daemon", "run"]
    assert data["RunAtLoad"] is True
    assert data["KeepAlive"] == {"SuccessfulExit": False}
    assert data["ThrottleInterval"] == 5
    assert data["SoftResourceLimits"] == {"NumberOfFiles": 10240}  # past the 256 default, for the proxy
    assert data["EnvironmentVariables"] == {"HEADROOM_HOME": str(tmp_path / "hh")}
    log_dir = paths().log_dir
    assert Path(data["StandardOutPath"]).parent == log_dir
    assert Path(data["StandardErrorPath"]).parent == log_dir


# -- install / uninstall -----------------------------------------------------------------------------------


def test_install_twice_is_harmless(manager: FakeManager, tmp_path: Path, isolated_home: Path) -> None:
    (tmp_path / "c.toml").write_text("", encoding="utf-8")  # --config must name a file that exists
    first = invoke("--config", str(tmp_path / "c.toml"), "daemon", "install")
    assert "installed" in first.output
    path = unit_file(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o644
    content = path.read_text(encoding="utf-8")
    assert f"--config {tmp_path / 'c.toml'}" in content
    assert f"Environment=HEADROOM_HOME={isolated_home}" in content
    assert manager.calls == [
        [*SYSTEMCTL, "is-system-running"],
        [*SYSTEMCTL, "daemon-reload"],
        [*SYSTEMCTL, "enable", "--now", UNIT],
    ]
    manager.calls.clear()
    second = invoke("--config", str(tmp_path / "c.toml"), "daemon", "install")
    assert "already installed" in second.output
    assert path.read_text(encoding="utf-8") == content
    assert manager.calls == [[*SYSTEMCTL, "is-system-running"], [*SYSTEMCTL, "enable", "--now", UNIT]]
    manager.calls.clear()
    invoke("daemon", "install")  # another command line: an update restarts a running daemon
    assert "--config" not in path.read_text(encoding="utf-8")
    assert manager.calls == [
        [*SYSTEMCTL, "is-system-running"],
        [*SYSTEMCTL, "daemon-reload"],
        [*SYSTEMCTL, "try-restart", UNIT],
        [*SYSTEMCTL, "enable", "--now", UNIT],
    ]


def test_dry_run_writes_nothing(manager: FakeManager, tmp_path: Path) -> None:
    result = invoke("daemon", "install", "--dry-run")
    assert "ExecStart=" in result.stdout and "WantedBy=default.target" in result.stdout
    assert str(unit_file(tmp_path)) in result.stderr
    assert not unit_file(tmp_path).exists()
    assert manager.calls == []


def test_without_a_user_manager_the_unit_is_still_written(manager: FakeManager, tmp_path: Path) -> None:
    manager.reachable = False
    result = invoke("daemon", "install")
    assert unit_file(tmp_path).exists()
    assert "not reachable" in result.stderr and "systemctl --user enable --now headroom.service" in result.stderr
    assert manager.calls == [[*SYSTEMCTL, "is-system-running"]]
    for command in ("start", "restart"):
        failed = invoke("daemon", command, code=1)
        assert "systemd user manager is not reachable" in failed.stderr
    assert "not reachable" in invoke("daemon", "stop", code=1).stderr  # nothing to signal either
    status = invoke("daemon", "status", code=3)
    assert f"service: installed ({unit_file(tmp_path)})" in status.stdout
    assert "not reachable" in status.stdout


def test_start_stop_restart_status_through_systemd(manager: FakeManager, tmp_path: Path) -> None:
    invoke("daemon", "start", code=1)  # not installed yet
    invoke("daemon", "install")
    manager.calls.clear()
    invoke("daemon", "start")
    invoke("daemon", "stop")
    invoke("daemon", "restart")
    started = [call for call in manager.calls if call[2] != "is-system-running"]
    assert started == [[*SYSTEMCTL, "start", UNIT], [*SYSTEMCTL, "stop", UNIT], [*SYSTEMCTL, "restart", UNIT]]
    status = invoke("daemon", "status", code=3)  # the fake starts nothing: the exit code follows the lock
    assert status.stdout.splitlines() == [
        "headroom daemon: not running",
        f"service: installed ({unit_file(tmp_path)})",
        "service state: active (enabled)",
    ]


def test_uninstall_keeps_data_and_purge_removes_it(manager: FakeManager, tmp_path: Path, isolated_home: Path) -> None:
    invoke("daemon", "install")
    paths().ensure()
    (isolated_home / "headroom.db").write_bytes(b"db")
    (isolated_home / "config.toml").write_text("", encoding="utf-8")
    (paths().log_file).write_text("log\n", encoding="utf-8")
    manager.calls.clear()
    result = invoke("daemon", "uninstall")
    assert not unit_file(tmp_path).exists()
    assert "data kept" in result.output and (isolated_home / "headroom.db").exists()
    assert manager.calls == [
        [*SYSTEMCTL, "is-system-running"],
        [*SYSTEMCTL, "disable", "--now", UNIT],
        [*SYSTEMCTL, "daemon-reload"],
        [*SYSTEMCTL, "reset-failed", UNIT],
    ]
    invoke("daemon", "uninstall", "--purge", code=1, stdin="n\n")  # asked, refused: nothing deleted
    assert (isolated_home / "headroom.db").exists()
    invoke("daemon", "uninstall", "--purge", "--yes")
    assert not (isolated_home / "headroom.db").exists() and not paths().state_dir.exists()
    assert (isolated_home / "config.toml").exists()  # the user's own file stays


def test_launchd_install_twice_and_uninstall(manager: FakeManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_cmd, "PLATFORM", "darwin")
    domain = f"gui/{os.getuid()}"
    target = f"{domain}/{LAUNCHD_LABEL}"
    plist = Path.home() / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
    invoke("daemon", "install")
    assert plistlib.loads(plist.read_bytes())["Label"] == LAUNCHD_LABEL
    assert paths().log_dir.is_dir()  # launchd opens StandardOutPath itself
    assert manager.calls == [
        ["launchctl", "print", domain],
        ["launchctl", "enable", target],
        ["launchctl", "print", target],
        ["launchctl", "bootstrap", domain, str(plist)],
    ]
    manager.calls.clear()
    assert "already installed" in invoke("daemon", "install").output
    assert manager.calls == [
        ["launchctl", "print", domain],
        ["launchctl", "enable", target],
        ["launchctl", "print", target],
    ]
    manager.calls.clear()
    invoke("daemon", "restart")
    assert manager.calls[-1] == ["launchctl", "kickstart", "-k", target]
    manager.calls.clear()
    invoke("daemon", "uninstall")
    assert manager.calls[-1] == ["launchctl", "bootout", target] and not plist.exists()


# -- a daemon started by hand ------------------------------------------------------------------------------


def test_terminate_waits_for_a_real_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = time.monotonic()
    assert terminate(child.pid, timeout=10)
    assert time.monotonic() - started < 5
    assert child.wait(timeout=5) is not None


def test_terminate_gives_up_on_a_process_that_ignores_sigterm() -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    )
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            assert not terminate(child.pid, timeout=0.5)
            assert child.poll() is None
        finally:
            child.kill()


def test_stop_signals_a_daemon_started_by_hand(manager: FakeManager) -> None:
    where = paths().ensure()
    holder = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (print('got SIGTERM', flush=True), sys.exit(0)))\n"
        "from filelock import FileLock\n"
        "lock = FileLock(sys.argv[1]); lock.acquire()\n"
        "open(sys.argv[2], 'w').write(str(os.getpid()))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    pid_file = where.daemon_lock.with_suffix(".pid")
    argv = [sys.executable, "-c", holder, str(where.daemon_lock), str(pid_file)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as child:
        _stop_by_hand(child, manager)


def _stop_by_hand(child: subprocess.Popen[str], manager: FakeManager) -> None:
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        assert f"running (pid {child.pid})" in invoke("daemon", "status").stdout
        result = invoke("daemon", "stop")
        assert f"stopped (pid {child.pid})" in result.stdout
        assert child.stdout.readline().strip() == "got SIGTERM"
        child.wait(timeout=5)  # already reaped by `stop` (it waits for the pid to go)
        assert manager.calls == []  # not installed: no service manager involved
        invoke("daemon", "status", code=3)
        assert "not running" in invoke("daemon", "stop").stdout
    finally:
        if child.poll() is None:
            child.kill()


# -- logs --------------------------------------------------------------------------------------------------


def test_logs_prints_the_last_lines() -> None:
    log_file = paths().ensure().log_file
    log_file.write_text("".join(f"line {i}\n" for i in range(1000)), encoding="utf-8")
    assert invoke("daemon", "logs", "-n", "3").stdout.splitlines() == ["line 997", "line 998", "line 999"]
    assert len(invoke("daemon", "logs").stdout.splitlines()) == 50
    assert tail_lines(log_file, 5, block=7) == [f"line {i}" for i in range(995, 1000)]  # many small blocks
    assert tail_lines(log_file, 5000) == [f"line {i}" for i in range(1000)]


def test_logs_without_a_log_file() -> None:
    assert "no log yet" in invoke("daemon", "logs").stderr


def test_follow_survives_rotation(tmp_path: Path) -> None:
    log_file = tmp_path / "daemon.log"
    log_file.write_text("old\n", encoding="utf-8")
    got: list[str] = []
    deadline = time.monotonic() + 10

    def writer() -> None:
        time.sleep(0.2)
        with log_file.open("a", encoding="utf-8") as out:
            out.write("appended\npart")
            out.flush()
            time.sleep(0.2)
            out.write("ial\n")
        time.sleep(0.2)
        log_file.rename(tmp_path / "daemon.log.1")  # what RotatingFileHandler does
        log_file.write_text("after rotation\n", encoding="utf-8")

    thread = threading.Thread(target=writer)
    thread.start()
    for line in follow(log_file, should_stop=lambda: len(got) >= 3 or time.monotonic() > deadline, poll=0.02):
        got.append(line)
    thread.join()
    assert got == ["appended", "partial", "after rotation"]


def test_help_for_every_new_command() -> None:
    for command in ("install", "uninstall", "start", "stop", "restart", "status", "logs"):
        assert f"Usage: headroom daemon {command}" in invoke("daemon", command, "--help").output
