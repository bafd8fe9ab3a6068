"""The memory tools of the MCP server: ``memory_search``, ``memory_get``, ``memory_save``, for every agent.

The project is the git root of the directory the agent started the server in (each agent starts its MCP
servers in the session's working directory): a tool call sees that project's items and global ones, never
another project's. Search goes to the running daemon over its owner-only local socket (daemon/local_client.py;
there whether or not the proxy is enabled), which has the embedding model loaded once for everyone; without a
daemon the server searches full-text on its own rather than loading a model into every agent's MCP process.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from headroom.engine.ccr import grep_lines, parse_line_range, slice_lines
from headroom.engine.errors import HeadroomError

if TYPE_CHECKING:
    from headroom.daemon.config import Config
    from headroom.memory.api import Memory
    from headroom.memory.db import Database

log = logging.getLogger("headroom.mcp")

GET_MAX_CHARS = 60_000
#: Bounds on what a tool call may ask for: a query is matched word by word against every line, so its size
#: is the cost (a 200,000-word query ran for minutes); ids are SQLite integers.
MAX_QUERY = 2_000
MAX_QUERY_TERMS = 32
MAX_ID = 2**63 - 1


def check_query(query: str | None) -> None:
    """Refuse a query too long to answer quickly, with a message the model can act on."""
    if not query:
        return
    if len(query) > MAX_QUERY:
        raise HeadroomError(f"query is {len(query):,} characters; at most {MAX_QUERY:,}: ask for a few words")
    terms = len(query.split())
    if terms > MAX_QUERY_TERMS:
        raise HeadroomError(f"query has {terms:,} words; at most {MAX_QUERY_TERMS}: ask for the few that matter")


SEARCH_DESCRIPTION = """Search what the agents (Claude Code, Codex, Gemini CLI) read, ran, fetched, decided and \
were asked in this project: files, command outputs, docs, decisions, lessons, user instructions.

Call this before re-reading a large file or re-running a slow command another session may already have \
seen, or to find what was decided earlier. Results are items with an id, title (a path, a command), who saw \
them and when, and a snippet; `memory_get` gives an item back in full. With an empty `query` you get the \
project briefing: what happened here lately."""

GET_DESCRIPTION = """Get a memory item in full by its id (from memory_search or the briefing), with who saw \
it, where and when. For a large item pass `lines` ("120-160") or `query` (words to find) instead of reading \
it whole."""

SAVE_DESCRIPTION = """Save a short note for every later session of any agent in this project: a decision \
("we use uv, not pip"), a lesson ("run tests with `make test`, not pytest directly"), or an instruction the \
user gave that should outlast this session. Secrets are redacted before anything is stored. Set \
`global_scope` only for notes that hold for every project of this user."""


class MemoryTools:
    """Tool bodies over the memory, apart from the SDK (sync; the SDK runs them on worker threads)."""

    def __init__(
        self, config: Config, database: Callable[[], Database], cwd: str | None = None, project: str | None = None
    ) -> None:
        from headroom.learn.projects import project_of

        self.config = config
        self.database = database
        self.project = project if project is not None else project_of(cwd or os.getcwd())
        self._memory: Memory | None = None
        self._lock = threading.Lock()

    def memory(self) -> Memory:
        with self._lock:
            if self._memory is None:
                from headroom.memory.api import Memory

                self._memory = Memory(self.database())
            return self._memory

    def _feed(self) -> None:
        """Bring the store up to date with the session mirror (cheap; the daemon usually already has)."""
        from headroom.daemon.memory_feed import MemoryFeed

        try:
            MemoryFeed(self.memory().store).run(max_batches=20)
        except Exception as exc:  # a busy DB must not fail a search: answer from what is there
            log.warning("memory feed skipped: %s: %s", type(exc).__name__, exc)

    def search(self, query: str, k: int = 8, kinds: list[str] | None = None) -> dict[str, Any]:
        """Items of this project for ``query``; the briefing when ``query`` is empty."""
        from headroom.daemon.memory_service import search_payload
        from headroom.memory.briefing import build_briefing

        if not self.config.memory.enabled:
            raise HeadroomError("the shared memory is disabled in headroom's config ([memory] enabled = false)")
        check_query(query)
        if not query.strip():
            self._feed()
            text = build_briefing(
                self.memory().store, self.project, max_bytes=int(self.config.memory.briefing_kb * 1000)
            )
            return {"project": self.project, "briefing": text or "nothing is known about this project yet"}
        via_daemon = self._daemon_search(query, k, kinds)
        if via_daemon is not None:
            return via_daemon
        self._feed()
        out = search_payload(self.memory(), query, self.project, k=k, kinds=kinds)
        out["note"] = "full-text search only (start the daemon for semantic search: headroom daemon run)"
        return out

    def _daemon_search(self, query: str, k: int, kinds: list[str] | None) -> dict[str, Any] | None:
        from headroom.daemon.local_client import daemon_search

        return daemon_search(self.config.paths.hooks_socket, query, self.project, k=k, kinds=kinds, timeout=10.0)

    def get(self, item_id: int, lines: str | None = None, query: str | None = None) -> str:
        """An item of this project (or a global one) in full, or the given lines of it, or the lines matching."""
        check_query(query)
        if not 1 <= item_id <= MAX_ID:
            raise HeadroomError(f"no memory item #{item_id}")
        item = self.memory().get(item_id, project=self.project)
        if item is None:
            raise HeadroomError(f"no memory item #{item_id} in this project ({self.project or 'no project'})")
        item = item.scoped(self.project)
        text = item.content
        if lines:
            try:
                span = parse_line_range(lines)
            except ValueError as exc:
                raise HeadroomError(f"lines: {exc}") from None
            if span is not None:
                text = slice_lines(text, *span)
        if query:
            text = grep_lines(text, query)
        seen = "; ".join(f"{s.agent or s.source} {s.ts:%Y-%m-%d %H:%M}" for s in item.sightings[-5:])
        head = f"#{item.id} {item.kind}: {item.title or ''}\nseen: {seen or 'saved'}"
        if item.status == "superseded":
            head += f"\nan older version; newer: {', '.join(f'#{i}' for i in item.superseded_by)}"
        if item.ref:
            head += f"\nstored by reference (an excerpt of {item.size:,} characters): {item.ref}"
        if len(text) > GET_MAX_CHARS:
            text = text[:GET_MAX_CHARS] + f"\n[… {len(text) - GET_MAX_CHARS:,} more characters: pass lines or query]"
        return f"{head}\n\n{text}"

    def save(self, content: str, kind: str = "decision", title: str | None = None, global_scope: bool = False) -> str:
        from headroom.memory.kinds import KINDS

        if kind not in KINDS:
            raise HeadroomError(f"kind must be one of {', '.join(KINDS)}")
        result = self.memory().put(
            content,
            kind,
            project=self.project,
            title=title,
            global_scope=global_scope,
            source="mcp",
            agent=os.environ.get("HEADROOM_AGENT", ""),
        )
        if result.item_id is None:
            raise HeadroomError(f"not saved: {result.skipped}")
        note = f"; {result.redactions} secret(s) redacted" if result.redactions else ""
        return f"saved as #{result.item_id}" + ("" if result.created else " (already known)") + note
