"""Shared checks for compressor tests: run one compressor on a block and prove nothing was lost silently."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from headroom.engine.ccr import MemoryCCRStore, find_refs, put_all, retrieve
from headroom.engine.compressors.base import Block, Compressor, Context
from headroom.engine.config import EngineConfig
from headroom.engine.messages import ToolCall, tool_hints


def run(
    compressor: Compressor,
    text: str,
    *,
    question: str | None = None,
    tool_name: str | None = None,
    tool_input: dict[str, Any] | None = None,
    path: str | None = None,
    config: EngineConfig | None = None,
) -> tuple[str, Context]:
    """Compress ``text`` with ``compressor`` the way the router would, and check every marker redeems."""
    block = Block(text, tool_name=tool_name, tool_input=tool_input or {}, path=path)
    hints = tool_hints(ToolCall(tool_name or "", tool_input or {}))
    ctx = Context(text, question=question, hints=hints, config=config, kind=compressor.kind)
    out = compressor.compress(block, ctx)
    assert_redeemable(out, ctx)
    return out, ctx


def assert_redeemable(out: str, ctx: Context) -> None:
    """Every reference in ``out`` resolves, and whole-block references give the original byte-exact."""
    store = MemoryCCRStore()
    put_all(store, ctx.entries)
    for ref in find_refs(out):
        got = retrieve(store, str(ref))
        if ref.first is None and ref.id == ctx.original_id():
            assert got == ctx.original
        elif ref.first is not None:
            lines = ctx.original.splitlines(keepends=True)
            assert got == "".join(lines[ref.first - 1 : ref.last])


def engine_workloads() -> ModuleType:
    """bench/engine_workloads.py, which builds the real diff and ripgrep inputs (bench/ is not a package)."""
    bench = str(Path(__file__).resolve().parent.parent / "bench")
    sys.path.insert(0, bench)
    try:
        return importlib.import_module("engine_workloads")
    finally:
        sys.path.remove(bench)
