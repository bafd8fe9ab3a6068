"""Paths and settings: HEADROOM_HOME, agent discovery like the agents do it, clear config errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from headroom.daemon.config import load_config
from headroom.daemon.errors import ConfigError
from headroom.daemon.paths import default_agent_roots, paths


def test_headroom_home_puts_everything_in_one_place(isolated_home: Path) -> None:
    where = paths()
    assert where.db_file == isolated_home / "headroom.db"
    assert where.config_file == isolated_home / "config.toml"
    assert where.log_file.is_relative_to(isolated_home)
    where.ensure()
    assert (isolated_home.stat().st_mode & 0o777) == 0o700


def test_agent_roots_follow_the_agents_own_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", f"{tmp_path / 'c1'},{tmp_path / 'c2' / 'projects'}")
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "cx"))
    monkeypatch.setenv("GEMINI_CLI_HOME", str(tmp_path / "g"))
    roots = default_agent_roots()
    assert roots["claude"] == [tmp_path / "c1" / "projects", tmp_path / "c2" / "projects"]
    assert roots["codex"] == [tmp_path / "cx" / "sessions", tmp_path / "cx" / "archived_sessions"]
    assert roots["gemini"] == [tmp_path / "g" / ".gemini" / "tmp"]


def test_agent_roots_default_to_the_home_folder() -> None:
    home = Path.home()
    roots = default_agent_roots()
    assert roots["claude"] == [home / ".config" / "claude" / "projects", home / ".claude" / "projects"]
    assert roots["codex"][0] == home / ".codex" / "sessions"
    assert roots["gemini"] == [home / ".gemini" / "tmp"]


def test_config_overrides_homes_and_disables_agents(isolated_home: Path, tmp_path: Path) -> None:
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "config.toml").write_text(
        f'[agents.claude]\nhomes = ["{tmp_path / "my-claude"}"]\n[agents.gemini]\nenabled = false\n'
        "[watcher]\ndebounce_ms = 50\n",
        encoding="utf-8",
    )
    config = load_config()
    roots = config.agent_roots()
    assert roots["claude"] == [tmp_path / "my-claude" / "projects"]
    assert "gemini" not in roots
    assert config.watcher.debounce_ms == 50
    assert config.database_url == f"sqlite:///{isolated_home / 'headroom.db'}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("databse_url = 'x'\n", "unknown setting 'databse_url'"),
        ("[watcher]\ndebounce_ms = 'fast'\n", "'watcher.debounce_ms' must be a positive number"),
        ("[agents.cursor]\nenabled = true\n", r"unknown agent \[agents.cursor\]"),
        ("[ingest]\nmax_line = 5\n", "unknown setting 'ingest.max_line'"),
        ("this is = not toml [", "cannot be read as TOML"),
        ("[proxy]\nholdout = 5\n", "'proxy.holdout' must be a share from 0 to 1"),
        ("[proxy]\nholdout = '5%'\n", "'proxy.holdout' must be a share from 0 to 1"),
    ],
)
def test_config_errors_name_the_key_and_the_file(isolated_home: Path, text: str, message: str) -> None:
    isolated_home.mkdir(parents=True, exist_ok=True)
    file = isolated_home / "config.toml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as info:
        load_config()
    assert str(file) in str(info.value)


def test_database_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADROOM_DATABASE_URL", "sqlite:////tmp/elsewhere.db")
    assert load_config().database_url == "sqlite:////tmp/elsewhere.db"


def test_the_holdout_share_is_read_and_zero_is_allowed(isolated_home: Path) -> None:
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "config.toml").write_text("[proxy]\nholdout = 0.05\n", encoding="utf-8")
    assert load_config().proxy.holdout == 0.05
    (isolated_home / "config.toml").write_text("[proxy]\nholdout = 0\n", encoding="utf-8")
    assert load_config().proxy.holdout == 0.0
