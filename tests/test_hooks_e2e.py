"""The real Claude Code, Codex CLI and gemini-cli with headroom's hooks installed, offline.

Each CLI runs twice in a throw-away HOME against ``../shared/agents-offline/fake_upstream.py`` and the
scenario in ``tests/fixtures/hooks_e2e/`` (the agent cats docs/notes.txt, which is not there, looks
around, cats notes.txt), with ``headroom daemon run`` following that HOME's session logs. The second
session repeats the first one's failure, so what the upstream received in it must hold, at the right
turn: the briefing and the prompt-time memory in its first request, the live lesson (what worked last
time) only after the failed call. A third run with the daemon stopped must complete the same steps with
nothing added.

The CLIs are installed from npm like ``run_all.sh`` does (pinned versions, ``$AGENTS_PREFIX``, default
``/tmp/agents``); the test skips with a reason when node/npm or the shared folder is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = Path(__file__).resolve().parent / "fixtures" / "hooks_e2e"
SCENARIO = "repeat-failure"
PACKAGES = {
    "claude": "@anthropic-ai/claude-code@2.1.197",
    "codex": "@openai/codex@0.169.0",
    "gemini": "@google/gemini-cli@0.61.0",
}
AGENT_PATH = "/usr/local/bin:/usr/bin:/bin"
BRIEFING = "headroom memory: what agents did in this project lately"
PROMPT_MEMORY = "headroom memory: other agents or earlier sessions"
LESSON = "this failed the same way"

pytestmark = pytest.mark.slow


def _prefix() -> Path:
    return Path(os.environ.get("AGENTS_PREFIX", "/tmp/agents"))


def _installed(prefix: Path) -> bool:
    for spec in PACKAGES.values():
        name, _, version = spec.rpartition("@")
        try:
            have = json.loads((prefix / "node_modules" / name / "package.json").read_text())["version"]
        except (OSError, ValueError, KeyError):
            return False
        if have != version:
            return False
    return True


@pytest.fixture(scope="module")
def clis() -> Path:
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are needed to install the agent CLIs from the npm registry")
    prefix = _prefix()
    if not _installed(prefix):
        prefix.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", *PACKAGES.values()],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            pytest.skip(f"npm install failed (offline?): {done.stderr[-300:]}")
    return prefix / "node_modules" / ".bin"


class Upstream:
    """The shared fake upstream, serving our scenario dir, logging requests per label."""

    def __init__(self, shared: Path, root: Path) -> None:
        self.log_dir = root / "requests"
        port_file = root / "port"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(shared / "agents-offline" / "fake_upstream.py"),
                "--port",
                "0",
                "--port-file",
                str(port_file),
                "--scenario-dir",
                str(SCENARIOS),
                "--log-dir",
                str(self.log_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.monotonic() < deadline, "the fake upstream did not start"
            time.sleep(0.1)
        self.url = f"http://127.0.0.1:{port_file.read_text().strip()}"

    def base(self, label: str) -> str:
        return f"{self.url}/s/{SCENARIO}/{label}"

    def bodies(self, label: str) -> list[str]:
        """The main-loop request bodies of ``label``, in order."""
        folder = self.log_dir / label / SCENARIO
        files = sorted(p for p in folder.glob("*-main.json")) if folder.is_dir() else []
        return [p.read_text(encoding="utf-8", errors="replace") for p in files]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def upstream(shared: Path, tmp_path: Path) -> Iterator[Upstream]:
    up = Upstream(shared, tmp_path)
    yield up
    up.stop()


def _project(root: Path) -> Path:
    scenario = json.loads((SCENARIOS / f"{SCENARIO}.json").read_text())
    root.mkdir(parents=True)
    for name, content in scenario["files"].items():
        (root / name).write_text(content)
    git = ["git", "-c", "user.name=dev", "-c", "user.email=dev@example.invalid", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "initial import"], cwd=root, check=True)
    return root


def _env(home: Path, upstream: Upstream) -> dict[str, str]:
    return {
        "PATH": AGENT_PATH,
        "HOME": str(home),
        "TERM": "dumb",
        "LANG": "C.UTF-8",
        "USER": "dev",
        "LOGNAME": "dev",
        "SHELL": "/bin/bash",
        "TZ": "UTC",
        "HTTPS_PROXY": upstream.url,
        "HTTP_PROXY": upstream.url,
        "NO_PROXY": "127.0.0.1,localhost",
        # The machine running the suite may be loaded: the live lesson's 0.3 s must not decide the test.
        "HEADROOM_HOOK_TIMEOUT_SCALE": "10",
    }


def _setup_agent(agent: str, home: Path, upstream: Upstream, label: str) -> None:
    if agent == "codex":
        (home / ".codex").mkdir(parents=True, exist_ok=True)
        (home / ".codex" / "config.toml").write_text(
            'model = "gpt-5.5"\nmodel_provider = "fake"\napproval_policy = "never"\n'
            'sandbox_mode = "danger-full-access"\ncheck_for_update_on_startup = false\n\n'
            '[analytics]\nenabled = false\n\n[feedback]\nenabled = false\n\n[otel]\nexporter = "none"\n\n'
            f'[model_providers.fake]\nname = "fake"\nbase_url = "{upstream.base(label)}/v1"\n'
            'env_key = "FAKE_LLM_API_KEY"\nwire_api = "responses"\n'
        )
    if agent == "gemini":
        (home / ".gemini").mkdir(parents=True, exist_ok=True)
        (home / ".gemini" / "settings.json").write_text(
            json.dumps(
                {
                    "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
                    "privacy": {"usageStatisticsEnabled": False},
                    "telemetry": {"enabled": False},
                    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
                },
                indent=2,
            )
            + "\n"
        )


def _run_agent(agent: str, bin_dir: Path, home: Path, project: Path, upstream: Upstream, label: str) -> None:
    prompt = json.loads((SCENARIOS / f"{SCENARIO}.json").read_text())["prompts"][0]
    env = _env(home, upstream)
    if agent == "claude":
        env |= {
            "ANTHROPIC_BASE_URL": upstream.base(label),
            "ANTHROPIC_API_KEY": "dummy",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "DISABLE_BUG_COMMAND": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
        argv = [str(bin_dir / "claude"), "-p", prompt, "--output-format", "json"]
        argv += ["--allowedTools", "Bash Read Edit Write"]
    elif agent == "codex":
        env["FAKE_LLM_API_KEY"] = "dummy"
        argv = [str(bin_dir / "codex"), "exec", "--strict-config", "--skip-git-repo-check", prompt]
    else:
        env |= {
            "GOOGLE_GEMINI_BASE_URL": upstream.base(label),
            "GEMINI_API_KEY": "dummy",
            "GEMINI_CLI_TRUST_WORKSPACE": "true",
            "GEMINI_TELEMETRY_ENABLED": "false",
        }
        argv = [str(bin_dir / "gemini"), "-p", prompt, "--yolo", "--output-format", "json"]
    done = subprocess.run(
        argv, cwd=project, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, f"{agent} {label}: rc={done.returncode}\n{done.stderr[-2000:]}"


def _headroom_env(home: Path, hr_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADROOM_", "CLAUDE_", "CODEX_", "GEMINI_"))}
    return env | {
        "HOME": str(home),
        "HEADROOM_HOME": str(hr_home),
        "HEADROOM_EMBEDDINGS": "off",
        "HEADROOM_PROXY_PORT": "0",
    }


def _headroom(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "headroom.daemon.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _start_daemon(env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "headroom.daemon.cli", "daemon", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not json.loads(_headroom(env, "hooks", "status", "--json").stdout or "{}").get("daemon"):
        assert time.monotonic() < deadline and proc.poll() is None, "the daemon did not come up"
        time.sleep(0.5)
    time.sleep(3)  # the token counter warms up on a thread
    return proc


def _wait_ingested(env: dict[str, str], project: Path, agent: str) -> None:
    """Until the daemon has the first session's failed call and its fix (what the live lesson needs)."""
    from headroom.learn.failures import find_failures
    from headroom.memory.db import open_database

    db = open_database(f"sqlite:///{env['HEADROOM_HOME']}/headroom.db")
    try:
        deadline = time.monotonic() + 60
        while True:
            found = [f for f in find_failures(db, project=str(project)) if f.fix]
            if found:
                return
            assert time.monotonic() < deadline, f"{agent}: the daemon never saw the first session's failure"
            time.sleep(1)
    finally:
        db.close()


@pytest.mark.parametrize("agent", ["claude", "codex", "gemini"])
def test_hooks_with_the_real_cli(agent: str, clis: Path, upstream: Upstream, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    project = _project(home / "src" / "shopping")
    hr_env = _headroom_env(home, tmp_path / "hr")
    daemon = _start_daemon(hr_env)
    try:
        for label in ("first", "second"):
            _setup_agent(agent, home, upstream, label)
            installed = _headroom(hr_env, "hooks", "install", agent)
            assert installed.returncode == 0, installed.stderr
            if label == "first":
                _run_agent(agent, clis, home, project, upstream, label)
                _wait_ingested(hr_env, project, agent)
            else:
                _run_agent(agent, clis, home, project, upstream, label)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(30)
    first, second = upstream.bodies("first"), upstream.bodies("second")
    assert len(first) == len(second) == 4, (len(first), len(second))
    assert not any(BRIEFING in b or LESSON in b for b in first)  # nothing known yet
    assert BRIEFING in second[0] and "notes.txt" in second[0]
    assert PROMPT_MEMORY in second[0] and "milk" in second[0]  # what the earlier session read
    assert LESSON not in second[0]
    assert LESSON in second[1] and "notes.txt" in second[1].split(LESSON, 1)[1]  # right after the failed call

    # The daemon down: the same steps, nothing added.
    _setup_agent(agent, home, upstream, "down")
    _headroom(hr_env, "hooks", "install", agent)
    _run_agent(agent, clis, home, project, upstream, "down")
    down = upstream.bodies("down")
    assert len(down) == 4 and not any(BRIEFING in b or LESSON in b or PROMPT_MEMORY in b for b in down)
