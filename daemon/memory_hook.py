"""The Claude Code SessionStart hook that hands a new session the project briefing.

``headroom memory install`` adds one command hook to ``hooks.SessionStart`` of Claude Code's user settings
(``~/.claude/settings.json``, or ``$CLAUDE_CONFIG_DIR/settings.json``); Claude Code runs it when a session
starts, resumes, or is cleared or compacted, passes the session's cwd as JSON on stdin, and adds what the
hook prints as ``additionalContext`` to the model's context. The command is this interpreter running
``headroom memory briefing --hook``, so it works without ``headroom`` on PATH.

The edit follows the MCP installer's rules (:mod:`headroom.daemon.mcp.install`): only headroom's own entry
changes (its other hooks are kept as they are), a backup is made before the first change, the result is
parsed again and written atomically, installing twice is a no-op, and uninstalling after installing gives
back the original bytes.

The other agents have no SessionStart hook: Codex and Gemini get the same briefing through the MCP tools.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

from headroom.daemon.hooks.install import parse_settings as _parse
from headroom.daemon.mcp import jsontext
from headroom.daemon.mcp.install import Change, InstallError, apply, backup_file, read_config
from headroom.daemon.paths import claude_settings_file

HOOK_EVENT = "SessionStart"
MARKER = "memory briefing --hook"  # how headroom's entry is recognised among the user's hooks
TIMEOUT_S = 20


def settings_file() -> Path:
    """Claude Code's user settings file (found the way Claude Code finds it: its first config folder)."""
    return claude_settings_file()


def hook_command(config_path: str | None = None) -> str:
    parts = [os.path.abspath(sys.executable), "-m", "headroom.daemon.cli"]
    if config_path:
        parts += ["--config", str(Path(config_path).expanduser().resolve())]
    parts += ["memory", "briefing", "--hook"]
    home = os.environ.get("HEADROOM_HOME")
    env = f"HEADROOM_HOME={_quote(str(Path(home).expanduser().resolve()))} " if home else ""
    return env + " ".join(_quote(p) for p in parts)


def _quote(word: str) -> str:
    return shlex.quote(word)


def _entry(config_path: str | None) -> dict[str, Any]:
    return {"hooks": [{"type": "command", "command": hook_command(config_path), "timeout": TIMEOUT_S}]}


def _is_ours(group: Any) -> bool:
    return isinstance(group, dict) and any(
        isinstance(h, dict) and MARKER in str(h.get("command", "")) for h in group.get("hooks", []) or []
    )


def _groups(data: dict[str, Any], path: Path) -> list[Any]:
    hooks = data.get("hooks", {})
    if not isinstance(hooks, dict):
        raise InstallError(f"{path}: 'hooks' is not an object; refusing to edit it")
    groups = hooks.get(HOOK_EVENT, [])
    if not isinstance(groups, list):
        raise InstallError(f"{path}: 'hooks.{HOOK_EVENT}' is not a list; refusing to edit it")
    return groups


def plan_install(config_path: str | None = None) -> Change:
    path = settings_file()
    before = read_config(path)
    data = _parse(before, path)
    groups = _groups(data, path)
    desired = _entry(config_path)
    ours = [g for g in groups if _is_ours(g)]
    if ours == [desired]:
        return Change("claude", path, "unchanged", before, before)
    new_groups = [g for g in groups if not _is_ours(g)] + [desired]
    after = jsontext.set_member(before or "{}\n", ["hooks", HOOK_EVENT], new_groups)
    if _groups(_parse(after, path), path) != new_groups:
        raise InstallError(f"{path}: the edit could not be made safely; nothing was written")
    return Change("claude", path, "update" if ours else "install", before, after)


def plan_uninstall() -> Change:
    path = settings_file()
    before = read_config(path)
    data = _parse(before, path)
    groups = _groups(data, path)
    if before is None or not any(_is_ours(g) for g in groups):
        return Change("claude", path, "absent", before, before)
    rest = [g for g in groups if not _is_ours(g)]
    try:
        original = read_config(backup_file(path))
    except InstallError:
        original = None
    if original is not None and _parse(original, path) == {**data, "hooks": _without_event(data, rest)}:
        after: str | None = original  # what the user had before headroom touched it, byte for byte
    elif rest:
        after = jsontext.set_member(before, ["hooks", HOOK_EVENT], rest)
    else:
        after = jsontext.remove_member(before, ["hooks", HOOK_EVENT])
        if not _parse(after, path).get("hooks"):
            after = jsontext.remove_member(after, ["hooks"])
        if original is None and not _parse(after, path):
            after = None  # headroom created the file
    return Change("claude", path, "uninstall", before, after)


def _without_event(data: dict[str, Any], rest: list[Any]) -> dict[str, Any]:
    hooks = dict(data.get("hooks", {}))
    if rest:
        hooks[HOOK_EVENT] = rest
    else:
        hooks.pop(HOOK_EVENT, None)
    return hooks


def install(config_path: str | None = None, *, dry_run: bool = False) -> Change:
    change = plan_install(config_path)
    if not dry_run:
        apply(change)
    return change


def uninstall(*, dry_run: bool = False) -> Change:
    change = plan_uninstall()
    if not dry_run:
        apply(change)
    return change


def installed() -> bool:
    try:
        data = _parse(read_config(settings_file()), settings_file())
        return any(_is_ours(g) for g in _groups(data, settings_file()))
    except InstallError:
        return False
