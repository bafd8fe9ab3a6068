"""``headroom mcp``: serve the MCP tools (``serve``, what agents start) and register them with each agent.

``install`` and ``uninstall`` edit only headroom's entry in the agent's own config file and can show the
edit first (``--dry-run``); ``status`` says which agents have it. See :mod:`headroom.daemon.mcp.install`.
"""

from __future__ import annotations

import logging
import sys

import click

from headroom.daemon.cli.common import App, echo_install_rows, emit_json, json_option, pass_app
from headroom.daemon.mcp.install import (
    InstallError,
    agent_detected,
    backup_file,
    config_file,
    install,
    state,
    uninstall,
)
from headroom.learn.model import AGENTS, Agent

_AGENT_CHOICE = click.Choice([*AGENTS, "all"])


@click.group("mcp")
def mcp_group() -> None:
    """The MCP server that gives agents elided originals back (headroom_retrieve), and its set-up."""


@mcp_group.command("serve")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail (to stderr).")
@pass_app
def mcp_serve(app: App, verbose: bool) -> None:
    """Serve the MCP tools on stdin/stdout until the client hangs up (agents start this)."""
    # stdout is the protocol: every log line goes to stderr, set up before the SDK configures its own.
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.WARNING,
        format="headroom-mcp %(levelname)s %(name)s: %(message)s",
    )
    from headroom.daemon.process import RedactingFormatter

    for handler in logging.getLogger().handlers:  # the agent keeps MCP servers' stderr in its own logs
        handler.setFormatter(RedactingFormatter("headroom-mcp %(levelname)s %(name)s: %(message)s"))
    if sys.stdin.isatty():
        click.echo("headroom mcp serve speaks MCP on stdin/stdout; agents start it (`headroom mcp install`).", err=True)
    from headroom.daemon.mcp.server import serve

    serve(app.config)


def _agents(choice: str) -> list[Agent]:
    if choice != "all":
        return [agent for agent in AGENTS if agent == choice]
    found = [agent for agent in AGENTS if agent_detected(agent)]
    if not found:
        raise click.ClickException(
            "no agent is set up here (looked for " + ", ".join(str(config_file(a)) for a in AGENTS) + ")"
        )
    return found


def _run(choice: str, edit: str, config_path: str | None, dry_run: bool) -> None:
    """Install or uninstall for one agent (errors stop it) or for all (errors are reported, the rest go on)."""
    failed = False
    for agent in _agents(choice):
        try:
            if edit == "install":
                change = install(agent, config_path=config_path, dry_run=dry_run)
            else:
                change = uninstall(agent, dry_run=dry_run)
        except InstallError as exc:
            if choice != "all":
                raise
            click.echo(f"{agent}: {exc}", err=True)
            failed = True
            continue
        click.echo(change.describe(dry_run=dry_run))
        if dry_run:
            click.echo(change.diff(), nl=False)
        elif change.changed:
            backup = backup_file(change.path)
            kept = f"the original is kept in {backup}; " if backup.exists() else ""
            click.echo(f"  ({kept}restart {agent} to load the change)")
    if failed:
        raise click.exceptions.Exit(1)


@mcp_group.command("install")
@click.argument("agent", type=_AGENT_CHOICE)
@click.option("--dry-run", is_flag=True, help="Show the edit as a diff and write nothing.")
@pass_app
def mcp_install(app: App, agent: str, dry_run: bool) -> None:
    """Register the server in AGENT's config (claude, codex, gemini, or all agents set up here)."""
    _run(agent, "install", app.config_path, dry_run)


@mcp_group.command("uninstall")
@click.argument("agent", type=_AGENT_CHOICE)
@click.option("--dry-run", is_flag=True, help="Show the edit as a diff and write nothing.")
@pass_app
def mcp_uninstall(app: App, agent: str, dry_run: bool) -> None:
    """Remove the server from AGENT's config, leaving everything else in the file as it was."""
    _run(agent, "uninstall", app.config_path, dry_run)


@mcp_group.command("status")
@json_option
@pass_app
def mcp_status(app: App, as_json: bool) -> None:
    """Which agents have the server registered, and where."""
    rows: list[dict[str, str | None]] = []
    for agent in AGENTS:
        error: str | None = None
        try:
            found: str = state(agent, config_path=app.config_path)
        except InstallError as exc:
            found, error = "unreadable", str(exc)
        rows.append({"agent": agent, "config": str(config_file(agent)), "state": found, "error": error})
    if as_json:
        emit_json(rows)
        return
    echo_install_rows(rows, "mcp", "config", "config unreadable")


def register(cli: click.Group) -> None:
    cli.add_command(mcp_group)
