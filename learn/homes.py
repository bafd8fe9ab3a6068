"""Where each agent keeps its home folder and its session logs, found the way the agent finds them.

``CLAUDE_CONFIG_DIR`` (comma-separated, as ccusage accepts) else ``~/.config/claude`` and ``~/.claude``;
``CODEX_HOME`` else ``~/.codex``; ``GEMINI_CLI_HOME`` (gemini-cli's own override of the home folder) else ``~``.
``[agents.<agent>] homes`` in config.toml overrides each. This is agent knowledge, so it lives in learn with the
readers (issue 16): no module outside learn names the agents' folders or their variables (tests/test_layers.py).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from headroom.learn.model import AGENTS, Agent

#: The variables with which a user moves an agent's home (a service manager must pass them on).
HOME_VARIABLES = ("CLAUDE_CONFIG_DIR", "CODEX_HOME", "GEMINI_CLI_HOME")


def agent_homes(agent: Agent, configured: Sequence[str | Path] | None = None) -> list[Path]:
    """The agent's own folders (``~/.claude``, ``~/.codex``, ``~/.gemini``), found the way the agent finds them.

    ``configured`` is ``[agents.<agent>] homes`` from config.toml and wins when given. Otherwise
    ``CLAUDE_CONFIG_DIR`` (a comma-separated list, as ccusage accepts) else ``~/.claude`` and
    ``~/.config/claude``; ``CODEX_HOME`` else ``~/.codex``; ``$GEMINI_CLI_HOME/.gemini`` else ``~/.gemini``. The
    first home is where the agent reads its user config; ingestion reads the logs of all of them. This is the
    one function that decides it: ingestion, ``mcp install``, the memory hook and ``wrap`` all ask it.
    """
    if configured is not None:
        return [_home_of(agent, Path(h).expanduser()) for h in configured]
    home = Path.home()
    if agent == "claude":
        listed = [Path(p.strip()).expanduser() for p in os.environ.get("CLAUDE_CONFIG_DIR", "").split(",")]
        listed = [p for p in listed if str(p) not in ("", ".")]
        return listed or [home / ".claude", home / ".config" / "claude"]
    if agent == "codex":
        return [Path(os.environ.get("CODEX_HOME") or home / ".codex").expanduser()]
    return [Path(os.environ.get("GEMINI_CLI_HOME") or home).expanduser() / ".gemini"]


def agent_config_file(agent: Agent, configured: Sequence[str | Path] | None = None) -> Path:
    """The file in which ``agent`` looks for user-wide MCP servers, in its first home.

    Claude Code keeps ``.claude.json`` next to its default folder (``~/.claude.json``) and inside any other
    config folder (``$CLAUDE_CONFIG_DIR/.claude.json``); a pre-1.0 ``.config.json`` still wins when present.
    """
    first = agent_homes(agent, configured)[0]
    if agent == "claude":
        legacy = first / ".config.json"
        if legacy.is_file():
            return legacy
        return (first.parent if first == Path.home() / ".claude" else first) / ".claude.json"
    return first / ("config.toml" if agent == "codex" else "settings.json")


def claude_settings_file(configured: Sequence[str | Path] | None = None) -> Path:
    """Claude Code's user settings (``settings.json`` in its first home), where its hooks are declared."""
    return agent_homes("claude", configured)[0] / "settings.json"


def default_agent_roots() -> dict[Agent, list[Path]]:
    """Each agent's log roots as the agent itself would find them (existing or not)."""
    roots = {agent: agent_roots_from_homes(agent, agent_homes(agent)) for agent in AGENTS}
    if not os.environ.get("CLAUDE_CONFIG_DIR", "").strip(", "):  # ccusage's order: XDG first
        roots["claude"].reverse()
    return roots


def _home_of(agent: Agent, folder: Path) -> Path:
    """A configured folder as the agent's home: a log root given instead (``projects``, ``sessions``, ``tmp``)
    names its parent."""
    if (agent, folder.name) in (("claude", "projects"), ("codex", "sessions"), ("codex", "archived_sessions")):
        return folder.parent
    if agent == "gemini" and folder.name == "tmp":
        return folder.parent
    if agent == "gemini" and folder.name != ".gemini" and (folder / ".gemini").is_dir():
        return folder / ".gemini"  # a home folder that holds .gemini
    return folder


def agent_roots_from_homes(agent: Agent, homes: list[Path]) -> list[Path]:
    """Log roots for agent homes given in config (``~/.claude``, ``~/.codex``, ``~/.gemini``).

    A folder that already is a log root (``projects``, ``sessions``, ``tmp``) is taken as it is.
    """
    roots: list[Path] = []
    for home in (h.expanduser() for h in homes):
        if agent == "claude":
            roots.append(_projects_dir(home))
        elif agent == "codex":
            if home.name in ("sessions", "archived_sessions"):
                roots.append(home)
            else:
                roots += [home / "sessions", home / "archived_sessions"]
        else:
            roots.append(home if home.name == "tmp" else home / "tmp")
    return roots


def _projects_dir(claude_dir: Path) -> Path:
    return claude_dir if claude_dir.name == "projects" else claude_dir / "projects"


__all__ = [
    "HOME_VARIABLES",
    "agent_config_file",
    "agent_homes",
    "agent_roots_from_homes",
    "claude_settings_file",
    "default_agent_roots",
]
