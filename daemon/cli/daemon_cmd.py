"""``headroom daemon``: the background service (``run`` now; install/start/stop arrive with the service issue)."""

from __future__ import annotations

import logging
import sys

import click

from headroom.daemon.cli.common import App, pass_app, progress_bar
from headroom.daemon.ingest import Progress
from headroom.daemon.service import Service, running_daemon_pid, setup_logging


@click.group("daemon")
def daemon_group() -> None:
    """Run or inspect the background service."""


@daemon_group.command("run")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
@pass_app
def daemon_run(app: App, verbose: bool) -> None:
    """Run the service in the foreground until Ctrl-C / SIGTERM.

    It backfills every existing session log (with a progress bar on a terminal), then follows the agents'
    logs as they are written.
    """
    config = app.config
    setup_logging(config.paths, verbose=verbose)
    service = Service(config)
    service.install_signal_handlers()
    logged = _log_progress()
    if not sys.stderr.isatty():
        service.progress = logged
        service.run()
        return
    with progress_bar("backfilling agent logs") as bar:

        def both(done: int, total: int, path: str) -> None:
            bar(done, total, path)
            logged(done, total, path)

        service.progress = both
        service.run()


@daemon_group.command("status")
@pass_app
def daemon_status(app: App) -> None:
    """Say whether the daemon is running (exit code 0 if it is, 3 if not)."""
    pid = running_daemon_pid(app.config.paths)
    if pid is None:
        click.echo("headroom daemon: not running")
        raise SystemExit(3)
    click.echo(f"headroom daemon: running (pid {pid})")


def _log_progress() -> Progress:
    """Progress lines in the log every 10 % of the backfill (next to the bar on a terminal)."""
    log = logging.getLogger("headroom.daemon")
    state = {"next": 0.1}  # the next fraction to report

    def update(done: int, total: int, _path: str) -> None:
        if total and done / total >= state["next"]:
            log.info("backfill %d%% (%.1f of %.1f MB)", int(100 * done / total), done / 1e6, total / 1e6)
            while state["next"] <= done / total:
                state["next"] += 0.1

    return update


def register(cli: click.Group) -> None:
    cli.add_command(daemon_group)
