"""``headroom hooks install|uninstall|status``: real settings files, byte-exact round trips, refusals."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from headroom.daemon.cli import cli
from headroom.daemon.hooks import codex
from headroom.daemon.hooks import install as hooks_install
from headroom.daemon.mcp.install import InstallError
from headroom.learn.model import Agent

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex"))
    monkeypatch.setenv("GEMINI_CLI_HOME", str(tmp_path / "gem"))
    for sub in ("claude", "codex", "gem/.gemini"):
        (tmp_path / sub).mkdir(parents=True)
    return tmp_path


def run(*args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result


AGENTS: tuple[Agent, ...] = ("claude", "codex", "gemini")

USER_FILES: dict[Agent, str] = {
    "claude": (
        '{\n  "model": "opus",\n  "hooks": {\n    "PostToolUse": [\n      {"matcher": "Edit", "hooks": '
        '[{"type": "command", "command": "ruff format"}]}\n    ]\n  },\n  "permissions": {"allow": ["Bash(ls)"]}\n}\n'
    ),
    "codex": '{"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}]}}',
    "gemini": (
        '// my settings\n{\n    "security": {"auth": {"selectedType": "gemini-api-key"}},  // keep\n'
        '    "hooks": {\n        "BeforeTool": [{"matcher": "write_file", "hooks": [{"type": "command", '
        '"command": "./check.sh"}]}]\n    }\n}\n'
    ),
}


@pytest.mark.parametrize("agent", AGENTS)
def test_install_into_nothing_and_uninstall_leaves_nothing(agent: Agent, homes: Path) -> None:
    path = hooks_install.hooks_file(agent)
    assert "would be installed" in run("hooks", "install", agent, "--dry-run").output and not path.exists()
    out = run("hooks", "install", agent).output
    assert "installed in" in out
    data = json.loads(path.read_text())
    assert set(data["hooks"]) == set(hooks_install.events(agent))
    for event in hooks_install.events(agent):
        (grp,) = data["hooks"][event]
        (hook,) = grp["hooks"]
        assert hook["type"] == "command" and sys.executable in hook["command"] and " -S " in hook["command"]
        assert hook["timeout"] == (10_000 if agent == "gemini" else 10)
    assert hooks_install.state(agent) == "installed"
    assert "already installed" in run("hooks", "install", agent).output
    run("hooks", "uninstall", agent)
    assert not path.exists() and hooks_install.state(agent) == "absent"
    if agent == "codex":
        assert not (homes / "codex" / "config.toml").exists()


@pytest.mark.parametrize("agent", AGENTS)
def test_the_users_file_comes_back_byte_for_byte(agent: Agent, homes: Path) -> None:
    path = hooks_install.hooks_file(agent)
    path.write_text(USER_FILES[agent])
    path.chmod(0o640)
    run("hooks", "install", agent)
    after = path.read_text()
    assert "// keep" in after or agent != "gemini"  # comments survive the edit
    data = hooks_install.jsontext.loads(after)
    before = hooks_install.jsontext.loads(USER_FILES[agent])
    for event, groups in before["hooks"].items():
        assert all(g in data["hooks"][event] for g in groups)  # the user's own hooks are all still there
    assert {k: v for k, v in data.items() if k != "hooks"} == {k: v for k, v in before.items() if k != "hooks"}
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    run("hooks", "uninstall", agent)
    assert path.read_text() == USER_FILES[agent]


def test_uninstall_after_the_user_edited_the_file_removes_only_headrooms_groups(homes: Path) -> None:
    path = hooks_install.hooks_file("claude")
    path.write_text(USER_FILES["claude"])
    run("hooks", "install", "claude")
    data = json.loads(path.read_text())
    data["theme"] = "dark"  # the user (or Claude Code) changes the file meanwhile
    path.write_text(json.dumps(data, indent=2) + "\n")
    run("hooks", "uninstall", "claude")
    left = json.loads(path.read_text())
    assert left["theme"] == "dark" and set(left["hooks"]) == {"PostToolUse"}
    assert left["hooks"]["PostToolUse"] == json.loads(USER_FILES["claude"])["hooks"]["PostToolUse"]


@pytest.mark.parametrize("agent", AGENTS)
@pytest.mark.parametrize("bad", ['{"hooks": ', "[1, 2]", '{"hooks": {"SessionStart": {"x": 1}}}', '{"hooks": 3}'])
def test_refuses_a_file_it_cannot_parse(agent: Agent, homes: Path, bad: str) -> None:
    path = hooks_install.hooks_file(agent)
    path.write_text(bad)
    result = run("hooks", "install", agent, ok=False)
    assert "refusing" in result.output or "not valid JSON" in result.output
    assert path.read_text() == bad
    assert not path.with_name(path.name + ".headroom-bak").exists()


def test_codex_feature_flag_is_set_told_and_taken_away(homes: Path) -> None:
    config = homes / "codex" / "config.toml"
    original = 'model = "gpt-5.5"  # mine\n\n[model_providers.fake]\nname = "fake"\n'
    config.write_text(original)
    out = run("hooks", "install", "codex").output
    assert "codex_hooks = true" in out
    assert tomllib.loads(config.read_text())["features"] == {"codex_hooks": True}
    assert codex.flag() is True
    run("hooks", "uninstall", "codex")
    assert config.read_text() == original and not (homes / "codex" / "hooks.json").exists()


def test_codex_flag_joins_an_existing_features_table_and_leaves_it_as_it_was(homes: Path) -> None:
    config = homes / "codex" / "config.toml"
    original = "[features]\nplugins = false # quiet\n\n[analytics]\nenabled = false\n"
    config.write_text(original)
    run("hooks", "install", "codex")
    assert tomllib.loads(config.read_text())["features"] == {"plugins": False, "codex_hooks": True}
    run("hooks", "uninstall", "codex")
    assert config.read_text() == original


@pytest.mark.parametrize("setting", ["codex_hooks = true", "hooks = true", "codex_hooks = false"])
def test_codex_flag_the_user_set_is_never_touched(homes: Path, setting: str) -> None:
    config = homes / "codex" / "config.toml"
    original = f"[features]\n{setting}\n"
    config.write_text(original)
    run("hooks", "install", "codex")
    assert config.read_text().startswith(original)  # only the trust block is added, at the end
    assert tomllib.loads(config.read_text())["features"] == tomllib.loads(original)["features"]
    if setting.endswith("false"):
        assert "Codex runs no hooks" in run("hooks", "status", "codex").output
    run("hooks", "uninstall", "codex")
    assert config.read_text() == original


def test_codex_keeps_the_flag_while_the_user_has_hooks_of_their_own(homes: Path) -> None:
    hooks_json = homes / "codex" / "hooks.json"
    hooks_json.write_text(USER_FILES["codex"])
    run("hooks", "install", "codex")
    run("hooks", "uninstall", "codex")
    assert hooks_json.read_text() == USER_FILES["codex"]
    # headroom set the flag, but the user's Stop hook needs it too: it stays
    assert tomllib.loads((homes / "codex" / "config.toml").read_text())["features"]["codex_hooks"] is True


def test_claude_replaces_the_older_memory_briefing_hook(homes: Path) -> None:
    run("memory", "install")
    path = hooks_install.hooks_file("claude")
    assert "memory briefing --hook" in path.read_text()
    assert "updated in" in run("hooks", "install", "claude").output
    text = path.read_text()
    assert "memory briefing --hook" not in text and len(json.loads(text)["hooks"]["SessionStart"]) == 1
    run("hooks", "uninstall", "claude")
    assert "hooks" not in json.loads(path.read_text())


def test_a_moved_interpreter_or_socket_is_outdated_and_install_updates_it(homes: Path) -> None:
    hooks_install.install("gemini", sock=homes / "elsewhere.sock")
    assert hooks_install.state("gemini") == "outdated"
    assert "updated in" in run("hooks", "install", "gemini").output
    assert hooks_install.state("gemini") == "installed"


def test_all_installs_where_agents_are_set_up_and_reports_a_broken_one(homes: Path) -> None:
    hooks_install.hooks_file("gemini").write_text("{broken")
    result = run("hooks", "install", "all", ok=False)
    assert "gemini:" in result.output and hooks_install.state("claude") == "installed"
    assert hooks_install.state("codex") == "installed"
    status = json.loads(run("hooks", "status", "--json").output)
    states = {row["agent"]: row["state"] for row in status["agents"]}
    assert states == {"claude": "installed", "codex": "installed", "gemini": "unreadable"}
    assert status["daemon"] is False


def test_codex_trust_is_the_hash_codex_computes(homes: Path) -> None:
    """The trusted_hash of a group whose hash Codex 0.147 wrote itself (a published probe of the scheme)."""
    grp = {"hooks": [{"type": "command", "command": "echo hi", "timeout": 600}]}
    identity = (
        '{"event_name":"session_start","hooks":[{"async":false,"command":"echo hi","timeout":600,"type":"command"}]}'
    )
    assert (
        codex.trust_hash("SessionStart", grp) == "sha256:" + __import__("hashlib").sha256(identity.encode()).hexdigest()
    )
    run("hooks", "install", "codex")
    state = tomllib.loads((homes / "codex" / "config.toml").read_text())["hooks"]["state"]
    hooks_json = hooks_install.hooks_file("codex")
    data = json.loads(hooks_json.read_text())
    assert set(state) == {
        f"{hooks_json}:{label}:0:0" for label in ("session_start", "user_prompt_submit", "post_tool_use")
    }
    assert state[f"{hooks_json}:session_start:0:0"]["trusted_hash"] == codex.trust_hash(
        "SessionStart", data["hooks"]["SessionStart"][0]
    )
    assert "already installed" in run("hooks", "install", "codex").output


def test_plan_refuses_what_it_cannot_check(homes: Path) -> None:
    path = hooks_install.hooks_file("claude")
    path.write_text('{"hooks": {"SessionStart": "not a list"}}')
    with pytest.raises(InstallError):
        hooks_install.plan_install("claude")


def test_claude_hooks_go_to_the_first_of_several_config_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``CLAUDE_CONFIG_DIR`` may list several folders (as ccusage reads it): the hooks belong in the first, where
    Claude Code reads its settings — not in a folder named after the whole list."""
    first, second = tmp_path / "work-claude", tmp_path / "home-claude"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", f"{first},{second}")
    assert hooks_install.hooks_file("claude") == first / "settings.json"
