"""``headroom stats``: token totals per day/week/month/session/project/agent, and what fails."""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from headroom.daemon.cli.common import (
    App,
    console,
    emit_json,
    human_tokens,
    parse_since,
    pass_app,
    printable,
    project_name,
    refresh_option,
)
from headroom.daemon.cli.formats import (
    Column,
    cost_cell,
    cost_total,
    emit,
    format_option,
    models_cell,
    owner_options,
    resolve_format,
    resolve_zone,
    timezone_option,
)
from headroom.daemon.groupings import DIMENSIONS, GROUPINGS, totals
from headroom.daemon.zones import is_utc
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
@click.option("--project", help="Only sessions whose project path (or repository) contains this text.")
@owner_options
@click.option("--model", help="Only calls to models whose name contains this text (e.g. opus, gpt-5).")
@click.option("--since", help="From this day on (in --timezone; YYYY-MM-DD, 7d, 2w, today...).")
@click.option("--until", help="Up to and including this day (in --timezone).")
@click.option(
    "--session",
    "session_ident",
    metavar="ID",
    help="One session's figures (cost, today's cost, tokens the proxy saved, active lessons): the statusline's.",
)
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
@timezone_option
@format_option
@pass_app
def stats(
    app: App,
    by: str,
    agent: str | None,
    project: str | None,
    model: str | None,
    user: str | None,
    machine: str | None,
    since: str | None,
    until: str | None,
    session_ident: str | None,
    failures: bool,
    limit: int,
    proxy_only: bool,
    overview: bool,
    days: int,
    refresh: bool,
    tz_name: str | None,
    fmt: str | None,
    as_json: bool,
) -> None:
    """Token totals (input without cache reads, output, cache read, cache write), their cost, tool-call failures.

    Per day and agent the token figures equal ccusage's (`ccusage daily --by-agent -z UTC`) and the cost is
    within 1 % of its (prices: the genai-prices package's bundled table; a model it does not know is shown
    as unpriced, never $0). --by block: ccusage's 5-hour billing blocks, per agent. With --format json|csv|md
    the rows are printed in that format (--json: JSON). What the proxy saved is shown below the table (--proxy:
    only that).

    --overview shows what the web dashboard (/dashboard) shows, with the same numbers, for the last --days
    days: totals (tokens saved by the proxy, a $ estimate, sessions, the tool-call failure rate, lessons,
    memory), tokens saved per day and agent as a bar of block characters, the 5 projects with the highest
    failure rate and the active lessons with their recurrence before and after. With --json it prints the
    dashboard's data document itself.

    While the daemon runs, it computes the token table (its database is current, and the command starts
    without loading the database libraries); without one, the command queries the database itself.
    """
    fmt = resolve_format(as_json, fmt)
    as_json = fmt == "json"
    tz = resolve_zone(tz_name)
    if session_ident:
        from headroom.daemon.statusline_data import session_figures

        if refresh:
            app.catch_up(quiet=fmt != "table")
        with app.read_db.sessions() as dbs:
            figures = session_figures(dbs, session_ident, tz=tz, state_dir=app.config.paths.state_dir)
        if fmt == "table":
            click.echo(figures["line"])
        else:
            emit([figures], fmt, [Column(k, _field(k)) for k in figures])
        return
    if overview:
        _overview(app, days, refresh=refresh, as_json=as_json)
        return
    if proxy_only:
        summary = _proxy_figures(app, since, agent, project, tz)
        if as_json:
            emit_json(summary)
        elif fmt in ("csv", "md"):  # one row per agent, the summary's own fields
            rows = [{"agent": name, **figures} for name, figures in summary["agents"].items()]
            names = [key for key in (rows[0] if rows else {}) if not isinstance(rows[0][key], (dict, list))]
            emit(rows, fmt, [Column(key, _field(key)) for key in names])
        else:
            _print_proxy(summary, empty="The proxy has not handled a request yet.")
            _print_comparison(summary["savings"])
        return
    if not failures:
        answer = _from_daemon(app, by, tz, fmt, agent, project, model, user, machine, since, until)
        if answer is not None:
            _show_rows(answer["rows"], by, tz, fmt, answer.get("proxy"), answer.get("prices"))
            return
        if not refresh and not (project or model or user or machine):
            fast = _fast(app, by, fmt, agent, since, until, tz)
            if fast is not None:  # the table's proxy section would be empty: the fast path checked
                _show_rows(fast.rows, by, tz, fmt, None, fast.prices)
                return
    from headroom.daemon import analytics  # SQLAlchemy and the ORM: only when this process queries the DB

    if refresh:
        app.catch_up(quiet=fmt != "table")
    filters = analytics.Filters(
        agent=agent,
        project=project,
        since=parse_since(since, tz),
        until=parse_since(until, tz),
        model=model,
        tz=tz,
        user=user,
        machine=machine,
    )
    with app.read_db.sessions() as dbs:
        if failures:
            top, summary = analytics.failing_commands(dbs, filters, limit=limit)
            if as_json:
                emit_json({**summary, "commands": top})
            elif fmt in ("csv", "md"):
                emit(top, fmt, _failure_columns())
            else:
                _print_failures(top, summary)
            return
        rows = analytics.token_rows(dbs, by, filters)
    _show_rows(rows, by, tz, fmt, _proxy_figures(app, since, agent, project, tz) if fmt == "table" else None)


def _show_rows(
    rows: list[dict[str, Any]],
    by: str,
    tz: tzinfo,
    fmt: str,
    proxy: dict[str, Any] | None,
    prices: dict[str, str] | None = None,
) -> None:
    if fmt != "table":
        emit(rows, fmt, _row_columns(rows, by, tz))
        return
    if not rows:
        click.echo("No usage recorded yet. (`headroom doctor` shows where agent logs are looked for.)")
    else:
        _print_rows(rows, by, tz, prices)
    if proxy is not None:
        _print_proxy(proxy)


def _from_daemon(
    app: App,
    by: str,
    tz: tzinfo,
    fmt: str,
    *filters: str | None,
) -> dict[str, Any] | None:
    """The rows (and, for a table, the proxy's figures) as the running daemon computes them
    (daemon/stats_request.py); None without a daemon, or for a zone the daemon could not be told by name.

    With a daemon the DB is current (it ingests as the logs grow), so ``--refresh`` has nothing to add."""
    from headroom.daemon.local_client import daemon_stats

    zone = "UTC" if is_utc(tz) else getattr(tz, "key", None)
    if zone is None:  # a bare offset (no IANA name): only this process knows it
        return None
    agent, project, model, user, machine, since, until = filters
    first, last = parse_since(since, tz), parse_since(until, tz)  # a bad date is the user's error, daemon or not
    request: dict[str, object] = {
        "by": by,
        "agent": agent,
        "project": project,
        "model": model,
        "user": user,
        "machine": machine,
        "since": first.isoformat() if first else None,
        "until": last.isoformat() if last else None,
        "tz": zone,
        "proxy": fmt == "table",
    }
    answer = daemon_stats(app.config.paths.hooks_socket, request)
    return answer if isinstance(answer, dict) else None


def _fast(app: App, by: str, fmt: str, agent: str | None, since: str | None, until: str | None, tz: tzinfo) -> Any:
    """The per-period rows from SQLite through ``sqlite3`` (daemon/stats_fast.py), or None where that path does
    not apply. ``HEADROOM_STATS_FAST=0`` turns it off (to compare it with the normal path)."""
    import os

    if os.environ.get("HEADROOM_STATS_FAST", "1") == "0":
        return None
    from headroom.daemon.stats_fast import fast_rows

    first, last = parse_since(since, tz), parse_since(until, tz)
    paths = app.config.paths
    return fast_rows(
        app.config.database_url, paths.state_dir, by, agent=agent, since=first, until=last, table=fmt == "table", tz=tz
    )


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


def _proxy_figures(app: App, since: str | None, agent: str | None, project: str | None, tz: tzinfo) -> dict[str, Any]:
    """The proxy's request totals with, under "savings", the cost and savings figures and the holdout comparison."""
    from headroom.daemon.stats_request import proxy_figures

    return proxy_figures(app.read_db, parse_since(since, tz), agent, project)


def _usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def _print_proxy(summary: dict[str, Any], empty: str | None = None) -> None:
    """Per agent: requests, tokens of the whole requests and what compression removed, what the requests cost
    and the estimated saving in USD (basis: estimated), provider-reported cache reads, held-out requests."""
    if not summary["total"]["requests"]:
        if empty:
            click.echo(empty)
        return
    savings = summary["savings"]
    table = Table(title="saved by the proxy", title_justify="left", show_footer=True)
    table.add_column("agent", footer="total")
    rows = [(name, summary["agents"][name], savings["agents"].get(name, {})) for name in summary["agents"]]
    columns: tuple[tuple[str, str, str, Any], ...] = (
        ("requests", "p", "requests", str),
        ("tokens sent", "s", "tokens_sent", human_tokens),
        ("removed", "s", "tokens_removed", human_tokens),
        ("cache read", "p", "cache_read_tokens", human_tokens),
        ("cost", "s", "cost_usd", _usd),
        ("saved $ (est.)", "s", "saved_usd", _usd),
        ("held out", "s", "held_out_requests", str),
        ("errors", "p", "errors", str),
    )
    total = {"p": summary["total"], "s": savings["total"]}
    for label, side, key, fmt in columns:
        table.add_column(label, justify="right", footer=fmt(total[side].get(key, 0)))
    table.add_column("saved %", justify="right", footer=f"{100 * savings['total']['saved_ratio']:.1f}")
    for name, plain, figures in rows:
        sides = {"p": plain, "s": figures}
        cells = [fmt(sides[side].get(key, 0)) for _, side, key, fmt in columns]
        table.add_row(name, *cells, f"{100 * figures.get('saved_ratio', 0.0):.1f}")
    out = console()
    out.print(table)
    unpriced = savings["total"]["unpriced_requests"]
    note = "saved $: estimated (" + savings["basis"]["estimated"] + ")"
    if unpriced:
        note += f"; {unpriced} requests of models without a price are left out of $ (unpriced, not $0)"
    out.print(Text(note))


def _print_comparison(savings: dict[str, Any]) -> None:
    """The measured saving per agent and project (holdout), and the conversations the watchdog switched."""
    out = console()
    comparison = savings["comparison"]
    if not comparison:
        out.print(Text("measured: no held-out conversation yet ([proxy] holdout = 0.05 sends 5 % uncompressed)"))
    for entry in comparison:
        where = f"{entry['agent']} {project_name(entry['project']) if entry['project'] else '(no project)'}"
        held, treated = entry["held_out"], entry["treated"]
        counts = (
            f"held out {held['conversations']} conversations / {held['turns']} turns, "
            f"compressed {treated['conversations']} / {treated['turns']}"
        )
        if entry["result"] != "ok":
            out.print(Text(f"measured, {where}: {entry['result']} ({counts})"))
            continue
        fmt = _usd if entry["unit"] == "usd" else (lambda v: f"{v:,.0f} tokens")
        low, high = entry["ci95"]
        out.print(
            Text(
                f"measured, {where}: {fmt(held['per_turn'])} per turn held out vs {fmt(treated['per_turn'])} "
                f"compressed: saved {100 * entry['saved']:.1f}% (95% CI {100 * low:.1f}% to {100 * high:.1f}%, "
                f"bootstrap over conversations; {counts})"
            )
        )
    for item in savings["fallbacks"]:
        project = project_name(item["project"]) if item["project"] else "(no project)"
        out.print(
            Text(
                f"watchdog: {item['agent']} {project} conversation {item['conversation'][:12]} fell back to lossless"
                f" ({item['reason']})"
            )
        )


def _row_columns(rows: list[dict[str, Any]], by: str, tz: Any) -> list[Column]:
    """The columns of ``stats --by BY``: the key, agent, models, tokens, reasoning, cost, tool calls."""
    from headroom.daemon.cli.common import local_time

    summed = totals(rows)
    columns: list[Column] = []
    if by == "session":
        columns.append(
            Column(
                "session", lambda r: Text(f"{printable(r['session'])[:14]} {local_time(r['started_at'], tz)}"), "total"
            )
        )
        columns.append(Column("title", lambda r: Text(_clip(r.get("title"), 40))))
    elif by == "project":
        columns.append(Column("project", lambda r: Text(r.get("name") or project_name(r["project"])), "total"))
    elif by == "block":
        columns.append(Column("block", lambda r: r["block"] + (" (active)" if r["active"] else ""), "total"))
    else:
        columns.append(Column(by, lambda r: Text(str(r[by]) if r[by] else "(unknown)"), "total"))
    if by not in DIMENSIONS:
        columns.append(Column("agent", lambda r: str(r["agent"])))
    if by != "model":
        columns.append(Column("models", models_cell))
    for label, key in _TOKEN_COLUMNS:
        columns.append(Column(label, _tokens(key), human_tokens(summed.get(key, 0)), True))
    if any(row.get("reasoning_tokens") for row in rows):
        reasoning = human_tokens(summed.get("reasoning_tokens", 0))
        columns.append(Column("reasoning", lambda r: human_tokens(r.get("reasoning_tokens", 0)), reasoning, True))
    columns.append(Column("cost", cost_cell, cost_total(rows), True))
    if by not in ("model", "block"):
        calls, failed = summed.get("tool_calls", 0), summed.get("failed_tool_calls", 0)
        columns.append(Column("tool calls", lambda r: str(r["tool_calls"]), str(calls), True))
        columns.append(Column("failed", lambda r: str(r["failed_tool_calls"]), str(failed), True))
        columns.append(
            Column("fail %", lambda r: _rate(r["failed_tool_calls"], r["tool_calls"]), _rate(failed, calls), True)
        )
    return columns


def _field(key: str) -> Callable[[dict[str, Any]], str]:
    return lambda row: str(row[key])


def _tokens(key: str) -> Callable[[dict[str, Any]], str]:
    return lambda row: human_tokens(row[key])


def _print_rows(rows: list[dict[str, Any]], by: str, tz: Any, table_info: dict[str, str] | None = None) -> None:
    """The table, captioned with the price table that priced it (the daemon's answer names it: reading the
    table's data here would cost a daemon-answered ``stats`` most of its start-up)."""
    if table_info is None:
        from headroom.daemon.pricing import table_version

        table_info = table_version()
    zone = getattr(tz, "key", None) or str(tz)
    caption = (
        f"prices: {table_info['package']} {table_info['version']} (newest price {table_info.get('snapshot', '?')})"
    )
    if by in ("day", "week", "month", "block", "session"):
        caption += f"; times in {zone}"
    table = emit(rows, "table", _row_columns(rows, by, tz), title=f"tokens by {by}", caption=caption)
    if table is not None:
        console().print(table)


def _failure_columns() -> list[Column]:
    return [
        Column("command", lambda r: Text(printable(r["command"]))),
        Column("failures", lambda r: str(r["failures"]), right=True),
        Column("sessions", lambda r: str(r["sessions"]), right=True),
        Column("agents", lambda r: ", ".join(r["agents"])),
        Column("last seen", lambda r: str(r["last_seen"] or "-")),
    ]


def _clip(text: str | None, width: int) -> str:
    line = " ".join(printable(text).split()) if text else ""
    return line if len(line) <= width else line[: width - 1] + "…"


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
            _local(row["last_seen"]),
        )
    out.print(table)


def _local(iso: str | None) -> str:
    from headroom.daemon.cli.common import local_time

    return local_time(iso)


def _rate(failed: int, calls: int) -> str:
    return f"{100 * failed / calls:.1f}" if calls else "-"


def register(cli: click.Group) -> None:
    cli.add_command(stats)
