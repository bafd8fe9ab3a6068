"""Registering the MCP server in each agent's own config: surgical, idempotent, reversible, and refusing junk."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from headroom.daemon.cli import cli
from headroom.daemon.mcp import jsontext, tomltext
from headroom.daemon.mcp.install import (
    InstallError,
    config_file,
    install,
    installed_entry,
    is_installed,
    plan_install,
    server_entry,
    state,
    uninstall,
)
from headroom.daemon.memory_hook import settings_file
from headroom.daemon.paths import agent_homes, default_agent_roots
from headroom.learn.model import AGENTS, Agent

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

CLAUDE_JSON = """{
  "numStartups": 42,
  "theme": "dark",
  "mcpServers": {
    "github": {
      "type": "stdio",
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-github"],
      "env": {"GITHUB_TOKEN": "\u00e9t\u00e9"}
    }
  },
  "projects": {
    "/home/me/src": {"allowedTools": [], "mcpServers": {}}
  }
}
"""

CODEX_TOML = """# Codex settings: keep this comment
model = "gpt-5.5"   # trailing comment
approval_policy = "on-request"

[mcp_servers.docs]
command = "npx"
args = ["-y", "docs-mcp"]  # pinned
env = { DOCS_TOKEN = "x" }

[profiles.fast]
model = "o4-mini"
"""

GEMINI_JSONC = """{
  // my theme
  "theme": "GitHub", /* keep */
  "mcpServers": {
    "weather": {"command": "weather-mcp"}
  }
}
"""


def _home() -> Path:
    return Path(os.environ["HOME"])


def _write(agent: Agent, text: str, mode: int = 0o644) -> Path:
    path = config_file(agent)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode())
    path.chmod(mode)
    return path


def _load(agent: Agent, text: str) -> Any:
    return tomllib.loads(text) if agent == "codex" else jsontext.loads(text)


def test_paths_follow_each_agent(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert config_file("claude") == _home() / ".claude.json"
    assert config_file("codex") == _home() / ".codex" / "config.toml"
    assert config_file("gemini") == _home() / ".gemini" / "settings.json"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude-cfg"))
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex-home"))
    monkeypatch.setenv("GEMINI_CLI_HOME", str(tmp_path / "gem"))
    assert config_file("claude") == tmp_path / "claude-cfg" / ".claude.json"
    assert config_file("codex") == tmp_path / "codex-home" / "config.toml"
    assert config_file("gemini") == tmp_path / "gem" / ".gemini" / "settings.json"


def test_a_claude_config_dir_list_installs_into_its_first_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """CLAUDE_CONFIG_DIR=/a,/b (a list, as ccusage reads it) once made ``mcp install`` write ``/a,/b/.claude.json``."""
    first, second = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", f"{first}, {second}")
    assert config_file("claude") == first / ".claude.json"
    assert agent_homes("claude") == [first, second]
    assert settings_file() == first / "settings.json"  # the memory hook's file: the same folder
    install("claude")
    assert "headroom" in _load("claude", (first / ".claude.json").read_text())["mcpServers"]
    assert not (tmp_path / f"a, {second.name}").exists() and not list(tmp_path.glob("*,*"))
    roots = default_agent_roots()["claude"]  # ingestion reads the logs of both folders
    assert roots == [first / "projects", second / "projects"]


@pytest.mark.parametrize("agent", AGENTS)
def test_fresh_install_creates_the_file_and_uninstall_takes_it_away(agent: Agent) -> None:
    path = config_file(agent)
    assert not path.exists() and not is_installed(agent)
    change = install(agent)
    assert change.action == "install"
    entry = _load(agent, path.read_text())[tomltext.CONTAINER if agent == "codex" else "mcpServers"]["headroom"]
    assert entry == server_entry(agent)
    assert entry["command"] == os.path.abspath(sys.executable)
    assert entry["args"] == ["-m", "headroom.daemon.cli", "mcp", "serve"]
    assert entry["env"] == {"HEADROOM_HOME": str(Path(os.environ["HEADROOM_HOME"]).resolve()), "HEADROOM_AGENT": agent}
    if agent == "claude":
        assert entry["type"] == "stdio"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not Path(str(path) + ".headroom-bak").exists()  # there was nothing to back up
    assert is_installed(agent) and state(agent) == "installed"
    assert uninstall(agent).action == "uninstall"
    assert not path.exists() and not is_installed(agent)


@pytest.mark.parametrize(
    ("agent", "original"), [("claude", CLAUDE_JSON), ("codex", CODEX_TOML), ("gemini", GEMINI_JSONC)]
)
def test_existing_file_keeps_every_other_byte(agent: Agent, original: str) -> None:
    path = _write(agent, original, mode=0o640)
    change = install(agent)
    assert change.action == "install"
    after = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert Path(str(path) + ".headroom-bak").read_text() == original
    data, before = _load(agent, after), _load(agent, original)
    servers = "mcp_servers" if agent == "codex" else "mcpServers"
    assert data[servers].pop("headroom") == server_entry(agent)
    assert data == before  # everything else means the same
    if agent == "codex":
        assert after.startswith(original)  # a table of its own at the end: the rest is the same text
        assert after[len(original) :].lstrip("\n").startswith("[mcp_servers.headroom]\n")
    else:
        _assert_only_added(original, after)
    for comment in ("keep this comment", "trailing comment", "# pinned", "// my theme", "/* keep */"):
        assert (comment in original) == (comment in after)

    assert install(agent).action == "unchanged"  # idempotent: no write at all
    assert path.read_text() == after

    assert uninstall(agent).action == "uninstall"
    assert path.read_text() == original  # byte-identical
    assert Path(str(path) + ".headroom-bak").read_text() == original
    assert uninstall(agent).action == "absent"


def _assert_only_added(before: str, after: str) -> None:
    """Every original line is still there, in order; at most one gained a trailing comma."""
    old, new = before.splitlines(), after.splitlines()
    i = 0
    touched = 0
    for line in new:
        if i < len(old) and line == old[i]:
            i += 1
        elif i < len(old) and line.startswith(old[i].rstrip()) and "," in line[len(old[i].rstrip()) :]:
            i += 1
            touched += 1
    assert i == len(old), f"original line {i + 1} is gone: {old[i] if i < len(old) else ''!r}"
    assert touched <= 1


@pytest.mark.parametrize(
    "original",
    [
        "{}",
        "{}\n",
        '{"a":1}',
        '{"a": 1, "mcpServers": {}}',
        '{\n\t"a": [1, 2],\n\t"b": {"c": null}\n}\n',
        '{\r\n  "a": 1\r\n}\r\n',
        '{\n  "a": 1 // why\n}\n',
        '{\n  "mcpServers": {\n    "x": {"command": "y"}\n  },\n  "z": "\\u00e9\\"}"\n}',
    ],
)
def test_json_edits_round_trip(original: str) -> None:
    path = _write("gemini", original)
    install("gemini")
    edited = path.read_bytes().decode()
    assert jsontext.loads(edited)["mcpServers"]["headroom"] == server_entry("gemini")
    if "\r\n" in original:
        assert "\n" not in edited.replace("\r\n", "")
    uninstall("gemini")
    assert path.read_bytes() == original.encode()


@pytest.mark.parametrize(
    "original",
    [
        "",
        "a = 1",
        "a = 1\n",
        "a = 1\n\n",
        '[mcp_servers]\nother = { command = "x" }\n',
        'mcp_servers = { o = { command = "x" } }\n',
        'mcp_servers.o.command = "x"\n',
        "# only a comment",
        '[mcp_servers.o]\ncommand = "x"',
    ],
)
def test_toml_edits_round_trip(original: str) -> None:
    path = _write("codex", original)
    install("codex")
    assert tomllib.loads(path.read_text())["mcp_servers"]["headroom"] == server_entry("codex")
    uninstall("codex")
    assert path.read_text() == original


def test_a_container_the_user_had_stays(tmp_path: Path) -> None:
    path = _write("claude", '{\n  "mcpServers": {}\n}\n')
    install("claude")
    uninstall("claude")
    assert json.loads(path.read_text()) == {"mcpServers": {}}


def test_update_keeps_what_the_user_added_to_the_entry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    install("codex")
    path = config_file("codex")
    path.write_text(path.read_text() + "startup_timeout_sec = 30\n")
    monkeypatch.setenv("HEADROOM_HOME", str(tmp_path / "elsewhere"))
    assert state("codex") == "outdated"
    assert install("codex").action == "update"
    entry = installed_entry("codex")
    assert entry is not None
    assert entry["env"] == {"HEADROOM_HOME": str((tmp_path / "elsewhere").resolve()), "HEADROOM_AGENT": "codex"}
    assert entry["startup_timeout_sec"] == 30
    assert state("codex") == "installed"


@pytest.mark.parametrize(
    ("agent", "broken"),
    [
        ("claude", '{"mcpServers": {'),
        ("codex", "[mcp_servers\ncommand = 1\n"),
        ("gemini", "[1, 2]"),
        ("claude", "\udcff"),
    ],
)
def test_unparseable_files_are_refused_untouched(agent: Agent, broken: str) -> None:
    path = config_file(agent)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = broken.encode("utf-8", "surrogateescape")
    path.write_bytes(raw)
    with pytest.raises(InstallError):
        install(agent)
    with pytest.raises(InstallError):
        uninstall(agent)
    assert path.read_bytes() == raw
    assert not Path(str(path) + ".headroom-bak").exists()
    assert not is_installed(agent)


def test_a_non_object_server_table_is_refused() -> None:
    path = _write("claude", '{"mcpServers": []}')
    with pytest.raises(InstallError, match="mcpServers"):
        install("claude")
    assert path.read_text() == '{"mcpServers": []}'


def test_a_symlinked_config_stays_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "dotfiles" / "claude.json"
    target.parent.mkdir()
    target.write_text(CLAUDE_JSON)
    link = config_file("claude")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    install("claude")
    assert link.is_symlink()
    assert "headroom" in json.loads(target.read_text())["mcpServers"]
    uninstall("claude")
    assert link.is_symlink() and target.read_text() == CLAUDE_JSON


def test_a_file_changed_between_plan_and_write_is_not_clobbered() -> None:
    from headroom.daemon.mcp.install import apply

    path = _write("gemini", "{}\n")
    change = plan_install("gemini")
    path.write_text('{"theme": "new"}\n')
    with pytest.raises(InstallError, match="changed while"):
        apply(change)
    assert path.read_text() == '{"theme": "new"}\n'


def test_cli_dry_run_install_status_uninstall() -> None:
    original = _write("claude", CLAUDE_JSON).read_text()
    runner = CliRunner()
    dry = runner.invoke(cli, ["mcp", "install", "claude", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would be installed" in dry.stdout
    assert '+    "headroom": {' in dry.stdout and "+++ " in dry.stdout
    assert config_file("claude").read_text() == original
    assert not Path(str(config_file("claude")) + ".headroom-bak").exists()

    done = runner.invoke(cli, ["mcp", "install", "claude"])
    assert done.exit_code == 0 and "installed in" in done.stdout
    again = runner.invoke(cli, ["mcp", "install", "claude"])
    assert "already installed" in again.stdout

    status = runner.invoke(cli, ["mcp", "status", "--json"])
    rows = {row["agent"]: row["state"] for row in json.loads(status.stdout)}
    assert rows == {"claude": "installed", "codex": "absent", "gemini": "absent"}

    removed = runner.invoke(cli, ["mcp", "uninstall", "claude"])
    assert removed.exit_code == 0 and "removed from" in removed.stdout
    assert config_file("claude").read_text() == original


def test_cli_all_covers_the_agents_set_up_here_and_reports_errors() -> None:
    _write("codex", CODEX_TOML)
    _write("gemini", "{ not json")
    res = CliRunner().invoke(cli, ["mcp", "install", "all"])
    assert res.exit_code == 1
    assert "codex: installed in" in res.stdout
    assert "gemini:" in res.stderr and "cannot be parsed" in res.stderr
    assert "claude" not in res.output  # no ~/.claude.json, no ~/.claude: not set up here
    assert is_installed("codex") and not is_installed("gemini")
    single = CliRunner().invoke(cli, ["mcp", "install", "gemini"])
    assert single.exit_code == 1 and single.stderr.startswith("Error: ")
    assert config_file("gemini").read_text() == "{ not json"
