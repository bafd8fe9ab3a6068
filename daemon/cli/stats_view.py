"""``headroom stats --overview``: the dashboard's figures in the terminal.

Everything shown comes from :func:`headroom.daemon.dashboard.data.dashboard_data`, so the numbers are the
web dashboard's. The per-day chart is a row of unicode blocks per agent, scaled to the largest (day, agent)
figure of the window, so rows can be compared; a day with nothing saved is a ``·``. Nothing depends on
colour, and when stdout is not a terminal the view is drawn 100 columns wide.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from headroom.daemon.cli.common import human_tokens, printable, project_name

BLOCKS = "▁▂▃▄▅▆▇█"
EMPTY = "·"
PIPED_WIDTH = 100
TOP_PROJECTS = 5
MAX_LESSONS = 10
NO_DATA = "no data yet"


def overview_console() -> Console:
    """stdout; a plain 100 columns when it is not a terminal."""
    probe = Console()
    return Console(soft_wrap=False, width=None if probe.is_terminal else PIPED_WIDTH)


def sparkline(values: list[int], peak: int | None = None) -> str:
    """One block per value, scaled so that ``peak`` (default: the largest value) is a full block.

    Zero (or less) is ``·``; any positive value is at least ``▁``. Deterministic: the level of ``v`` is
    ``ceil(8 * v / peak)``, clamped to 1..8.
    """
    top = max(values, default=0) if peak is None else peak
    out = []
    for value in values:
        if value <= 0 or top <= 0:
            out.append(EMPTY)
        else:
            level = min(len(BLOCKS), max(1, math.ceil(len(BLOCKS) * value / top)))
            out.append(BLOCKS[level - 1])
    return "".join(out)


def buckets(values: list[int], columns: int) -> tuple[list[int], int]:
    """Sum consecutive values so that at most ``columns`` remain; returns the sums and days per column."""
    if columns <= 0 or len(values) <= columns:
        return list(values), 1
    size = math.ceil(len(values) / columns)
    return [sum(values[i : i + size]) for i in range(0, len(values), size)], size


def totals(data: Mapping[str, Any]) -> dict[str, Any]:
    """The panel's figures, all derived from ``data`` (a :func:`dashboard_data` document)."""
    saved = data["savings"]["total"]
    projects = data["projects"]
    sessions = sum(p["sessions"] for p in projects)
    calls = sum(p["tool_calls"] for p in projects)
    failed = sum(p["failed_tool_calls"] for p in projects)
    by_status = data["lessons"]["by_status"]
    return {
        "requests": saved["requests"],
        "tokens_before": saved["tokens_before"],
        "tokens_saved": saved["tokens_saved"],
        "saved_ratio": saved["saved_ratio"],
        "usd_estimate": saved["usd_estimate"],
        "spent_usd": data.get("spend", {}).get("total_usd", 0.0),
        "unpriced_calls": data.get("spend", {}).get("unpriced_calls", 0),
        "sessions": sessions,
        "projects": len(projects),
        "tool_calls": calls,
        "failed_tool_calls": failed,
        "failure_rate": failed / calls if calls else 0.0,
        "lessons_active": by_status.get("active", 0),
        "lessons_proposed": by_status.get("proposed", 0),
        "lessons_retired": by_status.get("retired", 0),
        "memory_items": data["memory"]["items"],
        "db_bytes": data["memory"]["db_bytes"],
    }


def human_bytes(value: int) -> str:
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"  # pragma: no cover - the loop always returns


def usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def _panel(data: Mapping[str, Any]) -> Panel:
    t = totals(data)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    if t["requests"]:
        saved = (
            f"{t['tokens_saved']:,} of {t['tokens_before']:,} sent ({100 * t['saved_ratio']:.1f}%), "
            f"{t['requests']:,} requests"
        )
    else:
        saved = f"0 ({NO_DATA}: the proxy handled no request in this window)"
    grid.add_row("tokens saved by the proxy", saved)
    grid.add_row("$ saved (estimate)", f"~{usd(t['usd_estimate'])}  (list price of uncached input; usually lower)")
    unpriced = (
        f" (+{t['unpriced_calls']:,} calls of models the price table does not know)" if t["unpriced_calls"] else ""
    )
    grid.add_row("spent (list price)", f"{usd(t['spent_usd'])}{unpriced}")
    grid.add_row("sessions", f"{t['sessions']:,} in {t['projects']:,} projects")
    rate = f"{100 * t['failure_rate']:.1f}%" if t["tool_calls"] else "-"
    grid.add_row("tool-call failures", f"{t['failed_tool_calls']:,} of {t['tool_calls']:,} ({rate})")
    grid.add_row(
        "lessons",
        f"{t['lessons_active']} active, {t['lessons_proposed']} proposed, {t['lessons_retired']} retired",
    )
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(data["memory"]["by_kind"].items()))
    grid.add_row("memory", f"{t['memory_items']:,} items" + (f" ({kinds})" if kinds else ""))
    grid.add_row("database", human_bytes(t["db_bytes"]))
    span = "today" if data["days"] == 1 else f"the last {data['days']} days"
    title = f"headroom: {span} ({data['since']} to {data['until']}, UTC)"
    return Panel(grid, title=Text(title), title_align="left", expand=False)


def _savings(data: Mapping[str, Any], width: int) -> RenderableType:
    savings = data["savings"]
    agents: list[str] = savings["agents"]
    heading = Text("tokens saved per day", style="bold")
    if not savings["total"]["requests"]:
        return Group(heading, Text(f"{NO_DATA}: start agents through `headroom wrap` to let the proxy compress"))
    label = max(len(a) for a in agents)
    # agent, the chart, saved, $: leave room for the figures on the right.
    columns = max(10, width - label - 30)
    series = {a: [day["agents"].get(a, {}).get("tokens_saved", 0) for day in savings["days"]] for a in agents}
    summed = {a: buckets(values, columns) for a, values in series.items()}
    size = next(iter(summed.values()))[1]
    peak = max((v for values, _ in summed.values() for v in values), default=0)
    table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold")
    table.add_column("agent")
    table.add_column(f"{data['since']} … {data['until']}" + (f" (1 column = {size} days)" if size > 1 else ""))
    table.add_column("saved", justify="right")
    table.add_column("$ est.", justify="right")
    for agent in agents:
        figures = savings["by_agent"][agent]
        table.add_row(
            agent,
            sparkline(summed[agent][0], peak),
            human_tokens(figures["tokens_saved"]),
            usd(figures["usd_estimate"]),
        )
    note = f"{BLOCKS[-1]} = {peak:,} tokens in one column; {EMPTY} = nothing saved"
    return Group(heading, table, Text(note))


def _projects(data: Mapping[str, Any]) -> RenderableType:
    heading = Text(f"top {TOP_PROJECTS} projects by tool-call failure rate", style="bold")
    rows = data["projects"][:TOP_PROJECTS]
    if not rows:
        return Group(heading, Text(f"{NO_DATA}: no session in this window"))
    table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold")
    for name in ("project", "sessions", "failed sessions", "tool calls", "failed", "fail %"):
        table.add_column(name, justify="left" if name == "project" else "right")
    for p in rows:
        table.add_row(
            Text(p.get("name") or project_name(p["project"])),
            str(p["sessions"]),
            str(p["failed_sessions"]),
            str(p["tool_calls"]),
            str(p["failed_tool_calls"]),
            f"{100 * p['failure_rate']:.1f}" if p["tool_calls"] else "-",
        )
    return Group(heading, table)


def _team(data: Mapping[str, Any]) -> RenderableType:
    """Per user and per machine (only when the database holds several: a team's shared database)."""
    parts: list[RenderableType] = [Text("team: per user and per machine", style="bold")]
    for key, label in (("users", "user"), ("machines", "machine")):
        table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold")
        for name in (label, "sessions", "tool calls", "failed", "fail %", "tokens"):
            table.add_column(name, justify="left" if name == label else "right")
        for row in data["team"][key]:
            table.add_row(
                Text(row["name"]),
                str(row["sessions"]),
                str(row["tool_calls"]),
                str(row["failed_tool_calls"]),
                f"{100 * row['failure_rate']:.1f}" if row["tool_calls"] else "-",
                f"{row['total_tokens']:,}",
            )
        parts.append(table)
    return Group(*parts)


def _lessons(data: Mapping[str, Any]) -> RenderableType:
    active = [item for item in data["lessons"]["items"] if item["status"] == "active"]
    heading = Text("active lessons (recurring sessions / sessions, before → after)", style="bold")
    if not active:
        return Group(heading, Text(f"{NO_DATA}: no active lesson (`headroom learn` proposes them)"))
    table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold")
    table.add_column("project", no_wrap=True)
    table.add_column("lesson", overflow="fold")
    table.add_column("before → after", justify="right", no_wrap=True)
    for item in active[:MAX_LESSONS]:
        table.add_row(
            Text(project_name(item["project"]) if item["project"] != "(environment)" else item["project"]),
            Text(printable(item["text"])),  # Text, not markup: lesson texts hold brackets such as [REDACTED]
            f"{item['before'] or '-'} → {item['after'] or '-'}",
        )
    more = len(active) - MAX_LESSONS
    return Group(heading, table, *([Text(f"… and {more} more (`headroom learn report`)")] if more > 0 else []))


def print_overview(data: Mapping[str, Any], out: Console | None = None) -> None:
    """Draw the overview of one :func:`dashboard_data` document."""
    out = out or overview_console()
    out.print(_panel(data))
    team = [_team(data)] if data.get("team") else []
    for part in (_savings(data, out.width), _projects(data), *team, _lessons(data)):
        out.print()
        out.print(part)
    out.print()
    out.print(Text("$ figures are estimates; `headroom proxy` serves the same figures at /dashboard."))
