"""Lossless mode: transforms that drop nothing, for clients that cannot call the retrieval tool.

A client without MCP cannot redeem a CCR marker, so for it the engine may only rewrite a block into a form
the model reads in full. Each transform here has its exact inverse next to it (``decode_*``), so tests can
prove the round trip:

- ``json``: a JSON document re-rendered compact (same values, same key order, every number literal kept as
  written); an array of at least :data:`TABLE_MIN_ROWS` objects with the same keys in the same order becomes a
  table that names the keys once and gives each object's values as one JSON array per line. The inverse gives
  JSON that is value-equal to the original (whitespace is not kept).
- ``search``: grep/rg ``path:line:text`` hits grouped by file, each path said once. Inverse: byte-exact.
- ``repeats``: a run of identical consecutive lines becomes one line plus a note with the count.
  Inverse: byte-exact.

All notation is framed by the tortoise shell brackets U+3014 and U+3015 (one token each, and next to never
in tool output). A text that already contains either bracket is left alone, so the notation can never be
confused with content, and :func:`expand_lossless` inverts :func:`compress_lossless` on every text it
changes (and on every text without those brackets). A structured body may sit inside a few lines a harness
wrapped around it (Codex's ``Chunk ID: … Output:``); those lines are kept byte-exact. Everything here is a
pure function of the text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

OPEN, CLOSE = "\u3014", "\u3015"
#: The transforms, by name (``EngineConfig.disabled`` may switch any of them off).
TRANSFORMS = ("json", "search", "repeats")
#: Transforms whose inverse gives the original bytes back (not merely equal JSON values).
BYTE_EXACT = frozenset({"search", "repeats"})
#: Fewest objects an array needs before it is written as a table.
TABLE_MIN_ROWS = 3
#: Fewest identical consecutive lines that are written once with a count.
REPEAT_MIN_LINES = 3
#: Fewest hits before grep output is grouped by file.
SEARCH_MIN_HITS = 3
#: Lines a harness may put before or after a structured body (preamble, exit status, closing tag).
FRAME_LINES = 8


def _has_notation(text: str) -> bool:
    return OPEN in text or CLOSE in text


# -- JSON ------------------------------------------------------------------------------------------------


class _Refuse(ValueError):
    """The JSON cannot be re-rendered with the same meaning (a duplicate key, NaN)."""


class _Number:
    """A number literal exactly as written: ``1.0``, ``1e400`` and 30-digit integers survive unchanged."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):  # a dict keeps only the last of duplicate keys: that would drop content
        raise _Refuse("duplicate key")
    return obj


def _constant(name: str) -> Any:
    raise _Refuse(f"{name} is not JSON")


def _load(text: str) -> Any:
    return json.loads(text, parse_int=_Number, parse_float=_Number, parse_constant=_constant, object_pairs_hook=_object)


_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _string(s: str) -> str:
    # Non-ASCII stays as it is (an escape costs tokens); a lone surrogate is escaped, or the request
    # could not be encoded as UTF-8.
    return json.dumps(s, ensure_ascii=_SURROGATE_RE.search(s) is not None)


def _render(value: Any, tables: list[str] | None = None) -> str:
    """Compact JSON of a value read by :func:`_load`; given ``tables``, each array of like objects that is
    shorter as a table is appended there as one and its place holds a placeholder."""
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, _Number):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{_string(k)}:{_render(v, tables)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        keys = _table_keys(value) if tables is not None else None
        if tables is not None and keys is not None:  # rows are plain compact JSON: no tables inside tables
            n = len(tables) + 1
            keys_json = "[" + ",".join(_string(k) for k in keys) + "]"
            header = f"{OPEN}json table {n}: {len(value)} objects with keys {keys_json}; {_TABLE_NOTE}{CLOSE}"
            rows = ["[" + ",".join(_render(row[k]) for k in keys) + "]" for row in value]
            region = "\n".join([header, *rows, _table_end(n)])
            if len(region) + len(_placeholder(n)) < len(_render(value)):  # a few small rows: the header costs more
                tables.append(region)
                return _placeholder(n)
        return "[" + ",".join(_render(v, tables) for v in value) + "]"
    return "null" if value is None else "true" if value else "false"


def _table_keys(value: list[Any]) -> list[str] | None:
    """The shared keys when ``value`` holds enough objects with the same keys in the same order."""
    if len(value) < TABLE_MIN_ROWS or not isinstance(value[0], dict):
        return None
    keys = list(value[0])
    if not keys or any(not isinstance(row, dict) or list(row) != keys for row in value):
        return None
    return keys


_TABLE_NOTE = "one line per object, values in key order"
_TABLE_RE = re.compile(rf"{OPEN}json table (\d+): (\d+) objects with keys (\[.*\]); {_TABLE_NOTE}{CLOSE}")


def _placeholder(n: int) -> str:
    return f"{OPEN}json table {n}{CLOSE}"


def _table_end(n: int) -> str:
    return f"{OPEN}end of json table {n}{CLOSE}"


def _json_span(lines: list[str]) -> tuple[int, int] | None:
    """Lines ``[start, end)`` that may hold a JSON document, inside at most FRAME_LINES lines either side."""
    start = next((i for i, line in enumerate(lines[: FRAME_LINES + 1]) if line.lstrip().startswith(("{", "["))), None)
    if start is None:
        return None
    for end in range(len(lines), max(start, len(lines) - FRAME_LINES - 1), -1):
        if lines[end - 1].rstrip().endswith(("}", "]")):
            return start, end
    return None


def encode_json(text: str) -> str | None:
    """Compact JSON with tables for arrays of like objects; ``None`` when the text holds no JSON document
    that can be re-rendered with the same meaning (duplicate keys, NaN, not JSON at all)."""
    if _has_notation(text):
        return None
    lines = text.split("\n")
    span = _json_span(lines)
    if span is None:
        return None
    start, end = span
    try:
        value = _load("\n".join(lines[start:end]))
        if not isinstance(value, dict | list):
            return None
        tables: list[str] = []
        skeleton = _render(value, tables)
    except (ValueError, RecursionError):  # not JSON, or _Refuse, or nested too deep to walk
        return None
    body = tables if skeleton == _placeholder(1) else [skeleton, *tables]
    return "\n".join([*lines[:start], *body, *lines[end:]])


def decode_json(text: str) -> str:
    """Inverse of :func:`encode_json`: each table back to its array of objects (compact JSON)."""
    if OPEN not in text:
        return text
    lines = text.split("\n")
    out: list[str] = []
    arrays: dict[str, str] = {}
    i = 0
    while i < len(lines):
        table = _read_table(lines, i)
        if table is None:
            out.append(lines[i])
            i += 1
            continue
        n, rows, array = table
        if _placeholder(n) in text:  # named in the skeleton: the array goes there
            arrays[_placeholder(n)] = array
        else:  # the document is the table itself
            out.append(array)
        i += rows + 2
    joined = "\n".join(out)
    for placeholder, array in arrays.items():
        joined = joined.replace(placeholder, array)
    return joined


def _read_table(lines: list[str], i: int) -> tuple[int, int, str] | None:
    """(number, rows, array as compact JSON) when a well-formed table starts at line ``i``."""
    m = _TABLE_RE.fullmatch(lines[i])
    if m is None:
        return None
    n, count = int(m[1]), int(m[2])
    if i + count + 1 >= len(lines) or lines[i + count + 1] != _table_end(n):
        return None
    try:
        keys = _load(m[3])
        rows = [_load(line) for line in lines[i + 1 : i + 1 + count]]
    except (ValueError, RecursionError):
        return None
    if not all(isinstance(k, str) for k in keys) or any(not isinstance(r, list) or len(r) != len(keys) for r in rows):
        return None
    objects = ("{" + ",".join(f"{_string(k)}:{_render(v)}" for k, v in zip(keys, row)) + "}" for row in rows)
    return n, count, "[" + ",".join(objects) + "]"


# -- grep/rg output --------------------------------------------------------------------------------------

SEARCH_HEADER = f"{OPEN}grep output grouped by file: a path line, then that file's hits as line:text{CLOSE}"
SEARCH_END = f"{OPEN}end of grep output{CLOSE}"
_HIT_RE = re.compile(r"([^\s:]+):(\d+):")
#: A path names a folder or ends in a file extension: ``12:30:45 started`` is a clock, not a hit.
_EXTENSION_RE = re.compile(r"\.[A-Za-z][A-Za-z0-9_]{0,9}$")


def _hit_path(line: str) -> str | None:
    m = _HIT_RE.match(line)
    if m is None:
        return None
    path = m[1]
    return path if "/" in path or _EXTENSION_RE.search(path) else None


def encode_search(text: str) -> str | None:
    """grep/rg hits grouped by file (each path once); ``None`` unless the body is all ``path:line:text``."""
    if _has_notation(text):
        return None
    lines = text.split("\n")
    hits = [(i, path) for i, path in enumerate(map(_hit_path, lines)) if path is not None]
    if len(hits) < SEARCH_MIN_HITS:
        return None
    first, last = hits[0][0], hits[-1][0]
    # The trailing "" after a final newline is not a trailer line.
    trailer = len(lines) - 1 - last - (lines[-1] == "")
    if first > FRAME_LINES or trailer > FRAME_LINES or len(hits) != last - first + 1:
        return None
    groups: list[tuple[str, list[str]]] = []
    for i, path in hits:
        hit = lines[i][len(path) + 1 :]
        if groups and groups[-1][0] == path:
            groups[-1][1].append(hit)
        else:
            groups.append((path, [hit]))
    if len(groups) == len(hits):  # every hit in a file of its own: nothing to group
        return None
    body = [SEARCH_HEADER]
    for k, (path, group_hits) in enumerate(groups):
        body.extend(([""] if k else []) + [path, *group_hits])
    body.append(SEARCH_END)
    return "\n".join([*lines[:first], *body, *lines[last + 1 :]])


def decode_search(text: str) -> str:
    """Inverse of :func:`encode_search`: every hit back to its ``path:line:text`` line, in order."""
    if OPEN not in text:
        return text
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        hits = _read_search(lines, i) if lines[i] == SEARCH_HEADER else None
        if hits is None:
            out.append(lines[i])
            i += 1
            continue
        i, decoded = hits
        out.extend(decoded)
    return "\n".join(out)


def _read_search(lines: list[str], i: int) -> tuple[int, list[str]] | None:
    """(index after the block, the original lines) when a well-formed grouped block starts at ``i``."""
    try:
        end = lines.index(SEARCH_END, i + 1)
    except ValueError:
        return None
    out: list[str] = []
    path: str | None = None
    for line in lines[i + 1 : end]:
        if path is None:  # a group starts with its path
            if not line:
                return None
            path = line
        elif not line:  # a blank line ends the group
            path = None
        elif re.match(r"\d+:", line):
            out.append(f"{path}:{line}")
        else:
            return None
    return end + 1, out


# -- repeated lines --------------------------------------------------------------------------------------

_REPEAT_RE = re.compile(rf"{OPEN}previous line repeated (\d+) more times{CLOSE}")


def _repeat_note(more: int) -> str:
    return f"{OPEN}previous line repeated {more} more times{CLOSE}"


def encode_repeats(text: str) -> str | None:
    """Each run of identical consecutive lines as one line plus a count; ``None`` when no run pays."""
    if _has_notation(text):
        return None
    lines = text.split("\n")
    out: list[str] = []
    changed = False
    i = 0
    while i < len(lines):
        j = i + 1
        while j < len(lines) and lines[j] == lines[i]:
            j += 1
        note = _repeat_note(j - i - 1)
        if j - i >= REPEAT_MIN_LINES and (j - i - 1) * (len(lines[i]) + 1) > len(note) + 1:
            out += [lines[i], note]
            changed = True
        else:
            out.extend(lines[i:j])
        i = j
    return "\n".join(out) if changed else None


def decode_repeats(text: str) -> str:
    """Inverse of :func:`encode_repeats`: each note back to the copies of the line above it."""
    if OPEN not in text:
        return text
    out: list[str] = []
    for line in text.split("\n"):
        m = _REPEAT_RE.fullmatch(line)
        if m is not None and out:
            out.extend([out[-1]] * int(m[1]))
        else:
            out.append(line)
    return "\n".join(out)


# -- the mode --------------------------------------------------------------------------------------------

_ENCODERS: tuple[tuple[str, Callable[[str], str | None]], ...] = (
    ("json", encode_json),
    ("search", encode_search),
    ("repeats", encode_repeats),
)


def lossless_transform(text: str, *, byte_exact: bool = False, skip: Iterable[str] = ()) -> tuple[str, str] | None:
    """(transform name, new text) of the transform that shortens ``text`` most; ``None`` when none does.

    ``byte_exact`` allows only transforms whose inverse gives back the same bytes (a file the agent may edit
    by exact text must not be re-rendered); ``skip`` names transforms not to use.
    """
    if _has_notation(text):
        return None
    skipped = frozenset(skip)
    best: tuple[str, str] | None = None
    for name, encode in _ENCODERS:
        if name in skipped or (byte_exact and name not in BYTE_EXACT):
            continue
        out = encode(text)
        if out is not None and len(out) < len(best[1] if best else text):
            best = (name, out)
    return best


def compress_lossless(text: str, *, byte_exact: bool = False, skip: Iterable[str] = ()) -> str:
    """``text`` through the lossless transform that shortens it most (unchanged when none does)."""
    got = lossless_transform(text, byte_exact=byte_exact, skip=skip)
    return text if got is None else got[1]


def expand_lossless(text: str) -> str:
    """Inverse of :func:`compress_lossless`: the original text (JSON: value-equal, compact).

    A text without the notation comes back unchanged, so this is safe on any block of a compressed request.
    """
    if OPEN not in text:
        return text
    return decode_json(decode_search(decode_repeats(text)))
