"""``headroom memory``: the commands, the briefing, and the Claude Code SessionStart hook's install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from headroom.daemon import memory_hook
from headroom.daemon.cli import cli
from headroom.memory.briefing import build_briefing
from headroom.memory.db import open_database
from headroom.memory.store import MemoryStore

FAKE_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


def run(*args: str, ok: bool = True, stdin: str | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    (folder / ".git").mkdir(parents=True)
    (folder / "src").mkdir()
    return folder


def test_save_search_show_forget(project: Path) -> None:
    saved = json.loads(run("memory", "save", "-p", str(project), "Use uv, not pip, in this repo.", "--json").output)
    assert saved["created"]
    hits = json.loads(run("memory", "search", "-p", str(project / "src"), "uv pip", "--text-only", "--json").output)
    assert [h["id"] for h in hits["hits"]] == [saved["id"]] and hits["mode"] == "text"
    shown = json.loads(run("memory", "show", str(saved["id"]), "--json").output)
    assert shown["content"] == "Use uv, not pip, in this repo." and shown["sightings"][0]["source"] == "cli"
    assert "forgot 1 item" in run("memory", "forget", str(saved["id"]), "--yes").output
    assert run("memory", "show", str(saved["id"]), ok=False).exit_code != 0


def test_other_projects_do_not_see_it_unless_asked(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    run("memory", "save", "-p", str(project), "Release on Fridays only.")
    assert "nothing found" in run("memory", "search", "-p", str(other), "release", "--text-only").output
    assert "Release" not in run("memory", "briefing", "-p", str(other)).output
    everywhere = json.loads(run("memory", "search", "--all-projects", "release", "--text-only", "--json").output)
    assert len(everywhere["hits"]) == 1


def test_secrets_never_reach_the_store_or_the_output(project: Path) -> None:
    out = run("memory", "save", "-p", str(project), f"the CI token is {FAKE_TOKEN}").output
    assert "1 secret redacted" in out
    shown = run("memory", "search", "-p", str(project), "CI token", "--text-only", "--json").output
    assert FAKE_TOKEN not in shown
    assert FAKE_TOKEN not in run("memory", "briefing", "-p", str(project)).output


def test_stats_and_redact_scan(project: Path) -> None:
    run("memory", "save", "-p", str(project), "a decision about logging")
    stats = json.loads(run("memory", "stats", "-p", str(project), "--json").output)
    assert stats["items"] == 1 and stats["by_kind"] == {"decision": 1}
    assert "embeddings" in stats
    assert "would clean 0 items" in run("memory", "redact", "--scan", "--dry-run").output


def test_briefing_hook_prints_claude_code_json(project: Path) -> None:
    run("memory", "save", "-p", str(project), "Tests run with make test.")
    event = {"session_id": "abc", "cwd": str(project / "src"), "hook_event_name": "SessionStart", "source": "startup"}
    out = json.loads(run("memory", "briefing", "--hook", stdin=json.dumps(event)).output)
    hook = out["hookSpecificOutput"]
    assert hook["hookEventName"] == "SessionStart" and "Tests run with make test." in hook["additionalContext"]


def test_briefing_hook_never_breaks_the_session(project: Path) -> None:
    result = run("memory", "briefing", "--hook", stdin="this is not json")
    assert result.exit_code == 0 and result.stdout == ""
    empty = run("memory", "briefing", "--hook", stdin=json.dumps({"cwd": str(project)}))
    assert empty.stdout == ""  # nothing known: no context added


def test_the_briefing_fits_the_hosts_limits(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'b.db'}")
    store = MemoryStore(db)
    for i in range(300):
        store.put(f"decision number {i}: " + "details " * 40, "decision", project="/p", session_key=str(i))
        store.put(f"file {i}\n" * 20, "file_read", project="/p", path=f"/p/src/module_{i}.py", session_key=str(i))
        store.put(f"please do thing {i} carefully and well", "instruction", project="/p", session_key=str(i))
    assert len(build_briefing(store, "/p").encode()) <= 9000  # the default, 15 per section
    text = build_briefing(store, "/p", max_bytes=9000, per_section=100)
    assert len(text.encode()) <= 9000 and text.endswith("[… more in memory_search]")
    assert "### Decisions and lessons" in text and "src/module_" in text
    assert "/p/src/module_" not in text  # paths inside the project are shown relative to it
    assert build_briefing(store, "/elsewhere") == ""
    db.close()


# -- the hook installer -------------------------------------------------------------------------------


@pytest.fixture
def claude_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "claude-config"
    folder.mkdir()
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(folder))
    return folder


def test_install_creates_settings_and_uninstall_takes_them_away(claude_dir: Path) -> None:
    settings = claude_dir / "settings.json"
    assert "would be installed" in run("memory", "install", "--dry-run").output and not settings.exists()
    assert "installed in" in run("memory", "install").output
    data = json.loads(settings.read_text())
    (group,) = data["hooks"]["SessionStart"]
    command = group["hooks"][0]["command"]
    assert "memory briefing --hook" in command and sys.executable in command
    assert memory_hook.installed()
    assert "already installed" in run("memory", "install").output
    run("memory", "uninstall")
    assert not settings.exists() and not memory_hook.installed()


@pytest.mark.parametrize(
    "original",
    [
        '{\n  "model": "opus"\n}\n',
        '{\n    "hooks": {\n        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "x"}]}]'
        "\n"
        '    },\n    "theme": "dark"\n}\n',
        '{"hooks": {"SessionStart": [{"hooks": [{"type": "command", "command": "echo hi"}]}]}}',
        "{}",
    ],
)
def test_install_keeps_the_users_settings_and_uninstall_restores_the_bytes(claude_dir: Path, original: str) -> None:
    settings = claude_dir / "settings.json"
    settings.write_text(original)
    before = json.loads(original)
    run("memory", "install")
    after = json.loads(settings.read_text())
    assert {k: v for k, v in after.items() if k != "hooks"} == {k: v for k, v in before.items() if k != "hooks"}
    for event, groups in before.get("hooks", {}).items():
        assert all(g in after["hooks"][event] for g in groups)  # the user's own hooks are all still there
    run("memory", "uninstall")
    assert settings.read_text() == original


def test_install_refuses_a_file_it_cannot_parse(claude_dir: Path) -> None:
    settings = claude_dir / "settings.json"
    settings.write_text("{ not json")
    result = run("memory", "install", ok=False)
    assert result.exit_code != 0 and "not valid JSON" in result.output
    assert settings.read_text() == "{ not json"


def test_the_installed_hook_runs_as_claude_code_would(claude_dir: Path, project: Path, tmp_path: Path) -> None:
    """Run the exact command line the settings file holds, through a shell, with the event on stdin."""
    run("memory", "save", "-p", str(project), "Prefer small commits.")
    run("memory", "install")
    command = json.loads((claude_dir / "settings.json").read_text())["hooks"]["SessionStart"][0]["hooks"][0]["command"]
    event = json.dumps({"session_id": "s", "cwd": str(project), "hook_event_name": "SessionStart"})
    env = {**os.environ, "PATH": "/usr/bin:/bin"}  # no headroom on PATH: the command names the interpreter
    done = subprocess.run(command, shell=True, input=event, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Prefer small commits." in json.loads(done.stdout)["hookSpecificOutput"]["additionalContext"]


def test_a_shared_item_found_from_one_project_shows_only_its_own_paths(tmp_path: Path) -> None:
    from headroom.daemon.config import load_config
    from headroom.memory.api import Memory

    config = load_config()
    config.paths.ensure()
    db = open_database(config.database_url)
    text = "SECRET_PLAN_NAME = 'orion'\n" * 3
    Memory(db).put(text, "file_read", project=str(tmp_path / "a"), agent="claude", path=str(tmp_path / "a/x.py"))
    Memory(db).put(text, "file_read", project=str(tmp_path / "b"), agent="codex", path=str(tmp_path / "b/x.py"))
    db.close()
    out = json.loads(run("memory", "search", "-p", str(tmp_path / "b"), "orion", "--text-only", "--json").output)
    (hit,) = out["hits"]
    assert hit["title"] == str(tmp_path / "b/x.py") and hit["agents"] == ["codex"]
    assert str(tmp_path / "a") not in json.dumps(hit)


def test_search_asks_the_running_daemon_even_with_the_proxy_off(project: Path, tmp_path: Path) -> None:
    """A real ``headroom daemon run`` (proxy disabled): the CLI and the MCP tool get their answer over its
    socket, and search on their own again once it has stopped."""
    from headroom.daemon.config import load_config
    from headroom.daemon.mcp.memory_tools import MemoryTools
    from headroom.memory.db import open_database
    from tests.test_service import _daemon, wait_for

    config = load_config()
    config.paths.ensure()
    config.paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    config.paths.config_file.write_text("[proxy]\nenabled = false\n", encoding="utf-8")
    saved = json.loads(run("memory", "save", "-p", str(project), "Deploy with make deploy-staging.", "--json").output)
    proc = _daemon(dict(os.environ), tmp_path / "daemon.out")
    try:
        wait_for(config.paths.hooks_socket.exists, 60)
        answer = json.loads(run("memory", "search", "-p", str(project), "deploy staging", "--json").output)
        assert answer["searched_by"] == "daemon", (tmp_path / "daemon.out").read_text()
        assert [h["id"] for h in answer["hits"]] == [saved["id"]]
        assert answer["hits"][0]["sightings"][0]["project"] == str(project)  # the detailed shape, scoped
        table = run("memory", "search", "-p", str(project), "deploy staging").output
        assert f"{saved['id']} " in table and "decision" in table
        assert not config.paths.proxy_state.exists()
        db = open_database(config.database_url)
        try:
            mcp = MemoryTools(load_config(), lambda: db, cwd=str(project)).search("deploy staging")
        finally:
            db.close()
        assert [h["id"] for h in mcp["hits"]] == [saved["id"]]
        assert mcp["note"] == "full-text only: embeddings are off"  # the daemon's note, not the MCP fallback's
    finally:
        proc.terminate()
        proc.wait(30)
    assert not config.paths.hooks_socket.exists()
    answer = json.loads(run("memory", "search", "-p", str(project), "deploy staging", "--json").output)
    assert answer["searched_by"] == "local" and [h["id"] for h in answer["hits"]] == [saved["id"]]
