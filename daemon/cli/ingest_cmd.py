"""``headroom ingest``: read new agent log lines into the DB once, without starting the daemon."""

from __future__ import annotations

import sys

import click

from headroom.daemon.cli.common import App, emit_json, json_option, pass_app, progress_bar
from headroom.daemon.errors import DaemonError
from headroom.daemon.follow import make_ingestor
from headroom.daemon.process import running_daemon_pid
from headroom.memory.db import move_aside, salvage, sqlite_path
from headroom.memory.errors import DatabaseError


@click.command("ingest")
@click.option(
    "--rebuild",
    is_flag=True,
    help="Move the database aside (kept, renamed *.broken-TIME) and build a new one from the logs on disk: "
    "the way out of a damaged database. Stop the daemon first.",
)
@json_option
@pass_app
def ingest(app: App, as_json: bool, rebuild: bool) -> None:
    """Ingest everything new in the agents' session logs, then exit.

    Safe to run while the daemon runs (rows are upserted on natural keys), and safe to interrupt.
    """
    salvaged = _rebuild(app, quiet=as_json) if rebuild else None
    ingestor = make_ingestor(app.config, app.db)
    if sys.stderr.isatty() and not as_json:
        with progress_bar("ingesting agent logs") as update:
            report = ingestor.scan(progress=update)
    else:
        report = ingestor.scan()
    summary: dict[str, object] = {
        "files": report.files,
        "bytes_read": report.bytes_read,
        "records": report.records,
        "problems": report.problems,
        "missing_files": report.missing,
        "seconds": round(report.seconds, 3),
        "files_by_status": dict(report.statuses),
    }
    if salvaged is not None:
        summary["salvaged"] = salvaged
    if as_json:
        emit_json(summary)
        return
    rate = report.bytes_read / report.seconds / 1e6 if report.seconds else 0.0
    click.echo(
        f"{report.files} files checked, {report.bytes_read / 1e6:.1f} MB read ({rate:.1f} MB/s), "
        f"{report.records} records, {report.problems} problems"
    )


def _rebuild(app: App, *, quiet: bool) -> dict[str, int | str]:
    """Move the SQLite file aside, so that ingestion starts a new one; what could be copied back of the rest.

    The session mirror comes back whole from the logs; proxy statistics, lessons and the block memo are
    copied from the old file where its pages can still be read (see :func:`headroom.memory.db.salvage`).
    """
    path = sqlite_path(app.config.database_url)
    if path is None:
        raise DatabaseError("--rebuild works on a SQLite database file only (database_url names another backend)")
    pid = running_daemon_pid(app.config.paths)
    if pid is not None:
        raise DaemonError(f"the daemon (pid {pid}) has the database open: stop it first (headroom daemon stop)")
    if not path.exists():
        raise DatabaseError(f"no database at {path}: nothing to rebuild (plain `headroom ingest` creates one)")
    aside = move_aside(path, "broken")
    if not quiet:
        click.echo(f"moved the old database to {aside}", err=True)
    salvaged = salvage(app.db, aside)
    if not quiet:
        for table, outcome in salvaged.items():
            click.echo(f"  {table}: {outcome if isinstance(outcome, str) else f'{outcome} rows copied back'}", err=True)
    return salvaged


def register(cli: click.Group) -> None:
    cli.add_command(ingest)
