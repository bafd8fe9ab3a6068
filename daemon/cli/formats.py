"""``--format table|json|csv|md`` and ``-z/--timezone``: the output conventions ccusage users know.

Every command that prints rows describes them once as :class:`Column` s; the table, the Markdown table and
the CSV come from the same description, so the three never disagree. JSON prints the rows themselves (every
field, raw numbers); CSV prints raw values of every scalar field (lists joined with ``;``), so a spreadsheet
gets numbers rather than ``1.2M``; Markdown prints what the table shows.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, TypeVar

import click
from rich.table import Table
from rich.text import Text

from headroom.daemon import zones
from headroom.daemon.pricing import format_usd

F = TypeVar("F", bound=Callable[..., Any])
FORMATS = ("table", "json", "csv", "md")


@dataclass(frozen=True)
class Column:
    """One shown column: its header, how a row's cell reads, its footer, and its justification."""

    label: str
    cell: Callable[[dict[str, Any]], str | Text]
    footer: str = ""
    right: bool = False


def format_option(func: F) -> F:
    """``--format`` (with ``--json`` kept as its old spelling of ``--format json``)."""
    func = click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default=None,
        help="Output format: table (default), json, csv or md (Markdown).",
    )(func)
    return click.option("--json", "as_json", is_flag=True, help="Same as --format json.")(func)


def owner_options(func: F) -> F:
    """``--user`` and ``--machine``: one developer's or one machine's rows of a database a team shares."""
    func = click.option("--machine", help="Only sessions of this machine ([team] machine).")(func)
    return click.option("--user", help="Only this user's sessions ([team] user; a database shared by a team).")(func)


def timezone_option(func: F) -> F:
    return click.option(
        "-z",
        "--timezone",
        "tz_name",
        metavar="ZONE",
        help="Days, blocks and times in this zone (IANA name or UTC; default: the local zone).",
    )(func)


def resolve_format(as_json: bool, fmt: str | None) -> str:
    if as_json and fmt not in (None, "json"):
        raise click.UsageError(f"--json and --format {fmt} contradict each other")
    return "json" if as_json else fmt or "table"


def resolve_zone(name: str | None) -> tzinfo:
    try:
        return zones.zone(name)
    except zones.BadTimezone as exc:
        raise click.BadParameter(str(exc), param_hint="'-z' / '--timezone'") from None


def emit(
    rows: list[dict[str, Any]], fmt: str, columns: list[Column], *, title: str = "", caption: str = ""
) -> Table | None:
    """Print ``rows`` as ``fmt``; for ``table`` return the rich table for the caller to print (and extend)."""
    if fmt == "json":
        from headroom.daemon.cli.common import emit_json

        emit_json(rows)
        return None
    if fmt == "csv":
        write_csv(rows)
        return None
    if fmt == "md":
        write_markdown(rows, columns)
        return None
    table = Table(title=title or None, title_justify="left", show_footer=any(c.footer for c in columns))
    if caption:
        table.caption, table.caption_justify = caption, "left"
    for column in columns:
        table.add_column(column.label, justify="right" if column.right else "left", footer=column.footer)
    for row in rows:
        table.add_row(*(column.cell(row) for column in columns))
    return table


def write_csv(rows: list[dict[str, Any]]) -> None:
    """Every scalar field of the rows, raw; nested costs flattened to ``cost_input``...; lists joined with ``;``."""
    flat = [_flatten(row) for row in rows]
    names: list[str] = []
    for row in flat:
        names.extend(name for name in row if name not in names)
    writer = csv.DictWriter(sys.stdout, fieldnames=names, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(flat)


def _flatten(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, dict):
            for part, amount in value.items():
                out[f"{name.removesuffix('_parts')}_{part}"] = amount
        elif isinstance(value, (list, tuple, set)):
            out[name] = ";".join(map(str, value))
        else:
            out[name] = "" if value is None else value
    return out


def write_markdown(rows: list[dict[str, Any]], columns: list[Column]) -> None:
    """A GitHub-flavoured Markdown table of what the terminal table shows, footer as a bold last row."""

    def text(value: str | Text) -> str:
        plain = value.plain if isinstance(value, Text) else str(value)
        return plain.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(c.label for c in columns) + " |"]
    lines.append("|" + "|".join("---:" if c.right else "---" for c in columns) + "|")
    for row in rows:
        lines.append("| " + " | ".join(text(c.cell(row)) for c in columns) + " |")
    if any(c.footer for c in columns):
        lines.append("| " + " | ".join(f"**{text(c.footer)}**" if c.footer else "" for c in columns) + " |")
    click.echo("\n".join(lines))


def cost_cell(row: dict[str, Any]) -> str:
    return format_usd(row.get("cost_usd"), int(row.get("unpriced_calls") or 0))


def cost_total(rows: list[dict[str, Any]]) -> str:
    priced = [r["cost_usd"] for r in rows if r.get("cost_usd") is not None]
    unpriced = sum(int(r.get("unpriced_calls") or 0) for r in rows)
    return format_usd(sum(priced) if priced or not unpriced else None, unpriced)


def models_cell(row: dict[str, Any], width: int = 28) -> str:
    """The row's model, or its models when it mixes several (most-used first as logged)."""
    models = [m for m in row.get("models") or [] if m != "(unknown)"]
    if not models:
        return "-"
    shown = ", ".join(models)
    return shown if len(shown) <= width else f"{models[0]} +{len(models) - 1}"
