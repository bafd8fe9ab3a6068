"""``headroom proxy`` and ``headroom daemon run`` as real processes: they serve, say where, stop cleanly.

Each proxy writes its registration once it listens (the port may be the OS's pick) and removes it when it
stops: the daemon ``state/proxy.json``, a standalone proxy ``state/proxy-<pid>.json``; ``headroom wrap``
relies on both. Config mistakes in ``[proxy]`` are refused with the key and file.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import anthropic
import httpx
import pytest
from click.testing import CliRunner
from fake_provider import FakeProvider, Served

from headroom.daemon.cli import cli
from headroom.daemon.config import load_config
from headroom.daemon.proxy import registration

# Ctrl-C as a terminal delivers it: a shell running the tests in the background hands its children SIGINT ignored
# (and the proxy rightly keeps an ignored SIGINT ignored), so the child restores Python's usual handler first.
CLI = [
    sys.executable,
    "-c",
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('headroom.daemon.cli', run_name='__main__')",
]
#: The exit status of ``headroom proxy`` stopped by a signal: Ctrl-C is the CLI's 130, SIGTERM a clean 0.
STOPPED = {signal.SIGINT: 130, signal.SIGTERM: 0}
ANTHROPIC_KEY = "sk-ant-api03-LEAKCHECK-server-0123456789abcdef"
GEMINI_KEY = "AIzaLEAKCHECK-server-0123456789abcdef"


def wait_for(condition: Callable[[], bool], seconds: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {seconds}s")


@dataclass
class Process:
    """A headroom subprocess whose stdout and stderr go to files (a full pipe would block it)."""

    popen: subprocess.Popen[bytes]
    out: Path
    err: Path

    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError(f"did not stop within {timeout}s:\n{self.stderr()}") from None


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    """Start ``headroom ARGS`` (killed at the end of the test if it still runs)."""
    started: list[Process] = []

    def start(*args: str) -> Process:
        n = len(started)
        out, err = tmp_path / f"proc{n}.out", tmp_path / f"proc{n}.err"
        with out.open("wb") as o, err.open("wb") as e:
            popen = subprocess.Popen([*CLI, *args], stdout=o, stderr=e, stdin=subprocess.DEVNULL)
        started.append(Process(popen, out, err))
        return started[-1]

    yield start
    for proc in started:
        if proc.popen.poll() is None:
            proc.popen.kill()
            proc.popen.wait()


@pytest.fixture
def fake() -> Iterator[tuple[FakeProvider, str]]:
    provider = FakeProvider()
    with Served(provider) as served:
        yield provider, served.url


@pytest.fixture
def state_file(isolated_home: Path) -> Path:
    return load_config().paths.proxy_state


def own_file(proc: Process) -> Path:
    """The registration a standalone ``headroom proxy`` process writes (never the daemon's proxy.json)."""
    return registration.standalone_file(load_config().paths, proc.popen.pid)


def proxy_url(state_file: Path, proc: Process) -> str:
    """The URL the running proxy wrote into its registration (the daemon's ``state_file``, or its own)."""
    found: list[Path] = []

    def ready() -> bool:
        assert proc.popen.poll() is None, f"exited with {proc.popen.returncode}:\n{proc.stderr()}"
        found[:] = [
            f for f in (state_file, own_file(proc)) if (registration.read(f) or {}).get("pid") == proc.popen.pid
        ]
        return bool(found)

    wait_for(ready, what="the proxy's state file")
    state = json.loads(found[0].read_bytes())
    assert state["pid"] == proc.popen.pid and state["mode"] in ("ccr", "lossless")
    return str(state["url"])


def upstream_args(url: str) -> list[str]:
    return ["--anthropic-upstream", url, "--openai-upstream", url, "--gemini-upstream", url]


def proxy_rows(db_file: Path) -> list[dict[str, object]]:
    """The proxy_requests rows, read from outside as another process would."""
    conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("select * from proxy_requests order by id")]
    finally:
        conn.close()


def ask(url: str) -> str:
    with anthropic.Anthropic(base_url=url, api_key=ANTHROPIC_KEY, max_retries=0) as client:
        reply = client.messages.create(model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    return reply.content[0].text  # type: ignore[union-attr]


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig",
    [
        signal.SIGINT,
        signal.SIGTERM,
    ],
    ids=["SIGINT", "SIGTERM"],
)
def test_headroom_proxy_serves_and_stops_cleanly(
    sig: signal.Signals,
    spawn: Callable[..., Process],
    fake: tuple[FakeProvider, str],
    state_file: Path,
    isolated_home: Path,
) -> None:
    provider, upstream = fake
    proc = spawn("proxy", "--port", "0", "-v", *upstream_args(upstream))
    url = proxy_url(state_file, proc)
    assert url.startswith("http://127.0.0.1:")
    health = httpx.get(f"{url}/healthz").json()
    assert health["service"] == "headroom-proxy" and health["pid"] == proc.popen.pid and health["mode"] == "ccr"
    assert ask(url) == provider.reply
    contents = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    gemini = httpx.post(f"{url}/v1beta/models/g:generateContent?key={GEMINI_KEY}", json=contents)
    assert gemini.status_code == 200 and provider.received[-1].query == f"key={GEMINI_KEY}"
    assert provider.received[0].path == "/v1/messages"

    assert own_file(proc).stat().st_mode & 0o777 == 0o600 and not state_file.exists()
    started = time.monotonic()
    assert proc.stop(sig) == STOPPED[sig], proc.stderr()
    assert time.monotonic() - started < 10
    assert not own_file(proc).exists()
    err = proc.stderr()
    assert f"headroom proxy on {url} (mode ccr)" in err and "Traceback" not in err
    assert len(proxy_rows(isolated_home / "headroom.db")) == 2  # the stats writer was flushed on the way out
    log_file = load_config().paths.log_file
    for secret in (ANTHROPIC_KEY, GEMINI_KEY):
        assert secret not in err and secret not in log_file.read_text(encoding="utf-8")


@pytest.mark.slow
def test_an_upstream_cut_is_one_log_line_and_no_stats_means_no_db(
    spawn: Callable[..., Process], fake: tuple[FakeProvider, str], state_file: Path, isolated_home: Path
) -> None:
    _, upstream = fake
    proc = spawn("proxy", "--port", "0", "--no-stats", "--mode", "lossless", *upstream_args(upstream))
    url = proxy_url(state_file, proc)
    assert httpx.get(f"{url}/healthz").json()["mode"] == "lossless"
    body = {"model": "cut", "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(f"{url}/v1/messages", json=body)
    assert httpx.get(f"{url}/stats").status_code == 503  # statistics need the database
    assert proc.stop(signal.SIGINT) == 130
    err = proc.stderr()
    assert "upstream stream cut: RemoteProtocolError" in err
    assert "Traceback" not in err and "Exception in ASGI application" not in err
    assert not (isolated_home / "headroom.db").exists()


@pytest.mark.slow
def test_a_taken_port_is_one_line_naming_it(spawn: Callable[..., Process], state_file: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = spawn("proxy", "--port", str(port))
        assert proc.popen.wait(30) == 1
    lines = proc.stderr().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: cannot listen on ") and f"127.0.0.1:{port}" in lines[0]
    assert not state_file.exists() and not own_file(proc).exists()


@pytest.mark.slow
def test_a_non_loopback_host_is_warned_about(spawn: Callable[..., Process], state_file: Path) -> None:
    proc = spawn("proxy", "--host", "0.0.0.0", "--port", "0")
    url = proxy_url(state_file, proc)
    port = int(url.rsplit(":", 1)[1])
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["service"] == "headroom-proxy"
    warnings = [line for line in proc.stderr().splitlines() if " WARNING " in line]
    assert len(warnings) == 1 and "listening on 0.0.0.0:" in warnings[0]
    assert "reachable from other machines" in warnings[0] and "no authentication" in warnings[0]
    assert proc.stop(signal.SIGINT) == 130


def test_the_warning_names_the_port_it_listens_on(caplog: pytest.LogCaptureFixture) -> None:
    from headroom.daemon.proxy.server import ProxyServer, build_app

    server = ProxyServer(build_app(load_config(), None), "0.0.0.0", 0)
    try:
        (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert f"listening on 0.0.0.0:{server.port}:" in record.getMessage()
    finally:
        server.socket.close()
        assert server.app.stats is not None
        server.app.stats.close()


@pytest.mark.slow
def test_a_loopback_host_is_not_warned_about(spawn: Callable[..., Process], state_file: Path) -> None:
    proc = spawn("proxy", "--port", "0")
    proxy_url(state_file, proc)
    assert proc.stop(signal.SIGINT) == 130
    assert "WARNING" not in proc.stderr()


@pytest.mark.slow
def test_a_standalone_proxy_never_clobbers_the_daemons_registration(
    spawn: Callable[..., Process], fake: tuple[FakeProvider, str], state_file: Path
) -> None:
    from headroom.daemon.cli.wrap_cmd import find_proxy
    from headroom.daemon.proxy.server import ProxyServer, build_app

    _, upstream = fake
    config = load_config()
    config.paths.ensure()
    daemons = ProxyServer(build_app(config, None), "127.0.0.1", 0, state_file=state_file)  # the daemon's proxy
    daemons.start()
    try:
        before = state_file.read_bytes()
        proc = spawn("proxy", "--port", "0", *upstream_args(upstream))
        standalone = proxy_url(state_file, proc)
        assert standalone != daemons.url and state_file.read_bytes() == before
        assert find_proxy(config) == daemons.url  # wrap and doctor keep using the daemon's
        assert proc.stop(signal.SIGTERM) == 0
        assert not own_file(proc).exists() and state_file.read_bytes() == before
        found = registration.find(config.paths)
        assert found is not None and found[0] == daemons.url and found[1]["pid"] == os.getpid()
    finally:
        daemons.stop()
    assert not state_file.exists()
    alone = spawn("proxy", "--port", "0")  # with no daemon, a standalone proxy is the one found
    url = proxy_url(state_file, alone)
    assert find_proxy(config) == url
    alone.stop()


def _write_config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text, encoding="utf-8")


@pytest.fixture
def agent_homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty agent homes: the daemon has nothing to backfill."""
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex"))
    monkeypatch.setenv("GEMINI_CLI_HOME", str(tmp_path / "gemini"))


@pytest.mark.slow
@pytest.mark.usefixtures("agent_homes")
def test_the_daemon_serves_the_proxy_and_records_its_requests(
    spawn: Callable[..., Process], fake: tuple[FakeProvider, str], state_file: Path, isolated_home: Path
) -> None:
    provider, upstream = fake
    _write_config(
        isolated_home,
        f'[proxy]\nanthropic_upstream = "{upstream}"\nopenai_upstream = "{upstream}/"\n'
        f'gemini_upstream = "{upstream}"\n',
    )
    proc = spawn("daemon", "run")
    url = proxy_url(state_file, proc)
    assert httpx.get(f"{url}/healthz").json()["pid"] == proc.popen.pid
    assert ask(url) == provider.reply
    summary = httpx.get(f"{url}/stats").json()
    assert summary["total"]["requests"] == 1 and summary["agents"].keys() == {"other"}
    (row,) = proxy_rows(isolated_home / "headroom.db")
    assert row["provider"] == "anthropic" and row["status"] == 200 and row["endpoint"] == "messages"
    assert proc.stop(signal.SIGTERM) == 0, proc.stderr()
    assert not state_file.exists()
    assert proc.stderr().rstrip().endswith("stopped")


@pytest.mark.slow
@pytest.mark.usefixtures("agent_homes")
def test_the_daemon_without_its_proxy(spawn: Callable[..., Process], state_file: Path, isolated_home: Path) -> None:
    _write_config(isolated_home, "[proxy]\nenabled = false\n")
    proc = spawn("daemon", "run")
    wait_for(lambda: "started in" in proc.stderr(), what="the daemon's start")
    assert "proxy disabled in the config" in proc.stderr()
    assert not state_file.exists() and "proxy listening" not in proc.stderr()
    assert proc.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[proxy]\nport = 70000\n", "'proxy.port' must be a port number (0-65535), not 70000"),
        ('[proxy]\nport = "8787"\n', "'proxy.port' must be a port number (0-65535), not '8787'"),
        ('[proxy]\nanthropic_upstream = "api.anthropic.com"\n', "'proxy.anthropic_upstream' must be an http://"),
        ('[proxy]\nopenai_upstream = "https://"\n', "'proxy.openai_upstream' must be an http://"),
        ("[proxy]\ncolour = 1\n", "unknown setting 'proxy.colour' (known: allowed_hosts, anthropic_upstream"),
        ('[proxy]\nmode = "turbo"\n', "'proxy.mode' must be one of ccr, lossless, not 'turbo'"),
        ('[proxy]\nenabled = "yes"\n', "'proxy.enabled' must be a bool, not 'yes'"),
        ("[proxy]\nmax_body_mb = 0\n", "'proxy.max_body_mb' must be a positive number, not 0"),
        ("[proxy]\nread_timeout = -1\n", "'proxy.read_timeout' must be a positive number, not -1"),
        ("[proxy]\nhost = 127\n", "'proxy.host' must be a str, not 127"),
        ("proxy = 8787\n", "'proxy' must be a table ([proxy])"),
    ],
)
def test_proxy_config_errors_name_the_key_and_the_file(isolated_home: Path, toml: str, message: str) -> None:
    _write_config(isolated_home, toml)
    result = CliRunner().invoke(cli, ["proxy", "--port", "0"])
    assert result.exit_code == 1, result.output
    where = re.escape(str(isolated_home / "config.toml"))
    assert re.match(rf"Error: {where}:\d+: {re.escape(message)}", result.output), result.output  # file:line
    assert "Traceback" not in result.output


def test_a_bad_proxy_port_in_the_environment_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADROOM_PROXY_PORT", "http")
    result = CliRunner().invoke(cli, ["proxy"])
    assert result.exit_code == 1
    assert "'HEADROOM_PROXY_PORT' must be a port number (0-65535), not 'http'" in result.output


def test_config_and_the_command_line_set_the_proxy(isolated_home: Path) -> None:
    from headroom.daemon.cli.proxy_cmd import proxy_config

    _write_config(isolated_home, '[proxy]\nport = 9999\nmode = "lossless"\ngemini_upstream = "http://gw/gemini/"\n')
    config = load_config()
    assert config.proxy.port == 0  # HEADROOM_PROXY_PORT (the tests' 0) wins over the file
    assert config.proxy.mode == "lossless" and config.proxy.gemini_upstream == "http://gw/gemini"
    changed = proxy_config(config, port=1234, mode="ccr", anthropic="https://gw/anthropic/")
    assert changed.proxy.port == 1234 and changed.proxy.mode == "ccr"
    assert (
        changed.proxy.anthropic_upstream == "https://gw/anthropic"
        and changed.proxy.gemini_upstream == "http://gw/gemini"
    )
    assert config.proxy.port == 0  # the loaded config is left as it was


def test_an_upstream_that_is_not_a_url_is_refused_on_the_command_line() -> None:
    result = CliRunner().invoke(cli, ["proxy", "--port", "0", "--openai-upstream", "api.openai.com"])
    assert result.exit_code == 2 and "--openai-upstream" in result.output and "http://" in result.output


def test_the_module_runs_as_the_cli() -> None:
    """``headroom wrap`` starts the daemon, and the agents start the MCP server, with ``python -m``."""
    done = subprocess.run([sys.executable, "-m", "headroom.daemon.cli", "--version"], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert os.fsdecode(done.stdout).startswith("headroom")
