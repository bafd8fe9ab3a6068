"""Edit one member of a JSON document in place, leaving every other byte of the file as it was.

Agents rewrite their config files often and people keep comments in Gemini's ``settings.json``, so
re-serialising the whole document would churn formatting, reorder nothing but still touch every line, and
drop comments. Instead the text is scanned for the spans of the objects on a path and only the member being
added, replaced or removed changes. New text copies the file's own indentation and line endings, and
removing a member undoes adding it exactly.

Comments (``//`` and ``/* */``, as gemini-cli accepts them) are blanked to spaces of the same length before
scanning, so every offset found in the blanked copy is an offset in the original too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\r\n]*")
_COMMENT_OR_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|//[^\n]*|/\*.*?\*/', re.DOTALL)


@dataclass(frozen=True)
class _Member:
    key: str
    start: int  # the key's opening quote
    key_end: int
    value_start: int
    value_end: int
    comma: int | None  # the comma after the value, if another member follows


@dataclass(frozen=True)
class _Object:
    open: int  # the "{"
    close: int  # the "}"
    members: list[_Member]

    def get(self, key: str) -> _Member | None:
        found = [m for m in self.members if m.key == key]
        return found[-1] if found else None  # a repeated key: the last one wins, as in every JSON parser


def blank_comments(text: str) -> str:
    """``text`` with each comment replaced by spaces (newlines kept), strings untouched."""

    def blank(match: re.Match[str]) -> str:
        token = match.group()
        return token if token.startswith('"') else re.sub(r"[^\n]", " ", token)

    return _COMMENT_OR_STRING.sub(blank, text)


def loads(text: str) -> Any:
    """Parse JSON that may contain comments; ``ValueError`` when it is not valid."""
    return json.loads(blank_comments(text))


def _ws(text: str, pos: int) -> int:
    match = _WS.match(text, pos)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _scan_object(blank: str, open_pos: int) -> _Object:
    """The members of the object whose ``{`` is at ``open_pos`` (the text is valid JSON: checked before)."""
    members: list[_Member] = []
    pos = _ws(blank, open_pos + 1)
    if blank[pos] == "}":
        return _Object(open_pos, pos, members)
    while True:
        key, key_end = _DECODER.raw_decode(blank, pos)
        value_start = _ws(blank, _ws(blank, key_end) + 1)  # past the ":"
        _, value_end = _DECODER.raw_decode(blank, value_start)
        after = _ws(blank, value_end)
        comma = after if blank[after] == "," else None
        members.append(_Member(key, pos, key_end, value_start, value_end, comma))
        if comma is None:
            return _Object(open_pos, after, members)
        pos = _ws(blank, comma + 1)


def _top(blank: str) -> _Object:
    pos = _ws(blank, 0)
    if pos >= len(blank) or blank[pos] != "{":
        raise ValueError("the top level is not a JSON object")
    return _scan_object(blank, pos)


def _walk(blank: str, path: Sequence[str]) -> tuple[_Object, int]:
    """The deepest existing object on ``path`` and how many keys of ``path`` lead to it."""
    obj = _top(blank)
    for depth, key in enumerate(path):
        member = obj.get(key)
        if member is None:
            return obj, depth
        if blank[member.value_start] != "{":
            raise ValueError(f"{'.'.join(path[: depth + 1])} is not an object")
        obj = _scan_object(blank, member.value_start)
    return obj, len(path)


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _indent_unit(text: str) -> str:
    """The file's indentation step: that of its first indented line (two spaces if it has none)."""
    match = re.search(r"^([ \t]+)\S", text, re.MULTILINE)
    return match.group(1) if match else "  "


def _line_indent(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    match = re.match(r"[ \t]*", text[start:])
    return match.group() if match else ""


def _starts_line(blank: str, pos: int) -> int | None:
    """The position of the newline before ``pos`` when only whitespace stands between them."""
    nl = blank.rfind("\n", 0, pos)
    if nl == -1 or blank[nl + 1 : pos].strip():
        return None
    return nl - 1 if nl > 0 and blank[nl - 1] == "\r" else nl


def _dump(value: Any, indent: str, unit: str, nl: str) -> str:
    return json.dumps(value, indent=unit, ensure_ascii=False).replace("\n", nl + indent)


def set_member(text: str, path: Sequence[str], value: Any) -> str:
    """``text`` with ``path`` set to ``value``; missing objects on the path are created."""
    if not path:
        raise ValueError("an empty path")
    blank = blank_comments(text)
    json.loads(blank)  # ValueError for anything that is not JSON
    nl, unit = _newline(text), _indent_unit(text)
    obj, depth = _walk(blank, path[:-1])
    if depth == len(path) - 1:
        member = obj.get(path[-1])
        if member is not None:
            indent = _line_indent(text, member.start)
            return text[: member.value_start] + _dump(value, indent, unit, nl) + text[member.value_end :]
    nested = value
    for key in reversed(path[depth + 1 :]):
        nested = {key: nested}
    return _insert(text, blank, obj, path[depth], nested, unit, nl)


def _insert(text: str, blank: str, obj: _Object, key: str, value: Any, unit: str, nl: str) -> str:
    if obj.members:
        first, last = obj.members[0], obj.members[-1]
        if "\n" in blank[obj.open : first.start]:  # one member per line
            indent = _line_indent(text, first.start)
            member = f"{json.dumps(key, ensure_ascii=False)}: {_dump(value, indent, unit, nl)}"
            eol = blank.find("\n", last.value_end, obj.close)
            if eol != -1 and not blank[last.value_end : eol].strip():  # keep a trailing comment on its line
                eol = eol - 1 if blank[eol - 1] == "\r" else eol
                return text[: last.value_end] + "," + text[last.value_end : eol] + nl + indent + member + text[eol:]
            return text[: last.value_end] + "," + nl + indent + member + text[last.value_end :]
        colon = blank[first.key_end : first.value_start]
        compact = colon.strip() == ":" and " " not in colon
        separators = (",", ":") if compact else (", ", ": ")
        member = separators[1].join(
            (json.dumps(key, ensure_ascii=False), json.dumps(value, separators=separators, ensure_ascii=False))
        )
        return text[: last.value_end] + separators[0] + member + text[last.value_end :]
    outer = _line_indent(text, obj.open)
    member = f"{json.dumps(key, ensure_ascii=False)}: {_dump(value, outer + unit, unit, nl)}"
    inside = blank[obj.open + 1 : obj.close]
    if not inside.strip():
        return text[: obj.open + 1] + nl + outer + unit + member + nl + outer + text[obj.close :]
    return text[: obj.open + 1] + nl + outer + unit + member + text[obj.open + 1 :]  # only comments inside


def remove_member(text: str, path: Sequence[str]) -> str:
    """``text`` without the member at ``path`` (unchanged when it is not there)."""
    if not path:
        raise ValueError("an empty path")
    blank = blank_comments(text)
    json.loads(blank)
    obj, depth = _walk(blank, path[:-1])
    if depth < len(path) - 1:
        return text
    members = obj.members
    index = next((i for i in reversed(range(len(members))) if members[i].key == path[-1]), None)
    if index is None:
        return text
    member = members[index]
    rest = blank[obj.open + 1 : member.start] + blank[member.value_end : obj.close]
    if len(members) == 1 and not rest.strip():
        return text[: obj.open + 1] + text[obj.close :]
    line = _starts_line(blank, member.start)
    if index == len(members) - 1:
        prev = members[index - 1] if index else None
        if prev is not None and prev.comma is not None:
            start = line if line is not None else prev.comma
            cut = text[:start] + text[member.value_end :]
            if line is not None:  # the comma after the previous value goes too
                cut = cut[: prev.comma] + cut[prev.comma + 1 :]
            return cut
        start = line if line is not None else member.start
        return text[:start] + text[member.value_end :]
    assert member.comma is not None
    if line is not None:
        return text[:line] + text[member.comma + 1 :]
    return text[: member.start] + text[_ws(blank, member.comma + 1) :]


__all__ = ["blank_comments", "loads", "remove_member", "set_member"]
