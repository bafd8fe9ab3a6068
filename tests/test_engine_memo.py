"""Repeats within a request and the block memo across requests: markers redeem, output only looks backwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headroom.engine import (
    BlockMemo,
    EngineConfig,
    MemoryBlockMemo,
    MemoryCCRStore,
    compress,
    find_refs,
    memo_key,
    retrieve,
)
from headroom.engine.ccr import content_id

Message = dict[str, Any]


def _source(n: int = 60, name: str = "service") -> str:
    """A Python module long enough to be compressed (well over min_tokens)."""
    parts = [f'"""The {name} module."""\n\nimport os\n\n']
    for i in range(n):
        parts.append(
            f"def {name}_handler_{i}(request, retries={i % 5}):\n"
            f'    """Handle request kind {i}."""\n'
            f"    value = request.get('field_{i}', {i})\n"
            f"    if value > {i * 3}:\n"
            f"        return os.path.join('data', str(value), '{name}_{i}.json')\n"
            f"    return None\n\n\n"
        )
    return "".join(parts)


def _log(n: int = 400, tag: str = "api") -> str:
    lines = []
    for i in range(n):
        level = "ERROR" if i % 53 == 7 else "INFO"
        lines.append(f"2026-01-02T10:{i // 60 % 60:02d}:{i % 60:02d}Z {level} [{tag}-{i % 3}] req={i:06x} status=200")
    return "\n".join(lines) + "\n"


# --- one conversation with tool results, in each provider's shape -----------------------------------------


def _anthropic(
    results: Sequence[str], question: str = "Why does the handler fail?", tool: str = "Read"
) -> list[Message]:
    msgs: list[Message] = [{"role": "user", "content": [{"type": "text", "text": question}]}]
    for i, text in enumerate(results):
        msgs.append(
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": f"t{i}", "name": tool, "input": {"file_path": "src/app.py"}}],
            }
        )
        msgs.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": text}]})
    return msgs


def _chat(results: Sequence[str], question: str = "Why does the handler fail?", tool: str = "shell") -> list[Message]:
    msgs: list[Message] = [{"role": "user", "content": question}]
    for i, text in enumerate(results):
        call = {"id": f"c{i}", "type": "function", "function": {"name": tool, "arguments": '{"cmd": "cat src/app.py"}'}}
        msgs.append({"role": "assistant", "content": None, "tool_calls": [call]})
        msgs.append({"role": "tool", "tool_call_id": f"c{i}", "content": text})
    return msgs


def _responses(
    results: Sequence[str], question: str = "Why does the handler fail?", tool: str = "shell"
) -> list[Message]:
    msgs: list[Message] = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": question}]}]
    for i, text in enumerate(results):
        msgs.append({"type": "function_call", "call_id": f"c{i}", "name": tool, "arguments": '{"cmd": "cat app.py"}'})
        msgs.append({"type": "function_call_output", "call_id": f"c{i}", "output": text})
    return msgs


def _gemini(
    results: Sequence[str], question: str = "Why does the handler fail?", tool: str = "read_file"
) -> list[Message]:
    msgs: list[Message] = [{"role": "user", "parts": [{"text": question}]}]
    for i, text in enumerate(results):
        msgs.append({"role": "model", "parts": [{"functionCall": {"id": f"g{i}", "name": tool, "args": {}}}]})
        msgs.append(
            {
                "role": "user",
                "parts": [{"functionResponse": {"id": f"g{i}", "name": tool, "response": {"output": text}}}],
            }
        )
    return msgs


Builder = Callable[[Sequence[str]], list[Message]]
SHAPES: dict[str, tuple[Builder, Callable[[Message], Any]]] = {
    "anthropic": (_anthropic, lambda m: m["content"][0]["content"]),
    "openai": (_chat, lambda m: m["content"]),
    "responses": (_responses, lambda m: m["output"]),
    "gemini": (_gemini, lambda m: m["parts"][0]["functionResponse"]["response"]["output"]),
}


def _marker(text: str, message: int) -> str:
    return f"[same output as an earlier tool result (message {message}); retrieve hr:{content_id(text)}]"


# --- repeats ---------------------------------------------------------------------------------------------


def test_a_file_read_twice_becomes_a_reference_to_the_first_read() -> None:
    src = _source()
    msgs = _anthropic([src, _log(), src])
    store = MemoryCCRStore()
    result = compress(msgs, "claude-sonnet-4-5", store=store)
    out = result.messages[6]["content"][0]["content"]
    assert out == _marker(src, 2)
    assert retrieve(f"hr:{content_id(src)}", store) == src
    repeat = [d for d in result.decisions if d.compressor == "repeat"]
    assert [(d.message, d.kind) for d in repeat] == [(6, "code")]
    assert repeat[0].tokens_out < repeat[0].tokens_in
    assert content_id(src) in {e.id for e in result.ccr_entries}
    # the first read is compressed as it would be without the repeat
    assert result.messages[2] == compress(msgs[:3], "claude-sonnet-4-5").messages[2]


def test_repeats_in_every_provider_shape() -> None:
    log = _log()
    for shape, (build, text_of) in SHAPES.items():
        msgs = build([log, _source(), log, log])
        store = MemoryCCRStore()
        result = compress(msgs, "gpt-4o", store=store)
        assert text_of(result.messages[6]) == _marker(log, 2), shape
        assert text_of(result.messages[8]) == _marker(log, 2), shape
        assert retrieve(f"hr:{content_id(log)}", store) == log, shape
        assert sum(d.compressor == "repeat" for d in result.decisions) == 2, shape


def test_two_equal_results_in_one_message_point_at_that_message() -> None:
    log = _log()
    msgs: list[Message] = [
        {"role": "user", "content": "check both"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "a", "name": "Bash", "input": {"command": "tail x.log"}},
                {"type": "tool_use", "id": "b", "name": "Bash", "input": {"command": "tail x.log"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "a", "content": log},
                {"type": "tool_result", "tool_use_id": "b", "content": log},
            ],
        },
    ]
    out = compress(msgs, "claude-sonnet-4-5").messages[2]["content"]
    assert out[0]["content"] != _marker(log, 2)
    assert out[1]["content"] == _marker(log, 2)


def test_results_alike_at_both_ends_are_not_repeats_unless_equal() -> None:
    """Repeats are looked up by length, head and tail, then compared whole: a one-character difference in
    the middle is a different result; an equal one is still a repeat, the first of the equal ones named."""
    log = _log()
    middle = len(log) // 2
    other = log[:middle] + ("x" if log[middle] != "x" else "y") + log[middle + 1 :]
    assert len(other) == len(log) and other[:64] == log[:64] and other[-64:] == log[-64:]
    result = compress(_anthropic([log, other, log, other]), "claude-sonnet-4-5")
    outs = [result.messages[i]["content"][0]["content"] for i in (2, 4, 6, 8)]
    assert outs[2] == _marker(log, 2) and outs[3] == _marker(other, 4)
    assert _marker(log, 2) != outs[1] != _marker(other, 4)


def test_a_crowd_of_results_alike_at_both_ends_still_finds_each_repeat() -> None:
    """Many results that differ only in the middle (what a hostile request could send to make the lookup
    quadratic) are told apart, and a repeat of any of them still names its first occurrence."""
    log = _log()
    middle = len(log) // 2
    crowd = [log[:middle] + f"{i:04d}" + log[middle + 4 :] for i in range(30)]
    texts = [*crowd, crowd[3], crowd[25], crowd[29]]
    result = compress(_anthropic(texts), "claude-sonnet-4-5")
    outs = [result.messages[2 + 2 * i]["content"][0]["content"] for i in range(len(texts))]
    assert outs[30:] == [_marker(crowd[3], 2 + 2 * 3), _marker(crowd[25], 2 + 2 * 25), _marker(crowd[29], 2 + 2 * 29)]
    assert not any(out.startswith("[same output") for out in outs[:30])


def test_small_repeats_are_left_alone() -> None:
    small = "total 3\n-rw-r--r-- 1 me me 12 a.txt\n"
    result = compress(_anthropic([small, small]), "claude-sonnet-4-5")
    assert result.messages[4]["content"][0]["content"] == small
    assert not any(d.compressor for d in result.decisions)


def test_user_text_equal_to_a_tool_result_is_not_a_first_occurrence() -> None:
    log = _log()
    msgs = _anthropic([log])
    msgs[0] = {"role": "user", "content": [{"type": "text", "text": log}]}
    result = compress(msgs, "claude-sonnet-4-5")
    assert not any(d.compressor == "repeat" for d in result.decisions)


def test_a_first_occurrence_in_the_frozen_prefix_is_still_referenced() -> None:
    src = _source()
    msgs = _anthropic([src, src])
    store = MemoryCCRStore()
    result = compress(msgs, "claude-sonnet-4-5", store=store, frozen=3)
    assert result.messages[:3] == msgs[:3] and all(a is b for a, b in zip(result.messages[:3], msgs[:3]))
    assert result.messages[4]["content"][0]["content"] == _marker(src, 2)
    assert retrieve(f"hr:{content_id(src)}", store) == src


def test_dedup_repeats_off_and_lossless_mode_leave_repeats_alone() -> None:
    log = _log()
    msgs = _anthropic([log, log], tool="Bash")
    off = compress(msgs, "claude-sonnet-4-5", config=EngineConfig(dedup_repeats=False))
    first, second = (off.messages[i]["content"][0]["content"] for i in (2, 4))
    assert first == second != log  # both compressed the ordinary way
    assert not any(d.compressor == "repeat" for d in off.decisions)

    lossless = compress(msgs, "claude-sonnet-4-5", config=EngineConfig(lossless=True))
    texts = [lossless.messages[i]["content"][0]["content"] for i in (2, 4)]
    assert texts[0] == texts[1]
    assert not any(find_refs(t) for t in texts)
    assert not any(d.compressor == "repeat" for d in lossless.decisions)


def test_exact_file_reads_are_not_replaced_by_a_repeat_marker() -> None:
    src = _source()
    result = compress(_anthropic([src, src]), "claude-sonnet-4-5", config=EngineConfig(file_read_policy="exact"))
    assert [result.messages[i]["content"][0]["content"] for i in (2, 4)] == [src, src]


_POOL = [_log(300, "api"), _log(320, "db"), _source(40, "auth"), "short output\n", _source(45, "billing")]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.integers(0, len(_POOL) - 1), min_size=1, max_size=8),
    cut=st.integers(0, 16),
    shape=st.sampled_from(sorted(SHAPES)),
    frozen=st.integers(0, 6),
)
def test_appending_messages_never_changes_earlier_output(picks: list[int], cut: int, shape: str, frozen: int) -> None:
    build, _ = SHAPES[shape]
    msgs = build([_POOL[i] for i in picks])
    cut = min(cut, len(msgs))
    store = MemoryCCRStore()
    full = compress(msgs, "gpt-4o", store=store, frozen=frozen)
    part = compress(msgs[:cut], "gpt-4o", frozen=frozen)
    assert json.dumps(part.messages) == json.dumps(full.messages[:cut])
    for ref in find_refs(json.dumps(full.messages)):
        assert retrieve(str(ref), store)
    # every repeat marker redeems to exactly the text it replaced
    for d in full.decisions:
        if d.compressor == "repeat":
            (ref,) = find_refs(d.text)
            assert retrieve(str(ref), store) == d.original


# --- the block memo --------------------------------------------------------------------------------------


class SpyMemo(MemoryBlockMemo):
    """A memo that records every call."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: list[str] = []
        self.puts: list[tuple[str, str, tuple[str, ...]]] = []

    def get(self, key: str) -> str | None:
        self.gets.append(key)
        return super().get(key)

    def put(self, key: str, text: str, entry_ids: Sequence[str]) -> None:
        self.puts.append((key, text, tuple(entry_ids)))
        super().put(key, text, entry_ids)


def _questions_matter() -> tuple[str, list[Message], list[Message]]:
    """A file and two requests (Claude's Read, Codex's shell) whose questions compress it differently."""
    src = _source(80)
    claude = _anthropic([src], question="Why does service_handler_3 return None?")
    codex = _responses([src], question="Explain service_handler_71 and its retries")
    return src, claude, codex


def test_memo_serves_the_first_compression_to_every_agent() -> None:
    src, claude, codex = _questions_matter()
    without = [
        compress(claude, "claude-sonnet-4-5").messages[2]["content"][0]["content"],
        compress(codex, "gpt-5-codex").messages[2]["output"],
    ]
    assert without[0] != without[1], "the fixture must make the question matter"

    memo, store = MemoryBlockMemo(), MemoryCCRStore()
    first = compress(claude, "claude-sonnet-4-5", store=store, memo=memo)
    second = compress(codex, "gpt-5-codex", store=store, memo=memo)
    served = second.messages[2]["output"]
    assert served == first.messages[2]["content"][0]["content"] == without[0]
    (decision,) = [d for d in second.decisions if d.message == 2]
    assert decision.compressor == "memo" and decision.kind == "code"
    assert second.ccr_entries == []
    for ref in find_refs(served):
        assert retrieve(str(ref), store)
    assert memo.entry_ids(memo_key(src, EngineConfig())) == tuple(e.id for e in first.ccr_entries)


def test_memo_hit_whose_original_expired_is_routed_again() -> None:
    _, claude, codex = _questions_matter()
    memo = MemoryBlockMemo()
    compress(claude, "claude-sonnet-4-5", store=MemoryCCRStore(), memo=memo)
    fresh = MemoryCCRStore()  # the originals of the memo's text are not here
    result = compress(codex, "gpt-5-codex", store=fresh, memo=memo)
    (decision,) = [d for d in result.decisions if d.message == 2]
    assert decision.compressor not in (None, "memo")
    out = result.messages[2]["output"]
    assert out == compress(codex, "gpt-5-codex").messages[2]["output"]
    for ref in find_refs(out):
        assert retrieve(str(ref), fresh)
    # the fresh compression replaced the stale one, so the next request is served again
    again = compress(claude, "claude-sonnet-4-5", store=fresh, memo=memo)
    assert [d.compressor for d in again.decisions if d.message == 2] == ["memo"]
    assert again.messages[2]["content"][0]["content"] == out


def test_memo_is_put_only_when_routing_changed_the_block() -> None:
    memo = SpyMemo()
    binary = "\x00\x01\x02" * 400
    compress(_anthropic(["tiny\n", binary], tool="Bash"), "claude-sonnet-4-5", memo=memo)
    assert len(memo.gets) == 1  # the binary block: the tiny one is below min_tokens
    assert memo.puts == []
    log = _log()
    result = compress(_anthropic([log], tool="Bash"), "claude-sonnet-4-5", memo=memo)
    assert [(k, t) for k, t, _ in memo.puts] == [
        (memo_key(log, EngineConfig()), result.messages[2]["content"][0]["content"])
    ]


def test_a_repeat_never_consults_the_memo() -> None:
    log = _log()
    memo = SpyMemo()
    result = compress(_anthropic([log, log, log], tool="Bash"), "claude-sonnet-4-5", memo=memo)
    assert memo.gets == [memo_key(log, EngineConfig())]
    assert [d.compressor for d in result.decisions][1:] == ["repeat", "repeat"]


def test_memo_without_a_store_is_trusted() -> None:
    log = _log()
    memo = MemoryBlockMemo()
    memo.put(memo_key(log, EngineConfig()), "[the log; retrieve hr:0123456789ab]", ["0123456789ab"])
    result = compress(_anthropic([log], tool="Bash"), "claude-sonnet-4-5", memo=memo)
    assert result.messages[2]["content"][0]["content"] == "[the log; retrieve hr:0123456789ab]"


def test_frozen_messages_never_touch_the_memo() -> None:
    memo = SpyMemo()
    compress(_anthropic([_log()], tool="Bash"), "claude-sonnet-4-5", memo=memo, frozen=3)
    assert memo.gets == [] and memo.puts == []


def test_memo_key_covers_settings_that_change_output_and_nothing_else() -> None:
    base = EngineConfig()
    key = memo_key("x" * 100, base)
    assert len(key) == 64 and int(key, 16) >= 0
    assert memo_key("x" * 100, EngineConfig(lossless=True)) != key
    assert memo_key("x" * 100, EngineConfig(min_tokens=50)) != key
    assert memo_key("x" * 100, EngineConfig(disabled=frozenset({"code"}))) != key
    assert memo_key("y" * 100, base) != key
    assert memo_key("x" * 100, EngineConfig(claude_token_factor=1.3, dedup_repeats=False)) == key
    assert isinstance(MemoryBlockMemo(), BlockMemo)


def test_memo_key_is_the_same_in_every_process() -> None:
    code = (
        "from headroom.engine import EngineConfig, memo_key;"
        "print(memo_key('abc', EngineConfig(disabled=frozenset({'code', 'json', 'logs', 'diff', 'html'}))))"
    )
    keys = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(keys) == 1


def test_memory_memo_is_bounded() -> None:
    memo = MemoryBlockMemo(max_entries=2)
    for k in "abc":
        memo.put(k, k.upper(), [])
    assert len(memo) == 2 and memo.get("a") is None and memo.get("c") == "C"


def test_exact_file_reads_skip_the_memo() -> None:
    src = _source()
    config = EngineConfig(file_read_policy="exact")
    memo = MemoryBlockMemo()
    compress(_anthropic([src], tool="Bash"), "claude-sonnet-4-5", memo=memo, config=config)  # a `cat`: compressed
    assert len(memo) == 1
    result = compress(_anthropic([src]), "claude-sonnet-4-5", memo=memo, config=config)  # a Read: left exact
    assert result.messages[2]["content"][0]["content"] == src
