"""Where headroom keeps things, and where each agent keeps its session logs.

``paths()`` is the one function that decides every headroom path. ``HEADROOM_HOME`` puts everything under
one folder (tests, portable installs); otherwise the platform's data, config and state dirs are used
(XDG on Linux, ``~/Library/Application Support`` on macOS). Folders that hold user data are created
owner-only.

Where each agent keeps its logs is agent knowledge: :mod:`headroom.learn.homes` decides it (re-exported here).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from headroom.learn.homes import (
    agent_config_file,
    agent_homes,
    agent_roots_from_homes,
    claude_settings_file,
    default_agent_roots,
)
from headroom.learn.model import AGENTS

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
