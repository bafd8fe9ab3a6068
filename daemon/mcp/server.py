"""headroom's MCP server: the tools an agent calls to get elided text back, compress text, see savings, and
search, read and add to the shared memory of all agents (:mod:`~headroom.daemon.mcp.memory_tools`).

The proxy replaces what it leaves out of a tool result with a marker such as
``[41 lines elided; retrieve hr:3f9a1c2b7d10:120-160]``. The agent gets the original back by calling
``headroom_retrieve`` with that reference, like any other tool, so streams stay streams and nothing is lost.
The server reads the same file CCR store the proxy and ``headroom compress`` write (``<data dir>/ccr``),
so it works with or without the daemon running.

It speaks MCP over stdio through the official SDK's ``MCPServer``: tools are plain functions whose
signatures become the input schemas. stdout is the protocol, so logs go to stderr (the SDK also points fd 1
at stderr while serving, so a stray print cannot corrupt a frame). The engine and the database are
imported and opened on first use, so an agent that starts the server at launch does not wait for them.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from headroom.daemon.mcp.memory_tools import (
    GET_DESCRIPTION,
    MAX_ID,
    MAX_QUERY,
    SAVE_DESCRIPTION,
    SEARCH_DESCRIPTION,
    MemoryTools,
    check_query,
)
from headroom.engine.errors import HeadroomError

if TYPE_CHECKING:
    from headroom.daemon.config import Config
    from headroom.engine import CCRStore
    from headroom.memory.db import Database

log = logging.getLogger("headroom.mcp")

INSTRUCTIONS = (
    "headroom shortens large tool results (logs, JSON, search results, files) before they reach you. What it "
    "leaves out is replaced by a marker like `[41 lines elided; retrieve hr:3f9a1c2b7d10:120-160]`. When you "
    "need the elided part, call headroom_retrieve with the `hr:...` reference from the marker; ask for a line "
    "range or a query rather than a whole large original."
)

RETRIEVE_DESCRIPTION = """Get back the original text that headroom elided from a tool result.

Call this when a tool result contains a marker such as `[41 lines elided; retrieve hr:3f9a1c2b7d10:120-160]` \
or `[original JSON; retrieve hr:3f9a1c2b7d10]` and you need what it stands for. Pass the `hr:...` reference \
exactly as the marker shows it. With neither `lines` nor `query` you get the whole original, byte-exact; \
`lines="120-160"` returns only those lines of the original (1-based, inclusive; overrides a range in the \
reference); `query="timeout refused"` returns the numbered lines that contain any of those words, with one \
line of context. For a large original prefer `lines` or `query`."""

COMPRESS_DESCRIPTION = """Compress a large text (a log, JSON, command output, search results, a source file) \
so it takes fewer tokens to read.

Call this before reading a big blob you produced or received yourself that did not go through headroom's \
proxy. The text comes back shortened by a compressor for its kind; what was left out is replaced by \
`retrieve hr:...` markers that headroom_retrieve expands, so nothing is lost. Pass `question` (what you need \
the text for) to keep the relevant parts in full. A second block gives tokens before and after."""

STATS_DESCRIPTION = """How many tokens headroom has saved and where the agents' tokens go, as JSON.

Call this when the user asks about headroom, token savings, or token usage and tool failures of recent \
agent sessions. `proxy` has the compressing proxy's totals per agent (tokens before/after, requests, \
added latency); `sessions` has per-agent session totals (tokens, tool calls, failures) from the agents' logs."""

MAX_REF = 100  # a reference or a line range is a few dozen characters
MAX_DAYS = 36_500

_SESSION_FIELDS = (
    "sessions",
    "turns",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "total_tokens",
    "tool_calls",
    "failed_tool_calls",
)


class Tools:
    """The tool bodies, apart from the SDK: plain methods that raise ``HeadroomError`` for the caller's mistakes.

    Sync on purpose: the SDK runs sync tools on a worker thread, so a long compression does not stall the
    protocol. The database is opened once, on the first ``stats`` call, and shared by those threads.
    """

    def __init__(self, config: Config, cwd: str | None = None) -> None:
        from headroom.learn.projects import project_of

        self.config = config
        #: The project this server works for (the git root of where the agent started it), as memory_get has.
        self.project = project_of(cwd or os.getcwd())
        self._db: Database | None = None
        self._lock = threading.Lock()

    @cached_property
    def store(self) -> CCRStore:
        """The CCR store as this project sees it: originals the proxy or this server recorded for another
        project are not found here (see :mod:`headroom.memory.ccr_store`)."""
        from headroom.memory.ccr_store import FileCCRStore

        store = FileCCRStore(self.config.paths.ccr_dir)
        return store.scoped(self.project) if self.project else store

    def retrieve(self, ref: str, query: str | None = None, lines: str | None = None) -> str:
        """The original behind ``ref``: whole, lines ``"a-b"`` of it, or the lines matching ``query``."""
        from headroom.engine import RetrievalError, parse_line_range, retrieve

        try:
            span = parse_line_range(lines or None)
        except ValueError as exc:
            raise RetrievalError(f"lines: {exc}") from None
        check_query(query)
        return retrieve(ref, self.store, query=query or None, lines=span)

    def compress(self, content: str, question: str | None = None) -> tuple[str, str]:
        """``content`` compressed as one tool result, and a one-line summary of what it saved."""
        from headroom.engine import compress_text, summary_line

        self.config.paths.ensure()  # owner-only data dir before any original is written
        text, result = compress_text(content, question=question or None, store=self.store, config=self.config.engine)
        return text, "headroom: " + summary_line(result, "headroom_retrieve hr:<id>")

    def database(self) -> Database:
        with self._lock:
            if self._db is None:
                from headroom.memory.db import open_database

                self.config.paths.ensure()
                self._db = open_database(self.config.database_url)
            return self._db

    def stats(self, days: int | None = None) -> dict[str, Any]:
        """Proxy savings and per-agent session totals, over the last ``days`` days (``None``: all time)."""
        from headroom.daemon import analytics

        db = self.database()
        out: dict[str, Any] = {}
        try:
            from headroom.daemon.proxy.stats import proxy_summary

            out["proxy"] = proxy_summary(db, days=days)
        except Exception as exc:  # one half failing (say, an older schema) must not hide the other
            log.warning("proxy stats failed: %s: %s", type(exc).__name__, exc)
            out["proxy"] = {"error": f"{type(exc).__name__}: {exc}"}
        since = None if days is None else datetime.now(timezone.utc).date() - timedelta(days=days)
        with db.sessions() as dbs:
            rows = analytics.token_rows(dbs, "agent", analytics.Filters(since=since))
        agents = {row["agent"]: {k: row[k] for k in (*_SESSION_FIELDS, "failure_rate") if k in row} for row in rows}
        summed = analytics.totals(rows)
        out["sessions"] = {
            "days": days,
            "agents": agents,
            "total": {k: summed.get(k, 0) for k in _SESSION_FIELDS},
            "note": "as of the last ingest (the daemon keeps it current; `headroom ingest` catches up)",
        }
        return out

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def build_server(tools: Tools) -> MCPServer[Any]:
    """An ``MCPServer`` with headroom's three tools bound to ``tools``."""
    server: MCPServer[Any] = MCPServer(
        name="headroom",
        title="headroom",
        instructions=INSTRUCTIONS,
        version=_version(),
        log_level="WARNING",  # the SDK's INFO lines would fill the agent's MCP log with every call
    )
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    def headroom_retrieve(
        ref: Annotated[
            str, Field(max_length=MAX_REF, description="The reference from the marker: hr:<12 hex>[:first-last].")
        ],
        query: Annotated[
            str | None, Field(max_length=MAX_QUERY, description="Only lines containing any of these words (numbered).")
        ] = None,
        lines: Annotated[
            str | None, Field(max_length=MAX_REF, description='Only these lines of the original, e.g. "120-160".')
        ] = None,
    ) -> str:
        try:
            return tools.retrieve(ref, query, lines)
        except (HeadroomError, ValueError, OverflowError) as exc:  # unknown id, bad range: the model can fix it
            raise ToolError(str(exc)) from None

    def headroom_compress(
        content: Annotated[str, Field(description="The text to compress.")],
        question: Annotated[str | None, Field(description="What you need the text for.")] = None,
    ) -> CallToolResult:
        try:
            text, summary = tools.compress(content, question)
        except (HeadroomError, ValueError, OverflowError) as exc:
            raise ToolError(str(exc)) from None
        return CallToolResult(content=[TextContent(text=text), TextContent(text=summary)])

    def headroom_stats(
        days: Annotated[
            int | None, Field(ge=1, le=MAX_DAYS, description="Only the last N days (default: all time).")
        ] = None,
    ) -> str:
        try:
            return orjson.dumps(tools.stats(days), option=orjson.OPT_INDENT_2, default=str).decode()
        except (HeadroomError, ValueError, OverflowError) as exc:
            raise ToolError(str(exc)) from None

    server.add_tool(headroom_retrieve, description=RETRIEVE_DESCRIPTION, annotations=read_only, structured_output=False)
    server.add_tool(
        headroom_compress,
        description=COMPRESS_DESCRIPTION,
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False),
        structured_output=False,
    )
    server.add_tool(headroom_stats, description=STATS_DESCRIPTION, annotations=read_only, structured_output=False)
    _add_memory_tools(server, MemoryTools(tools.config, tools.database, project=tools.project), read_only)
    return server


def _add_memory_tools(server: MCPServer[Any], tools: MemoryTools, read_only: ToolAnnotations) -> None:
    def memory_search(
        query: Annotated[
            str,
            Field(
                max_length=MAX_QUERY, description="What to look for (words, a path, a command); empty: the briefing."
            ),
        ],
        k: Annotated[int, Field(ge=1, le=50, description="How many items.")] = 8,
        kinds: Annotated[
            list[str] | None,
            Field(description="Only these kinds: file_read, tool_output, fetched_doc, decision, instruction, lesson."),
        ] = None,
    ) -> str:
        try:
            return orjson.dumps(tools.search(query, k, kinds), option=orjson.OPT_INDENT_2).decode()
        except (HeadroomError, ValueError, OverflowError) as exc:
            raise ToolError(str(exc)) from None

    def memory_get(
        id: Annotated[
            int, Field(ge=1, le=MAX_ID, description="The item id (#123 in the briefing, id in search results).")
        ],
        lines: Annotated[str | None, Field(max_length=MAX_REF, description='Only these lines, e.g. "120-160".')] = None,
        query: Annotated[
            str | None, Field(max_length=MAX_QUERY, description="Only the lines containing any of these words.")
        ] = None,
    ) -> str:
        try:
            return tools.get(id, lines, query)
        except (HeadroomError, ValueError, OverflowError) as exc:
            raise ToolError(str(exc)) from None

    def memory_save(
        content: Annotated[str, Field(description="The note, in one or a few sentences.")],
        kind: Annotated[str, Field(description="decision, lesson or instruction.")] = "decision",
        title: Annotated[str | None, Field(description="A short title.")] = None,
        global_scope: Annotated[bool, Field(description="True: for every project, not only this one.")] = False,
    ) -> str:
        try:
            return tools.save(content, kind, title, global_scope)
        except (HeadroomError, ValueError, OverflowError) as exc:
            raise ToolError(str(exc)) from None

    server.add_tool(memory_search, description=SEARCH_DESCRIPTION, annotations=read_only, structured_output=False)
    server.add_tool(memory_get, description=GET_DESCRIPTION, annotations=read_only, structured_output=False)
    server.add_tool(
        memory_save,
        description=SAVE_DESCRIPTION,
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False),
        structured_output=False,
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("headroom")
    except PackageNotFoundError:  # pragma: no cover - a source checkout without an install
        return "0"


def serve(config: Config) -> None:
    """Serve the tools over stdin/stdout until the client closes the connection."""
    tools = Tools(config)
    try:
        log.info("headroom MCP server started (CCR store %s)", config.paths.ccr_dir)
        build_server(tools).run("stdio")
    finally:
        tools.close()
        log.info("headroom MCP server stopped")


__all__ = ["Tools", "build_server", "serve"]
