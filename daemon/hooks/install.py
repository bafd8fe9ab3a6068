"""Add headroom's hooks to each agent's own settings, and take them out again, touching nothing else.

Where each agent reads its user-wide hooks, all in the same ``{"hooks": {EVENT: [group, ...]}}`` shape:

- Claude Code: ``hooks`` of ``~/.claude/settings.json`` (``$CLAUDE_CONFIG_DIR/settings.json``); timeout in s;
- Codex CLI: ``$CODEX_HOME/hooks.json`` (the user layer's hooks file; ``~/.codex``), timeout in s, plus the
  feature flag and the hooks' trust in ``config.toml`` (:mod:`headroom.daemon.hooks.codex`);
- Gemini CLI: ``hooks`` of ``~/.gemini/settings.json`` (``$GEMINI_CLI_HOME``), timeout in ms, a ``name``.

Each event gets one group of headroom's own, whose command runs :mod:`headroom.daemon.hooks.client` with
this interpreter (``python -I -S``: no PATH needed, no site scan, no environment) and the daemon's socket
path. A group is headroom's
when its command names the client and ``--socket`` (or, in Claude's file, is the older
``memory briefing --hook`` SessionStart hook, which this replaces). The rules are the MCP installer's
(:mod:`headroom.daemon.mcp.install`, whose :class:`Change`, :func:`apply` and backup this reuses): only
headroom's groups change, a file that does not parse is refused, every edit is parsed again before it is
written atomically, a ``.headroom-bak`` copy is made before the first change, installing twice changes
nothing, and uninstalling after installing gives back the original bytes.
"""

from __future__ import annotations

import copy
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from headroom.daemon.hooks import client, codex
from headroom.daemon.hooks.client import EVENTS
from headroom.daemon.mcp import jsontext
from headroom.daemon.mcp.install import Change, InstallError, apply, backup_file, config_file, read_config
from headroom.daemon.paths import claude_settings_file, paths
from headroom.learn.model import AGENTS, Agent

HOST_TIMEOUT_S = 10  # the host's own limit; the client gives up on the daemon long before (client.TIMEOUTS)
LEGACY_MARKER = "memory briefing --hook"  # the SessionStart hook of `headroom memory install`
CLIENT_MARKER = "hooks/client.py"
_EVENT_NAMES = {event for _, event in EVENTS}


def hooks_file(agent: Agent) -> Path:
    """The file in which ``agent`` reads its user-wide hooks (found the way the agent finds it)."""
    if agent == "claude":
        return claude_settings_file()
    if agent == "codex":
        return config_file("codex").with_name("hooks.json")
    return config_file("gemini")


def events(agent: Agent) -> list[str]:
    """The host events headroom hooks into for ``agent``, in the order they fire."""
    return [event for (a, event) in EVENTS if a == agent]


def socket_path() -> Path:
    return paths().hooks_socket.expanduser().resolve()


def hook_command(agent: Agent, event: str, sock: Path | None = None) -> str:
    """The command line the agent runs for ``event``: this interpreter, the client script, the socket."""
    parts = [os.path.abspath(sys.executable), "-I", "-S", os.path.abspath(client.__file__), agent, event]
    parts += ["--socket", str(sock or socket_path())]
    return " ".join(shlex.quote(p) for p in parts)


def group(agent: Agent, event: str, sock: Path | None = None) -> dict[str, Any]:
    """headroom's matcher group for ``event`` in ``agent``'s hooks (no matcher: every tool, every source)."""
    hook: dict[str, Any] = {"type": "command", "command": hook_command(agent, event, sock)}
    if agent == "gemini":
        hook = {"name": f"headroom-{EVENTS[(agent, event)]}", **hook, "timeout": HOST_TIMEOUT_S * 1000}
    else:
        hook["timeout"] = HOST_TIMEOUT_S
    return {"hooks": [hook]}


def is_ours(agent: Agent, event: str, grp: Any) -> bool:
    if not isinstance(grp, dict) or not isinstance(grp.get("hooks"), list):
        return False
    for hook in grp["hooks"]:
        command = str(hook.get("command", "")) if isinstance(hook, dict) else ""
        if CLIENT_MARKER in command and "--socket" in command:
            return True
        if agent == "claude" and event == "SessionStart" and LEGACY_MARKER in command:
            return True
    return False


# -- the JSON hooks file ------------------------------------------------------------------------------------


def parse_settings(text: str | None, path: Path) -> dict[str, Any]:
    """An agent's JSON settings (comments allowed), refused with a clear message unless hooks can be edited."""
    if not text or not text.strip():
        return {}
    try:
        data = jsontext.loads(text)
    except ValueError as exc:
        raise InstallError(f"{path} is not valid JSON ({exc}); fix it or move it away, then run this again") from None
    if not isinstance(data, dict):
        raise InstallError(f"{path}: the top level is not an object; refusing to edit it")
    hooks = data.get("hooks", {})
    if not isinstance(hooks, dict):
        raise InstallError(f"{path}: 'hooks' is not an object; refusing to edit it")
    for event, groups in hooks.items():
        if event in _EVENT_NAMES and not isinstance(groups, list):
            raise InstallError(f"{path}: 'hooks.{event}' is not a list; refusing to edit it")
    return data


def _without_ours(agent: Agent, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without headroom's groups; events and ``hooks`` that this leaves empty go too."""
    data = copy.deepcopy(data)
    hooks = data.get("hooks")
    if not isinstance(hooks, dict):
        return data
    for event in events(agent):
        groups = hooks.get(event)
        if isinstance(groups, list):
            rest = [g for g in groups if not is_ours(agent, event, g)]
            if rest:
                hooks[event] = rest
            else:
                del hooks[event]
    if not hooks:
        del data["hooks"]
    return data


def _ours(agent: Agent, data: dict[str, Any]) -> dict[str, list[Any]]:
    hooks = data.get("hooks") if isinstance(data.get("hooks"), dict) else {}
    assert isinstance(hooks, dict)
    return {
        event: [g for g in hooks.get(event, []) if is_ours(agent, event, g)]
        for event in events(agent)
        if isinstance(hooks.get(event, []), list)
    }


def plan_install(agent: Agent, *, sock: Path | None = None) -> Change:
    """What installing headroom's hooks for ``agent`` would change in its hooks file (nothing is written)."""
    path = hooks_file(agent)
    before = read_config(path)
    data = parse_settings(before, path)
    hooks = data.get("hooks", {})
    wanted = {event: group(agent, event, sock) for event in events(agent)}
    current = _ours(agent, data)
    if all(current.get(event) == [grp] for event, grp in wanted.items()):
        return Change(agent, path, "unchanged", before, before)
    text = before if before and before.strip() else "{}\n"
    expected = copy.deepcopy(data)
    expected.setdefault("hooks", {})
    try:
        for event, grp in wanted.items():
            groups = [g for g in hooks.get(event, []) if not is_ours(agent, event, g)] + [grp]
            expected["hooks"][event] = groups
            text = jsontext.set_member(text, ("hooks", event), groups)
    except ValueError as exc:
        raise InstallError(f"{path}: cannot add the hooks ({exc}); nothing was written") from None
    if parse_settings(text, path) != expected:
        raise InstallError(f"{path}: the edit could not be made safely; nothing was written")
    return Change(agent, path, "update" if any(current.values()) else "install", before, text)


def plan_uninstall(agent: Agent) -> Change:
    """What removing headroom's hooks from ``agent``'s hooks file would change (nothing is written)."""
    path = hooks_file(agent)
    before = read_config(path)
    data = parse_settings(before, path)
    if before is None or not any(_ours(agent, data).values()):
        return Change(agent, path, "absent", before, before)
    expected = _without_ours(agent, data)
    try:
        original = read_config(backup_file(path))
    except InstallError:  # an unreadable backup proves nothing
        original = None
    after: str | None
    if original is not None and _safe_parse(original) == expected:
        after = original  # the file as it was before headroom first changed it, byte for byte
    else:
        text = before
        hooks = data["hooks"]
        for event in events(agent):
            groups = hooks.get(event)
            if not isinstance(groups, list) or not any(is_ours(agent, event, g) for g in groups):
                continue
            rest = [g for g in groups if not is_ours(agent, event, g)]
            text = (
                jsontext.set_member(text, ("hooks", event), rest)
                if rest
                else jsontext.remove_member(text, ("hooks", event))
            )
        if "hooks" not in expected:
            text = jsontext.remove_member(text, ("hooks",))
        after = text
        if original is None and not parse_settings(after, path):
            after = None  # headroom created the file: take it away again
    if parse_settings(after, path) != expected:
        raise InstallError(f"{path}: the edit could not be made safely; nothing was written")
    return Change(agent, path, "uninstall", before, after)


def _safe_parse(text: str) -> Any:
    try:
        return jsontext.loads(text) if text.strip() else {}
    except ValueError:
        return None


# -- the commands' entry points -----------------------------------------------------------------------------


def install(agent: Agent, *, dry_run: bool = False, sock: Path | None = None) -> list[Change]:
    """Add (or bring up to date) headroom's hooks for ``agent``; Codex also gets its flag and their trust."""
    changes = [plan_install(agent, sock=sock)]
    if agent == "codex":
        planned = parse_settings(changes[0].after, changes[0].path)
        changes.append(codex.plan(codex.trust_entries(hooks_file("codex"), planned, is_ours)))
    if not dry_run:
        for change in changes:
            apply(change)
    return changes


def uninstall(agent: Agent, *, dry_run: bool = False) -> list[Change]:
    """Remove headroom's hooks for ``agent`` (and the Codex flag headroom set, when nothing else needs it)."""
    changes = [plan_uninstall(agent)]
    if agent == "codex":
        left = parse_settings(changes[0].after, changes[0].path).get("hooks")
        toml_hooks = codex.parse(read_config(config_file("codex")), config_file("codex")).get("hooks", {})
        in_toml = isinstance(toml_hooks, dict) and any(k != "state" for k in toml_hooks)
        changes.append(codex.plan_removal(bool(left) or in_toml))
    if not dry_run:
        for change in changes:
            apply(change)
    return changes


def state(agent: Agent, *, sock: Path | None = None) -> str:
    """``installed`` (every event, current), ``outdated`` (another interpreter, socket or an event missing),
    or ``absent``; ``InstallError`` when the file cannot be read."""
    path = hooks_file(agent)
    current = _ours(agent, parse_settings(read_config(path), path))
    if not any(current.values()):
        return "absent"
    wanted = {event: [group(agent, event, sock)] for event in events(agent)}
    return "installed" if current == wanted else "outdated"


__all__ = [
    "AGENTS",
    "events",
    "group",
    "hook_command",
    "hooks_file",
    "install",
    "is_ours",
    "parse_settings",
    "plan_install",
    "plan_uninstall",
    "socket_path",
    "state",
    "uninstall",
]
