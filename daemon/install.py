"""Installing the daemon as a login service: a systemd user unit on Linux, a launchd agent on macOS.

Users install headroom once, so the service must start at login and come back after a crash, without root.
The unit file is *generated* from the interpreter that runs ``headroom daemon install`` (``sys.executable``,
so a venv or pipx install keeps working) and from the few environment variables that change what the daemon
does: a user service does not inherit the login shell's environment, so ``HEADROOM_HOME`` or
``CLAUDE_CONFIG_DIR`` set there would otherwise be silently lost.

Two seams keep this testable without touching the real service manager:

- rendering is pure: :func:`render_unit` and :func:`render_plist` turn a :class:`ServiceSpec` into text/bytes;
- every system call goes through one :data:`Runner` (``argv -> CompletedProcess``), which tests replace with
  a recorder. :func:`run_command` is the real one.

When the service manager cannot be reached (no ``systemctl --user`` bus in a container, an SSH session
without lingering), ``install`` still writes the file so the user can enable it later, and says so; only
``start``/``stop``/``restart`` fail, because they cannot do what was asked.
"""

from __future__ import annotations

import contextlib
import os
import plistlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from headroom.daemon.errors import DaemonError
from headroom.daemon.paths import Paths
from headroom.learn.homes import HOME_VARIABLES
from headroom.memory.files import write_atomic

UNIT_NAME = "headroom.service"
LAUNCHD_LABEL = "dev.headroom.daemon"
STOP_TIMEOUT = 15.0  # seconds: the unit's TimeoutStopSec, and how long `stop` waits for a bare daemon
RESTART_DELAY = 5  # seconds between a crash and the next start (RestartSec / ThrottleInterval)
OPEN_FILES = 65536  # LimitNOFILE: within systemd's default hard limit for user managers (524,288)
LAUNCHD_OPEN_FILES = 10240  # macOS: OPEN_MAX, the most a process may ask for

#: Variables that change what the daemon does and that a service manager would not pass on. Proxy settings
#: and CA bundles matter because the proxy calls the providers from inside the service.
SERVICE_ENV = (
    "HEADROOM_HOME",
    "HEADROOM_PROXY_PORT",
    "HEADROOM_EMBEDDINGS",
    "HEADROOM_EMBED_BACKEND",
    *HOME_VARIABLES,
    "SSL_CERT_FILE",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
)

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]
Manager = Literal["systemd", "launchd"]


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run a service-manager command, capturing its output; a missing binary reads as exit code 127."""
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=60)
    except FileNotFoundError as exc:
        return subprocess.CompletedProcess(list(argv), 127, "", str(exc))
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(list(argv), 124, "", f"timed out after {exc.timeout}s")


@dataclass(frozen=True)
class ServiceSpec:
    """What the service runs: the command line, its environment, and where launchd writes its output."""

    argv: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None


def service_spec(
    paths: Paths,
    *,
    config_file: Path | None = None,
    python: str = sys.executable,
    environ: Mapping[str, str] = os.environ,
) -> ServiceSpec:
    """The spec for this interpreter and environment (``config_file`` is made absolute: services run in /)."""
    argv = [python, "-m", "headroom.daemon.cli"]
    if config_file is not None:
        argv += ["--config", str(config_file.expanduser().absolute())]
    argv += ["daemon", "run"]
    env = {name: environ[name] for name in SERVICE_ENV if environ.get(name)}
    if "HEADROOM_HOME" in env:
        env["HEADROOM_HOME"] = str(Path(env["HEADROOM_HOME"]).expanduser().absolute())
    return ServiceSpec(argv=argv, environment=env, log_dir=paths.log_dir)


def _systemd_quote(word: str, *, command: bool = False) -> str:
    """One ExecStart/Environment word: ``%`` is a specifier to systemd (and ``$`` a variable in a command
    line), so they are doubled; words with spaces, quotes or backslashes are double-quoted, C-style."""
    word = word.replace("%", "%%")
    if command:
        word = word.replace("$", "$$")
    if word and not any(c in word for c in " \t\"'\\;"):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(spec: ServiceSpec) -> str:
    """The systemd user unit.

    Restart only on failure (a clean SIGTERM exit is a stop the user asked for), with a back-off so a daemon
    that cannot start (a broken config) gives up after a few tries instead of looping. The hardening is
    limited to options that work in an unprivileged user manager and leave the home folder readable: the
    daemon must read ``~/.claude``, ``~/.codex``, ``~/.gemini`` and write instruction files in projects.
    ``LimitNOFILE`` lifts the 1,024 open-file default that a flood of proxy connections would exhaust (the
    proxy also raises its soft limit to the hard one, and caps its connections below it).
    """
    lines = [
        "# Generated by `headroom daemon install`; `headroom daemon uninstall` removes it.",
        "[Unit]",
        "Description=headroom: token compression, shared memory and lessons for coding agents",
        "StartLimitIntervalSec=300",
        "StartLimitBurst=5",
        "",
        "[Service]",
        "Type=exec",
        "ExecStart=" + " ".join(_systemd_quote(word, command=True) for word in spec.argv),
    ]
    lines += [f"Environment={_systemd_quote(f'{k}={v}')}" for k, v in sorted(spec.environment.items())]
    lines += [
        "Restart=on-failure",
        f"RestartSec={RESTART_DELAY}",
        "KillSignal=SIGTERM",
        f"TimeoutStopSec={int(STOP_TIMEOUT)}",
        f"LimitNOFILE={OPEN_FILES}",
        "UMask=0077",
        "NoNewPrivileges=yes",
        "LockPersonality=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "SystemCallArchitectures=native",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


def render_plist(spec: ServiceSpec) -> bytes:
    """The launchd agent: started at login, restarted unless it exited cleanly, at most every few seconds."""
    plist: dict[str, object] = {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": list(spec.argv),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": RESTART_DELAY,
        "ExitTimeOut": int(STOP_TIMEOUT),
        "ProcessType": "Background",
        "SoftResourceLimits": {"NumberOfFiles": LAUNCHD_OPEN_FILES},
        "EnvironmentVariables": dict(sorted(spec.environment.items())),
    }
    if spec.log_dir is not None:
        plist["StandardOutPath"] = str(spec.log_dir / "launchd.out.log")
        plist["StandardErrorPath"] = str(spec.log_dir / "launchd.err.log")
    return plistlib.dumps(plist, fmt=plistlib.FMT_XML, sort_keys=True)


@dataclass(frozen=True)
class InstallResult:
    path: Path
    changed: bool  # False: the same file was already there
    manager_ok: bool  # False: the file is written but the service manager was not reachable
    problem: str = ""  # why the manager was not reachable, or what it refused


@dataclass
class ServiceInstaller:
    """The login service of one user on one platform; every system call goes through ``run``."""

    spec: ServiceSpec
    manager: Manager
    run: Runner = run_command
    home: Path = field(default_factory=Path.home)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    uid: int = field(default_factory=lambda: os.getuid() if hasattr(os, "getuid") else 0)

    @property
    def unit_path(self) -> Path:
        if self.manager == "launchd":
            return self.home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
        config_home = self.environ.get("XDG_CONFIG_HOME") or str(self.home / ".config")
        return Path(config_home) / "systemd" / "user" / UNIT_NAME

    def render(self) -> bytes:
        return render_plist(self.spec) if self.manager == "launchd" else render_unit(self.spec).encode()

    def installed(self) -> bool:
        return self.unit_path.exists()

    # -- the service manager -------------------------------------------------------------------------------

    def _systemctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(["systemctl", "--user", *args])

    @property
    def _domain(self) -> str:
        return f"gui/{self.uid}"

    @property
    def _target(self) -> str:
        return f"{self._domain}/{LAUNCHD_LABEL}"

    def manager_problem(self) -> str:
        """Why the service manager cannot be used here ("" when it can)."""
        if self.manager == "launchd":
            done = self.run(["launchctl", "print", self._domain])
            return "" if done.returncode == 0 else f"launchctl cannot reach {self._domain}: {_why(done)}"
        done = self._systemctl("is-system-running")
        # "degraded" (some unit failed) and "starting" exit non-zero but the manager works; "offline" and
        # "Failed to connect to bus" mean there is none (containers, SSH sessions without lingering).
        if done.stdout.strip() in ("running", "degraded", "starting", "initializing", "maintenance"):
            return ""
        return f"the systemd user manager is not reachable (systemctl --user is-system-running: {_why(done)})"

    def state(self) -> str | None:
        """The manager's word for the service ("active", "inactive", "failed", ...), None when unknown."""
        if self.manager == "launchd":
            done = self.run(["launchctl", "print", self._target])
            if done.returncode != 0:
                return "not loaded"
            for line in done.stdout.splitlines():
                key, _, value = line.strip().partition(" = ")
                if key == "state":
                    return value.strip()
            return "loaded"
        active = self._systemctl("is-active", UNIT_NAME).stdout.strip()
        enabled = self._systemctl("is-enabled", UNIT_NAME).stdout.strip()
        if not active:
            return None
        return f"{active} ({enabled})" if enabled else active

    def _loaded(self) -> bool:
        return self.run(["launchctl", "print", self._target]).returncode == 0

    def _check(self, done: subprocess.CompletedProcess[str]) -> None:
        if done.returncode != 0:
            raise DaemonError(f"`{' '.join(done.args)}` failed: {_why(done)}")

    # -- install / uninstall -------------------------------------------------------------------------------

    def install(self) -> InstallResult:
        """Write the unit (when it differs) and make sure it is enabled and running."""
        content = self.render()
        path = self.unit_path
        before = path.read_bytes() if path.exists() else None
        changed = before != content
        if changed:
            if self.spec.log_dir is not None:  # launchd opens StandardOutPath before the daemon runs
                self.spec.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, content, mode=0o644)  # one rename: a service manager never reads half a unit
        problem = self.manager_problem()
        if problem:
            return InstallResult(path, changed, manager_ok=False, problem=problem)
        if self.manager == "launchd":
            self.run(["launchctl", "enable", self._target])  # undo an earlier `launchctl disable`
            if self._loaded():
                if not changed:
                    return InstallResult(path, changed, manager_ok=True)
                self.run(["launchctl", "bootout", self._target])  # reload the new file
            self._check(self.run(["launchctl", "bootstrap", self._domain, str(path)]))
            return InstallResult(path, changed, manager_ok=True)
        if changed:
            self._check(self._systemctl("daemon-reload"))
            if before is not None:  # an update: a running daemon picks up the new command line
                self._systemctl("try-restart", UNIT_NAME)
        self._check(self._systemctl("enable", "--now", UNIT_NAME))
        return InstallResult(path, changed, manager_ok=True)

    def uninstall(self) -> str:
        """Stop and disable the service and remove its file; the problem reaching the manager, if any."""
        path = self.unit_path
        problem = self.manager_problem()
        if not problem:
            if self.manager == "launchd":
                if self._loaded():
                    self.run(["launchctl", "bootout", self._target])
            else:
                self._systemctl("disable", "--now", UNIT_NAME)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        if not problem and self.manager == "systemd":
            self._systemctl("daemon-reload")
            self._systemctl("reset-failed", UNIT_NAME)  # forget a failed state of the removed unit
        return problem

    # -- start / stop / restart ----------------------------------------------------------------------------

    def start(self) -> None:
        self._usable()
        if self.manager == "launchd":
            if self._loaded():
                self._check(self.run(["launchctl", "kickstart", self._target]))
            else:
                self._check(self.run(["launchctl", "bootstrap", self._domain, str(self.unit_path)]))
            return
        self._check(self._systemctl("start", UNIT_NAME))

    def stop(self) -> None:
        self._usable()
        if self.manager == "launchd":
            # KeepAlive would restart a killed agent; unloading it is the only stop that lasts.
            if self._loaded():
                self._check(self.run(["launchctl", "bootout", self._target]))
            return
        self._check(self._systemctl("stop", UNIT_NAME))

    def restart(self) -> None:
        self._usable()
        if self.manager == "launchd":
            if self._loaded():
                self._check(self.run(["launchctl", "kickstart", "-k", self._target]))
            else:
                self._check(self.run(["launchctl", "bootstrap", self._domain, str(self.unit_path)]))
            return
        self._check(self._systemctl("restart", UNIT_NAME))

    def _usable(self) -> None:
        if not self.installed():
            raise DaemonError(f"the service is not installed ({self.unit_path}); run `headroom daemon install`")
        problem = self.manager_problem()
        if problem:
            raise DaemonError(f"{problem}; run `headroom daemon run` in a terminal instead")


def _why(done: subprocess.CompletedProcess[str]) -> str:
    text = (done.stderr or done.stdout or "").strip()
    return text.splitlines()[-1] if text else f"exit code {done.returncode}"


def detect_manager(platform: str = sys.platform) -> Manager | None:
    """The service manager of this platform, None where headroom cannot install a login service."""
    if platform == "darwin":
        return "launchd"
    if platform.startswith("linux"):
        return "systemd"
    return None


# -- without a service manager -----------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` still runs; a child of ours that exited is reaped (a zombie would still answer kill 0)."""
    with contextlib.suppress(ChildProcessError):
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def terminate(pid: int, *, timeout: float = STOP_TIMEOUT, poll: float = 0.1) -> bool:
    """SIGTERM ``pid`` (the daemon stops cleanly on it) and wait until it is gone; False if it outlives
    ``timeout``. It is not killed then: a daemon that is slow to stop is still committing what it read."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


def purge_targets(paths: Paths) -> list[Path]:
    """What ``uninstall --purge`` removes: the data and state dirs. ``config.toml`` stays, also when
    ``HEADROOM_HOME`` puts config and data in one folder: it is the user's own file, not headroom's data."""
    home = Path.home().resolve()
    targets: list[Path] = []
    for folder in (paths.data_dir, paths.state_dir):
        if not folder.exists():
            continue
        resolved = folder.resolve()
        if resolved == home or resolved in home.parents or resolved == Path(resolved.anchor):
            raise DaemonError(f"refusing to remove {folder}: it is the home folder or above it")
        if resolved == paths.config_dir.resolve():
            targets += [child for child in sorted(folder.iterdir()) if child != paths.config_file]
        else:
            targets.append(folder)
    unique: list[Path] = []
    for target in targets:
        if not any(target == other or other in target.parents for other in unique):
            unique = [other for other in unique if target not in other.parents] + [target]
    return unique


def remove_paths(targets: Sequence[Path]) -> None:
    for target in targets:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()


# -- logs --------------------------------------------------------------------------------------------------


def tail_lines(path: Path, count: int, *, block: int = 64 * 1024) -> list[str]:
    """The last ``count`` lines of ``path``, read from the end (a log can be megabytes)."""
    if count <= 0 or not path.exists():
        return []
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        end = handle.tell()
        data = b""
        while end > 0 and data.count(b"\n") <= count:
            start = max(0, end - block)
            handle.seek(start)
            data = handle.read(end - start) + data
            end = start
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-count:]


def follow(path: Path, *, should_stop: Callable[[], bool] = lambda: False, poll: float = 0.5) -> Iterator[str]:
    """Lines appended to ``path`` from now on (``tail -F``): a rotated or truncated file is reopened and read
    from its start, so lines written right after a rotation are not lost."""
    handle = None
    inode = None
    from_start = not path.exists()  # a log that appears later is new: show all of it
    pending = ""
    try:
        while not should_stop():
            if handle is None and path.exists():
                handle = path.open("r", encoding="utf-8", errors="replace")
                inode = os.fstat(handle.fileno()).st_ino
                if not from_start:
                    handle.seek(0, os.SEEK_END)
            if handle is not None:
                line = handle.readline()
                if line:
                    pending += line
                    if pending.endswith("\n"):  # a line still being written waits for its end
                        yield pending.rstrip("\n")
                        pending = ""
                    continue
                try:
                    info: os.stat_result | None = path.stat()
                except FileNotFoundError:
                    info = None
                if info is None or info.st_ino != inode or info.st_size < handle.tell():
                    handle.close()
                    handle, inode, from_start, pending = None, None, True, ""
                    continue
            time.sleep(poll)
    finally:
        if handle is not None:
            handle.close()
