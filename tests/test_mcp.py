"""The MCP server end to end: the real ``headroom mcp serve`` subprocess, driven by the SDK's own stdio client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import CallToolResult, TextContent

from headroom.daemon.cli import cli
from headroom.daemon.config import load_config
from headroom.daemon.mcp.server import Tools
from headroom.engine import RetrievalError, find_refs

Scenario = Callable[[ClientSession], Awaitable[None]]


def _log(n: int = 900) -> str:
    return "".join(
        f"2026-11-20 08:{i // 60 % 60:02d}:{i % 60:02d} "
        + ("ERROR db pool exhausted after 30000 ms\n" if i == 450 else f"INFO served request {i} in {i % 17} ms\n")
        for i in range(n)
    )


def _records(n: int = 300) -> str:
    rows = [
        {"id": i, "name": f"user{i}", "email": f"user{i}@example.com", "active": i % 3 != 0, "score": i * 7 % 101}
        for i in range(n)
    ]
    return json.dumps(rows, indent=2)


def serve_mcp(home: Path, cwd: Path, scenario: Scenario, agent: str | None = None) -> None:
    """Start the server in ``cwd`` as agents do (``python -m headroom.daemon.cli mcp serve``); run ``scenario``.

    The SDK passes the server only a safe subset of the environment, so the home (and the agent) go explicitly.
    The server's stderr is kept beside ``cwd`` and printed when it said anything.
    """
    env = {"HEADROOM_HOME": str(home), **({"HEADROOM_AGENT": agent} if agent else {})}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "headroom.daemon.cli", "mcp", "serve"], env=env, cwd=cwd
    )
    log = cwd.parent / f"mcp-{cwd.name}-stderr.log"

    async def main() -> None:
        with open(log, "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                await scenario(session)

    try:
        anyio.run(main)
    finally:
        if log.exists() and log.read_text().strip():
            print(f"server stderr ({cwd.name}):\n" + log.read_text())


def _text(result: CallToolResult, block: int = 0) -> str:
    item = result.content[block]
    assert isinstance(item, TextContent)
    return item.text


async def _call(session: ClientSession, tool: str, **arguments: Any) -> CallToolResult:
    return await session.call_tool(tool, arguments)


@pytest.mark.slow
def test_compress_then_retrieve_over_stdio(isolated_home: Path, tmp_path: Path) -> None:
    log = _log()

    async def scenario(session: ClientSession) -> None:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert set(tools) == {
            "headroom_retrieve",
            "headroom_compress",
            "headroom_stats",
            "memory_search",
            "memory_get",
            "memory_save",
        }
        assert "retrieve hr:" in (tools["headroom_retrieve"].description or "")
        assert tools["headroom_retrieve"].input_schema["required"] == ["ref"]

        compressed = await _call(session, "headroom_compress", content=log, question="why does the pool run out?")
        assert not compressed.is_error
        text, summary = _text(compressed, 0), _text(compressed, 1)
        assert "ERROR db pool exhausted after 30000 ms" in text
        assert len(text) < len(log) / 5
        assert summary.startswith("headroom: ") and "tokens" in summary and "saved" in summary
        refs = find_refs(text)
        assert refs
        entry = f"hr:{refs[0].id}"

        whole = await _call(session, "headroom_retrieve", ref=entry)
        assert not whole.is_error
        assert _text(whole) == log  # byte-exact through JSON-RPC

        marker = await _call(session, "headroom_retrieve", ref=str(refs[0]))  # the reference with its range
        lines = log.splitlines(keepends=True)
        assert refs[0].first is not None and refs[0].last is not None
        assert _text(marker) == "".join(lines[refs[0].first - 1 : refs[0].last])

        span = await _call(session, "headroom_retrieve", ref=entry, lines="120-160")
        assert _text(span) == "".join(lines[119:160])

        hits = await _call(session, "headroom_retrieve", ref=entry, query="exhausted")
        assert "451: " in _text(hits) and "db pool exhausted" in _text(hits)

        unknown = await _call(session, "headroom_retrieve", ref="hr:0123456789ab")
        assert unknown.is_error
        assert "hr:0123456789ab is not in the store" in _text(unknown)

        for bad in ({"ref": "not-a-ref"}, {"ref": entry, "lines": "9000-9001"}, {"ref": entry, "lines": "x-y"}):
            result = await session.call_tool("headroom_retrieve", bad)
            assert result.is_error, bad

        # The server is still answering after the errors.
        again = await _call(session, "headroom_retrieve", ref=entry, lines="1-1")
        assert _text(again) == lines[0]

    serve_mcp(isolated_home, tmp_path, scenario)


@pytest.mark.slow
def test_json_and_the_cli_share_one_store_and_stats(isolated_home: Path, tmp_path: Path) -> None:
    records = _records()
    # An original written by `headroom compress` (as the proxy writes them) is retrievable through MCP.
    source = tmp_path / "app.log"
    source.write_text(_log())
    res = CliRunner().invoke(cli, ["compress", str(source)])
    assert res.exit_code == 0, res.output
    cli_ref = f"hr:{find_refs(res.stdout)[0].id}"

    async def scenario(session: ClientSession) -> None:
        from_cli = await _call(session, "headroom_retrieve", ref=cli_ref)
        assert _text(from_cli) == source.read_text()

        compressed = await _call(session, "headroom_compress", content=records)
        text = _text(compressed)
        assert len(text) < len(records) / 2
        originals = {ref.id for ref in find_refs(text)}
        assert originals
        restored = [_text(await _call(session, "headroom_retrieve", ref=f"hr:{i}")) for i in sorted(originals)]
        assert records in restored

        small = await _call(session, "headroom_compress", content="just a line\n")
        assert _text(small) == "just a line\n"  # nothing worth compressing comes back as it was

        stats = await _call(session, "headroom_stats")
        assert not stats.is_error
        data = json.loads(_text(stats))
        assert set(data) == {"proxy", "sessions"}
        assert "error" not in data["proxy"], data["proxy"]
        assert data["proxy"]["total"]["requests"] == 0
        assert data["sessions"]["total"]["sessions"] == 0

        bad_days = await session.call_tool("headroom_stats", {"days": 0})
        assert bad_days.is_error

    serve_mcp(isolated_home, tmp_path, scenario)


def test_tools_without_the_protocol(isolated_home: Path) -> None:
    tools = Tools(load_config())
    try:
        text, summary = tools.compress(_log())
        ref = find_refs(text)[0]
        assert tools.retrieve(f"hr:{ref.id}") == _log()
        assert tools.retrieve(f"hr:{ref.id}", lines=" 2-3 ") == "".join(_log().splitlines(keepends=True)[1:3])
        with pytest.raises(RetrievalError, match="lines"):
            tools.retrieve(f"hr:{ref.id}", lines="two")
        with pytest.raises(RetrievalError, match="not in the store"):
            tools.retrieve("hr:ffffffffffff")
        assert "originals kept" in summary
        stats = tools.stats(days=7)
        assert stats["sessions"]["days"] == 7
    finally:
        tools.close()


def test_python_dash_m_runs_the_cli(isolated_home: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "headroom.daemon.cli", "mcp", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "HEADROOM_HOME": str(isolated_home)},
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    for command in ("serve", "install", "uninstall", "status"):
        assert command in res.stdout


def test_the_facade_is_honest_and_does_not_load_the_sdk() -> None:
    import headroom.daemon.mcp as facade

    assert list(facade.__all__) == sorted(facade.__all__)
    assert all(hasattr(facade, name) for name in facade.__all__)
    probe = "import sys, headroom.daemon.mcp, headroom.daemon.cli.mcp_cmd; print('mcp' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "False", res.stderr
