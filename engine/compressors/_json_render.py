"""Generic JSON rendering: objects as indented ``key: value`` lines, lists by what they hold.

This is the walk over a document that is not (only) a record array: an object's scalar fields one per
line (empty ones named together), nested objects indented, lists of scalars on one line, label objects by
name, record arrays handed to :class:`._json_table.Table` and a few big records holding their own record
arrays rendered as sections. Kept apart from :mod:`.jsonc` (parsing, limits, dispatch) and from the table
module because it is the recursive part: every level of the document passes through here.
"""

from __future__ import annotations

from typing import Any

from headroom.engine.compressors._json_columns import flatten
from headroom.engine.compressors._json_table import Table
from headroom.engine.compressors._json_values import (
    LONG_CELL,
    MAX_LIST_ITEMS,
    compact,
    freeze,
    is_empty,
    is_scalar,
    label_names,
    mostly_dicts,
    scalar_text,
    text_cell,
)
from headroom.engine.compressors.base import Context


class Renderer:
    """One document's walk; holds what its tables share (note blocks already printed)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        #: Note blocks already printed (the same nested table's constants on every page of a paginated dump).
        self.seen_notes: dict[str, int] = {}

    def top_list(self, items: list[Any]) -> list[str]:
        if mostly_dicts(items):
            return self.records(items, 0, 1)
        return self.list_lines("items", items, 0, 1)

    def dict_lines(self, d: dict[str, Any], indent: int, depth: int = 1) -> list[str]:
        pad = "  " * indent
        out: list[str] = []
        empty: list[str] = []
        for key, value in d.items():
            if is_empty(value):
                empty.append(key)
            elif is_scalar(value):
                out.append(f"{pad}{key}: {self.text_cell(scalar_text(value), key, full=False)}")
            elif isinstance(value, dict):
                out.append(f"{pad}{key}:")
                out.extend(self.dict_lines(value, indent + 1, depth + 1))
            else:
                out.extend(self.list_lines(key, value, indent, depth + 1))
        if empty:
            out.append(f"{pad}empty: {', '.join(empty)}")
        return out

    def list_lines(self, key: str, items: list[Any], indent: int, depth: int) -> list[str]:
        pad = "  " * indent
        if mostly_dicts(items) and len(items) >= 2:
            return self.records(items, indent, depth + 1, f"{key}: ")
        names = label_names(items)
        if names is not None:
            return [f"{pad}{key}: {', '.join(names)}"]
        if all(is_scalar(x) for x in items):
            shown = [scalar_text(x) for x in items[:MAX_LIST_ITEMS]]
            line = f"{pad}{key} ({len(items)}): {', '.join(shown)}"
            if len(items) > MAX_LIST_ITEMS:
                rest = items[MAX_LIST_ITEMS:]
                self.ctx.count("items", len(rest))
                line += " " + self.ctx.stash(compact(rest), f"{len(rest)} more {key} items")
            return [line]
        flat = compact(items)
        if len(flat) <= LONG_CELL:
            return [f"{pad}{key}: {flat}"]
        out = [f"{pad}{key}: {len(items)} items"]
        for i, item in enumerate(items[:MAX_LIST_ITEMS]):
            if isinstance(item, dict):
                out.append(f"{pad}  [{i}]")
                out.extend(self.dict_lines(item, indent + 2, depth + 1))
            elif isinstance(item, list):
                out.extend(self.list_lines(f"[{i}]", item, indent + 1, depth + 1))
            else:
                out.append(f"{pad}  [{i}] {self.text_cell(scalar_text(item), key, full=False)}")
        if len(items) > MAX_LIST_ITEMS:
            rest = items[MAX_LIST_ITEMS:]
            self.ctx.count("items", len(rest))
            out.append(f"{pad}  " + self.ctx.stash(compact(rest), f"{len(rest)} more {key} items"))
        return out

    # -- arrays of records --------------------------------------------------------------------------------

    def records(self, items: list[Any], indent: int, depth: int, title: str = "") -> list[str]:
        pad = "  " * indent
        rows = [x if isinstance(x, dict) else {"value": x} for x in items]
        if len(rows) == 1:
            return [f"{pad}{title}1 record", *self.dict_lines(rows[0], indent + 1, depth + 1)]
        if _wants_sections(rows):
            out = [f"{pad}{title}{len(rows)} records"]
            flat = [flatten(row, "", 0) for row in rows]
            shared = [
                k
                for k, v in flat[0].items()
                if is_scalar(v) and not is_empty(v) and all(k in r and freeze(r[k]) == freeze(v) for r in flat)
            ]
            if shared:
                out.append(f"{pad}same in every record:")
                out.extend(f"{pad}  {k}: {self.text_cell(scalar_text(flat[0][k]), k, full=False)}" for k in shared)
            for i, row in enumerate(flat):
                out.append(f"{pad}[{i}]")
                rest = {k: v for k, v in row.items() if k not in shared}
                out.extend(self.dict_lines(rest, indent + 1, depth + 1))
            return out
        return Table(self.ctx, self.seen_notes, rows, pad).lines(title)

    def text_cell(self, s: str, col: str, *, full: bool) -> str:
        return text_cell(self.ctx, s, col, full=full)


def _wants_sections(rows: list[dict[str, Any]]) -> bool:
    """A few big records holding their own arrays of records read better as sections than as a table."""
    if len(rows) > 50:
        return False
    for row in rows:
        for v in row.values():
            inner = v
            while isinstance(inner, dict) and len(inner) == 1:
                inner = next(iter(inner.values()))
            if isinstance(inner, list):
                if not mostly_dicts(inner) or label_names(inner) is not None:
                    continue
            elif not isinstance(inner, dict) or not any(
                isinstance(x, list) and mostly_dicts(x) for x in inner.values()
            ):
                continue
            if len(compact(inner)) > 300:
                return True
    return False
