"""The MCP tools under hostile or careless calls, through a real ``headroom mcp serve`` session: originals are
scoped to the server's project like memory items, and huge ids, ranges and queries get a clean, fast error."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from mcp import ClientSession

from headroom.daemon.config import load_config
from headroom.daemon.proxy.rewrite import Rewriter
from headroom.engine import CCREntry
from headroom.memory.ccr_store import FileCCRStore
from tests.test_mcp import _call, _log, _text, serve_mcp


def _git_project(path: Path) -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True, capture_output=True)
    return path


@pytest.mark.slow
def test_retrieve_is_scoped_to_the_servers_project(isolated_home: Path, tmp_path: Path) -> None:
    shop, blog = _git_project(tmp_path / "shop"), _git_project(tmp_path / "blog")
    refs: list[str] = []

    async def in_shop(session: ClientSession) -> None:
        result = await _call(session, "headroom_compress", content=_log())
        assert not result.is_error, _text(result)
        marker = _text(result)
        ref = marker[marker.index("hr:") :].split("]")[0].split(":")[:2]
        refs.append(":".join(ref))
        back = await _call(session, "headroom_retrieve", ref=refs[0])
        assert not back.is_error and "db pool exhausted" in _text(back)

    async def in_blog(session: ClientSession) -> None:
        result = await _call(session, "headroom_retrieve", ref=refs[0])
        assert result.is_error and "not in the store" in _text(result), _text(result)

    serve_mcp(isolated_home, shop, in_shop)
    serve_mcp(isolated_home, blog, in_blog)


def test_the_proxy_records_the_project_of_what_it_keeps(isolated_home: Path, tmp_path: Path) -> None:
    """What the proxy keeps for a request that names its project is that project's (the rewriter's store)."""
    config = load_config()
    store = FileCCRStore(config.paths.ccr_dir)
    rewriter = Rewriter(config.engine, store)
    scoped = rewriter.store_for("/src/shop")
    assert scoped is not None and rewriter.store_for(None) is store
    scoped.put(CCREntry("0123456789ab", "the original"))
    assert store.get("0123456789ab", project="/src/shop") == "the original"
    assert store.get("0123456789ab", project="/src/blog") is None
    assert store.get("0123456789ab") == "the original"  # the user's own CLI reads everything
    store.put(CCREntry("ba9876543210", "no project known"))
    assert store.get("ba9876543210", project="/src/blog") == "no project known"
    assert store.expire(-1).deleted == 2
    assert not list(config.paths.ccr_dir.rglob("*.projects"))  # the records go with their entries


@pytest.mark.slow
def test_huge_ids_ranges_and_queries_get_clean_fast_errors(isolated_home: Path, tmp_path: Path) -> None:
    project = _git_project(tmp_path / "shop")
    huge = "word " * 200_000

    async def scenario(session: ClientSession) -> None:
        marker = _text(await _call(session, "headroom_compress", content=_log()))
        ref = ":".join(marker[marker.index("hr:") :].split("]")[0].split(":")[:2])
        saved = _text(await _call(session, "memory_save", content="Use uv, not pip, in this repo."))
        assert saved.startswith("saved as #"), saved
        calls = [
            ("headroom_retrieve", {"ref": ref, "lines": "1-" + "9" * 30}),
            ("headroom_retrieve", {"ref": ref, "lines": "9" * 5000}),
            ("headroom_retrieve", {"ref": f"{ref}:1-{'9' * 5000}"}),
            ("headroom_retrieve", {"ref": ref, "query": huge}),
            ("headroom_retrieve", {"ref": ref, "query": " ".join(f"w{i}" for i in range(40))}),
            ("memory_get", {"id": 10**30}),
            ("memory_get", {"id": 2**63 - 1}),
            ("memory_get", {"id": -(10**30)}),
            ("memory_get", {"id": 1, "lines": "1-" + "9" * 40}),
            ("memory_get", {"id": 1, "query": huge}),
            ("memory_search", {"query": huge}),
            ("headroom_stats", {"days": 10**12}),
        ]
        for tool, arguments in calls:
            started = time.monotonic()
            result = await _call(session, tool, **arguments)
            took = time.monotonic() - started
            text = _text(result)
            assert result.is_error, (tool, arguments, text[:200])
            assert took < 5, (tool, took)
            for leak in ("Traceback", "OverflowError", "too large to convert", "Exceeds the limit"):
                assert leak not in text, (tool, text[:300])
        still = await _call(session, "headroom_retrieve", ref=ref, query="exhausted")
        assert not still.is_error and "db pool exhausted" in _text(still)

    serve_mcp(isolated_home, project, scenario)
