"""``headroom stats``: token totals per day/week/month/session/project/agent, and what fails."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table
from rich.text import Text

from headroom.daemon.cli.common import (
    App,
    console,
    emit_json,
    human_tokens,
    json_option,
    local_time,
    parse_since,
    pass_app,
    printable,
    project_name,
    refresh_option,
)
from headroom.daemon.groupings import GROUPINGS
from headroom.learn.model import AGENTS

_TOKEN_COLUMNS = (
    ("input", "input_tokens"),
    ("output", "output_tokens"),
    ("cache read", "cache_read_tokens"),
    ("cache write", "cache_creation_tokens"),
    ("total", "total_tokens"),
)


@click.command("stats")
@click.option("--by", type=click.Choice(GROUPINGS), default="day", show_default=True, help="Group rows by.")
@click.option("--agent", type=click.Choice(AGENTS), help="Only this agent.")
@click.option("--project", help="Only sessions whose project path contains this text.")
@click.option("--since", help="From this day on (UTC; YYYY-MM-DD, 7d, 2w, today...).")
@click.option("--until", help="Up to and including this day (UTC).")
@click.option("--failures", is_flag=True, help="Show the most failing commands instead of token totals.")
@click.option("-n", "--limit", type=int, default=10, show_default=True, help="Rows of --failures.")
@click.option("--proxy", "proxy_only", is_flag=True, help="Only what the proxy saved (per agent).")
@click.option(
    "--overview",
    is_flag=True,
    help="The dashboard's figures in the terminal: totals, tokens saved per day, failing projects, lessons.",
)
@click.option(
    "--days",
    type=click.IntRange(1, 366),
    default=30,
    show_default=True,
    help="Days (UTC, today included) that --overview covers.",
)
@refresh_option
@json_option
@pass_app
def stats(
    app: App,
    by: str,
    agent: str | None,
    project: str | None,
    since: str | None,
    until: str | None,
    failures: bool,
    limit: int,
    proxy_only: bool,
    overview: bool,
    days: int,
    refresh: bool,
    as_json: bool,
) -> None:
    """Token totals (input without cache reads, output, cache read, cache write) and tool-call failures.

    Per day and agent the token figures equal ccusage's (`ccusage daily --by-agent -z UTC`). With --json
    the rows are printed as a JSON list. What the proxy saved is shown below the table (--proxy: only that).

    --overview shows what the web dashboard (/dashboard) shows, with the same numbers, for the last --days
    days: totals (tokens saved by the proxy, a $ estimate, sessions, the tool-call failure rate, lessons,
    memory), tokens saved per day and agent as a bar of block characters, the 5 projects with the highest
    failure rate and the active lessons with their recurrence before and after. With --json it prints the
    dashboard's data document itself.

    While the daemon runs, it computes the token table (its database is current, and the command starts
    without loading the database libraries); without one, the command queries the database itself.
    """
    if overview:
        _overview(app, days, refresh=refresh, as_json=as_json)
        return
    if proxy_only:
        from headroom.daemon.proxy.stats import proxy_summary

        summary = proxy_summary(app.read_db, since=parse_since(since), agent=agent)
        if as_json:
            emit_json(summary)
        else:
            _print_proxy(summary, empty="The proxy has not handled a request yet.")
        return
    if not failures and _from_daemon(app, by, agent, project, since, until, as_json=as_json):
        return
    from headroom.daemon import analytics  # SQLAlchemy and the ORM: only when this process queries the DB

    if refresh:
        app.catch_up(quiet=as_json)
    filters = analytics.Filters(agent=agent, project=project, since=parse_since(since), until=parse_since(until))
    with app.read_db.sessions() as dbs:
        if failures:
            top, summary = analytics.failing_commands(dbs, filters, limit=limit)
            if as_json:
                emit_json({**summary, "commands": top})
            else:
                _print_failures(top, summary)
            return
        rows = analytics.token_rows(dbs, by, filters)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("No usage recorded yet. (`headroom doctor` shows where agent logs are looked for.)")
    else:
        _print_rows(rows, by, analytics.totals(rows))
    from headroom.daemon.proxy.stats import proxy_summary

    _print_proxy(proxy_summary(app.read_db, since=parse_since(since), agent=agent))


def _from_daemon(
    app: App, by: str, agent: str | None, project: str | None, since: str | None, until: str | None, *, as_json: bool
) -> bool:
    """Print the rows as the running daemon computes them (daemon/stats_request.py); False without a daemon.

    With a daemon the DB is current (it ingests as the logs grow), so ``--refresh`` has nothing to add."""
    from headroom.daemon.local_client import daemon_stats

    first, last = parse_since(since), parse_since(until)  # a bad date is the user's error, daemon or not
    request: dict[str, object] = {
        "by": by,
        "agent": agent,
        "project": project,
        "since": first.isoformat() if first else None,
        "until": last.isoformat() if last else None,
        "proxy": not as_json,
    }
    answer = daemon_stats(app.config.paths.hooks_socket, request)
    if answer is None:
        return False
    rows: list[dict[str, Any]] = answer["rows"]
    if as_json:
        emit_json(rows)
        return True
    if not rows:
        click.echo("No usage recorded yet. (`headroom doctor` shows where agent logs are looked for.)")
    else:
        _print_rows(rows, by, answer.get("totals") or {})
    if isinstance(answer.get("proxy"), dict):
        _print_proxy(answer["proxy"])
    return True


def _overview(app: App, days: int, *, refresh: bool, as_json: bool) -> None:
    from headroom.daemon.cli.stats_view import print_overview
    from headroom.daemon.dashboard import dashboard_data

    if refresh:
        app.catch_up(quiet=as_json)
    data = dashboard_data(app.read_db, days)
    if as_json:
        emit_json(data)
    else:
        print_overview(data)


def _print_proxy(summary: dict[str, Any], empty: str | None = None) -> None:
    """Requests, tokens before and after compression, and the provider-reported cache reads, per agent."""
    if not summary["total"]["requests"]:
        if empty:
            click.echo(empty)
        return
    table = Table(title="saved by the proxy", title_justify="left", show_footer=True)
    columns = (
        ("requests", "requests", str),
        ("tokens sent", "tokens_before", human_tokens),
        ("after compression", "tokens_after", human_tokens),
        ("saved", "tokens_saved", human_tokens),
        ("cache read", "cache_read_tokens", human_tokens),
        ("errors", "errors", str),
    )
    table.add_column("agent", footer="total")
    total = summary["total"]
    for label, key, fmt in columns:
        table.add_column(label, justify="right", footer=fmt(total[key]))
    table.add_column("saved %", justify="right", footer=f"{100 * total['saved']:.1f}")
    for agent, row in summary["agents"].items():
        table.add_row(agent, *(fmt(row[key]) for _, key, fmt in columns), f"{100 * row['saved']:.1f}")
    console().print(table)


def _print_rows(rows: list[dict[str, Any]], by: str, totals: dict[str, int]) -> None:
    table = Table(title=f"tokens by {by}", title_justify="left", show_footer=True)
    first = {"session": "session", "project": "project"}.get(by, by)
    table.add_column(first, footer="total")
    if by not in ("agent", "project"):
        table.add_column("agent")
    for label, key in _TOKEN_COLUMNS:
        table.add_column(label, justify="right", footer=human_tokens(totals.get(key, 0)))
    table.add_column("tool calls", justify="right", footer=str(totals.get("tool_calls", 0)))
    table.add_column("failed", justify="right", footer=str(totals.get("failed_tool_calls", 0)))
    table.add_column(
        "fail %",
        justify="right",
        footer=_rate(totals.get("failed_tool_calls", 0), totals.get("tool_calls", 0)),
    )
    for row in rows:
        if by == "session":
            label = f"{printable(row['session'])[:14]} {local_time(row['started_at'])}"
        elif by == "project":
            label = row.get("name") or project_name(row["project"])
        else:
            label = str(row[by])
        cells: list[str | Text] = [Text(label)] if by in ("agent", "project") else [Text(label), row["agent"]]
        cells += [human_tokens(row[key]) for _, key in _TOKEN_COLUMNS]
        cells += [
            str(row["tool_calls"]),
            str(row["failed_tool_calls"]),
            _rate(row["failed_tool_calls"], row["tool_calls"]),
        ]
        table.add_row(*cells)
    console().print(table)


def _print_failures(top: list[dict[str, Any]], summary: dict[str, int]) -> None:
    out = console()
    out.print(
        f"{summary['failed_tool_calls']} failed tool calls, {summary['repeated_failures']} of them repeats of a "
        "command that had already failed in the same session"
    )
    if not top:
        return
    table = Table(title="most failing commands", title_justify="left")
    for name in ("command", "failures", "sessions", "agents", "last seen"):
        table.add_column(name, justify="right" if name in ("failures", "sessions") else "left")
    for row in top:
        table.add_row(
            Text(printable(row["command"])),
            str(row["failures"]),
            str(row["sessions"]),
            ", ".join(row["agents"]),
            local_time(row["last_seen"]),
        )
    out.print(table)


def _rate(failed: int, calls: int) -> str:
    return f"{100 * failed / calls:.1f}" if calls else "-"


def register(cli: click.Group) -> None:
    cli.add_command(stats)
