"""``headroom wrap``: one run of an agent pointed at the proxy, with fake ``claude``/``codex``/``gemini`` on PATH.

The fake agents are tiny scripts that write what they were started with (argv, the base-URL variables, and
what ``GET <base>/healthz`` answered there) to a JSON-lines file and exit with a chosen code, so each test
sees exactly what a real agent would: the arguments, the environment, and whether the URL leads to a proxy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_provider import Served

from headroom.daemon.config import Config, load_config
from headroom.daemon.process import running_daemon_pid
from headroom.daemon.proxy.server import ProxyServer, build_app

CLI = [sys.executable, "-m", "headroom.daemon.cli"]
AGENT_EXIT = 7
ENV_KEYS = ("ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL", "OPENAI_BASE_URL", "HEADROOM_HOME")

FAKE_AGENT = """#!{python}
import json, os, sys, urllib.request

env = {{k: os.environ.get(k) for k in {keys!r}}}
base = env["ANTHROPIC_BASE_URL"] or env["GOOGLE_GEMINI_BASE_URL"]
if not base and "-c" in sys.argv:  # codex: the first -c override is openai_base_url="<base>/v1"
    base = sys.argv[sys.argv.index("-c") + 1].split("=", 1)[1].strip('"')[: -len("/v1")]
try:
    with urllib.request.urlopen(base + "/healthz", timeout=5) as answer:
        health = json.load(answer)
except Exception as exc:
    health = {{"error": repr(exc)}}
record = {{"agent": os.path.basename(sys.argv[0]), "argv": sys.argv[1:], "env": env, "health": health}}
with open(os.environ["FAKE_AGENT_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(record) + "\\n")
sys.exit(int(os.environ.get("FAKE_AGENT_EXIT", "0")))
"""


@pytest.fixture
def agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[dict[str, Any]]]:
    """Fake claude, codex and gemini first on PATH; returns a reader of what they recorded."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("claude", "codex", "gemini"):
        script = bin_dir / name
        script.write_text(FAKE_AGENT.format(python=sys.executable, keys=ENV_KEYS), encoding="utf-8")
        script.chmod(0o755)
    log = tmp_path / "agents.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_AGENT_LOG", str(log))
    monkeypatch.setenv("FAKE_AGENT_EXIT", str(AGENT_EXIT))
    for name in ENV_KEYS[:3]:
        monkeypatch.delenv(name, raising=False)

    def runs() -> list[dict[str, Any]]:
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]

    return runs


@pytest.fixture
def config(isolated_home: Path) -> Config:
    config = load_config()
    config.paths.ensure()
    return config


def serve(config: Config, *, state: bool = True) -> ProxyServer:
    server = ProxyServer(
        build_app(config, None), "127.0.0.1", 0, state_file=config.paths.proxy_state if state else None
    )
    server.start()
    return server


@pytest.fixture
def proxy(config: Config) -> Iterator[str]:
    """A running proxy (in this process) that announced itself in the state file; yields its URL."""
    server = serve(config)
    try:
        yield server.url
    finally:
        server.stop()


def wrap(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "wrap", *args], capture_output=True, text=True, timeout=timeout)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def user_home(isolated_home: Path) -> Path:
    home = Path(os.environ["HOME"])
    home.mkdir(parents=True, exist_ok=True)
    return home


LOSSLESS_HINT = "headroom: lossless mode (run `headroom mcp install claude`"


def test_claude_gets_the_proxy_url_and_its_arguments(
    agents: Callable[[], list[dict[str, Any]]], proxy: str, user_home: Path
) -> None:
    before = snapshot(user_home)
    done = wrap("claude", "-p", "hi there", "--model", "opus")
    assert done.returncode == AGENT_EXIT, done.stderr
    (run,) = agents()
    assert run["agent"] == "claude" and run["argv"] == ["-p", "hi there", "--model", "opus"]
    assert run["env"]["ANTHROPIC_BASE_URL"] == f"{proxy}/lossless"  # headroom's MCP tool is not installed
    assert run["env"]["GOOGLE_GEMINI_BASE_URL"] is None and run["env"]["HEADROOM_HOME"] == os.environ["HEADROOM_HOME"]
    assert run["health"]["service"] == "headroom-proxy" and run["health"]["pid"] == os.getpid()
    assert done.stderr.startswith(LOSSLESS_HINT) and done.stdout == ""
    assert snapshot(user_home) == before  # no config file of the user's is written


def test_a_double_dash_after_the_agent_is_not_passed_on(agents: Callable[[], list[dict[str, Any]]], proxy: str) -> None:
    """The documented form ``headroom wrap claude -- -p "fix the tests"``: the ``--`` is wrap's separator.

    Passed on, it would end the agent's own options: ``claude -- -p x`` is a prompt "-p x", not print mode,
    and ``codex -c … -- exec x`` a prompt "exec", not the exec subcommand.
    """
    assert wrap("claude", "--", "-p", "fix the tests").returncode == AGENT_EXIT
    assert wrap("codex", "--", "exec", "fix the tests").returncode == AGENT_EXIT
    claude, codex = agents()
    assert claude["argv"] == ["-p", "fix the tests"]
    assert codex["argv"][2:] == ["exec", "fix the tests"]
    assert wrap("gemini", "--", "--", "-p").returncode == AGENT_EXIT  # only wrap's own separator is dropped
    assert agents()[-1]["argv"] == ["--", "-p"]


def test_arguments_without_a_double_dash_go_to_the_agent(
    agents: Callable[[], list[dict[str, Any]]], proxy: str
) -> None:
    done = wrap("gemini", "-p", "hi", "--lossless", "--yolo")
    assert done.returncode == AGENT_EXIT, done.stderr
    (run,) = agents()
    assert run["argv"] == ["-p", "hi", "--lossless", "--yolo"]  # after AGENT, everything is the agent's
    assert run["env"]["GOOGLE_GEMINI_BASE_URL"] == f"{proxy}/lossless" and run["env"]["ANTHROPIC_BASE_URL"] is None
    assert run["health"]["service"] == "headroom-proxy"


def test_codex_gets_config_overrides_and_its_config_is_left_alone(
    agents: Callable[[], list[dict[str, Any]]], proxy: str, user_home: Path
) -> None:
    codex_config = user_home / ".codex" / "config.toml"
    codex_config.parent.mkdir()
    codex_config.write_bytes(
        b'# my settings\nmodel = "gpt-5.5"\nmodel_provider = "azure"  # work account\n\n'
        b'[model_providers.azure]\nname = "Azure"\nbase_url = "https://me.openai.azure.com/openai"\n'
    )
    before = snapshot(user_home)
    done = wrap("codex", "exec", "fix the tests")
    assert done.returncode == AGENT_EXIT, done.stderr
    (run,) = agents()
    url = f"{proxy}/lossless/v1"
    assert run["argv"] == [
        "-c",
        f'openai_base_url="{url}"',
        "-c",
        f'model_providers.azure.base_url="{url}"',
        "exec",
        "fix the tests",
    ]
    assert run["env"]["OPENAI_BASE_URL"] is None and run["health"]["service"] == "headroom-proxy"
    assert snapshot(user_home) == before  # byte-identical, and no backup or lock file next to it


def test_codex_without_a_config_gets_only_the_base_url(agents: Callable[[], list[dict[str, Any]]], proxy: str) -> None:
    done = wrap("codex")
    assert done.returncode == AGENT_EXIT, done.stderr
    (run,) = agents()
    assert run["argv"] == ["-c", f'openai_base_url="{proxy}/lossless/v1"']


def test_codex_home_is_where_the_provider_is_read(
    agents: Callable[[], list[dict[str, Any]]], proxy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    codex_home = tmp_path / "elsewhere"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text('model_provider = "openai"\n', encoding="utf-8")
    monkeypatch.setenv("CODEX_HOME", str(codex_home))
    assert wrap("codex").returncode == AGENT_EXIT
    (codex_home / "config.toml").write_text('model_provider = "ollama_local"\n', encoding="utf-8")
    assert wrap("codex").returncode == AGENT_EXIT
    first, second = agents()
    assert len(first["argv"]) == 2  # the built-in openai provider: the base URL override is enough
    assert second["argv"][2:] == ["-c", f'model_providers.ollama_local.base_url="{proxy}/lossless/v1"']


def test_a_codex_provider_with_a_hyphen_is_routed_too(
    agents: Callable[[], list[dict[str, Any]]], proxy: str, user_home: Path
) -> None:
    (user_home / ".codex").mkdir()
    (user_home / ".codex" / "config.toml").write_text('model_provider = "azure-eu"\n', encoding="utf-8")
    assert wrap("codex").returncode == AGENT_EXIT
    (run,) = agents()
    assert run["argv"][2:] == ["-c", f'model_providers.azure-eu.base_url="{proxy}/lossless/v1"']


def test_gemini_gets_its_base_url(agents: Callable[[], list[dict[str, Any]]], proxy: str) -> None:
    done = wrap("gemini", "-m", "gemini-3.8-flash")
    assert done.returncode == AGENT_EXIT, done.stderr
    (run,) = agents()
    assert run["argv"] == ["-m", "gemini-3.8-flash"]
    assert run["env"]["GOOGLE_GEMINI_BASE_URL"] == f"{proxy}/lossless"
    assert "headroom mcp install gemini" in done.stderr


def test_the_agents_exit_code_is_wraps(
    agents: Callable[[], list[dict[str, Any]]], proxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_EXIT", "0")
    assert wrap("claude").returncode == 0
    monkeypatch.setenv("FAKE_AGENT_EXIT", "130")
    assert wrap("claude").returncode == 130
    assert len(agents()) == 2


def test_with_headroom_registered_for_claude_the_run_is_not_lossless(
    agents: Callable[[], list[dict[str, Any]]], proxy: str
) -> None:
    from headroom.daemon.mcp.install import install, is_installed

    install("claude")
    assert is_installed("claude")
    done = wrap("claude", "-p", "hi")
    assert done.returncode == AGENT_EXIT, done.stderr
    assert "lossless" not in done.stderr
    forced = wrap("--lossless", "claude", "-p", "hi")
    assert forced.returncode == AGENT_EXIT, forced.stderr
    assert "lossless mode" not in forced.stderr  # asked for: no hint
    default, lossless = agents()
    assert default["env"]["ANTHROPIC_BASE_URL"] == proxy
    assert lossless["env"]["ANTHROPIC_BASE_URL"] == f"{proxy}/lossless" and lossless["argv"] == ["-p", "hi"]
    assert default["health"]["service"] == lossless["health"]["service"] == "headroom-proxy"
    gemini = wrap("gemini")  # registered for claude only
    assert gemini.returncode == AGENT_EXIT and "headroom mcp install gemini" in gemini.stderr
    assert agents()[-1]["env"]["GOOGLE_GEMINI_BASE_URL"] == f"{proxy}/lossless"


def test_the_lossless_flag_without_mcp_changes_nothing_but_the_hint(
    agents: Callable[[], list[dict[str, Any]]], proxy: str
) -> None:
    done = wrap("--lossless", "claude")
    assert done.returncode == AGENT_EXIT and done.stderr == ""
    assert agents()[0]["env"]["ANTHROPIC_BASE_URL"] == f"{proxy}/lossless"


def test_an_agent_missing_from_path_is_a_clear_error(
    agents: Callable[[], list[dict[str, Any]]], proxy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bin" / "codex").unlink()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    done = wrap("codex", "--", "exec", "hi")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "Error: codex is not on PATH (install codex first)"
    assert "Traceback" not in done.stderr and agents() == []


def test_an_unknown_agent_is_refused(agents: Callable[[], list[dict[str, Any]]]) -> None:
    done = wrap("cursor")
    assert done.returncode == 2 and "'cursor' is not one of 'claude', 'codex', 'gemini'" in done.stderr
    assert agents() == []


class Impostor:
    """Something else on the proxy's port that answers /healthz like a headroom proxy and notes every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append((scope["method"], scope["path"], headers))
        body = json.dumps({"status": "ok", "service": "headroom-proxy", "pid": 1, "proof": "0" * 64}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


def test_an_impostor_on_the_port_gets_no_agent(
    agents: Callable[[], list[dict[str, Any]]], config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    impostor = Impostor()
    with Served(impostor) as served:
        monkeypatch.setenv("HEADROOM_PROXY_PORT", str(served.port))
        done = wrap("claude")  # no registration at all: only a listener on the configured port
        assert done.returncode == 1 and agents() == []
        assert f"something else listens on 127.0.0.1:{served.port}" in done.stderr
        assert "no API key went to it" in done.stderr and "Traceback" not in done.stderr
        # A stale registration (a daemon that died) naming the impostor's URL: it cannot answer the nonce.
        state = {"url": served.url, "pid": 1, "mode": "ccr", "token": "the-dead-daemons-secret"}
        config.paths.proxy_state.write_text(json.dumps(state))
        done = wrap("claude")
        assert done.returncode == 1 and agents() == [] and "cannot prove" in done.stderr
    assert all(path == "/healthz" and "x-api-key" not in headers for _, path, headers in impostor.requests)
    assert running_daemon_pid(config.paths) is None


def test_the_proxy_proves_it_holds_its_registrations_secret(config: Config) -> None:
    from headroom.daemon.proxy import registration

    server = serve(config)
    try:
        state = registration.read(config.paths.proxy_state)
        assert state is not None and config.paths.proxy_state.stat().st_mode & 0o777 == 0o600
        health = registration.verify(server.url, state["token"])
        assert health is not None and health["pid"] == os.getpid()
        assert registration.verify(server.url, "another-secret") is None
        found = registration.find(config.paths)
        assert found is not None and found[0] == server.url
    finally:
        server.stop()
    assert not config.paths.proxy_state.exists()


def stop_daemon(config: Config, seconds: float = 20.0) -> None:
    """SIGTERM the daemon that ``wrap`` started (not our child: wait for its lock to be free)."""
    pid = running_daemon_pid(config.paths)
    if pid is None or pid < 0:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + seconds
    while running_daemon_pid(config.paths) is not None:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"the daemon (pid {pid}) did not stop within {seconds}s")
        time.sleep(0.05)


@pytest.fixture
def daemon_cleanup(config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Config]:
    """Empty agent homes for a daemon that ``wrap`` starts, and that daemon stopped afterwards."""
    for name, folder in (("CLAUDE_CONFIG_DIR", "claude"), ("CODEX_HOME", "codex"), ("GEMINI_CLI_HOME", "gemini")):
        monkeypatch.setenv(name, str(tmp_path / folder))
    try:
        yield config
    finally:
        stop_daemon(config)


@pytest.mark.slow
def test_without_a_proxy_wrap_starts_the_daemon(
    agents: Callable[[], list[dict[str, Any]]], daemon_cleanup: Config
) -> None:
    config = daemon_cleanup
    assert running_daemon_pid(config.paths) is None and not config.paths.proxy_state.exists()
    done = wrap("claude", "--", "-p", "hi")
    assert done.returncode == AGENT_EXIT, done.stderr
    pid = running_daemon_pid(config.paths)
    assert pid is not None and pid > 0
    state = json.loads(config.paths.proxy_state.read_bytes())
    assert state["pid"] == pid and not state["url"].endswith(":8787")  # HEADROOM_PROXY_PORT=0: a free port
    (run,) = agents()
    assert run["env"]["ANTHROPIC_BASE_URL"] == state["url"] + "/lossless"
    assert run["health"]["service"] == "headroom-proxy" and run["health"]["pid"] == pid
    again = wrap("gemini")  # the daemon is reused, not started twice
    assert again.returncode == AGENT_EXIT and running_daemon_pid(config.paths) == pid
    assert agents()[-1]["env"]["GOOGLE_GEMINI_BASE_URL"] == state["url"] + "/lossless"
    stop_daemon(config)
    assert not config.paths.proxy_state.exists()


@pytest.mark.slow
def test_a_daemon_without_its_proxy_is_reported_not_restarted(
    agents: Callable[[], list[dict[str, Any]]], daemon_cleanup: Config, isolated_home: Path
) -> None:
    config = daemon_cleanup
    (isolated_home / "config.toml").write_text("[proxy]\nenabled = false\n", encoding="utf-8")
    daemon = subprocess.Popen([*CLI, "daemon", "run"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while running_daemon_pid(config.paths) != daemon.pid:
            assert time.monotonic() < deadline and daemon.poll() is None, "the daemon did not start"
            time.sleep(0.05)
        done = wrap("claude")
        assert done.returncode == 1 and agents() == []
        assert f"the headroom daemon (pid {daemon.pid}) runs without a proxy" in done.stderr
        assert "enabled = false" in done.stderr
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(20)


@pytest.mark.slow
def test_a_missing_agent_starts_no_daemon(
    agents: Callable[[], list[dict[str, Any]]], daemon_cleanup: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = daemon_cleanup
    (tmp_path / "bin" / "codex").unlink()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    done = wrap("codex")
    assert done.returncode == 1 and "codex is not on PATH" in done.stderr
    assert running_daemon_pid(config.paths) is None and not config.paths.proxy_state.exists()


def test_another_data_dirs_proxy_is_not_this_ones(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real headroom proxy of another HEADROOM_HOME on the configured port is not trusted (doctor, wrap)."""
    from headroom.daemon.cli.wrap_cmd import find_proxy

    server = serve(config)  # registered in this home's state dir
    try:
        assert find_proxy(config) == server.url
        monkeypatch.setenv("HEADROOM_HOME", str(tmp_path / "other-home"))
        monkeypatch.setenv("HEADROOM_PROXY_PORT", str(server.port))
        other = load_config()
        other.paths.ensure()
        assert find_proxy(other) is None
    finally:
        server.stop()
