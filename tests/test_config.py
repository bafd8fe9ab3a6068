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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[watcher]\ndebounce_ms = 0.5\n",
            r":2: 'watcher.debounce_ms' must be a positive number \(a whole one\), not 0.5",
        ),
        ("[memory]\nembed_batch = 2.9\n", r"'memory.embed_batch' must be a positive number \(a whole one\), not 2.9"),
        ("[memory]\nembed_batch = 0\n", "'memory.embed_batch' must be a positive number"),
        ("[hooks]\nbriefing = 1\n", "'hooks.briefing' must be a bool, not 1"),
        ("[proxy]\nport = 70000\n", r"'proxy.port' must be a port number \(0-65535\), not 70000"),
        ("[learn]\nnightly_at = '3:3'\n", "'learn.nightly_at' must be a time of day"),
        ("[engine]\nmin_tokens = 2.5\n", "'engine.min_tokens' must be a positive number"),
        ("[agents.codex]\nhomes = 'x'\n", "'agents.codex.homes' must be a list of paths"),
    ],
)
def test_a_value_is_refused_not_truncated(isolated_home: Path, text: str, message: str) -> None:
    """Before the declared sections, ``debounce_ms = 0.5`` silently became 0 and ``embed_batch = 2.9`` became 2."""
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "config.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_config()


def test_whole_numbers_and_floats_are_kept_as_written(isolated_home: Path) -> None:
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "config.toml").write_text(
        "[watcher]\ndebounce_ms = 75\nrescan_seconds = 2\n[memory]\nembed_batch = 3\n[engine]\ntext_keep_ratio = 0.3\n",
        encoding="utf-8",
    )
    config = load_config()
    assert (config.watcher.debounce_ms, config.memory.embed_batch) == (75, 3)
    assert config.watcher.rescan_seconds == 2.0 and isinstance(config.watcher.rescan_seconds, float)
    assert config.engine.text_keep_ratio == 0.3


def test_a_check_belongs_to_its_section_not_to_a_key_name(tmp_path: Path) -> None:
    """``mode`` is checked as the proxy's mode in ``[proxy]`` only: the same key name in another section (as a
    future ``[team] mode`` would be) gets that section's own declaration, not the proxy's."""
    from dataclasses import dataclass, replace

    from headroom.daemon.config import ProxyConfig, read_section

    @dataclass
    class Team:
        mode: str = "pull"
        port: int = 5

    file = tmp_path / "config.toml"
    assert read_section(Team, {"mode": "push", "port": 99999}, "team", file) == Team(mode="push", port=99999)
    with pytest.raises(ConfigError, match=r"'proxy\.mode' must be one of ccr, lossless"):
        read_section(ProxyConfig, {"mode": "push"}, "proxy", file)
    assert replace(ProxyConfig(), port=0).port == 0  # still dataclasses: replace() and fields() keep working
