"""compress() over the four request shapes: real requests of the three CLIs, never mutated, cache-safe."""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from headroom.engine import EngineConfig, MemoryCCRStore, compress, expand, find_refs, retrieve
from headroom.engine.messages import iter_slots, last_question, shape_of

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def _server_log(n: int = 1500) -> str:
    """A realistic service log: repeated INFO traffic with a few distinct failures."""
    lines = []
    for i in range(n):
        ts = f"2026-11-20T08:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z"
        if i % 97 == 13:
            lines.append(
                f'{ts} ERROR [worker-{i % 4}] req={i:08x} GET /api/items/{i} status=504 msg="upstream timeout"'
            )
        else:
            lines.append(
                f"{ts} INFO [worker-{i % 4}] req={i:08x} GET /api/items/{i % 50} status=200 latency_ms={i % 37}"
            )
    return "\n".join(lines) + "\n"


def _latest(shared: Path, agent: str) -> dict[str, Any]:
    folder = shared / "fixtures" / "requests" / agent / "big-output"
    name = sorted(p.name for p in folder.glob("*-main.json"))[-1]
    data: dict[str, Any] = json.loads((folder / name).read_text())
    return data


@pytest.mark.parametrize(
    ("agent", "key", "shape"),
    [
        ("claude", "messages", "anthropic"),
        ("codex", "input", "responses"),
        ("gemini", "contents", "gemini"),
    ],
)
def test_real_requests_of_each_cli_compress_and_redeem(shared: Path, agent: str, key: str, shape: str) -> None:
    body = _latest(shared, agent)
    messages = body[key]
    assert shape_of(messages) == shape
    before = copy.deepcopy(messages)
    store = MemoryCCRStore()
    result = compress(messages, body.get("model", "gemini-2.5-pro"), store=store)
    assert messages == before, "the input must never be mutated"
    assert result.tokens_after < result.tokens_before * 0.8
    assert any(d.compressor for d in result.decisions)
    # every marker left in the output redeems, and each whole-entry reference is byte-exact
    text = json.dumps(result.messages)
    refs = find_refs(text)
    assert refs
    for ref in refs:
        assert retrieve(str(ref), store)
    assert {e.id for e in result.ccr_entries} >= {r.id for r in refs}
    # the user's question survives untouched
    question = last_question(messages)
    assert question and question in json.dumps(result.messages, ensure_ascii=False)


def _chat_with(tool_text: str, *, tool: str = "Bash", tool_input: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": [{"type": "text", "text": "Why are requests failing?"}]},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "t1",
                    "name": tool,
                    "input": tool_input or {"command": "cat logs/server.log"},
                }
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": tool_text}]},
    ]


def test_openai_chat_and_responses_shapes_find_tool_results() -> None:
    log = _server_log()
    chat = [
        {"role": "user", "content": "why?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "shell", "arguments": '{"cmd": "cat a.log"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": log},
    ]
    responses = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "why?"}]},
        {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": '{"cmd": "cat a.log"}'},
        {"type": "function_call_output", "call_id": "c1", "output": log},
    ]
    gemini = [
        {"role": "user", "parts": [{"text": "why?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "run_shell_command", "args": {"command": "cat a.log"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "run_shell_command", "response": {"output": log}}}]},
    ]
    for msgs, shape in ((chat, "openai"), (responses, "responses"), (gemini, "gemini")):
        assert shape_of(msgs) == shape
        slots = [s for s in iter_slots(msgs) if s.is_tool_result]
        assert len(slots) == 1 and slots[0].tool is not None and slots[0].question == "why?"
        result = compress(msgs, "gpt-4o")
        assert result.tokens_after < result.tokens_before / 2, shape
        assert "status=504" in json.dumps(result.messages)


def test_frozen_prefix_is_returned_byte_identical() -> None:
    msgs = _chat_with(_server_log()) + _chat_with(_server_log(1200))[1:]
    msgs[3]["content"][0]["id"] = "t2"
    msgs[4]["content"][0]["tool_use_id"] = "t2"
    full = compress(msgs, "claude-sonnet-4-5")
    assert json.dumps(full.messages[2]) != json.dumps(msgs[2])
    part = compress(msgs, "claude-sonnet-4-5", frozen=3)
    assert part.messages[:3] == msgs[:3]
    assert all(a is b for a, b in zip(part.messages[:3], msgs[:3], strict=True))
    assert json.dumps(part.messages[4]) == json.dumps(full.messages[4])


def test_compression_of_a_message_does_not_depend_on_later_turns() -> None:
    """A later question must not change how an earlier tool result compresses (prompt caches keep hitting)."""
    msgs = _chat_with(_server_log())
    first = compress(msgs, "gpt-4o").messages
    later = [
        *msgs,
        {"role": "assistant", "content": "Timeouts."},
        {"role": "user", "content": "And which worker handled item 13?"},
    ]
    second = compress(later, "gpt-4o").messages
    assert json.dumps(second[:3]) == json.dumps(first)


def test_output_is_identical_across_processes() -> None:
    code = (
        "import json, hashlib, sys; sys.path.insert(0, 'tests');"
        "from test_engine_api import _chat_with, _server_log;"
        "from headroom.engine import compress;"
        "r = compress(_chat_with(_server_log()), 'gpt-4o');"
        "print(hashlib.sha256(json.dumps(r.messages).encode()).hexdigest())"
    )
    root = Path(__file__).resolve().parent.parent
    outs = {
        subprocess.check_output(
            [sys.executable, "-c", code], cwd=root, text=True, env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}
        ).strip()
        for seed in ("1", "2", "3")
    }
    local = hashlib.sha256(json.dumps(compress(_chat_with(_server_log()), "gpt-4o").messages).encode()).hexdigest()
    assert outs == {local}


def test_result_reports_decisions_and_token_counts() -> None:
    result = compress(_chat_with(_server_log()), "gpt-4o")
    [decision] = [d for d in result.decisions if d.compressor]
    assert decision.message == 2 and decision.path == ("content", 0, "content")
    assert decision.tokens_out < decision.tokens_in
    assert result.tokens_before - result.tokens_after == decision.tokens_in - decision.tokens_out
    summary = result.summary()
    assert summary["blocks"][0]["kind"] == decision.kind
    assert 0 < summary["saved"] < 1


def test_file_reads_stay_exact_under_the_exact_policy() -> None:
    source = (STDLIB / "argparse.py").read_text()
    listing = "".join(f"{i:6}\t{line}" for i, line in enumerate(source.splitlines(keepends=True), 1))
    msgs = _chat_with(listing, tool="Read", tool_input={"file_path": str(STDLIB / "argparse.py")})
    exact = compress(msgs, "claude-sonnet-4-5", config=EngineConfig(file_read_policy="exact"))
    assert exact.messages[2] == msgs[2] or exact.messages[2]["content"][0]["content"] == listing
    outline = compress(msgs, "claude-sonnet-4-5")
    assert outline.tokens_after < outline.tokens_before / 2


def test_small_binary_and_user_text_pass_through() -> None:
    msgs = _chat_with("ok\n")
    assert compress(msgs, "gpt-4o").messages == msgs
    junk = "\x00\x01\x02binary" * 2000
    result = compress(_chat_with(junk), "gpt-4o")
    assert result.messages[2]["content"][0]["content"] == junk
    assert result.decisions[-1].reason == "binary data"


def test_huge_block_keeps_head_and_tail_behind_one_marker() -> None:
    big = _server_log(1000) * 60  # ~6 MB
    store = MemoryCCRStore()
    result = compress(_chat_with(big), "gpt-4o", store=store, config=EngineConfig(max_block_bytes=1_000_000))
    out = result.messages[2]["content"][0]["content"]
    assert len(out) < 100_000
    [ref] = find_refs(out)
    assert out.splitlines()[0] == big.splitlines()[0]
    lines = big.splitlines(keepends=True)
    assert ref.first is not None and ref.last is not None
    assert retrieve(str(ref), store) == "".join(lines[ref.first - 1 : ref.last])


def test_expand_returns_every_original_still_referenced() -> None:
    store = MemoryCCRStore()
    result = compress(_chat_with(_server_log()), "gpt-4o", store=store)
    text = expand(store, json.dumps(result.messages))
    assert 'status=504 msg="upstream timeout"' in text


def test_compress_rejects_a_non_list() -> None:
    with pytest.raises(TypeError):
        compress("not messages", "gpt-4o")  # type: ignore[arg-type]


def test_a_file_read_by_path_is_routed_by_its_extension() -> None:
    """doctest.py quotes tracebacks in its docstrings; it is still Python, not a stack trace."""
    source = (STDLIB / "doctest.py").read_text()
    assert "Traceback (most recent call last):" in source
    msgs = _chat_with(source, tool="read_file", tool_input={"file_path": "Lib/doctest.py"})
    [decision] = compress(msgs, "gpt-4o").decisions
    assert (decision.kind, decision.compressor) == ("code", "code")


def test_a_diff_that_cannot_shrink_stays_whole_rather_than_thinned_as_prose() -> None:
    import difflib

    old = (STDLIB / "shlex.py").read_text().splitlines(keepends=True)
    new = [line.replace("self", "this") if i % 4 == 0 else line for i, line in enumerate(old)]
    patch = "diff --git a/shlex.py b/shlex.py\n" + "".join(difflib.unified_diff(old, new, "a/shlex.py", "b/shlex.py"))
    result = compress(_chat_with(patch, tool="Bash", tool_input={"command": "git diff"}), "gpt-4o")
    [decision] = result.decisions
    assert decision.kind == "diff"
    if decision.compressor is None:
        assert result.messages[2]["content"][0]["content"] == patch
    else:
        out = result.messages[2]["content"][0]["content"]
        assert all(line in out for line in patch.splitlines() if line.startswith(("+", "-")))


def test_compress_text_compresses_one_text_as_a_tool_result() -> None:
    """``compress_text`` is the one-text call the CLI and MCP server share: originals kept, the text redeemable."""
    from headroom.engine import compress_text, summary_line

    log = _server_log()
    store = MemoryCCRStore()
    out, result = compress_text(log, question="which requests timed out?", store=store)
    assert len(out) < len(log) / 3 and "status=504" in out
    assert result.ccr_entries and {e.id for e in result.ccr_entries} <= {r.id for r in find_refs(out)}
    assert retrieve(result.ccr_entries[0].id, store) == log
    assert [d.compressor for d in result.decisions] == ["logs"]
    assert summary_line(result, "hint").endswith(f"by logs; {len(result.ccr_entries)} originals kept (hint)")
    # the path names the language: doctest.py quotes tracebacks, and is still compressed as Python
    source = (STDLIB / "doctest.py").read_text()
    _, as_code = compress_text(source, path="Lib/doctest.py")
    assert [(d.kind, d.compressor) for d in as_code.decisions] == [("code", "code")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), (" 120-160 ", (120, 160)), ("7", (7, 7)), ("7-", (7, 7))],
)
def test_parse_line_range_reads_what_people_type(value: str | None, expected: tuple[int, int] | None) -> None:
    from headroom.engine import parse_line_range

    assert parse_line_range(value) == expected


@pytest.mark.parametrize("value", ["a-b", "1-x", "-", "1-2-3"])
def test_parse_line_range_rejects_the_rest(value: str) -> None:
    from headroom.engine import parse_line_range

    with pytest.raises(ValueError, match="expected FIRST-LAST"):
        parse_line_range(value)


# -- the route cache: keyed on the text's digest, never serving one block's result for another -----------


def _listing_block(text: str, path: str = "Lib/textwrap.py") -> Any:
    from headroom.engine.compressors.base import Block

    numbered = "".join(f"{i:6d}\t{line}\n" for i, line in enumerate(text.splitlines(), start=1))
    return Block(numbered, "Read", {"file_path": path}, path)


def test_the_route_cache_gives_what_routing_afresh_gives() -> None:
    from headroom.engine import router
    from headroom.engine.ccr import content_id

    block = _listing_block((STDLIB / "textwrap.py").read_text())
    questions = (None, "what does `TextWrapper._wrap_chunks` do?")
    configs = (EngineConfig(), EngineConfig(disabled=frozenset({"listing"})))
    router._cache.clear()
    for _ in range(2):  # the second round is served from the cache
        for question in questions:
            for config in configs:
                cached = router.route_cached(block, question, "", config)
                fresh = router.route(block, question, "", config)
                assert (cached.text, cached.kind, cached.compressor, cached.entries) == (
                    fresh.text,
                    fresh.kind,
                    fresh.compressor,
                    fresh.entries,
                )
    # Distinct questions and configs are distinct entries, and markers name the original by its content id.
    assert len(router._cache) == len(questions) * len(configs)
    outcome = router.route_cached(block, None, "", EngineConfig())
    assert outcome.compressor == "listing"
    assert [e.id for e in outcome.entries] == [content_id(block.text)]
    assert all(ref.id == content_id(block.text) for ref in find_refs(outcome.text))


def test_a_block_the_router_splits_names_its_own_section_as_the_original() -> None:
    """A preamble split off a block makes the rest an original of its own: its markers must not borrow the id
    of the whole block the route cache was keyed on."""
    from headroom.engine import router
    from headroom.engine.ccr import content_id
    from headroom.engine.compressors.base import Block

    body = json.dumps(
        [{"id": i, "name": f"item {i}", "tags": ["a", "b"], "ok": i % 3 == 0} for i in range(400)], indent=1
    )
    text = "Chunk ID: 1a2b\nOutput:\n" + body
    router._cache.clear()
    outcome = router.route_cached(Block(text, "exec_command", {}), None, "", EngineConfig())
    assert outcome.changed and outcome.text.startswith("Chunk ID: 1a2b\nOutput:\n")
    ids = {ref.id for ref in find_refs(outcome.text)}
    assert ids and content_id(text) not in ids
    assert ids <= {e.id for e in outcome.entries} and all(content_id(e.text) == e.id for e in outcome.entries)


def test_the_history_benchmark_runs_and_reports_the_frozen_prefix() -> None:
    """bench/engine_history_bench.py (a request re-sending a cached history) stays runnable."""
    script = Path(__file__).resolve().parent.parent / "bench" / "engine_history_bench.py"
    done = subprocess.run(
        [sys.executable, str(script), "--reads", "4", "--new", "1", "--runs", "2"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    report = json.loads(done.stdout)
    assert report["reads"] == 4 and report["frozen_messages"] == 7
    assert report["tool_result_chars"] > 20_000 and report["cpu_ms_median"] >= 0
