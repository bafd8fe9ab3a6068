"""Properties over generated input: compress never raises, every marker redeems, nothing is lost unmarked.

Plus the bad inputs the engine must survive: JSON that only looks like JSON, 10,000-deep nesting, binary
data, mixed encodings, code that does not parse, code in an unknown language.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headroom.engine import EngineConfig, MemoryCCRStore, compress, find_refs, retrieve
from headroom.engine.ccr import REF_RE
from headroom.engine.compressors.base import Block, Context, looks_binary
from headroom.engine.compressors.code import LISTING_SAMPLE, is_listing
from headroom.engine.compressors.diff import DiffCompressor
from headroom.engine.compressors.listing import numbered_part, strip_numbers
from headroom.engine.compressors.search import _all_prefixed, _first_line, _first_lines, _prefixed
from headroom.engine.compressors.testout import TestOutputCompressor

CONFIG = EngineConfig(min_tokens=20)


def _request(text: str, tool: str = "Bash", tool_input: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "what is wrong with item 42?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": tool, "input": tool_input or {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": text}]},
    ]


def _check(text: str, **kw: Any) -> str:
    """Compress ``text`` as a tool result; every original line must be in the output or behind a marker.

    Lines are searched as substrings: a compressor may rejoin them.

    Blank lines are exempt: compressors may drop whitespace-only lines without a marker.
    """
    store = MemoryCCRStore()
    result = compress(_request(text, **kw), "gpt-4o", store=store, config=CONFIG)
    out = result.messages[2]["content"][0]["content"]
    assert isinstance(out, str)
    recovered = [out]
    for ref in find_refs(out):
        recovered.append(retrieve(str(ref), store))
    available = "\n".join(recovered)
    # A line must survive whole. A long one may have been cut into sentences or pieces (the text compressor
    # stashes parts of one line), so it counts as kept when nearly all its 16-character chunks are found.
    missing = [
        line for line in text.splitlines() if line.strip() and line not in available and not _pieces(line, available)
    ]
    assert not missing, f"lost without a marker: {missing[:3]}"
    return out


def _pieces(line: str, available: str) -> bool:
    if len(line) < 300:
        return all(w in available for w in line.split())
    chunks = [line[i : i + 16] for i in range(0, len(line) - 16, 16)]
    return sum(c in available for c in chunks) >= 0.9 * len(chunks)


_line = st.one_of(
    st.text(max_size=120),
    st.builds(
        lambda n, w: f"2026-11-20 10:00:{n % 60:02d} {w} request {n} done",
        st.integers(0, 10**6),
        st.sampled_from(["INFO", "WARN", "ERROR", "DEBUG"]),
    ),
    st.builds(
        lambda p, n, t: f"src/{p}.py:{n}:{t}",
        st.sampled_from(["a", "b/c", "d_e"]),
        st.integers(1, 999),
        st.text(max_size=60),
    ),
    st.builds(
        lambda s, t: f"{s}{t}",
        st.sampled_from(["+", "-", " ", "@@ -1,3 +1,4 @@ ", "diff --git a/x b/x"]),
        st.text(max_size=40),
    ),
    st.builds(lambda n, t: f"{n:6}\t{t}", st.integers(1, 5000), st.text(max_size=60)),
    st.sampled_from(
        [
            "def f(x):",
            "    return x",
            "class A:",
            "}",
            "{",
            "Traceback (most recent call last):",
            '  File "a.py", line 3, in f',
            "PASSED",
            "FAILED tests/t.py::test_x - assert 1 == 2",
        ]
    ),
)

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=8) | st.dictionaries(st.text(max_size=10), children, max_size=8),
    max_leaves=60,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_line, min_size=1, max_size=300))
def test_any_lines_compress_without_loss(lines: list[str]) -> None:
    _check("\n".join(lines))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_json, min_size=1, max_size=40))
def test_any_json_compresses_without_loss(docs: list[Any]) -> None:
    _check(json.dumps(docs, indent=1))
    _check("\n".join(json.dumps(d) for d in docs))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=200, max_size=4000))
def test_any_text_compresses_without_loss(text: str) -> None:
    _check(text)


def test_json_that_only_looks_like_json() -> None:
    broken = '{"items": [' + ",".join(f'{{"id": {i}, "name": "n{i}"' for i in range(500)) + "]"
    _check(broken)


def test_ten_thousand_deep_nesting() -> None:
    deep = "[" * 10_000 + "1" + "]" * 10_000
    _check(deep)
    deep_obj = '{"a":' * 10_000 + "1" + "}" * 10_000
    _check(deep_obj)


def test_binary_and_mixed_encodings() -> None:
    _check(bytes(range(256)).decode("latin-1") * 40)
    mixed = ("caf\u00e9 na\u00efve " + b"\xff\xfe".decode("utf-8", "surrogateescape") + " ok\n") * 300
    _check(mixed)
    _check("\ud800 lone surrogate in a log line ERROR\n" * 300)


def test_code_that_does_not_parse_and_unknown_languages() -> None:
    broken = "def f(:\n    return ((\n" * 200 + "class X(:\n  pass\n" * 100
    _check(broken, tool="Read", tool_input={"file_path": "broken.py"})
    cobol = "       IDENTIFICATION DIVISION.\n       PROGRAM-ID. HELLO.\n       PROCEDURE DIVISION.\n" * 200
    _check(cobol, tool="Read", tool_input={"file_path": "hello.cob"})


def test_fifty_megabyte_block() -> None:
    line = "2026-11-20 10:00:00 INFO GET /api/items/1 200 3ms\n"
    big = line * (50_000_000 // len(line))
    out = _check(big)
    assert len(out) < 1_000_000


# -- the fast paths agree with the plain definitions they replace ----------------------------------------

_NUMBERED = re.compile(r"^ *\d+(?:\t|→)(.*)$", re.DOTALL)
_LISTING_LINE = re.compile(r"^\s*\d+(?:\t|→)")
_CONTROL = re.compile("[\x00-\x08\x0e-\x1a\x1c-\x1f\ufffd]")
_PIECES = st.sampled_from(["     1\tfoo", "  22→bar", "", "   ", "note", "12\t", "\t 5\tx", "parse_args()", "İ", "a.b"])
_LINES = st.lists(st.one_of(_PIECES, st.text(max_size=12)).map(lambda s: "".join(s.splitlines())), max_size=12)


@given(_LINES)
def test_strip_numbers_is_a_match_per_line(lines: list[str]) -> None:
    matches = [_NUMBERED.match(line) for line in lines]
    code = ["" if m is None else m.group(1) for m in matches]
    last = max((i for i, m in enumerate(matches) if m is not None), default=-1)
    assert strip_numbers(lines) == (code, last)


@given(_LINES)
def test_is_listing_is_a_match_per_line(lines: list[str]) -> None:
    text = "\n".join(lines)
    sample = [line for line in text[: LISTING_SAMPLE * 200].splitlines()[:LISTING_SAMPLE] if line.strip()]
    expected = len(sample) >= 2 and sum(1 for line in sample if _LISTING_LINE.match(line)) >= 0.8 * len(sample)
    assert is_listing(text) == expected


_GREP_PIECES = st.sampled_from(["src/a.py", "a-b", "-12-", ":3:", "-7:", ":", "-", "12", "x y", "C:\\w", "٣"])


@given(st.lists(st.one_of(_GREP_PIECES, st.text(max_size=4)), max_size=8).map("".join))
def test_the_one_reading_fast_path_agrees_with_reading_every_prefix(line: str) -> None:
    line = "".join(line.splitlines())
    readings, fallback = _prefixed(line)
    assert (list(readings), fallback) == _all_prefixed(line)


@given(
    st.lists(st.sampled_from(["  1\tx", "  2→y", "note", "", " "]), min_size=1, max_size=8),
    st.lists(st.sampled_from(["\n", "\r\n", "\r", "\x0c", "\u2028"]), min_size=8, max_size=8),
    st.sampled_from(["", "\n", "\r\n", "\x0b"]),
)
def test_numbered_part_determines_the_numbered_lines(rows: list[str], ends: list[str], final: str) -> None:
    text = "".join(row + end for row, end in zip(rows, ends, strict=False))[: -len(ends[len(rows) - 1])] + final
    lines = text.splitlines()
    numbered = [i for i, line in enumerate(lines) if line.strip() and line.lstrip()[0].isdigit()]
    last = numbered[-1] if numbered else -1
    assert numbered_part(text, lines, last).splitlines() == lines[: last + 1]


_REF_PIECES = st.sampled_from(["hr:", "0123456789ab", ":1-2", "x", "_", " ", "é", "f", "[", "hr:hr:"])


@given(st.lists(st.one_of(_REF_PIECES, st.text(max_size=3)), max_size=10).map("".join))
def test_references_are_found_where_a_word_boundary_before_them_says(text: str) -> None:
    plain = re.compile(r"\bhr:([0-9a-f]{12})(?::(\d+)-(\d+))?(?![0-9a-f])")
    assert [(m.span(), m.groups()) for m in REF_RE.finditer(text)] == [
        (m.span(), m.groups()) for m in plain.finditer(text)
    ]


_BREAKING = st.text(alphabet="ab \r\n\x0b\u2028", max_size=30)


@given(st.tuples(_BREAKING, st.integers(0, 5000), _BREAKING).map(lambda t: t[0] + "x" * t[1] + t[2]))
def test_first_line_is_the_first_of_splitlines(text: str) -> None:
    assert _first_line(text) == (text.splitlines() or [""])[0]


@given(st.lists(_BREAKING, max_size=40).map("".join), st.integers(1, 5))
def test_first_lines_are_those_of_splitlines(text: str, n: int) -> None:
    assert _first_lines(text, n) == text.splitlines()[:n]


def test_is_listing_decides_on_its_sample_of_lines() -> None:
    """A read file with a long unnumbered note after it is still a listing; a long preamble hides one."""
    numbered = "".join(f"{i:6d}\t{'x' * (i % 7)}\n" for i in range(1, LISTING_SAMPLE + 1))
    note = "".join(f"note line {i}\n" for i in range(300))
    assert is_listing(numbered + note)
    assert not is_listing(note + numbered)
    assert not is_listing(numbered[: numbered.index("\n") + 1] + note)


@given(_LINES, st.sampled_from(["", "what calls `parse_args`?", "fix a.b and foo", "İstanbul note"]))
def test_relevant_rows_is_relevance_per_line(lines: list[str], question: str) -> None:
    ctx = Context("", question=question, hints="grep -n note")
    assert ctx.relevant_rows(lines) == [i for i, line in enumerate(lines) if line.strip() and ctx.relevance(line) > 0]


@given(st.text(alphabet=st.sampled_from("ab\n\t\x1b\x00\x01\x07\x0c\x1c\ufffd\ud800é"), max_size=300))
def test_looks_binary_counts_what_the_regex_counts(text: str) -> None:
    head = text[:65536]
    expected = bool(head) and ("\x00" in head[:4096] or len(_CONTROL.findall(head)) * 20 > len(head))
    assert looks_binary(text) == expected


_OLD_TESTS_SNIFF = re.compile(
    r"^=+ test session starts =+$|^\S+::\S+ (?:PASSED|FAILED|ERROR|SKIPPED)|^(?:FAILED|ERROR) \S+::"
    r"|^Ran \d+ tests? in |^--- (?:FAIL|PASS): |^=== RUN |^ok  \t|^FAIL\t"
    r"|^running \d+ tests?$|^test result: |^(?:PASS|FAIL) \S|^Tests: +\d",
    re.M,
)
_SNIFF_LINES = st.sampled_from(
    [
        "diff --git a/x b/x",
        "diff --cc f",
        "@@ -1,2 +1,3 @@",
        "--- a/x",
        "+++ b/x",
        "Binary files a and b differ",
        "new file mode 100644",
        "rename from a",
        "==== test session starts ====",
        "t.py::test_a PASSED",
        "FAILED t.py::b",
        "Ran 3 tests in 0.1s",
        "--- FAIL: TestX",
        "=== RUN TestX",
        "ok  \tpkg",
        "running 2 tests",
        "test result: ok",
        "PASS x",
        "Tests:  3",
        "plain",
        "",
        " diff --git a b",
        "x@@ -1 +1",
        "\r",
        "--- ",
    ]
)


@given(st.lists(_SNIFF_LINES, max_size=10))
def test_newline_anchored_sniffs_match_the_multiline_ones(lines: list[str]) -> None:
    text = "\n".join(lines)
    if re.search(r"^diff --(?:git|cc) ", text, re.M):
        diff = bool(re.search(r"^(?:@@+ -\d|Binary files |(?:new|deleted) file mode|rename from )", text, re.M))
    else:
        diff = all(re.search(p, text, re.M) for p in (r"^--- \S", r"^\+\+\+ \S", r"^@@ -\d+(?:,\d+)? \+\d"))
    assert DiffCompressor().sniff(Block(text)) == diff
    assert TestOutputCompressor().sniff(Block(text)) == bool(_OLD_TESTS_SNIFF.search(text))
