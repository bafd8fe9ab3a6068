"""The proxy's side of the shared memory: which project a request is from, the block memo, ``/memory/search``.

The point of the block memo is that Claude Code, Codex and Gemini CLI working on one project get the *same
bytes* (and the same ``hr:`` ids) for the same file or command output, whatever wire format carries it, and
that a restarted daemon keeps serving them; a request from another project must never see that memo. These
tests drive the real proxy app (a real SQLite DB, a :class:`DBBlockMemo`, the file CCR store) in front of the
fake provider, and read back what the "provider" received.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_provider import FakeProvider, Served
from sqlalchemy import select
from websockets.sync.client import connect

from headroom.daemon.config import Config, load_config
from headroom.daemon.mcp.server import Tools
from headroom.daemon.memory_service import search_endpoint
from headroom.daemon.proxy.app import ProxyApp
from headroom.daemon.proxy.project import find_cwd, request_project
from headroom.daemon.proxy.server import build_app
from headroom.engine import RetrievalError, find_refs, memo_key, retrieve
from headroom.learn.projects import project_of
from headroom.memory.api import Memory
from headroom.memory.ccr_store import FileCCRStore
from headroom.memory.db import Database, open_database
from headroom.memory.embed import HashEmbedder
from headroom.memory.memo_store import DBBlockMemo
from headroom.memory.models import BlockMemoRow

# -- which project a request comes from ------------------------------------------------------------------------

#: The route key of each recorded request kind (the second word of a fixture's file name).
_KEYS = {"anthropic": "messages", "openai": "input", "gemini": "contents"}

#: How each agent announces its working directory, written independently of the product's own patterns so
#: the expectation comes from the request text rather than from the code under test.
_ANNOUNCEMENTS = (
    re.compile(r"Primary working directory: (/\S+)"),
    re.compile(r"<cwd>(/[^<]+)</cwd>"),
    re.compile(r"Workspace Directories:\**\s*\n\s*- (/\S+)"),
)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def _announced(body: dict[str, Any]) -> set[str]:
    """Every working directory the request text announces, anywhere in the body."""
    found: set[str] = set()
    for text in _strings(body):
        for pattern in _ANNOUNCEMENTS:
            found.update(m.group(1).rstrip("/") for m in pattern.finditer(text))
    return found


def _recorded(shared: Path, agent: str, variant: str) -> list[tuple[str, dict[str, Any], str]]:
    """(name, body, route key) of every recorded request of ``agent`` in scenario folders of ``variant``."""
    out = []
    for folder in sorted((shared / "fixtures" / "requests" / agent).iterdir()):
        if not folder.is_dir() or folder.name.partition(".")[2] != variant:
            continue
        for path in sorted(folder.glob("*.json")):
            if path.name.endswith(".meta.json"):
                continue
            key = _KEYS[path.name.split("-")[1]]
            out.append((f"{folder.name}/{path.name}", json.loads(path.read_bytes()), key))
    return out


@pytest.mark.parametrize(
    ("agent", "variant"),
    [
        ("claude", ""),
        ("claude", "default-env"),
        ("codex", ""),
        # Code mode and WebSocket put the environment context after additional_tools and four developer
        # messages: the scan must reach past the first few input items.
        ("codex", "code-mode"),
        ("codex", "websocket"),
        ("gemini", ""),
    ],
)
def test_the_cwd_each_agent_announces_in_its_recorded_requests(shared: Path, agent: str, variant: str) -> None:
    requests = _recorded(shared, agent, variant)
    assert requests, f"no recorded requests for {agent} {variant or '(plain)'}"
    scenarios: dict[str, int] = {}
    for name, body, key in requests:
        announced = _announced(body)
        assert len(announced) <= 1, f"{name} announces several directories: {announced}"
        expected = next(iter(announced), None)
        assert find_cwd(body, key) == expected, name
        assert request_project(body, key) == (project_of(expected) if expected else None), name
        folder = name.split("/")[0]
        scenarios[folder] = scenarios.get(folder, 0) + (expected is not None)
        if expected is not None:
            assert "/tmp/agent-home-" in expected, name  # where the fixtures were recorded
    # Every scenario says where the agent works at least once (side requests, count_tokens and later
    # WebSocket turns need not: a connection keeps the project its first turn named).
    assert all(scenarios.values()), scenarios


def test_a_body_without_an_announcement_has_no_project() -> None:
    plain = {"model": "m", "messages": [{"role": "user", "content": "cd /srv/app and run the tests"}]}
    assert find_cwd(plain, "messages") is None
    assert request_project(plain, "messages") is None
    assert find_cwd({}, None) is None
    assert find_cwd({"input": "not a list"}, "input") is None


def test_the_project_is_the_git_root_of_the_announced_cwd(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    (root / ".git").mkdir(parents=True)
    (root / "src" / "api").mkdir(parents=True)
    body = {"system": f"You are Claude Code.\nPrimary working directory: {root / 'src' / 'api'}\n", "messages": []}
    assert find_cwd(body, "messages") == str(root / "src" / "api")
    assert request_project(body, "messages") == str(root)
    # A directory that does not exist here (logs from another machine) is kept as announced.
    gone = {"input": [_env_context("/nowhere/checkout/")]}
    assert request_project(gone, "input") == "/nowhere/checkout"


# -- requests as each agent shapes them -----------------------------------------------------------------------


def _records(n: int = 300) -> str:
    rows = [
        {"id": i, "name": f"user{i}", "email": f"user{i}@example.com", "active": i % 3 != 0, "score": i * 7 % 101}
        for i in range(n)
    ]
    return json.dumps(rows, indent=2)


def _log(n: int = 900) -> str:
    return "".join(
        f"2026-11-20 08:{i // 60 % 60:02d}:{i % 60:02d} "
        + ("ERROR db pool exhausted after 30000 ms\n" if i == 450 else f"INFO served request {i} in {i % 17} ms\n")
        for i in range(n)
    )


def _env_context(cwd: str) -> dict[str, Any]:
    text = f"<environment_context>\n  <cwd>{cwd}</cwd>\n  <shell>bash</shell>\n</environment_context>"
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def _claude(cwd: Path | None, question: str, outputs: list[str]) -> dict[str, Any]:
    """A Claude Code request: the cwd in the system prompt, one Bash call per output."""
    system = "You are Claude Code, Anthropic's official CLI for Claude.\n"
    if cwd is not None:
        system += f"<env>\nPrimary working directory: {cwd}\nIs a git repository: true\n</env>"
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    for i, output in enumerate(outputs):
        call = {"type": "tool_use", "id": f"toolu_{i}", "name": "Bash", "input": {"command": f"cat data{i}.json"}}
        messages.append({"role": "assistant", "content": [call]})
        messages.append(
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": output}]}
        )
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "system": [{"type": "text", "text": system}],
        "messages": messages,
    }


def _codex(cwd: Path, question: str, output: str) -> dict[str, Any]:
    """A Codex request (OpenAI Responses): developer message, environment context, question, call, output."""
    developer = {
        "type": "message",
        "role": "developer",
        "content": [
            {"type": "input_text", "text": "<permissions instructions>workspace-write</permissions instructions>"}
        ],
    }
    question_item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": question}]}
    arguments = json.dumps({"command": ["bash", "-lc", "cat users.json"], "workdir": str(cwd)})
    return {
        "model": "gpt-5.5",
        "instructions": "You are Codex, a coding agent.",
        "stream": False,
        "input": [
            developer,
            _env_context(str(cwd)),
            question_item,
            {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": arguments},
            {"type": "function_call_output", "call_id": "call_1", "output": output},
        ],
    }


def _gemini(cwd: Path, question: str, output: str) -> dict[str, Any]:
    """A Gemini CLI request: the workspace in the session context, a run_shell_command call and response."""
    context = f"<session_context>\nThis is the Gemini CLI.\n- **Workspace Directories:**\n  - {cwd}\n</session_context>"
    call = {"functionCall": {"name": "run_shell_command", "args": {"command": "cat users.json"}}}
    response = {"functionResponse": {"name": "run_shell_command", "response": {"output": output}}}
    return {
        "systemInstruction": {"parts": [{"text": "You are Gemini CLI."}]},
        "contents": [
            {"role": "user", "parts": [{"text": context}]},
            {"role": "user", "parts": [{"text": question}]},
            {"role": "model", "parts": [call]},
            {"role": "user", "parts": [response]},
        ],
    }


# -- the proxy with a real DB and a block memo ----------------------------------------------------------------


@dataclass
class MemoRig:
    """The fake provider, the config pointing at it, and a real DB; :meth:`proxy` serves a proxy in front."""

    fake: FakeProvider
    config: Config
    db: Database

    @contextmanager
    def proxy(self) -> Iterator[tuple[ProxyApp, DBBlockMemo, str]]:
        """A fresh proxy (new app, new memo object) over the same DB: also what a daemon restart looks like."""
        memo = DBBlockMemo(self.db)
        app = build_app(self.config, self.db, memo=memo)
        try:
            with Served(app) as served:
                yield app, memo, served.url
        finally:
            memo.close()
            if app.stats is not None:
                app.stats.close()

    def upstream(self) -> Any:
        return self.fake.received[-1].json()

    def memo_rows(self) -> list[tuple[str, str, str, str]]:
        with self.db.sessions() as s:
            rows = s.execute(select(BlockMemoRow.project, BlockMemoRow.key, BlockMemoRow.text, BlockMemoRow.entry_ids))
            return sorted((r.project, r.key, r.text, r.entry_ids) for r in rows)


@pytest.fixture
def rig() -> Iterator[MemoRig]:
    fake = FakeProvider()
    config = load_config()
    config.paths.ensure()
    with Served(fake) as upstream:
        proxy = replace(
            config.proxy,
            anthropic_upstream=upstream.url,
            openai_upstream=upstream.url,
            gemini_upstream=upstream.url,
        )
        config = replace(config, proxy=proxy)
        db = open_database(config.database_url)
        try:
            yield MemoRig(fake, config, db)
        finally:
            db.close()


@pytest.fixture
def projects(tmp_path: Path) -> tuple[Path, Path]:
    """Two git work trees, P and Q (each with a ``src`` folder an agent may be started in)."""
    out = []
    for name in ("project-p", "project-q"):
        root = tmp_path / name
        (root / ".git").mkdir(parents=True)
        (root / "src").mkdir()
        out.append(root)
    return out[0], out[1]


def _post_claude(url: str, body: dict[str, Any]) -> None:
    r = httpx.post(f"{url}/v1/messages", json=body, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"})
    assert r.status_code == 200, r.text


def _post_codex(url: str, body: dict[str, Any]) -> None:
    r = httpx.post(f"{url}/v1/responses", json=body, headers={"authorization": "Bearer k"})
    assert r.status_code == 200, r.text


def _post_gemini(url: str, body: dict[str, Any]) -> None:
    r = httpx.post(f"{url}/v1beta/models/gemini-2.5-pro:generateContent", json=body, headers={"x-goog-api-key": "k"})
    assert r.status_code == 200, r.text


def _claude_block(body: dict[str, Any], message: int = 2) -> str:
    text: str = body["messages"][message]["content"][0]["content"]
    return text


def _codex_block(body: dict[str, Any]) -> str:
    text: str = body["input"][-1]["output"]
    return text


def _gemini_block(body: dict[str, Any]) -> str:
    text: str = body["contents"][-1]["parts"][0]["functionResponse"]["response"]["output"]
    return text


def test_claude_codex_and_gemini_get_the_same_bytes_in_one_project(rig: MemoRig, projects: tuple[Path, Path]) -> None:
    p, _ = projects
    content = _records()
    with rig.proxy() as (_app, memo, url):
        # Claude Code started in a subfolder: the project is still the work tree's root.
        _post_claude(url, _claude(p / "src", "which users are inactive?", [content]))
        first = _claude_block(rig.upstream())
        refs = find_refs(first)
        assert refs and len(first) < len(content) / 2
        assert (memo.hits, memo.misses) == (0, 1)

        _post_codex(url, _codex(p, "what is the highest score?", content))
        assert _codex_block(rig.upstream()) == first  # byte-identical, same hr: ids
        _post_gemini(url, _gemini(p, "list the emails", content))
        assert _gemini_block(rig.upstream()) == first
        assert (memo.hits, memo.misses) == (2, 1)

        memo.writer.flush()
        ((project, key, text, entry_ids),) = rig.memo_rows()
        assert project == str(p)
        assert key == memo_key(content, rig.config.engine)
        assert text == first
        assert set(entry_ids.split()) == {r.id for r in refs}
    # Every id the shared text names redeems to the original from the store the MCP tool reads.
    store = FileCCRStore(rig.config.paths.ccr_dir)
    assert content in {retrieve(f"hr:{r.id}", store) for r in refs}


def test_another_project_never_sees_the_memo(rig: MemoRig, projects: tuple[Path, Path]) -> None:
    p, q = projects
    content = _records()
    key = memo_key(content, rig.config.engine)
    with rig.proxy() as (_app, memo, url):
        _post_claude(url, _claude(p, "which users are inactive?", [content]))
        first = _claude_block(rig.upstream())
        # Pin P's entry to a text only P's memo can produce (its references still redeem).
        pinned = "[served from project P's memo]\n" + first
        memo.put(str(p), key, pinned, [r.id for r in find_refs(first)])

        _post_codex(url, _codex(p, "what is the highest score?", content))
        assert _codex_block(rig.upstream()) == pinned
        hits, misses = memo.hits, memo.misses

        _post_codex(url, _codex(q, "what is the highest score?", content))
        from_q = _codex_block(rig.upstream())
        assert from_q != pinned and "project P" not in from_q
        assert find_refs(from_q) and len(from_q) < len(content) / 2  # compressed on its own
        assert (memo.hits, memo.misses) == (hits, misses + 1)

        # A request that names no project uses no memo at all.
        _post_claude(url, _claude(None, "which users are inactive?", [content]))
        assert _claude_block(rig.upstream()) != pinned
        assert (memo.hits, memo.misses) == (hits, misses + 1)

        memo.writer.flush()
        rows = rig.memo_rows()
    assert [(row[0], row[1]) for row in rows] == sorted([(str(p), key), (str(q), key)])
    assert {row[0]: row[2] for row in rows} == {str(p): pinned, str(q): from_q}


def test_a_restarted_proxy_serves_the_same_bytes_from_the_database(rig: MemoRig, projects: tuple[Path, Path]) -> None:
    p, _ = projects
    content = _log()
    with rig.proxy() as (_app, memo, url):
        _post_claude(url, _claude(p, "why does the pool run out?", [content]))
        first = _claude_block(rig.upstream())
        assert find_refs(first) and "ERROR db pool exhausted" in first
        memo.writer.flush()
    assert len(rig.memo_rows()) == 1

    with rig.proxy() as (_app, memo, url):  # a new app and an empty in-process cache: only the DB knows
        _post_codex(url, _codex(p / "src", "how long did request 77 take?", content))
        assert _codex_block(rig.upstream()) == first
        assert (memo.hits, memo.misses) == (1, 0)
        memo.writer.flush()
    ((project, _key, text, _ids),) = rig.memo_rows()
    assert (project, text) == (str(p), first)


def test_a_repeated_output_in_one_request_is_a_marker_that_redeems(rig: MemoRig, projects: tuple[Path, Path]) -> None:
    p, other = projects
    content = _log()
    with rig.proxy() as (_app, _memo, url):
        _post_claude(url, _claude(p, "why does the pool run out?", [content, content]))
        sent = rig.upstream()
    first, second = _claude_block(sent, 2), _claude_block(sent, 4)
    assert find_refs(first) and len(first) < len(content) / 2
    match = re.fullmatch(r"\[same output as an earlier tool result \(message 2\); retrieve hr:([0-9a-f]+)\]", second)
    assert match, second
    ref = f"hr:{match.group(1)}"
    assert retrieve(ref, FileCCRStore(rig.config.paths.ccr_dir)) == content  # byte-exact
    tools = Tools(rig.config, cwd=str(p))  # the body of the MCP headroom_retrieve tool, in the request's project
    elsewhere = Tools(rig.config, cwd=str(other))  # ... and in another project's server
    try:
        assert tools.retrieve(ref) == content
        assert tools.retrieve(ref, lines="451-451") == content.splitlines(keepends=True)[450]
        with pytest.raises(RetrievalError, match="not in the store"):
            elsewhere.retrieve(ref)  # the proxy recorded the original as the request's project's
    finally:
        tools.close()
        elsewhere.close()


def _codex_websocket(url: str, first_frame: dict[str, Any], output: str) -> dict[str, Any]:
    """Two Codex turns on one WebSocket: the first announces the cwd, the second carries only a tool output
    (as Codex sends it: the call was in the previous response). Returns the second frame as the upstream got it."""
    call = {
        "type": "function_call",
        "call_id": "call_9",
        "name": "shell",
        "arguments": '{"command": ["cat", "u.json"]}',
    }
    second = {
        "type": "response.create",
        "model": first_frame["model"],
        "previous_response_id": "resp_fake",
        "input": [call, {"type": "function_call_output", "call_id": "call_9", "output": output}],
    }
    with connect(url.replace("http://", "ws://") + "/v1/responses", compression=None, max_size=None) as ws:
        for frame in (first_frame, second):
            ws.send(json.dumps(frame))
            while json.loads(ws.recv(timeout=30))["type"] != "response.completed":
                pass
    return second


def _websocket_reuse(rig: MemoRig, p: Path, first_frame: dict[str, Any]) -> None:
    content = _records()
    with rig.proxy() as (_app, memo, url):
        _post_claude(url, _claude(p, "which users are inactive?", [content]))
        first = _claude_block(rig.upstream())
        _codex_websocket(url, first_frame, content)
        assert _codex_block(rig.fake.ws_frames[-1]) == first
        assert (memo.hits, memo.misses) == (1, 1)


def test_a_codex_websocket_connection_keeps_its_project_across_turns(rig: MemoRig, projects: tuple[Path, Path]) -> None:
    p, _ = projects
    body = _codex(p, "which users are inactive?", "")
    frame = {"type": "response.create", "model": body["model"], "input": body["input"][:3]}
    _websocket_reuse(rig, p, frame)


def test_the_recorded_codex_websocket_layout_finds_its_project(
    shared: Path, rig: MemoRig, projects: tuple[Path, Path]
) -> None:
    p, _ = projects
    folder = shared / "fixtures" / "requests" / "codex" / "big-output.websocket"
    recorded = json.loads((folder / "0003-openai-responses-ws-main.json").read_bytes())
    (announced,) = _announced(recorded)
    frame = json.loads(json.dumps(recorded).replace(announced, str(p)))
    frame.pop("tools", None)
    _websocket_reuse(rig, p, frame)


# -- GET /memory/search ---------------------------------------------------------------------------------------


def _get(app: ProxyApp, path: str, **headers: str) -> httpx.Response:
    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8787") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(main())


def test_memory_search_is_the_daemons_and_needs_the_token(rig: MemoRig, tmp_path: Path) -> None:
    without = build_app(rig.config, rig.db)
    try:
        assert _get(without, "/memory/search?q=deploy", **{"x-headroom-token": without.token}).status_code == 503
    finally:
        assert without.stats is not None and without.rewriter.memo is not None
        without.stats.close()
        without.rewriter.memo.close()

    shop, blog = str(tmp_path / "shop"), str(tmp_path / "blog")
    memory = Memory(rig.db, embedder=HashEmbedder())
    own = memory.put("We deploy the shop with make deploy-staging on Fridays.", project=shop, title="shop deploy")
    other = memory.put("We deploy the blog by pushing to the gh-pages branch.", project=blog, title="blog deploy")
    everywhere = memory.put("Deploy nothing without a green CI run.", kind="lesson", global_scope=True)
    assert own.item_id and other.item_id and everywhere.item_id
    memory.embed_pending()
    app = build_app(rig.config, rig.db, memory_search=search_endpoint(memory))
    try:
        query = f"/memory/search?q=deploy&project={shop}"
        assert _get(app, query).status_code == 403
        assert _get(app, query, **{"x-headroom-token": app.token + "x"}).status_code == 403
        assert _get(app, f"/memory/search?project={shop}", **{"x-headroom-token": app.token}).status_code == 400
        bad_k = _get(app, query + "&k=many", **{"x-headroom-token": app.token})
        assert bad_k.status_code == 400 and "k" in bad_k.json()["error"]

        r = _get(app, query, **{"x-headroom-token": app.token})
        assert r.status_code == 200
        data = r.json()
        assert data["project"] == shop and data["mode"] == "hybrid"
        ids = {hit["id"] for hit in data["hits"]}
        assert ids == {own.item_id, everywhere.item_id}  # never the blog's item
        snippets = " ".join(hit["snippet"] for hit in data["hits"])
        assert "make deploy-staging" in snippets and "gh-pages" not in snippets

        lessons = _get(app, query + "&kinds=lesson", **{"x-headroom-token": app.token}).json()
        assert [hit["id"] for hit in lessons["hits"]] == [everywhere.item_id]
        blog_side = _get(app, f"/memory/search?q=deploy&project={blog}", **{"x-headroom-token": app.token}).json()
        assert {hit["id"] for hit in blog_side["hits"]} == {other.item_id, everywhere.item_id}
    finally:
        assert app.stats is not None and app.rewriter.memo is not None
        app.stats.close()
        app.rewriter.memo.close()
