"""Register headroom's MCP server with each agent, in the agent's own config file, and take it out again.

Each agent lists its MCP servers in a file it also rewrites itself: Claude Code in the user-scope
``mcpServers`` of ``~/.claude.json`` (``$CLAUDE_CONFIG_DIR/.claude.json`` when that is set), Codex in the
``[mcp_servers.<name>]`` tables of ``$CODEX_HOME/config.toml``, Gemini CLI in ``mcpServers`` of
``~/.gemini/settings.json``. These files hold people's settings, credentials and comments, so an edit
touches only headroom's own entry: JSON through :mod:`~headroom.daemon.mcp.jsontext` (text spans, not a
re-serialisation), TOML through :mod:`~headroom.daemon.mcp.tomltext` (tomlkit, which keeps comments and
layout). Every edit is planned first (a
:class:`Change` with the text before and after, which ``--dry-run`` shows as a diff), checked by parsing
the result again, and then written atomically with the file's mode kept and a ``.headroom-bak`` copy
of the original made before headroom first changes it. A file that does not parse is refused untouched.

Installing twice changes nothing; uninstalling removes exactly headroom's entry, plus the ``mcpServers`` /
``mcp_servers`` container when it was headroom that created it, so install-then-uninstall gives back the
original bytes.
"""

from __future__ import annotations

import copy
import difflib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from headroom.daemon.mcp import jsontext, tomltext
from headroom.daemon.paths import agent_config_file, agent_homes
from headroom.engine.errors import HeadroomError
from headroom.learn.model import AGENTS, Agent
from headroom.memory.files import write_atomic

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

SERVER_NAME = "headroom"
BACKUP_SUFFIX = ".headroom-bak"
Action = Literal["install", "update", "unchanged", "uninstall", "absent"]
State = Literal["installed", "outdated", "absent"]
_CONTAINER: dict[Agent, str] = {"claude": "mcpServers", "codex": "mcp_servers", "gemini": "mcpServers"}


class InstallError(HeadroomError):
    """An agent's config file cannot be read, parsed or safely edited; nothing was written."""


def config_file(agent: Agent) -> Path:
    """The file in which ``agent`` looks for user-wide MCP servers (found the way the agent finds it)."""
    return agent_config_file(agent)


def agent_detected(agent: Agent) -> bool:
    """Whether ``agent`` seems to be used on this machine (its config file or folder exists)."""
    return config_file(agent).exists() or agent_homes(agent)[0].is_dir()


def backup_file(path: Path) -> Path:
    return path.with_name(path.name + BACKUP_SUFFIX)


def server_entry(agent: Agent, *, config_path: str | None = None) -> dict[str, Any]:
    """The entry that starts ``headroom mcp serve`` with this interpreter (so the agent needs no PATH).

    ``HEADROOM_HOME`` is passed on when it is set: Codex starts servers with a scrubbed environment, and the
    server must read the same CCR store as the proxy. ``HEADROOM_AGENT`` names the agent for provenance.
    """
    args = ["-m", "headroom.daemon.cli"]
    if config_path:
        args += ["--config", str(Path(config_path).expanduser().resolve())]
    args += ["mcp", "serve"]
    home = os.environ.get("HEADROOM_HOME")
    env = {"HEADROOM_HOME": str(Path(home).expanduser().resolve())} if home else {}
    env["HEADROOM_AGENT"] = agent  # provenance of what the agent saves through memory_save
    entry: dict[str, Any] = {"command": os.path.abspath(sys.executable), "args": args, "env": env}
    return {"type": "stdio", **entry} if agent == "claude" else entry


@dataclass(frozen=True)
class Change:
    """A planned edit of one agent's config file: its text before and after (``None``: no file)."""

    agent: Agent
    path: Path
    action: Action
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def describe(self, *, dry_run: bool = False) -> str:
        """One line for the user: ``claude: installed in /home/me/.claude.json``."""
        done, planned = {
            "install": ("installed in", "would be installed in"),
            "update": ("updated in", "would be updated in"),
            "unchanged": ("already installed in", "already installed in"),
            "uninstall": ("removed from", "would be removed from"),
            "absent": ("not installed in", "not installed in"),
        }[self.action]
        return f"{self.agent}: {planned if dry_run else done} {self.path}"

    def diff(self) -> str:
        """A unified diff of the edit (empty when nothing changes)."""
        lines = difflib.unified_diff(
            (self.before or "").splitlines(keepends=True),
            (self.after or "").splitlines(keepends=True),
            fromfile=str(self.path) if self.before is not None else "/dev/null",
            tofile=str(self.path) if self.after is not None else "/dev/null",
        )
        return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


# -- the two file formats ----------------------------------------------------------------------------------


def _parse(agent: Agent, text: str, path: Path) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        data = tomllib.loads(text) if agent == "codex" else jsontext.loads(text)
    except ValueError as exc:  # JSONDecodeError and TOMLDecodeError are both ValueErrors
        raise InstallError(f"{path} cannot be parsed ({exc}); fix it or move it away, then run this again") from None
    if not isinstance(data, dict):
        raise InstallError(f"{path}: the top level is not an object; refusing to edit it")
    return data


def _entry(agent: Agent, data: dict[str, Any]) -> Any:
    servers = data.get(_CONTAINER[agent])
    return servers.get(SERVER_NAME) if isinstance(servers, dict) else None


def _without_entry(agent: Agent, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without headroom's entry, and without the container if that leaves it empty."""
    data = copy.deepcopy(data)
    servers = data.get(_CONTAINER[agent])
    if isinstance(servers, dict):
        servers.pop(SERVER_NAME, None)
        if not servers:
            del data[_CONTAINER[agent]]
    return data


def _put(agent: Agent, text: str, entry: dict[str, Any]) -> str:
    if agent == "codex":
        return tomltext.set_server(text, SERVER_NAME, entry)
    if not text.strip():
        return jsontext.set_member("{}", (_CONTAINER[agent], SERVER_NAME), entry) + "\n"
    return jsontext.set_member(text, (_CONTAINER[agent], SERVER_NAME), entry)


def _remove(agent: Agent, text: str, *, prune: bool) -> str:
    if agent == "codex":  # headroom never writes an explicit [mcp_servers] header: nothing to prune
        return tomltext.remove_server(text, SERVER_NAME)
    container = _CONTAINER[agent]
    text = jsontext.remove_member(text, (container, SERVER_NAME))
    servers = jsontext.loads(text).get(container)
    if prune and isinstance(servers, dict) and not servers:
        text = jsontext.remove_member(text, (container,))
    return text


# -- planning and writing ----------------------------------------------------------------------------------


def read_config(path: Path) -> str | None:
    """The text of an agent config file (None when absent); an unreadable or non-UTF-8 file is refused."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InstallError(f"{path} cannot be read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InstallError(f"{path} is not UTF-8 text; refusing to edit it") from None


def _check(agent: Agent, path: Path, before: dict[str, Any], after_text: str | None, entry: Any) -> None:
    """Parse the edited text again: headroom's entry is as planned and everything else is as it was."""
    after = _parse(agent, after_text or "", path)
    if _entry(agent, after) != entry or _without_entry(agent, after) != _without_entry(agent, before):
        raise InstallError(f"{path}: the edit could not be made safely; nothing was written")


def plan_install(agent: Agent, *, config_path: str | None = None) -> Change:
    """What installing the server for ``agent`` would change (nothing is written)."""
    path = config_file(agent)
    before = read_config(path)
    data = _parse(agent, before or "", path)
    if not isinstance(data.get(_CONTAINER[agent], {}), dict):
        raise InstallError(f"{path}: {_CONTAINER[agent]} is not a table of servers; refusing to edit it")
    desired = server_entry(agent, config_path=config_path)
    current = _entry(agent, data)
    if isinstance(current, dict) and all(current.get(k) == v for k, v in desired.items()):
        return Change(agent, path, "unchanged", before, before)
    merged = {**current, **desired} if isinstance(current, dict) else desired
    try:
        after = _put(agent, before or "", merged)
    except Exception as exc:  # a tomlkit or scanner surprise: nothing has been written, so say so and stop
        raise InstallError(f"{path}: cannot add the server entry ({type(exc).__name__}: {exc})") from None
    _check(agent, path, data, after, merged)
    return Change(agent, path, "install" if current is None else "update", before, after)


def plan_uninstall(agent: Agent) -> Change:
    """What uninstalling the server for ``agent`` would change (nothing is written)."""
    path = config_file(agent)
    before = read_config(path)
    data = _parse(agent, before or "", path)
    if before is None or _entry(agent, data) is None:
        return Change(agent, path, "absent", before, before)
    # The backup is the file as it was before headroom first changed it: it tells whether headroom created
    # the file or the server container, which then go again.
    try:
        original = read_config(backup_file(path))
        had_container = original is not None and _CONTAINER[agent] in _parse(agent, original, path)
    except InstallError:  # an unreadable backup proves nothing: keep what might be the user's
        original, had_container = None, True
    try:
        after: str | None = _remove(agent, before, prune=not had_container)
    except Exception as exc:  # as in plan_install: nothing has been written yet
        raise InstallError(f"{path}: cannot remove the server entry ({type(exc).__name__}: {exc})") from None
    if after is not None and not had_container and not _parse(agent, after, path):
        if original is None:
            after = None  # headroom created the file: take it away again
        elif not original.strip():
            after = original  # it was empty
    _check(agent, path, data, after, None)
    return Change(agent, path, "uninstall", before, after)


def apply(change: Change) -> None:
    """Write a planned change: backup first, then an atomic replace that keeps the file's mode."""
    if not change.changed:
        return
    if read_config(change.path) != change.before:
        raise InstallError(f"{change.path} changed while headroom was editing it; run the command again")
    target = Path(os.path.realpath(change.path))  # a symlinked dotfile stays a symlink
    backup = backup_file(change.path)
    if change.before is not None and not backup.exists():
        shutil.copy2(target, backup)
    if change.after is None:
        target.unlink()
        return
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = target.stat().st_mode & 0o7777 if target.exists() else 0o600
    try:
        write_atomic(target, change.after.encode("utf-8"), mode=mode)
    except OSError as exc:
        raise InstallError(f"{target} cannot be written: {exc.strerror or exc}") from None


def install(agent: Agent, *, config_path: str | None = None, dry_run: bool = False) -> Change:
    """Add (or bring up to date) headroom's entry in ``agent``'s config; a no-op when it is current."""
    change = plan_install(agent, config_path=config_path)
    if not dry_run:
        apply(change)
    return change


def uninstall(agent: Agent, *, dry_run: bool = False) -> Change:
    """Remove headroom's entry from ``agent``'s config; a no-op when there is none."""
    change = plan_uninstall(agent)
    if not dry_run:
        apply(change)
    return change


def installed_entry(agent: Agent) -> dict[str, Any] | None:
    """headroom's entry in ``agent``'s config, or ``None``; ``InstallError`` when the file cannot be read."""
    path = config_file(agent)
    entry = _entry(agent, _parse(agent, read_config(path) or "", path))
    return entry if isinstance(entry, dict) else None


def state(agent: Agent, *, config_path: str | None = None) -> State:
    """``installed`` (and current), ``outdated`` (another interpreter or options), or ``absent``."""
    entry = installed_entry(agent)
    if entry is None:
        return "absent"
    desired = server_entry(agent, config_path=config_path)
    return "installed" if all(entry.get(k) == v for k, v in desired.items()) else "outdated"


def is_installed(agent: Agent) -> bool:
    """Whether ``agent`` has a ``headroom`` MCP server configured (an unreadable config counts as no)."""
    try:
        return installed_entry(agent) is not None
    except InstallError:
        return False


__all__ = [
    "AGENTS",
    "BACKUP_SUFFIX",
    "SERVER_NAME",
    "Change",
    "InstallError",
    "agent_detected",
    "apply",
    "backup_file",
    "config_file",
    "install",
    "installed_entry",
    "is_installed",
    "plan_install",
    "plan_uninstall",
    "server_entry",
    "state",
    "uninstall",
]
