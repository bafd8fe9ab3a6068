"""``headroom ingest``: read new agent log lines into the DB once, without starting the daemon."""

from __future__ import annotations

import sys

import click

from headroom.daemon.cli.common import App, emit_json, json_option, pass_app, progress_bar
from headroom.daemon.service import make_ingestor


@click.command("ingest")
@json_option
@pass_app
def ingest(app: App, as_json: bool) -> None:
    """Ingest everything new in the agents' session logs, then exit.

    Safe to run while the daemon runs (rows are upserted on natural keys), and safe to interrupt.
    """
    ingestor = make_ingestor(app.config, app.db)
    if sys.stderr.isatty() and not as_json:
        with progress_bar("ingesting agent logs") as update:
            report = ingestor.scan(progress=update)
    else:
        report = ingestor.scan()
    summary = {
        "files": report.files,
        "bytes_read": report.bytes_read,
        "records": report.records,
        "problems": report.problems,
        "missing_files": report.missing,
        "seconds": round(report.seconds, 3),
        "files_by_status": dict(report.statuses),
    }
    if as_json:
        emit_json(summary)
        return
    rate = report.bytes_read / report.seconds / 1e6 if report.seconds else 0.0
    click.echo(
        f"{report.files} files checked, {report.bytes_read / 1e6:.1f} MB read ({rate:.1f} MB/s), "
        f"{report.records} records, {report.problems} problems"
    )


def register(cli: click.Group) -> None:
    cli.add_command(ingest)
