"""Asking the running daemon to search the memory, over its local socket (daemon/hooks/server.py).

The daemon keeps the embedding model loaded once for everyone; a CLI or an MCP server that loaded its own
would pay seconds of torch import and hundreds of MB each time (``headroom memory search`` took 20 s that
way). So both ask the daemon first, through the owner-only Unix socket it serves whenever it runs (with or
without the proxy), and do the work themselves only when no daemon answers: no socket, nobody listening, a
timeout, or an answer that says it could not search (memory disabled there, a bad request).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("headroom.memory")

#: The daemon's first search may load the model (seconds on a busy machine); later ones take milliseconds.
SEARCH_TIMEOUT_S = 60.0


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
    """The daemon's answer (``{"mode", "note", "hits", ...}``), or None when there is no daemon to ask or it
    could not answer (the reason is logged at info level: falling back is normal, not an error)."""
    from headroom.daemon.hooks.client import ask

    if not socket_path.exists():
        return None
    request: dict[str, object] = {
        "purpose": "memory_search",
        "q": query,
        "project": project,
        "k": k,
        "kinds": kinds,
        "detail": detail,
    }
    try:
        answer = ask(str(socket_path), request, timeout)
    except (OSError, ValueError) as exc:  # nobody listening, a timeout, a truncated answer
        log.info("daemon memory search unavailable (%s: %s); searching here", type(exc).__name__, exc)
        return None
    if "error" in answer or not isinstance(answer.get("hits"), list):
        log.info("daemon memory search answered %s; searching here", answer.get("error", "without hits"))
        return None
    return answer
