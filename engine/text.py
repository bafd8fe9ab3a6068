"""``compress_text``: one text (a log, a file, command output) compressed as one tool result.

The engine compresses conversations; a caller with a single text (the ``headroom compress`` command, the MCP
``headroom_compress`` tool) wants the router's choice for a tool result without building a request. The text
is wrapped as the one tool result of a three-message conversation (the question as the user's words, a
``read`` call whose input names the file, so the router can pick a language), compressed, and unwrapped.
"""

from __future__ import annotations

import json
from typing import Any

from headroom.engine.api import CompressResult, compress
from headroom.engine.ccr import CCRStore
from headroom.engine.config import EngineConfig
from headroom.engine.memo import BlockMemo

#: The tokenizer that counts tokens when the caller does not say which model will read the text.
DEFAULT_MODEL = "gpt-4o"
_CALL_ID = "call_cli"
#: Index of the tool result in :func:`tool_result_messages`.
_RESULT = 2


def tool_result_messages(
    text: str, question: str | None = None, path: str | None = None, tool: str = "read"
) -> list[dict[str, Any]]:
    """A conversation in which ``text`` is the one tool result, so the engine compresses it like one.

    A file path in the call's input lets the router pick a language; the question (if any) is the user's
    last words, which the compressors keep relevant lines for.
    """
    tool_input = {"file_path": path} if path else {}
    call = {"id": _CALL_ID, "type": "function", "function": {"name": tool, "arguments": json.dumps(tool_input)}}
    return [
        {"role": "user", "content": question or ""},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": _CALL_ID, "content": text},
    ]


def compress_text(
    text: str,
    model: str = DEFAULT_MODEL,
    *,
    tool: str = "read",
    path: str | None = None,
    question: str | None = None,
    store: CCRStore | None = None,
    config: EngineConfig | None = None,
    memo: BlockMemo | None = None,
) -> tuple[str, CompressResult]:
    """``text`` compressed as the output of ``tool`` (reading ``path``, if any), and the full result.

    Originals go into ``store`` when one is given and are listed in ``result.ccr_entries`` either way.
    """
    messages = tool_result_messages(text, question, path, tool)
    result = compress(messages, model, question=question, store=store, config=config, memo=memo)
    out: str = result.messages[_RESULT]["content"]
    return out, result


def summary_line(result: CompressResult, retrieve_hint: str) -> str:
    """``12,345 → 2,345 tokens (81.0% saved) by logs; 1 originals kept (<hint>)``: one line for a human."""
    kinds = sorted({d.compressor for d in result.decisions if d.compressor})
    return (
        f"{result.tokens_before:,} → {result.tokens_after:,} tokens ({result.ratio:.1%} saved)"
        f"{' by ' + ', '.join(kinds) if kinds else ''}; {len(result.ccr_entries)} originals kept"
        + (f" ({retrieve_hint})" if result.ccr_entries else "")
    )
