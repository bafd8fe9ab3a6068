"""Where headroom keeps things, and where each agent keeps its session logs.

``paths()`` is the one function that decides every headroom path. ``HEADROOM_HOME`` puts everything under
one folder (tests, portable installs); otherwise the platform's data, config and state dirs are used
(XDG on Linux, ``~/Library/Application Support`` on macOS). Folders that hold user data are created
owner-only.

Agent log roots are found the way each agent finds them: ``CLAUDE_CONFIG_DIR`` (comma-separated, as
ccusage accepts) else ``~/.config/claude`` and ``~/.claude``; ``CODEX_HOME`` else ``~/.codex``;
``GEMINI_CLI_HOME`` (gemini-cli's own override of the home folder) else ``~``. ``config.toml`` can
override each.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from headroom.learn.model import AGENTS, Agent

APP = "headroom"


@dataclass(frozen=True)
class Paths:
    """Every file and folder headroom uses."""

    data_dir: Path  # the database
    config_dir: Path  # config.toml
    state_dir: Path  # logs, locks, pid

    @property
    def db_file(self) -> Path:
        return self.data_dir / "headroom.db"

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def ccr_dir(self) -> Path:
        """Originals of compressed blocks (the CCR store shared by the proxy, the MCP server and the CLI)."""
        return self.data_dir / "ccr"

    @property
    def index_dir(self) -> Path:
        """The memory's vector index files (a cache of the DB's vectors, rebuilt when missing or stale)."""
        return self.data_dir / "index"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "daemon.log"

    @property
    def proxy_state(self) -> Path:
        """Where the running proxy says it listens (written on start, removed on stop)."""
        return self.state_dir / "proxy.json"

    @property
    def hooks_socket(self) -> Path:
        """The daemon's Unix socket for the agents' hooks (inside the owner-only state dir)."""
        return self.state_dir / "hooks.sock"

    @property
    def hooks_stats(self) -> Path:
        """How often each live lesson was shown by a hook and whether the next call succeeded."""
        return self.state_dir / "hooks-lessons.json"

    @property
    def daemon_lock(self) -> Path:
        return self.state_dir / "daemon.lock"

    def ensure(self) -> Paths:
        """Create the folders, owner-only (they hold copies of the agents' logs), whatever the umask.

        ``mkdir(mode=)`` is masked by the umask and leaves existing folders as they are, so every folder
        headroom keeps data in is set to 0700 explicitly; files are created 0600 where they are opened.
        """
        for folder in (self.data_dir, self.config_dir, self.state_dir, self.log_dir, self.ccr_dir, self.index_dir):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for folder in (self.data_dir, self.state_dir, self.log_dir, self.ccr_dir, self.index_dir):
            if folder.stat().st_mode & 0o077:
                folder.chmod(0o700)
        return self


def paths() -> Paths:
    """The paths for this process, from ``HEADROOM_HOME`` or the platform's conventions."""
    home = os.environ.get("HEADROOM_HOME")
    if home:
        root = Path(home).expanduser()
        return Paths(data_dir=root, config_dir=root, state_dir=root / "state")
    return Paths(
        data_dir=Path(platformdirs.user_data_dir(APP, appauthor=False)),
        config_dir=Path(platformdirs.user_config_dir(APP, appauthor=False)),
        state_dir=Path(platformdirs.user_state_dir(APP, appauthor=False)),
    )


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
    "AGENTS",
    "Paths",
    "agent_config_file",
    "agent_homes",
    "agent_roots_from_homes",
    "claude_settings_file",
    "default_agent_roots",
    "paths",
]
