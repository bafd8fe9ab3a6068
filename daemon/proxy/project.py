"""Which project a request comes from, read from the context each agent puts in its own requests.

The proxy sees no cwd, but every agent tells the model where it works, each in its own words (Claude Code's
``Primary working directory: /path``, Codex's ``<cwd>/path</cwd>``, Gemini CLI's ``Workspace Directories:``):
the patterns and the system-prompt fields are each provider's (:mod:`headroom.daemon.providers`). The project
is that folder's git root when it exists here (:func:`headroom.learn.projects.project_of`).

Only the start of the system/developer text and of the first dozen input items is scanned (32 K characters
of each string, 256 K in all), so this stays well under a millisecond on a large request. No match means no
project: the block memo is then not used.
"""

from __future__ import annotations

from typing import Any

from headroom.daemon.providers import CWD_PATTERNS, SYSTEM_FIELDS
from headroom.learn.projects import project_of

_SCAN_CHARS = 256_000  # in all; each string is scanned up to _STRING_CHARS
_STRING_CHARS = 32_000
_MESSAGES = 12  # Codex in code mode puts its environment context after four developer messages and more


def _texts(value: Any, out: list[str], budget: list[int]) -> None:
    """Strings inside ``value`` (nested lists and dicts), up to the budget of characters."""
    if budget[0] <= 0:
        return
    if isinstance(value, str):
        piece = value[: min(budget[0], _STRING_CHARS)]
        out.append(piece)
        budget[0] -= len(piece)
    elif isinstance(value, list):
        for item in value:
            _texts(item, out, budget)
    elif isinstance(value, dict):
        for key in ("text", "content", "parts", "input_text"):
            if key in value:
                _texts(value[key], out, budget)


def find_cwd(body: dict[str, Any], key: str | None) -> str | None:
    """The working directory an agent announced in this request body, or None."""
    texts: list[str] = []
    budget = [_SCAN_CHARS]
    for field in SYSTEM_FIELDS:
        if field in body:
            _texts(body[field], texts, budget)
    messages = body.get(key or "")
    if isinstance(messages, list):
        for message in messages[:_MESSAGES]:  # the system/developer turns and the first user turn carry it
            _texts(message, texts, budget)
    for text in texts:
        for pattern in CWD_PATTERNS:
            m = pattern.search(text)
            if m:
                return m.group(1).strip().rstrip("/.") or "/"
    return None


def request_project(body: dict[str, Any], key: str | None) -> str | None:
    """The project of this request (git root of the announced cwd), or None when the agent did not say."""
    cwd = find_cwd(body, key)
    return project_of(cwd) if cwd else None
