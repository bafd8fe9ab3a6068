"""Add, update and remove one ``[mcp_servers.<name>]`` table of Codex's ``config.toml``, touching nothing else.

A new server goes at the end of the file as its own table, rendered by tomlkit, with exactly one newline
before its header; removing it cuts that span and that newline again, so install-then-uninstall gives the
original bytes back. (Letting tomlkit place a new table instead leaves blank lines behind on removal, which
depend on what the file ended with.) An existing table is updated in place through tomlkit, which keeps
comments and layout. Where the text route cannot work — ``mcp_servers`` written as an inline table, or a
table someone has moved or rewritten — tomlkit edits the document structurally. Every result is parsed
again with ``tomllib`` (what Codex accepts is stricter than what tomlkit writes) and compared with the
intended data; an edit that does not check out raises ``ValueError``.
"""

from __future__ import annotations

import copy
import re
import sys
from typing import Any

import tomlkit
from tomlkit.items import InlineTable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

CONTAINER = "mcp_servers"
_ANY_HEADER = re.compile(r"^[ \t]*\[", re.MULTILINE)


def _header(name: str) -> re.Pattern[str]:
    key = re.escape(name)
    return re.compile(
        rf'^[ \t]*\[[ \t]*(?:{CONTAINER}|"{CONTAINER}")[ \t]*\.[ \t]*(?:{key}|"{key}")[ \t]*\][ \t]*(?:#[^\n]*)?$',
        re.MULTILINE,
    )


def _value(value: Any) -> Any:
    """tomlkit items for ``value``; tables nested in an entry (``env``) are written inline."""
    if not isinstance(value, dict):
        return value
    table = tomlkit.inline_table()
    for key, item in value.items():
        table[key] = _value(item)
    return table


def _block(name: str, entry: dict[str, Any]) -> str:
    """``[mcp_servers.<name>]`` and its keys, as tomlkit writes them."""
    table = tomlkit.table()
    for key, value in entry.items():
        table[key] = _value(value)
    servers = tomlkit.table(is_super_table=True)
    servers[name] = table
    doc = tomlkit.document()
    doc[CONTAINER] = servers
    return doc.as_string()


def _without(data: dict[str, Any], name: str) -> dict[str, Any]:
    data = copy.deepcopy(data)
    servers = data.get(CONTAINER)
    if isinstance(servers, dict):
        servers.pop(name, None)
        if not servers:
            del data[CONTAINER]
    return data


def _checks_out(text: str, name: str, before: dict[str, Any], entry: Any) -> bool:
    try:
        after = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False
    servers = after.get(CONTAINER)
    got = servers.get(name) if isinstance(servers, dict) else None
    return got == entry and _without(after, name) == _without(before, name)


def set_server(text: str, name: str, entry: dict[str, Any]) -> str:
    """``text`` with ``[mcp_servers.<name>]`` holding ``entry`` (other keys of an existing table are kept)."""
    before = tomllib.loads(text)
    doc = tomlkit.parse(text)
    servers = doc.get(CONTAINER)
    if servers is not None and name in servers:
        table = servers[name]
        for key, value in entry.items():
            table[key] = _value(value)
        merged = {**before[CONTAINER][name], **entry}
        result = doc.as_string()
        if _checks_out(result, name, before, merged):
            return result
        raise ValueError(f"could not update [{CONTAINER}.{name}] in place")
    if not isinstance(servers, InlineTable):
        result = text + ("\n" if text else "") + _block(name, entry)
        if _checks_out(result, name, before, entry):
            return result
    if servers is None:
        doc[CONTAINER] = {name: _value(entry)}
    else:
        servers[name] = _value(entry)
    result = doc.as_string()
    if _checks_out(result, name, before, entry):
        return result
    raise ValueError(f"could not add [{CONTAINER}.{name}]")


def remove_server(text: str, name: str) -> str:
    """``text`` without ``[mcp_servers.<name>]`` (unchanged when there is none)."""
    before = tomllib.loads(text)
    servers = before.get(CONTAINER)
    if not isinstance(servers, dict) or name not in servers:
        return text
    headers = list(_header(name).finditer(text))
    if len(headers) == 1:
        start = headers[0].start()
        following = _ANY_HEADER.search(text, headers[0].end())
        end = following.start() if following else len(text)
        if end == len(text) and start and text[start - 1] == "\n":  # the newline set_server wrote before it
            start -= 1
        result = text[:start] + text[end:]
        if _checks_out(result, name, before, None):
            return result
    doc = tomlkit.parse(text)
    del doc[CONTAINER][name]
    if not doc[CONTAINER] and not isinstance(doc[CONTAINER], InlineTable) and doc[CONTAINER].is_super_table():
        del doc[CONTAINER]
    result = doc.as_string()
    if _checks_out(result, name, before, None):
        return result
    raise ValueError(f"could not remove [{CONTAINER}.{name}]")


__all__ = ["CONTAINER", "remove_server", "set_server"]
