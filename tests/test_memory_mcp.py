"""The memory tools of ``headroom mcp serve`` (memory_search, memory_get, memory_save), end to end.

Each agent starts its MCP server in the session's working directory, and that directory's git root is the
project: an item saved from one project's server must never be readable from another's, while a
``global_scope`` note is for all of them. Search prefers the running daemon (its embedding model is loaded
once, for everyone), reached through the URL and token in the owner-only proxy state file; without a daemon,
or with a token the daemon refuses, the server searches full-text on its own and says so.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession
from mcp.types import CallToolResult, TextContent

from headroom.daemon.config import Config, load_config
from headroom.daemon.hooks.answers import HookAnswers
from headroom.daemon.hooks.client import ask
from headroom.daemon.hooks.server import HookServer
from headroom.daemon.local_client import daemon_search
from headroom.daemon.mcp.memory_tools import MemoryTools
from headroom.daemon.memory_service import socket_search
from headroom.engine.errors import HeadroomError
from headroom.memory.api import Memory
from headroom.memory.db import Database
from headroom.memory.embed import HashEmbedder
from tests.test_mcp import serve_mcp

pytestmark = pytest.mark.both_backends  # each test runs on SQLite and on PostgreSQL (marked pg, slow)

#: An AWS access key id, built so that no scanner flags this file.
AWS_KEY = "AKIA" + "QWERTYUIOPASDFGH"


def _git_project(path: Path) -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True, capture_output=True)
    return path


def _text(result: CallToolResult) -> str:
    item = result.content[0]
    assert isinstance(item, TextContent)
    return item.text


async def _call(session: ClientSession, tool: str, **arguments: Any) -> CallToolResult:
    return await session.call_tool(tool, arguments)


async def _ok(session: ClientSession, tool: str, **arguments: Any) -> str:
    result = await _call(session, tool, **arguments)
    assert not result.is_error, _text(result)
    return _text(result)


def _saved_id(reply: str) -> int:
    found = re.match(r"saved as #(\d+)", reply)
    assert found, reply
    return int(found.group(1))


def _lesson() -> str:
    return "".join(
        f"step {i}: {'run uv sync before the tests' if i == 7 else f'check item {i}'}\n" for i in range(1, 13)
    )


@pytest.mark.slow
def test_memory_tools_over_stdio_are_scoped_to_the_servers_project(isolated_home: Path, tmp_path: Path) -> None:
    shop = _git_project(tmp_path / "shop")
    (shop / "src").mkdir()
    blog = _git_project(tmp_path / "blog")
    ids: dict[str, int] = {}
    lesson = _lesson()

    async def in_shop(session: ClientSession) -> None:
        saved = await _ok(
            session,
            "memory_save",
            content=f"Deploy the shop with make deploy-staging; the CI key is {AWS_KEY}.",
            title="shop deploy",
        )
        assert "1 secret(s) redacted" in saved
        ids["deploy"] = _saved_id(saved)
        ids["lesson"] = _saved_id(await _ok(session, "memory_save", content=lesson, kind="lesson", title="setup"))
        ids["global"] = _saved_id(
            await _ok(
                session,
                "memory_save",
                content="Always write commit messages in English.",
                kind="instruction",
                global_scope=True,
            )
        )
        again = await _ok(
            session, "memory_save", content=f"Deploy the shop with make deploy-staging; the CI key is {AWS_KEY}."
        )
        assert _saved_id(again) == ids["deploy"] and "already known" in again

        found = json.loads(await _ok(session, "memory_search", query="deploy staging"))
        assert found["project"] == str(shop)
        assert found["mode"] == "text" and "full-text" in found["note"]  # no daemon: searched here
        assert [hit["id"] for hit in found["hits"]] == [ids["deploy"]]
        assert AWS_KEY not in json.dumps(found)

        whole = await _ok(session, "memory_get", id=ids["deploy"])
        head, _, body = whole.partition("\n\n")
        assert head.startswith(f"#{ids['deploy']} decision: shop deploy")
        assert re.search(r"^seen: claude \d{4}-\d\d-\d\d \d\d:\d\d$", head, re.M), head  # provenance
        assert "make deploy-staging" in body and "[REDACTED" in body and AWS_KEY not in whole

        span = await _ok(session, "memory_get", id=ids["lesson"], lines="2-3")
        assert span.partition("\n\n")[2] == "step 2: check item 2\nstep 3: check item 3\n"
        hits = await _ok(session, "memory_get", id=ids["lesson"], query="uv sync")
        assert "7: step 7: run uv sync before the tests" in hits and "step 12" not in hits

        unknown = await _call(session, "memory_get", id=987654)
        assert unknown.is_error and "no memory item #987654" in _text(unknown)
        bad_lines = await _call(session, "memory_get", id=ids["lesson"], lines="x-y")
        assert bad_lines.is_error
        bad_kind = await _call(session, "memory_save", content="a note", kind="gossip")
        assert bad_kind.is_error and "kind must be one of" in _text(bad_kind)

        briefing = json.loads(await _ok(session, "memory_search", query=""))
        assert briefing["project"] == str(shop)
        assert str(shop) in briefing["briefing"] and f"#{ids['deploy']}" in briefing["briefing"]
        assert AWS_KEY not in briefing["briefing"]

    async def in_blog(session: ClientSession) -> None:
        nothing = json.loads(await _ok(session, "memory_search", query="deploy staging"))
        assert nothing["project"] == str(blog) and nothing["hits"] == []
        for item in (ids["deploy"], ids["lesson"]):
            hidden = await _call(session, "memory_get", id=item)
            assert hidden.is_error and f"no memory item #{item} in this project" in _text(hidden)
        shared = json.loads(await _ok(session, "memory_search", query="commit messages English"))
        assert [hit["id"] for hit in shared["hits"]] == [ids["global"]]
        assert "Always write commit messages in English." in await _ok(session, "memory_get", id=ids["global"])
        briefing = json.loads(await _ok(session, "memory_search", query=""))["briefing"]
        assert "deploy-staging" not in briefing

    serve_mcp(isolated_home, shop / "src", in_shop, "claude")  # started in a subfolder: the project is the root
    serve_mcp(isolated_home, blog, in_blog, "codex")


# -- the daemon's local socket, in process ------------------------------------------------------------------


@pytest.fixture
def config(isolated_home: Path) -> Config:
    cfg = load_config()
    cfg.paths.ensure()
    return cfg


@pytest.fixture
def daemon(config: Config, db: Database) -> Iterator[HookServer]:
    """The daemon's local socket answering ``memory_search`` with its own memory (hash embeddings)."""
    memory = Memory(db, embedder=HashEmbedder())
    answers = HookAnswers(lambda: config, db, memory)
    server = HookServer(answers, config.paths.hooks_socket, {"memory_search": socket_search(memory)})
    server.start()
    try:
        yield server
    finally:
        server.stop()
        memory.close()


def test_search_goes_to_the_daemon_and_falls_back_when_it_cannot_answer(
    config: Config, db: Database, daemon: HookServer, tmp_path: Path
) -> None:
    shop, blog = _git_project(tmp_path / "shop"), _git_project(tmp_path / "blog")
    tools = MemoryTools(config, lambda: db, cwd=str(shop))
    assert tools.project == str(shop)
    own = _saved_id(tools.save("Deploy the shop with make deploy-staging.", title="shop deploy"))
    MemoryTools(config, lambda: db, cwd=str(blog)).save("Deploy the blog by pushing gh-pages.", title="blog")

    assert not config.paths.proxy_state.exists()  # no proxy at all: the socket is enough
    via_daemon = tools.search("deploy staging")
    assert via_daemon["mode"] == "hybrid" and via_daemon["note"] is None  # the daemon's answer, not the fallback
    assert via_daemon["project"] == str(shop)
    assert [hit["id"] for hit in via_daemon["hits"]] == [own]  # the daemon scopes to the caller's project too

    daemon.requests.clear()  # a daemon with the memory disabled: it answers an error, the tool searches itself
    local = tools.search("deploy staging")
    assert local["mode"] == "text" and "full-text" in local["note"]
    assert [hit["id"] for hit in local["hits"]] == [own]


def test_bad_requests_on_the_socket_get_an_error_not_a_hang(config: Config, daemon: HookServer) -> None:
    path = str(config.paths.hooks_socket)
    for bad in (
        {"purpose": "memory_search"},
        {"purpose": "memory_search", "q": "   "},
        {"purpose": "memory_search", "q": "x", "k": "ten"},
        {"purpose": "memory_search", "q": "x", "k": 10_000},
        {"purpose": "memory_search", "q": "x", "project": 3},
        {"purpose": "memory_search", "q": "x", "kinds": "file_read"},
    ):
        answer = ask(path, bad, 10.0)
        assert set(answer) == {"error"} and answer["error"], bad
    assert daemon_search(config.paths.hooks_socket, "", None) is None


def test_search_falls_back_when_the_daemon_is_gone(config: Config, db: Database, tmp_path: Path) -> None:
    shop = _git_project(tmp_path / "shop")
    tools = MemoryTools(config, lambda: db, cwd=str(shop))
    tools.save("Deploy the shop with make deploy-staging.")
    # A socket file left by a daemon that died: nothing listens on it.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(config.paths.hooks_socket))
    stale.close()
    assert config.paths.hooks_socket.exists()
    result = tools.search("deploy")
    assert result["mode"] == "text" and len(result["hits"]) == 1

    off = MemoryTools(replace(config, memory=replace(config.memory, enabled=False)), lambda: db, cwd=str(shop))
    with pytest.raises(HeadroomError, match="disabled"):
        off.search("deploy")


def test_the_daemon_finds_an_item_saved_after_its_last_search(
    config: Config, db: Database, daemon: HookServer, tmp_path: Path
) -> None:
    shop = _git_project(tmp_path / "shop")
    tools = MemoryTools(config, lambda: db, cwd=str(shop))  # its own Memory, as in an MCP server process
    tools.save("Deploy the shop with make deploy-staging.", title="shop deploy")
    assert len(tools.search("deploy")["hits"]) == 1  # the daemon has now searched this project once
    later = _saved_id(tools.save("The release train leaves on Thursdays.", title="release"))
    fresh = Memory(db).search("release train Thursdays", project=str(shop))
    assert [hit.item.id for hit in fresh.hits] == [later]  # a fresh reader sees it
    via_daemon = tools.search("release train Thursdays")
    assert via_daemon["mode"] == "hybrid"
    assert later in [hit["id"] for hit in via_daemon["hits"]]
