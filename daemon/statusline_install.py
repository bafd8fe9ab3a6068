"""``headroom statusline install|uninstall``: headroom's ``statusLine`` in Claude Code's ``settings.json``.

The same care as ``mcp install`` (whose helpers this reuses: :mod:`headroom.daemon.mcp.jsontext` edits the JSON
text span of one key and leaves every other byte alone, :func:`headroom.daemon.mcp.install.apply` backs the file
up before headroom first changes it and replaces it atomically with its mode kept). Claude Code has one status
line, so a ``statusLine`` that is not headroom's (the user's own script) is never replaced without ``--force``,
and uninstall removes the key only when it is headroom's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from headroom.daemon.mcp import jsontext
from headroom.daemon.mcp.install import Change, InstallError, apply, read_config
from headroom.daemon.paths import claude_settings_file

KEY = "statusLine"
MODULE = "headroom.daemon.statusline"


def entry() -> dict[str, Any]:
    """Claude Code's ``statusLine`` that runs headroom's with this interpreter (no PATH needed, no CLI import)."""
    command = f'"{os.path.abspath(sys.executable)}" -m {MODULE}'
    home = os.environ.get("HEADROOM_HOME")
    if home:  # the status line must read the database this headroom uses
        command = f'HEADROOM_HOME="{Path(home).expanduser().resolve()}" {command}'
    return {"type": "command", "command": command, "padding": 0}


def is_headrooms(value: Any) -> bool:
    return isinstance(value, dict) and MODULE in str(value.get("command", ""))


def _parse(text: str | None, path: Path) -> dict[str, Any]:
    if not text or not text.strip():
        return {}
    try:
        data = jsontext.loads(text)
    except ValueError as exc:
        raise InstallError(f"{path} cannot be parsed ({exc}); fix it or move it away, then run this again") from None
    if not isinstance(data, dict):
        raise InstallError(f"{path}: the top level is not an object; refusing to edit it")
    return data


def _check(path: Path, before: dict[str, Any], after_text: str | None, wanted: Any) -> None:
    """Parse the result again: headroom's key is as planned and every other key is as it was."""
    after = _parse(after_text, path)
    rest_before = {k: v for k, v in before.items() if k != KEY}
    rest_after = {k: v for k, v in after.items() if k != KEY}
    if after.get(KEY) != wanted or rest_after != rest_before:
        raise InstallError(f"{path}: the edit could not be made safely; nothing was written")


def plan_install(*, force: bool = False, path: Path | None = None) -> Change:
    """What installing headroom's status line would change (nothing is written)."""
    path = path or claude_settings_file()
    before = read_config(path)
    data = _parse(before, path)
    desired = entry()
    current = data.get(KEY)
    if current == desired:
        return Change("claude", path, "unchanged", before, before)
    if current is not None and not is_headrooms(current) and not force:
        raise InstallError(
            f"{path} already has a statusLine of its own ({str(current.get('command', current))[:80]!r} if a "
            "command); `headroom statusline install --force` replaces it (the file is backed up first)"
            if isinstance(current, dict)
            else f"{path} already has a statusLine; --force replaces it"
        )
    after = jsontext.set_member(before if before and before.strip() else "{}", (KEY,), desired)
    if not (before and before.strip()):
        after += "\n"
    _check(path, data, after, desired)
    return Change("claude", path, "install" if current is None else "update", before, after)


def plan_uninstall(*, path: Path | None = None) -> Change:
    """What removing headroom's status line would change; a statusLine that is not headroom's stays."""
    path = path or claude_settings_file()
    before = read_config(path)
    data = _parse(before, path)
    if before is None or not is_headrooms(data.get(KEY)):
        return Change("claude", path, "absent", before, before)
    after = jsontext.remove_member(before, (KEY,))
    _check(path, data, after, None)
    return Change("claude", path, "uninstall", before, after)


def install(*, force: bool = False, dry_run: bool = False, path: Path | None = None) -> Change:
    change = plan_install(force=force, path=path)
    if not dry_run:
        apply(change)
    return change


def uninstall(*, dry_run: bool = False, path: Path | None = None) -> Change:
    change = plan_uninstall(path=path)
    if not dry_run:
        apply(change)
    return change
