"""How one JSON value becomes text in a line: the helpers every part of the JSON compressor shares.

Split out of :mod:`headroom.engine.compressors.jsonc` so the table, the Prometheus summary and the generic
object renderer agree on one definition of a cell's text (escaping, number format, previews of long text,
the hashable stand-in used to compare values) without importing each other for it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from headroom.engine.compressors.base import Context

#: A string cell longer than this (or multi-line) is previewed and stashed.
LONG_CELL = 120
PREVIEW_CHARS = 100
#: A trouble row keeps its long cells whole up to this size.
ANOMALY_CELL_MAX = 1500
#: Lists of scalars longer than this keep a head and stash the rest.
MAX_LIST_ITEMS = 30

#: The value of a column a record does not have (distinct from an explicit ``null``).
MISSING: Any = object()

#: Keys that name a flat object (a label, a user); the name stands for the object.
NAME_KEYS = ("name", "login", "key", "title", "label")
_MD_NOISE_RE = re.compile(r"^\s*(#{1,6}\s|```|~~~|<!--|[-=*_]{3,}\s*$|>\s*$)")


def is_empty(v: Any) -> bool:
    return v is None or v is MISSING or (isinstance(v, (str, list, dict)) and not v)


def is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def scalar_text(v: Any) -> str:
    if v is None or v is MISSING:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return fmt_num(v)
    return str(v)


def plain(v: Any) -> str:
    """A cell's full text, nothing previewed (what an elided row's stash holds)."""
    if isinstance(v, list) and all(is_scalar(x) for x in v):
        return ",".join(scalar_text(x) for x in v)
    if isinstance(v, (list, dict)):
        return compact(v)
    return scalar_text(v)


def fmt_num(x: float) -> str:
    if math.isfinite(x) and x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.6g}"


def compact(v: Any) -> str:
    try:
        return orjson.dumps(v).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def last_key(col: str) -> str:
    return col.rsplit(".", 1)[-1].lower()


def freeze(v: Any) -> Any:
    """A hashable stand-in for a cell value (dedupe and categorical counts)."""
    if isinstance(v, (dict, list)):
        return compact(v)
    if v is MISSING:
        return None
    return (type(v).__name__, v)


def label_names(v: list[Any]) -> list[str] | None:
    """``[{"name": "bug", "color": ...}, ...]`` → ``["bug", ...]`` when every item has a name-like key."""
    # Only flat objects (labels, users): a list of issues must not shrink to its titles.
    if not v:
        return None
    for x in v:
        if not isinstance(x, dict):
            return None
        for y in x.values():
            if y is not None and not isinstance(y, (str, int, float, bool)):
                return None
    for key in NAME_KEYS:
        if all(isinstance(x.get(key), (str, int)) for x in v):
            return [str(x[key]) for x in v]
    return None


def mostly_dicts(items: list[Any]) -> bool:
    return bool(items) and sum(isinstance(x, dict) for x in items) * 5 >= len(items) * 4


def escape(s: str) -> str:
    """One line, and a ``|`` inside a cell never reads as a column separator."""
    if "\n" in s or "\r" in s or " | " in s:
        s = s.replace("\r", "\\r").replace("\n", "\\n")
        return s.replace(" | ", " \\| ")
    return s


def is_long(s: str) -> bool:
    """Whether :func:`text_cell` previews and stashes ``s`` (unless a trouble row keeps it whole)."""
    n = len(s)
    return n > LONG_CELL or (n > 60 and s.count("\n") >= 2)


def text_cell(ctx: Context, s: str, col: str, *, full: bool) -> str:
    """A string as it goes into a line: escaped newlines, long values previewed and stashed."""
    if is_long(s) and not (full and len(s) <= ANOMALY_CELL_MAX):
        ctx.count("chars", len(s))
        marker = ctx.stash(s, f"full {col}, {len(s)} chars")
        return f"{escape(preview(s, ctx))} {marker}"
    return escape(s)


def preview(text: str, ctx: Context) -> str:
    """The first line that says something (markdown headings and fences skipped), plus a question hit."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    meaningful = [ln for ln in lines if not _MD_NOISE_RE.match(ln)] or lines or [""]
    first = _cut(meaningful[0])
    if ctx.terms or ctx.symbols:
        best, best_score = "", 1
        for ln in meaningful[1:]:
            score = ctx.relevance(ln)
            if score > best_score:
                best, best_score = ln, score
        if best:
            first += " … " + _cut(best)
    return first


def _cut(line: str) -> str:
    if len(line) <= PREVIEW_CHARS:
        return line
    cut = line[:PREVIEW_CHARS]
    space = cut.rfind(" ")
    return (cut[:space] if space > PREVIEW_CHARS // 2 else cut) + "…"


def median(xs: list[float]) -> float:
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2
