"""Column analysis for an array of records: which columns say nothing per row and can be said once.

The records are flattened to dotted columns and each column is judged on its own values: always empty,
constant, opaque id or generated-suffix noise, equal to an earlier column, or a URL that is one template
filled with another column's value. Kept apart from :mod:`._json_table` (which renders the rows) because
this part is pure: it reads values and never writes a line or a stash entry.

Everything a judgement needs per column (the hashable stand-ins, which rows are set, value counts, the
cell text of plain cells) is computed once and cached on :class:`Columns`; a 300-row table is otherwise
re-walked once per check and per column pair, which is where the time went.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from headroom.engine.compressors._json_values import (
    LONG_CELL,
    MAX_LIST_ITEMS,
    MISSING,
    NAME_KEYS,
    PREVIEW_CHARS,
    escape,
    fmt_num,
    freeze,
    is_scalar,
    label_names,
    last_key,
    scalar_text,
)

#: Nested objects inside a record are flattened to dotted columns this many levels down.
FLATTEN_DEPTH = 3
#: Columns shown per table; the rest are named once (the original has them).
MAX_COLUMNS = 14

#: Last key segments that identify a row (kept first, never dropped as noise).
IDENT_KEYS = (
    "number",
    "id",
    "key",
    "name",
    "title",
    "login",
    "state",
    "status",
    "type",
    "kind",
    "reason",
    "level",
    "severity",
    "labels",
    "message",
    "conclusion",
    "result",
    "phase",
)
#: Fields that carry no meaning for an answer (opaque ids, avatars, cache validators).
_NOISE_KEYS = frozenset(
    {"node_id", "gravatar_id", "avatar_url", "uid", "resourceversion", "resource_version", "etag", "selflink"}
)
#: ``freeze(v)`` is ``(type name, v)`` for these.
_TYPE_NAMES: dict[type, str] = {str: "str", int: "int", float: "float", bool: "bool"}
_HASH_SUFFIX_RE = re.compile(r"(.+)[.-][0-9a-f]{8,}")
_URL_RE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def flatten(row: dict[str, Any], prefix: str, depth: int) -> dict[str, Any]:
    """A record as dotted columns; lists of label-like objects become their names."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}" if prefix else key
        if isinstance(value, dict) and value and depth < FLATTEN_DEPTH:
            out.update(flatten(value, name + ".", depth + 1))
        elif isinstance(value, list):
            # label_names only ever answers for a list of objects: skip the call for lists of scalars.
            names = label_names(value) if value and isinstance(value[0], dict) else None
            out[name] = names if names is not None else value
        else:
            out[name] = value
    return out


class Columns:
    """The flattened records of one array, column by column, with per-column facts computed once."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.flat = [flatten(row, "", 0) for row in rows]
        self.n = len(self.flat)
        names: dict[str, Any] = {}
        for fr in self.flat:
            names.update(fr)  # insertion order: first appearance of each column
        self.names = list(names)
        self.values = {c: [fr.get(c, MISSING) for fr in self.flat] for c in self.names}
        self.last = {c: last_key(c) for c in self.names}
        self._frozen: dict[str, list[Any]] = {}
        self._present: dict[str, list[int]] = {}
        self._set_rows: dict[str, frozenset[int]] = {}
        self._counts: dict[str, Counter[Any]] = {}
        self._long: dict[str, bool] = {}
        self._texts: dict[str, list[str]] = {}
        self._urls: dict[str, list[bool]] = {}
        self._cells: dict[str, list[str | None]] = {}
        self._ident_ok: dict[str, bool] = {}

    # -- cached per-column facts ----------------------------------------------------------------------------

    def frozen(self, col: str) -> list[Any]:
        """:func:`freeze` of every value (compare, count and dedupe without re-serialising)."""
        got = self._frozen.get(col)
        if got is None:
            # freeze() inlined for the common scalar types: one call per cell adds up on big tables.
            names = _TYPE_NAMES
            got = self._frozen[col] = [
                (name, v) if (name := names.get(v.__class__)) is not None else freeze(v) for v in self.values[col]
            ]
        return got

    def present(self, col: str) -> list[int]:
        """Rows where the column has a non-empty value."""
        got = self._present.get(col)
        if got is None:
            got = self._present[col] = [
                i
                for i, v in enumerate(self.values[col])
                if v is not None and v is not MISSING and (v or not isinstance(v, (str, list, dict)))
            ]
        return got

    def set_rows(self, col: str) -> frozenset[int]:
        got = self._set_rows.get(col)
        if got is None:
            got = self._set_rows[col] = frozenset(self.present(col))
        return got

    def counts(self, col: str) -> Counter[Any]:
        got = self._counts.get(col)
        if got is None:
            got = self._counts[col] = Counter(self.frozen(col))
        return got

    def is_long(self, col: str) -> bool:
        got = self._long.get(col)
        if got is None:
            got = self._long[col] = any(isinstance(v, str) and len(v) > LONG_CELL for v in self.values[col])
        return got

    def texts(self, col: str) -> list[str]:
        """:func:`scalar_text` of every value."""
        got = self._texts.get(col)
        if got is None:
            got = self._texts[col] = [scalar_text(v) for v in self.values[col]]
        return got

    def urls(self, col: str) -> list[bool]:
        """Which values are URLs."""
        got = self._urls.get(col)
        if got is None:
            got = self._urls[col] = [isinstance(v, str) and _URL_RE.match(v) is not None for v in self.values[col]]
        return got

    def plain_cells(self, col: str) -> list[str | None]:
        """Each value's cell text where it is the same in every row kind and stashes nothing, else None.

        None marks a long string (previewed and stashed unless the row is trouble), a long list of scalars
        (its tail is stashed) and structured values: those go through the full cell renderer, in row order.
        """
        got = self._cells.get(col)
        if got is not None:
            return got
        out: list[str | None] = []
        for v in self.values[col]:
            cls = v.__class__
            if cls is str:
                s = v
            elif cls is int:
                s = str(v)
            elif cls is float:
                s = fmt_num(v)
            elif cls is list:
                if len(v) > MAX_LIST_ITEMS:
                    out.append(None)
                    continue
                try:
                    s = ",".join(v)  # all strings (the common case): each item's text is itself
                except TypeError:
                    if not all(is_scalar(x) for x in v):
                        out.append(None)
                        continue
                    s = ",".join([scalar_text(x) for x in v])
                out.append(escape(s))
                continue
            elif v is None or v is MISSING:
                out.append("")
                continue
            elif isinstance(v, dict):
                out.append(None)
                continue
            else:
                s = scalar_text(v)
            n = len(s)
            if n > LONG_CELL or (n > 60 and s.count("\n") >= 2):
                out.append(None)
            elif "\n" in s or "\r" in s or " | " in s:
                out.append(escape(s))
            else:
                out.append(s)
        self._cells[col] = out
        return out

    def text_cost(self, col: str) -> list[int]:
        """Each value's text length, capped: the size estimate that decides whether a table is sampled."""
        cap = PREVIEW_CHARS + 60
        out: list[int] = []
        for v, cell in zip(self.values[col], self.plain_cells(col)):
            cls = v.__class__
            if cls is str:
                n = len(v)
            elif cls is list or cls is dict:
                n = len(str(v))  # what scalar_text() gives for these
            elif cell is not None:
                n = len(cell)  # a number, a boolean or nothing: the cell is its scalar_text(), unescaped
            else:
                n = len(scalar_text(v))
            out.append(n if n < cap else cap)
        return out

    # -- judgements -----------------------------------------------------------------------------------------

    def _names_rows(self, col: str) -> bool:
        """Every row has a scalar in the column (it can name the row)."""
        got = self._ident_ok.get(col)
        if got is None:
            got = self._ident_ok[col] = all(
                v is not MISSING and (v is None or isinstance(v, (str, int, float, bool))) for v in self.values[col]
            )
        return got

    def first_set(self, col: str) -> Any:
        return self.values[col][self.present(col)[0]]

    def is_constant(self, col: str) -> bool:
        vals = self.values[col]
        if MISSING not in vals:
            return len(set(self.frozen(col))) == 1
        # A nested field of an optional object (``assignee.type``) is constant where the object is set.
        if "." not in col:
            return False
        frozen = self.frozen(col)
        set_vals = {frozen[i] for i in self.present(col)}
        if len(set_vals) != 1:
            return False
        parent = col.rsplit(".", 1)[0] + "."
        rows = self.set_rows(col)
        siblings = [c for c in self.names if c.startswith(parent) and c != col and "." not in c[len(parent) :]]
        return len(rows) >= 2 and any(self.set_rows(c) == rows for c in siblings)

    def is_noise(self, col: str, has_ident: bool, cols: list[str]) -> bool:
        last = self.last[col]
        if last in _NOISE_KEYS:
            return True
        values = self.values[col]
        vals = [values[i] for i in self.present(col)]
        if last == "id" or last.endswith("_id") or last == "uuid":
            if "." in col:
                # ``user.id`` next to ``user.login``: the name says who, the number says nothing more.
                parent = col.rsplit(".", 1)[0] + "."
                if any(c.startswith(parent) and self.last[c] in NAME_KEYS for c in cols):
                    return True
            if ("." in col or has_ident) and vals and all(_id_like(v) for v in vals):
                return True
        # ``zk-0.4143c0fc1461d64a`` next to ``zk-0``: a generated suffix on a name another column holds.
        if vals and all(isinstance(v, str) for v in vals) and any(other != col for other in cols):
            stems: list[str] = []
            for v in vals:
                m = _HASH_SUFFIX_RE.fullmatch(v)
                if m is None:
                    return False
                stems.append(m.group(1))
            present = self.present(col)
            for other in cols:
                if other != col:
                    texts = self.texts(other)
                    if all(stem == texts[i] for i, stem in zip(present, stems)):
                        return True
        return False

    def same_as(self, cols: list[str]) -> dict[str, str]:
        """Columns equal to an earlier column on every row (``source.component`` = ``reportingComponent``)."""
        out: dict[str, str] = {}
        for j, col in enumerate(cols):
            frozen = self.frozen(col)
            for other in cols[:j]:
                if other not in out and frozen == self.frozen(other):
                    out[col] = f"same as {other}"
                    break
        return out

    def derive_urls(self, cols: list[str]) -> dict[str, str]:
        """URL columns that are one template filled with another column's value on every row."""
        derived: dict[str, str] = {}
        candidates = [
            c
            for c in cols
            if all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in self.values[c])
            and not any(self.urls(c))
        ]
        for col in cols:
            present = self.present(col)
            if len(present) < 3:
                continue
            urls = self.urls(col)
            if not all(urls[i] for i in present):
                continue
            vals = self.values[col]
            parent = col.rsplit(".", 1)[0] + "." if "." in col else ""
            ranked = sorted(candidates, key=lambda c: (not c.startswith(parent) or not parent, "." in c))
            for cand in ranked:
                template = _template(vals, self.texts(cand), present, cand)
                if template is not None:
                    derived[col] = template
                    break
        return derived

    def choose(self, cols: list[str]) -> tuple[list[str], list[str]]:
        """At most :data:`MAX_COLUMNS` columns to show (identifying ones first), and the rest."""
        if len(cols) <= MAX_COLUMNS:
            return cols, []

        def rank(item: tuple[int, str]) -> tuple[int, int]:
            pos, col = item
            last = self.last[col]
            if last in IDENT_KEYS and "." not in col:
                return (0, pos)
            if last in IDENT_KEYS or last in ("total_count", "count", "comments") or self.is_long(col):
                return (1, pos)
            if "." not in col:
                return (2, pos)
            return (3, pos)

        keep = {c for _, c in sorted(enumerate(cols), key=rank)[:MAX_COLUMNS]}
        return [c for c in cols if c in keep], [c for c in cols if c not in keep]

    def ident(self, cols: list[str]) -> str | None:
        """The column that names a row (number, id, name...) when every row has a scalar there."""
        for key in ("number", "id", "key", "name", "title"):
            for c in cols:
                if self.last[c] == key and self._names_rows(c):
                    return c
        return None


def _id_like(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return abs(v) >= 10_000_000
    return isinstance(v, str) and len(v) >= 16 and " " not in v


def _template(urls: list[Any], keys: list[str], present: list[int], name: str) -> str | None:
    """``https://x/issues/{number}`` when every present URL is that template filled with the row's value."""
    template: str | None = None
    distinct: set[str] = set()
    for i in present:
        key = keys[i]
        url = urls[i]
        if len(key) < 1 or key not in url:
            return None
        # The last occurrence: ids sit at the end of a path, and a digit may also appear in the host or repo.
        head, _, tail = url.rpartition(key)
        filled = head + "{" + name + "}" + tail
        if template is None:
            template = filled
        elif filled != template:
            return None
        distinct.add(key)
    return template if len(distinct) >= 3 else None
