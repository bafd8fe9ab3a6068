"""``headroom hooks``: give each agent the team's knowledge through its own lifecycle hooks.

``install`` and ``uninstall`` edit only headroom's entries in each agent's settings and can show the edit
first (``--dry-run``); ``status`` says which agents have them, whether the daemon answers, and how the live
lessons did. See :mod:`headroom.daemon.hooks` for what each hook adds.
"""

from __future__ import annotations

import json
from typing import Any

import click

from headroom.daemon.cli.common import App, echo_install_rows, emit_json, json_option, pass_app
from headroom.daemon.hooks import codex
from headroom.daemon.hooks import install as hooks_install
from headroom.daemon.mcp.install import Change, InstallError, agent_detected, backup_file
from headroom.learn.model import AGENTS, Agent

_AGENT_CHOICE = click.Choice([*AGENTS, "all"])


@click.group("hooks")
def hooks_group() -> None:
    """Briefings, prompt-time memory and live lessons through each agent's own hooks."""


def _agents(choice: str) -> list[Agent]:
    if choice != "all":
        return [agent for agent in AGENTS if agent == choice]
    found = [agent for agent in AGENTS if agent_detected(agent)]
    if not found:
        raise click.ClickException(
            "no agent is set up here (looked for "
            + ", ".join(str(hooks_install.hooks_file(a).parent) for a in AGENTS)
            + ")"
        )
    return found


def _report(agent: Agent, change: Change, dry_run: bool) -> None:
    if change.path.name == "config.toml":  # Codex's feature flag and the hooks' trust
        if change.action in ("install", "update"):
            verb = "would record" if dry_run else "recorded"
            click.echo(f"codex: {verb} headroom's hooks as trusted in {change.path} (Codex skips untrusted hooks)")
            if change.before is None or "codex_hooks" not in change.before:
                verb = "would set" if dry_run else "set"
                click.echo(
                    f"codex: {verb} [features] codex_hooks = true in {change.path} (Codex runs hooks only with it)"
                )
        elif change.action == "uninstall":
            verb = "would remove" if dry_run else "removed"
            click.echo(
                f"codex: {verb} headroom's trust entries (and the codex_hooks flag it had set) from {change.path}"
            )
    else:
        click.echo(change.describe(dry_run=dry_run).replace(f"{agent}:", f"{agent} hooks:", 1))
    if dry_run:
        click.echo(change.diff(), nl=False)
    elif change.changed:
        backup = backup_file(change.path)
        if backup.exists():
            click.echo(f"  (the original is kept in {backup})")


def _run(choice: str, edit: str, dry_run: bool) -> None:
    """Install or uninstall for one agent (errors stop it) or for all (errors are reported, the rest go on)."""
    failed = False
    for agent in _agents(choice):
        try:
            if edit == "install":
                changes = hooks_install.install(agent, dry_run=dry_run)
            else:
                changes = hooks_install.uninstall(agent, dry_run=dry_run)
        except InstallError as exc:
            if choice != "all":
                raise
            click.echo(f"{agent}: {exc}", err=True)
            failed = True
            continue
        for change in changes:
            _report(agent, change, dry_run)
        if not dry_run and any(c.changed for c in changes):
            click.echo(f"  (new {agent} sessions pick this up)")
            if agent == "codex" and edit == "install":
                click.echo("  (a Codex that still asks to review them lists headroom's hooks under /hooks)")
    if failed:
        raise click.exceptions.Exit(1)


@hooks_group.command("install")
@click.argument("agent", type=_AGENT_CHOICE)
@click.option("--dry-run", is_flag=True, help="Show the edit as a diff and write nothing.")
def hooks_install_cmd(agent: str, dry_run: bool) -> None:
    """Add headroom's hooks to AGENT's settings (claude, codex, gemini, or all agents set up here)."""
    _run(agent, "install", dry_run)


@hooks_group.command("uninstall")
@click.argument("agent", type=_AGENT_CHOICE)
@click.option("--dry-run", is_flag=True, help="Show the edit as a diff and write nothing.")
def hooks_uninstall_cmd(agent: str, dry_run: bool) -> None:
    """Remove headroom's hooks from AGENT's settings, leaving everything else in the file as it was."""
    _run(agent, "uninstall", dry_run)


def _ping() -> dict[str, Any] | None:
    from headroom.daemon.hooks.client import ask

    try:
        return ask(str(hooks_install.socket_path()), {"v": 1, "purpose": "ping"}, 1.0)
    except (TimeoutError, OSError, ValueError):
        return None


@hooks_group.command("status")
@click.argument("agent", type=_AGENT_CHOICE, default="all")
@json_option
@pass_app
def hooks_status(app: App, agent: str, as_json: bool) -> None:
    """Which agents have the hooks, whether the daemon answers them, and how the live lessons did."""
    rows: list[dict[str, Any]] = []
    for name in [a for a in AGENTS if agent in (a, "all")]:
        error: str | None = None
        try:
            found = hooks_install.state(name)
        except InstallError as exc:
            found, error = "unreadable", str(exc)
        row: dict[str, Any] = {"agent": name, "file": str(hooks_install.hooks_file(name)), "state": found}
        if name == "codex":
            try:
                row["codex_hooks"] = codex.flag()
            except InstallError as exc:
                error = error or str(exc)
        row["error"] = error
        rows.append(row)
    daemon = _ping()
    lessons = _lesson_stats(app)
    if as_json:
        emit_json(
            {
                "agents": rows,
                "daemon": daemon is not None,
                "socket": str(hooks_install.socket_path()),
                "lessons": lessons,
            }
        )
        return
    echo_install_rows(rows, "hooks", "file", "settings unreadable")
    if daemon is None:
        click.echo("daemon: not answering (hooks add nothing until `headroom daemon start`; agents are not slowed)")
    else:
        click.echo(f"daemon: answering on {hooks_install.socket_path()}")
    if lessons:
        click.echo("live lessons (shown, then the next call: ok / failed):")
        for key, row in sorted(lessons.items(), key=lambda kv: -int(kv[1].get("shown", 0))):
            text = str(row.get("text", key))[:80]
            click.echo(f"  {row.get('shown', 0):>3}  {row.get('next_ok', 0)}/{row.get('next_failed', 0)}  {text}")


def _lesson_stats(app: App) -> dict[str, Any]:
    try:
        data = json.loads(app.config.paths.hooks_stats.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def register(cli: click.Group) -> None:
    cli.add_command(hooks_group)
