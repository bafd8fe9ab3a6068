"""``headroom statusline``: Claude Code's status line (reads its JSON on stdin), and its install/uninstall.

The line itself is :mod:`headroom.daemon.statusline` (standard library only, so that a redraw costs a few
milliseconds); ``install`` points Claude Code at that module directly (``python -m``), not at this CLI.
"""

from __future__ import annotations

import sys

import click

from headroom.daemon.cli.common import App as _App
from headroom.daemon.cli.common import pass_app


@click.group("statusline", invoke_without_command=True)
@click.pass_context
def statusline_group(ctx: click.Context) -> None:
    """Print one status line for the Claude Code session described by the JSON on stdin.

    The line: the session's cost, today's cost (all agents), the tokens the proxy saved in this session and the
    active lessons. `headroom statusline install` sets it up in ~/.claude/settings.json. Codex and Gemini get
    the same figures from `headroom stats --session ID`.
    """
    if ctx.invoked_subcommand is not None:
        return
    from headroom.daemon.statusline import main

    sys.stdout.flush()
    main()


@statusline_group.command("install")
@click.option("--force", is_flag=True, help="Replace a statusLine that is not headroom's (it is backed up first).")
@click.option("--dry-run", is_flag=True, help="Show the edit as a diff; write nothing.")
@pass_app
def statusline_install(app: _App, force: bool, dry_run: bool) -> None:
    """Set headroom's statusLine in Claude Code's settings.json (only that key is touched)."""
    from headroom.daemon.statusline_install import install

    _report(install(force=force, dry_run=dry_run), dry_run)


@statusline_group.command("uninstall")
@click.option("--dry-run", is_flag=True, help="Show the edit as a diff; write nothing.")
@pass_app
def statusline_uninstall(app: _App, dry_run: bool) -> None:
    """Remove headroom's statusLine from Claude Code's settings.json (a statusLine of your own stays)."""
    from headroom.daemon.statusline_install import uninstall

    _report(uninstall(dry_run=dry_run), dry_run)


def _report(change: object, dry_run: bool) -> None:
    from headroom.daemon.mcp.install import Change, backup_file

    assert isinstance(change, Change)
    click.echo(change.describe(dry_run=dry_run).replace("claude:", "claude statusLine:", 1))
    if dry_run:
        click.echo(change.diff(), nl=False)
    elif change.changed:
        backup = backup_file(change.path)
        kept = f"the original is kept in {backup}; " if backup.exists() else ""
        click.echo(f"  ({kept}Claude Code picks it up on its next redraw)")


def register(cli: click.Group) -> None:
    cli.add_command(statusline_group)
