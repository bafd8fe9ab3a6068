"""Asking the running daemon, over its local socket (daemon/hooks/server.py), instead of doing the work here.

The daemon keeps the embedding model loaded once for everyone; a CLI or an MCP server that loaded its own
would pay seconds of model loading and hundreds of MB each time (``headroom memory search`` took 20 s that
way). And it has SQLAlchemy and the analytics queries imported already: a ``headroom stats`` that asks it
starts in a fraction of the time (bench/README.md, Ingest). So these commands ask the daemon first, through
the owner-only Unix socket it serves whenever it runs (with or without the proxy), and do the work themselves
only when no daemon answers: no socket, nobody listening, a timeout, or an answer that says it could not
(memory disabled there, a bad request).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from headroom.daemon.hooks.client import ask

log = logging.getLogger("headroom.memory")

#: The daemon's first search may load the model (seconds on a busy machine); later ones take milliseconds.
SEARCH_TIMEOUT_S = 60.0
STATS_TIMEOUT_S = 60.0


def ask_daemon(socket_path: Path, request: dict[str, object], timeout: float) -> dict[str, Any] | None:
    """The daemon's answer to ``request`` (``{"purpose": ..., ...}``), or None when there is no daemon to ask
    or it could not answer (the reason is logged at info level: falling back is normal, not an error)."""
    if not socket_path.exists():
        return None
    try:
        answer = ask(str(socket_path), request, timeout)
    except (OSError, ValueError) as exc:  # nobody listening, a timeout, a truncated answer
        log.info("daemon %s unavailable (%s: %s); doing it here", request.get("purpose"), type(exc).__name__, exc)
        return None
    if "error" in answer:
        log.info("daemon %s answered %s; doing it here", request.get("purpose"), answer["error"])
        return None
    return answer


def daemon_search(
    socket_path: Path,
    query: str,
    project: str | None,
    *,
    k: int = 8,
    kinds: list[str] | None = None,
    detail: bool = False,
    timeout: float = SEARCH_TIMEOUT_S,
) -> dict[str, Any] | None:
    """The daemon's answer (``{"mode", "note", "hits", ...}``), or None (see :func:`ask_daemon`)."""
    request: dict[str, object] = {
        "purpose": "memory_search",
        "q": query,
        "project": project,
        "k": k,
        "kinds": kinds,
        "detail": detail,
    }
    answer = ask_daemon(socket_path, request, timeout)
    if answer is None or not isinstance(answer.get("hits"), list):
        return None
    return answer


def daemon_stats(socket_path: Path, request: dict[str, object], timeout: float = STATS_TIMEOUT_S) -> Any:
    """``headroom stats``'s rows (and the proxy's summary) from the daemon, or None (see :func:`ask_daemon`)."""
    answer = ask_daemon(socket_path, {"purpose": "stats_rows", **request}, timeout)
    if answer is None or not isinstance(answer.get("rows"), list):
        return None
    return answer
