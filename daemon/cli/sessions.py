"""``headroom sessions``: the sessions of all agents, and one session's timeline."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from headroom.daemon import analytics
from headroom.daemon.cli.common import (
    App,
    console,
    emit_json,
    human_duration,
    human_tokens,
    local_time,
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
from headroom.learn.model import AGENTS
from headroom.learn.projects import display_names

_STATUS_STYLE = {
    "ok": "green",
    "error": "bold red",
    "cancelled": "yellow",
    "rejected": "magenta",
    "pending": "dim",
}


@click.group("sessions", invoke_without_command=True)
@click.option("--agent", type=click.Choice(AGENTS), help="Only this agent's sessions.")
@click.option("--project", help="Only sessions whose project path (or repository) contains this text.")
@click.option("--model", help="Only sessions that called a model whose name contains this text (tokens: its).")
@owner_options
@click.option("--since", help="Only sessions active since (YYYY-MM-DD, 7d, 2w, today...).")
@click.option("--failed", is_flag=True, help="Only sessions with failed tool calls or API errors.")
@click.option("-n", "--limit", type=int, default=50, show_default=True, help="At most this many (0: all).")
@refresh_option
@timezone_option
@format_option
@click.pass_context
def sessions_group(
    ctx: click.Context,
    agent: str | None,
    project: str | None,
    model: str | None,
    user: str | None,
    machine: str | None,
    since: str | None,
    failed: bool,
    limit: int,
    refresh: bool,
    tz_name: str | None,
    fmt: str | None,
    as_json: bool,
) -> None:
    """List sessions, newest first: agent, project, start, duration, turns, tool calls, failures, tokens, cost.

    `headroom sessions show ID` shows one session's timeline. A model the price table does not know is shown
    as unpriced, never $0. --format json|csv|md prints the rows in that format (--json: JSON).
    """
    if ctx.invoked_subcommand is not None:
        return
    fmt = resolve_format(as_json, fmt)
    tz = resolve_zone(tz_name)
    app = ctx.ensure_object(App)
    if refresh:
        app.catch_up(quiet=fmt != "table")
    filters = analytics.Filters(
        agent=agent,
        project=project,
        since=parse_since(since, tz),
        model=model,
        tz=tz,
        user=user,
        machine=machine,
    )
    with app.read_db.sessions() as dbs:
        rows = analytics.session_rows(dbs, filters, failed=failed, limit=limit or None)
    if fmt == "table" and not rows:
        click.echo("No sessions found. Is the daemon running? (`headroom doctor` shows where logs are looked for.)")
        return
    names = display_names(row["project"] for row in rows)

    def failed_cell(row: dict[str, Any]) -> Text:
        return Text(str(row["failed_tool_calls"]), style="red" if row["failed_tool_calls"] else "")

    def key_cell(row: dict[str, Any]) -> Text:
        key = printable(row["session"])
        return Text(key[:14] + ("…" if len(key) > 14 else ""))

    columns = [
        Column("session", key_cell, "total"),
        Column("agent", lambda r: r["agent"] + (" (sub)" if r["kind"] == "subagent" else "")),
        Column("project", lambda r: Text(printable(names.get(r["project"]) or "") or project_name(r["project"]))),
        Column("start", lambda r: local_time(r["started_at"], tz)),
        Column("duration", lambda r: human_duration(r["duration_s"]), right=True),
        Column("turns", lambda r: str(r["turns"]), right=True),
        Column("tools", lambda r: str(r["tool_calls"]), right=True),
        Column("failed", failed_cell, right=True),
        Column("models", models_cell),
        Column("tokens", lambda r: human_tokens(r["total_tokens"]), right=True),
        Column("cost", cost_cell, cost_total(rows), right=True),
    ]
    table = emit(rows, fmt, columns, title=f"{len(rows)} sessions")
    if table is not None:
        console().print(table)


@sessions_group.command("show")
@click.argument("ident")
@click.option("--full", is_flag=True, help="Show whole texts and tool outputs instead of one line each.")
@timezone_option
@format_option
@pass_app
def sessions_show(app: App, ident: str, full: bool, tz_name: str | None, fmt: str | None, as_json: bool) -> None:
    """Show one session's timeline: prompts, tool calls with their status, errors; its tokens and cost.

    IDENT is a session id or a unique prefix of one. --format csv|md prints the timeline's rows.
    """
    fmt = resolve_format(as_json, fmt)
    as_json = fmt == "json"
    tz = resolve_zone(tz_name)
    with app.read_db.sessions() as dbs:
        found = analytics.find_session(dbs, ident)
        if not found:
            raise click.ClickException(f"no session matches {ident!r} (see `headroom sessions`)")
        if len(found) > 1:
            keys = ", ".join(s.key for s in found[:5])
            raise click.ClickException(f"{ident!r} matches several sessions: {keys}; give more of the id")
        session = found[0]
        events = analytics.timeline(dbs, session)
        header = analytics.with_costs(dbs, [session])[0]
    if as_json:
        emit_json({"session": header, "timeline": events})
        return
    if fmt in ("csv", "md"):
        emit(
            events,
            fmt,
            [
                Column("time", lambda e: local_time(e["ts"], tz)),
                Column("kind", lambda e: str(e["kind"])),
                Column("tool", lambda e: printable(e.get("tool")) or ""),
                Column("status", lambda e: str(e.get("status") or "")),
                Column("text", lambda e: _clip(e.get("text") or e.get("input"), full)),
            ],
        )
        return
    out = console()
    out.print(Text(f"{session.agent} session {printable(session.key)}", style="bold"))
    out.print(Text(f"  cost: {cost_cell(header)}"))
    for name, value in header.items():
        if name in ("cost_usd", "cost_parts", "unpriced_calls", "unpriced_models"):
            continue
        if value not in (None, "", [], 0) and name not in ("session", "agent", "failure_rate"):
            shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            out.print(Text(f"  {name}: {printable(shown)}"))
    out.print()
    for event in events:
        out.print(_line(event, full, tz))


def _line(event: dict[str, Any], full: bool, tz: Any = None) -> Text:
    when = local_time(event["ts"], tz)[11:] if event["ts"] else "     "
    kind = event["kind"]
    line = Text(f"{when}  ")
    if kind == "tool_call" and "tool" in event:
        status = event["status"] or "pending"
        line.append(printable(event["tool"]) or "?", style="cyan")
        if event.get("by_user"):
            line.append(" (typed by the user)", style="dim")
        line.append(f" [{status}", style=_STATUS_STYLE.get(status, ""))
        if event["exit_code"] not in (None, 0):
            line.append(f" exit {event['exit_code']}", style=_STATUS_STYLE.get(status, ""))
        line.append("] ", style=_STATUS_STYLE.get(status, ""))
        line.append(_clip(event["input"], full), style="dim")
        if event.get("failed") and event.get("output"):
            line.append("\n        → " + _clip(event["output"], full), style="red")
        return line
    styles = {
        "user_prompt": ("you", "bold"),
        "assistant_text": ("agent", ""),
        "reasoning": ("thinking", "dim italic"),
        "api_error": ("API error", "bold red"),
        "interrupt": ("interrupted", "yellow"),
        "compaction": ("compacted", "magenta"),
        "context_overflow": ("context overflow", "bold magenta"),
        "meta": ("meta", "dim"),
        "unknown": ("unknown record", "dim"),
        "tool_call": ("tool call", "cyan"),
    }
    label, style = styles.get(kind, (kind, ""))
    if event.get("status_code"):
        label += f" {event['status_code']}"
    line.append(f"{label}: ", style=style or "")
    line.append(_clip(event["text"], full))
    return line


def _clip(text: str | None, full: bool, width: int = 110) -> str:
    text = printable(text)
    if not text:
        return ""
    if full:
        return text
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"


def register(cli: click.Group) -> None:
    cli.add_command(sessions_group)
