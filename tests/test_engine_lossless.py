"""Lossless mode: every transform round-trips (byte-exact, or value-equal for JSON), and compress() with
``EngineConfig(lossless=True)`` rewrites only what a transform covers, leaving no marker and no CCR entry."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headroom.engine import EngineConfig, compress, compress_lossless, expand_lossless, find_refs
from headroom.engine.lossless import (
    CLOSE,
    OPEN,
    SEARCH_END,
    SEARCH_HEADER,
    decode_json,
    decode_repeats,
    decode_search,
    encode_json,
    encode_repeats,
    encode_search,
    lossless_transform,
)
from headroom.engine.messages import iter_slots

LOSSLESS = EngineConfig(lossless=True)


def _pairs(text: str) -> Any:
    """JSON read with objects as lists of pairs: equality then also checks key order."""
    return json.loads(text, object_pairs_hook=list)


def _records(n: int) -> list[dict[str, Any]]:
    return [
        {"id": i, "name": f"item-{i}", "price": round(i * 1.25, 2), "active": i % 3 != 0, "tags": ["a", f"t{i % 4}"]}
        for i in range(1, n + 1)
    ]


def _grep(files: int = 3, hits: int = 12) -> str:
    lines = [
        f"src/pkg/module_{f}.py:{10 * h + 1}:    result = compute_total(order_{h}, tax=rate)  # keep"
        for f in range(files)
        for h in range(hits)
    ]
    return "\n".join(lines) + "\n"


# -- JSON -----------------------------------------------------------------------------------------------


def test_pretty_json_becomes_compact_with_the_same_values_and_key_order() -> None:
    doc = {"zeta": 1, "alpha": {"b": [1, 2, {"y": None, "x": True}], "a": "é ✓"}, "mid": [1.5, -0.0, "s"]}
    text = json.dumps(doc, indent=2)
    out = encode_json(text)
    assert out == json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    assert _pairs(decode_json(out)) == _pairs(text)


def test_an_array_of_like_objects_becomes_a_table_and_back() -> None:
    text = json.dumps(_records(40), indent=2)
    out = encode_json(text)
    assert out is not None
    lines = out.split("\n")
    assert lines[0] == (
        f'{OPEN}json table 1: 40 objects with keys ["id","name","price","active","tags"]; '
        f"one line per object, values in key order{CLOSE}"
    )
    assert lines[1] == '[1,"item-1",1.25,true,["a","t1"]]'
    assert lines[-1] == f"{OPEN}end of json table 1{CLOSE}"
    assert len(out) < len(text) * 0.4
    assert _pairs(decode_json(out)) == _pairs(text)


def test_nested_tables_get_placeholders_in_the_document() -> None:
    doc = {"page": 1, "items": _records(10), "meta": {"owners": _records(5), "next": None}}
    text = json.dumps(doc, indent=4)
    out = encode_json(text)
    assert out is not None
    first = out.split("\n")[0]
    assert first.startswith('{"page":1,"items":' + f"{OPEN}json table 1{CLOSE}")
    assert f'"owners":{OPEN}json table 2{CLOSE}' in first
    assert _pairs(decode_json(out)) == _pairs(text)


def test_like_objects_holding_like_objects_leave_no_orphan_table() -> None:
    doc = [{"id": i, "children": _records(6)} for i in range(5)]
    text = json.dumps(doc, indent=2)
    out = encode_json(text)
    assert out is not None
    assert _pairs(decode_json(out)) == _pairs(text)


def test_a_table_is_used_only_when_it_is_shorter() -> None:
    doc = {"rows": [{"a": 1}, {"a": 2}, {"a": 3}]}
    out = encode_json(json.dumps(doc, indent=2))
    assert out == '{"rows":[{"a":1},{"a":2},{"a":3}]}'


def test_mixed_arrays_are_not_tables() -> None:
    rows = _records(6)
    rows[3] = {"name": "other", "id": 4}  # other key order
    text = json.dumps(rows, indent=2)
    out = encode_json(text)
    assert out is not None and OPEN not in out
    assert _pairs(decode_json(out)) == _pairs(text)


def test_number_literals_are_kept_as_written() -> None:
    text = '{\n  "big": 123456789012345678901234567890,\n  "f": 1.10,\n  "e": 1E400,\n  "z": -0\n}'
    assert encode_json(text) == '{"big":123456789012345678901234567890,"f":1.10,"e":1E400,"z":-0}'


@pytest.mark.parametrize(
    "text",
    [
        '{\n  "a": 1,\n  "a": 2\n}',  # a duplicate key: a dict would keep only the last one
        '{\n  "a": NaN\n}',
        "[\n  Infinity\n]",
        '"just a string"',
        "[1, 2",
        "not json at all",
        '{\n  "note": "already has 〔 in it"\n}',
    ],
)
def test_json_that_cannot_be_rendered_the_same_is_left_alone(text: str) -> None:
    assert encode_json(text) is None


def test_a_harness_preamble_and_trailer_are_kept_byte_exact() -> None:
    pre = "Chunk ID: 91ea68\nWall time: 0.0000 seconds\nProcess exited with code 0\nOutput:\n"
    post = "\nProcess Group PGID: 15394\n</untrusted_context>\n"
    body = json.dumps(_records(20), indent=2)
    out = encode_json(pre + body + post)
    assert out is not None and out.startswith(pre) and out.endswith(post)
    back = decode_json(out)
    assert back.startswith(pre) and back.endswith(post)
    assert _pairs(back[len(pre) : -len(post)]) == _pairs(body)


def test_lone_surrogates_are_escaped_so_the_request_still_encodes() -> None:
    text = '[\n  "\\ud800 lone",\n  "ok"\n]'
    out = encode_json(text)
    assert out == '["\\ud800 lone","ok"]'
    out.encode("utf-8")


# -- repeated lines ---------------------------------------------------------------------------------------


def test_a_run_of_identical_lines_is_written_once_with_a_count() -> None:
    text = "start\n" + "WARN retrying connection to db:5432\n" * 6 + "end\n"
    out = encode_repeats(text)
    assert out == f"start\nWARN retrying connection to db:5432\n{OPEN}previous line repeated 5 more times{CLOSE}\nend\n"
    assert decode_repeats(out) == text


def test_short_runs_and_short_lines_stay() -> None:
    assert encode_repeats("a long enough line\n" * 2 + "x\n") is None  # two lines are not a run
    assert encode_repeats("ab\n" * 5) is None  # the note would cost more than the copies


@pytest.mark.parametrize(
    "text",
    [
        "same old line, over and over\r\n" * 9,
        "head\n" + "same old line, over and over" * 1 + "\n" + "same old line, over and over\n" * 8,
        "same old line, over and over\n" * 8 + "same old line, over and over",
        "\n" * 200 + "tail",
        "x\n" + "same old line, over and over\n" * 4 + "y\n" + "same old line, over and over\n" * 4,
    ],
)
def test_repeats_round_trip_byte_exact(text: str) -> None:
    out = encode_repeats(text)
    assert out is not None and len(out) < len(text)
    assert decode_repeats(out) == text


def test_text_that_already_has_the_notation_is_left_alone() -> None:
    text = f"{OPEN}previous line repeated 2 more times{CLOSE}\n" + "the same line again and again\n" * 10
    assert encode_repeats(text) is None
    assert compress_lossless(text) == text


# -- grep output ------------------------------------------------------------------------------------------


def test_grep_hits_are_grouped_by_file_and_restored_in_order() -> None:
    text = _grep()
    out = encode_search(text)
    assert out is not None
    lines = out.split("\n")
    assert lines[0] == SEARCH_HEADER
    assert lines[1] == "src/pkg/module_0.py"
    assert lines[2] == "1:    result = compute_total(order_0, tax=rate)  # keep"
    assert lines.count("src/pkg/module_1.py") == 1
    assert SEARCH_END in lines
    assert decode_search(out) == text


def test_a_file_that_comes_back_later_gets_a_group_again() -> None:
    text = "a/x.py:1:one\na/x.py:2:two\nb/y.py:3:three\na/x.py:9:nine\na/x.py:10:ten:with:colons\n"
    out = encode_search(text)
    assert out is not None
    assert out.split("\n").count("a/x.py") == 2
    assert decode_search(out) == text


def test_grep_inside_a_harness_frame() -> None:
    text = "Chunk ID: 1\nOutput:\n" + _grep(2, 5) + "Process exited with code 0"
    out = encode_search(text)
    assert out is not None and out.startswith("Chunk ID: 1\nOutput:\n" + SEARCH_HEADER)
    assert out.endswith(SEARCH_END + "\nProcess exited with code 0")
    assert decode_search(out) == text


@pytest.mark.parametrize(
    "text",
    [
        _grep(2, 5).replace("src/pkg/module_1.py:11:", "some prose line:"),  # not all hits
        "12:30:45 started\n12:30:46 started\n12:30:47 started\n12:31:00 done\n",  # clock times, not paths
        "a/x.py:1:one\nb/y.py:2:two\nc/z.py:3:three\n",  # nothing to group
        "a/x.py-1-context\na/x.py:2:hit\n--\na/x.py:9:hit\n",  # context lines
    ],
)
def test_text_that_is_not_purely_grep_hits_is_not_grouped(text: str) -> None:
    assert encode_search(text) is None


# -- properties -------------------------------------------------------------------------------------------

_free_text = st.text(st.characters(blacklist_characters=f"\n{OPEN}{CLOSE}"), max_size=40)
_lines = st.lists(
    st.one_of(_free_text, st.sampled_from(["", "same line here, repeated often", "x", "  indented\r"])),
    max_size=40,
)


@st.composite
def _repetitive(draw: st.DrawFn) -> str:
    out: list[str] = []
    for line in draw(_lines):
        out.extend([line] * draw(st.integers(1, 12)))
    return "\n".join(out) + draw(st.sampled_from(["", "\n", "\r\n"]))


@st.composite
def _grep_output(draw: st.DrawFn) -> str:
    paths = st.sampled_from(
        ["src/headroom/engine/router.py", "web/components/OrderTable.tsx", "README.md", "lib/x_y.rs"]
    )
    hits = draw(
        st.lists(st.tuples(paths, st.integers(1, 99999), _free_text), min_size=3, max_size=40).map(
            lambda hs: sorted(hs, key=lambda h: h[0])
        )
    )
    pre = draw(st.sampled_from(["", "Output:\n", "Chunk ID: 9\nOutput:\n"]))
    post = draw(st.sampled_from(["", "\n", "\nexit 0\n"]))
    return pre + "\n".join(f"{p}:{n}:{t}" for p, n, t in hits) + post


_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(st.text(max_size=8), inner, max_size=6),
        st.lists(
            st.fixed_dictionaries({"identifier": st.integers(), "display_name": st.text(max_size=10), "v": inner}),
            min_size=3,
            max_size=12,
        ),
    ),
    max_leaves=40,
)
_rows = st.lists(
    st.fixed_dictionaries(
        {
            "identifier": st.integers(),
            "display_name": st.text(max_size=10),
            "attributes": st.one_of(_json_scalars, st.dictionaries(st.text(max_size=4), _json_scalars, max_size=3)),
        }
    ),
    min_size=6,
    max_size=20,
)
_documents = st.one_of(
    _json_values,
    _rows,
    st.fixed_dictionaries({"count": st.integers(), "results": _rows, "extra": st.lists(_rows, max_size=2)}),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_repetitive())
def test_repeats_round_trip_on_generated_text(text: str) -> None:
    out = encode_repeats(text)
    assert decode_repeats(text if out is None else out) == text
    assert expand_lossless(compress_lossless(text)) == text


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_grep_output())
def test_search_round_trip_on_generated_output(text: str) -> None:
    out = encode_search(text)
    assert decode_search(text if out is None else out) == text
    assert expand_lossless(compress_lossless(text)) == text


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_documents, st.sampled_from([None, 1, 2, 4]), st.sampled_from(["", "Output:\n"]))
def test_json_round_trip_is_value_equal(value: Any, indent: int | None, pre: str) -> None:
    body = json.dumps(value, indent=indent, ensure_ascii=indent == 4)
    text = pre + body
    out = compress_lossless(text)
    back = expand_lossless(out)
    assert back.startswith(pre)
    if out == text:
        assert back == text
    else:
        assert _pairs(back[len(pre) :]) == _pairs(body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_text_round_trips(text: str) -> None:
    got = lossless_transform(text)
    if got is None:
        assert expand_lossless(text) == text or OPEN in text
    elif got[0] == "json":
        assert _pairs(expand_lossless(got[1])) == _pairs(text)
    else:
        assert expand_lossless(got[1]) == text


def test_byte_exact_mode_never_re_renders_json() -> None:
    text = json.dumps(_records(30), indent=2)
    assert lossless_transform(text, byte_exact=True) is None
    assert lossless_transform(text, skip={"json"}) is None
    got = lossless_transform(text)
    assert got is not None and got[0] == "json"


# -- through compress() ---------------------------------------------------------------------------------

_CODE = '''def total(order):
    """Sum an order's lines, tax included."""
    subtotal = sum(line.price * line.qty for line in order.lines)
    return round(subtotal * (1 + order.tax_rate), 2)
'''


def _tool_turn(n: int, name: str, tool_input: dict[str, Any], text: str) -> list[dict[str, Any]]:
    call = {"type": "tool_use", "id": f"toolu_lossless_{n}", "name": name, "input": tool_input}
    result = {"type": "tool_result", "tool_use_id": f"toolu_lossless_{n}", "content": text}
    return [{"role": "assistant", "content": [call]}, {"role": "user", "content": [result]}]


def _latest(shared: Path, agent: str) -> dict[str, Any]:
    folder = shared / "fixtures" / "requests" / agent / "big-output"
    name = sorted(p.name for p in folder.glob("*-main.json"))[-1]
    data: dict[str, Any] = json.loads((folder / name).read_text())
    return data


def _tool_texts(messages: list[Any]) -> list[str]:
    return [s.text for s in iter_slots(messages) if s.is_tool_result]


def test_a_real_claude_request_shrinks_only_where_a_transform_fits(shared: Path) -> None:
    body = _latest(shared, "claude")
    real = body["messages"]
    code = "\n\n".join(_CODE.replace("total", f"total_{i}") for i in range(20))
    log = "\n".join(f"2026-11-20T08:00:{i % 60:02d}Z INFO req={i:06x} GET /api/items/{i} ok" for i in range(300))
    api = json.dumps({"page": 1, "items": _records(60), "next": "/api/items?page=2"}, indent=2)
    repeats = "Connecting to db:5432...\n" + "WARN connection refused, retrying in 1s\n" * 40 + "ERROR gave up\n"
    extra = [
        *_tool_turn(1, "Bash", {"command": "curl -s localhost:8080/api/items | jq ."}, api),
        *_tool_turn(2, "Grep", {"pattern": "compute_total", "output_mode": "content"}, _grep(4, 15)),
        *_tool_turn(3, "Bash", {"command": "python worker.py"}, repeats),
        *_tool_turn(4, "Read", {"file_path": "/src/shop/orders.py"}, code),
        *_tool_turn(5, "Bash", {"command": "tail -300 logs/server.log"}, log),
    ]
    messages = [*real, *extra]
    before = copy.deepcopy(messages)
    result = compress(messages, body["model"], config=LOSSLESS)
    assert messages == before, "the input must never be mutated"
    assert result.ccr_entries == []
    assert find_refs(json.dumps(result.messages, ensure_ascii=False)) == []
    assert result.tokens_after < result.tokens_before

    by_text = {d.original: d for d in result.decisions}
    for text, compressor in ((api, "lossless-json"), (_grep(4, 15), "lossless-search"), (repeats, "lossless-repeats")):
        decision = by_text[text]
        assert decision.compressor == compressor and decision.reason == "lossless mode"
        assert len(decision.text) < len(text) * 0.9
        assert decision.tokens_out < decision.tokens_in
    assert _pairs(expand_lossless(by_text[api].text)) == _pairs(api)
    assert expand_lossless(by_text[_grep(4, 15)].text) == _grep(4, 15)
    assert expand_lossless(by_text[repeats].text) == repeats

    # code, a log without repeats and the request's own tool results (a log preview, a numbered JSON file
    # read the agent may edit) are left exactly as they were
    for text in (code, log, *_tool_texts(real)):
        if text in by_text:
            assert by_text[text].compressor is None
            assert by_text[text].reason is None or by_text[text].reason.startswith(("lossless mode", "below"))
    after = _tool_texts(result.messages)
    assert after[: len(_tool_texts(real))] == _tool_texts(real)
    assert code in after and log in after


def test_a_real_codex_request_tables_its_json(shared: Path) -> None:
    body = _latest(shared, "codex")
    result = compress(body["input"], body["model"], config=LOSSLESS)
    assert result.ccr_entries == []
    assert find_refs(json.dumps(result.messages, ensure_ascii=False)) == []
    tabled = [d for d in result.decisions if d.compressor == "lossless-json"]
    assert tabled, [d.as_dict() for d in result.decisions]
    for d in tabled:
        assert d.tokens_out < d.tokens_in * 0.6
        pre, _, json_part = d.original.partition("Output:\n")
        back = expand_lossless(d.text)
        assert back.startswith(pre + "Output:\n")
        assert _pairs(back[len(pre) + len("Output:\n") :]) == _pairs(json_part)
    for d in result.decisions:
        if not d.compressor:
            assert d.text == d.original


def test_lossless_mode_is_deterministic_and_skips_every_compressor() -> None:
    log = "\n".join(f"2026-11-20T08:00:{i % 60:02d}Z ERROR req={i:06x} upstream timeout" for i in range(400))
    msgs = [
        {"role": "user", "content": "why?"},
        *_tool_turn(1, "Bash", {"command": "cat server.log"}, log),
    ]
    lossy = compress(msgs, "gpt-4o")
    assert lossy.ccr_entries, "the default mode elides this log behind a marker"
    first = compress(msgs, "gpt-4o", config=LOSSLESS)
    second = compress(copy.deepcopy(msgs), "gpt-4o", config=LOSSLESS)
    assert json.dumps(first.messages) == json.dumps(second.messages) == json.dumps(msgs)
    (decision,) = first.decisions
    assert decision.compressor is None and decision.reason == "lossless mode: no lossless transform fits"


def test_disabled_names_lossless_transforms_and_exact_file_reads_stay() -> None:
    api = json.dumps(_records(50), indent=2)
    msgs = [{"role": "user", "content": "list them"}, *_tool_turn(1, "Bash", {"command": "curl api"}, api)]
    off = compress(msgs, "gpt-4o", config=EngineConfig(lossless=True, disabled=frozenset({"json"})))
    assert off.messages == msgs
    read = [{"role": "user", "content": "edit it"}, *_tool_turn(1, "Read", {"file_path": "/d/records.json"}, api)]
    kept = compress(read, "gpt-4o", config=LOSSLESS)
    assert kept.messages == read, "a file the agent may edit by exact text is never re-rendered"
    assert kept.decisions[0].reason == "lossless mode: no lossless transform fits"
