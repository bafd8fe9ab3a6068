"""The search compressor: match lines and definitions stay verbatim, context goes behind per-file markers."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import pytest
from compress_helpers import engine_workloads, run

from headroom.engine.ccr import MemoryCCRStore, find_refs, put_all, retrieve
from headroom.engine.compressors.base import Block, Context, Skip
from headroom.engine.compressors.search import SearchCompressor, searched_names
from headroom.engine.config import EngineConfig
from headroom.engine.messages import ToolCall, tool_hints
from headroom.engine.router import route

COMP = SearchCompressor()
DEF = "def parse_config(path, *, strict=False,"


def _source(n: int, define: bool = False) -> list[str]:
    """A fake module's lines; ``parse_config`` is used every 25 lines (and defined at line 40 if ``define``)."""
    lines = [f"    value_{i} = compute_something(arg_{i}, other_{i})  # line {i + 1}" for i in range(n)]
    for i in range(10, n, 25):
        lines[i] = f"    result = parse_config(paths[{i}])"
    if define:
        lines[39] = DEF
        lines[40] = "                 encoding='utf-8'):"
        lines[41] = '    """Read the config file."""'
    return lines


def _grep(files: dict[str, list[str]], pattern: str, context: int, numbers: bool = True) -> str:
    """What ``grep -rn -C context pattern`` prints for ``files`` (groups joined by ``--``)."""
    out: list[str] = []
    for path, lines in files.items():
        hits = [i for i, line in enumerate(lines) if pattern in line]
        shown: list[int] = sorted(
            {j for i in hits for j in range(max(0, i - context), min(len(lines), i + context + 1))}
        )
        prev = None
        for j in shown:
            if (prev is not None and j != prev + 1) or (prev is None and out):
                out.append("--")
            sep = ":" if j in hits else "-"
            out.append(f"{path}{sep}{j + 1}{sep}{lines[j]}" if numbers else f"{path}{sep}{lines[j]}")
            prev = j
    return "\n".join(out) + "\n"


FILES = {
    "src/app/main.py": _source(60),
    "src/app/config.py": _source(300, define=True),
    "tests/test_config.py": _source(200),
    "src/app/cli.py": _source(80),
}


def test_grep_with_context_keeps_matches_and_definition() -> None:
    text = _grep(FILES, "parse_config", 4)
    out, ctx = run(
        COMP, text, question="where is parse_config defined?", tool_input={"command": "grep -rn -C 4 parse_config src"}
    )
    for line in text.splitlines():
        if ":" in line.split("parse_config")[0] and "parse_config" in line and "/test_" not in line:
            assert line in out
    assert f"src/app/config.py:40:{DEF}" in out
    assert "src/app/config.py-41-                 encoding='utf-8'):" in out  # the signature's second line
    assert out.index("src/app/config.py:40:") < out.index("src/app/main.py")  # the defining file comes first
    assert ctx.dropped["lines"] > 0
    assert len(out) < len(text) / 2


def test_grep_without_line_numbers() -> None:
    text = _grep(FILES, "parse_config", 3, numbers=False)
    assert COMP.sniff(Block(text))
    out, _ = run(COMP, text, tool_input={"pattern": "parse_config"})
    assert f"src/app/config.py:{DEF}" in out
    assert "src/app/main.py:    result = parse_config(paths[10])" in out
    assert len(out) < len(text) / 2


def test_ripgrep_heading_mode() -> None:
    flat = _grep(FILES, "parse_config", 3)
    blocks: list[str] = []
    for path in FILES:
        rows = [ln[len(path) + 1 :] for ln in flat.splitlines() if ln.startswith(path)]
        blocks.append(path + "\n" + "\n".join(rows))
    text = "\n\n".join(blocks) + "\n"
    assert COMP.sniff(Block(text))
    out, _ = run(COMP, text, question="what calls `parse_config`?", tool_input={"command": "rg -n -C3 parse_config"})
    assert out.index("src/app/config.py\n") < out.index("\n40:" + DEF) < out.index("src/app/main.py\n")
    assert "11:    result = parse_config(paths[10])" in out
    assert len(out) < len(text) / 2


def _rg_json() -> str:
    rows: list[dict[str, object]] = []
    for path, lines in FILES.items():
        rows.append({"type": "begin", "data": {"path": {"text": path}}})
        for i, line in enumerate(lines):
            near = any("parse_config" in x for x in lines[max(0, i - 2) : i + 3])
            if not near:
                continue
            kind = "match" if "parse_config" in line else "context"
            data = {"path": {"text": path}, "lines": {"text": line + "\n"}, "line_number": i + 1, "submatches": []}
            rows.append({"type": kind, "data": data})
        rows.append({"type": "end", "data": {"path": {"text": path}, "stats": {"matches": 3}}})
    rows.append({"type": "summary", "data": {"elapsed_total": {"secs": 0, "nanos": 1}, "stats": {}}})
    return "\n".join(json.dumps(r) for r in rows) + "\n"


def test_ripgrep_json_is_rendered_and_original_retrievable() -> None:
    text = _rg_json()
    assert COMP.sniff(Block(text))
    out, ctx = run(COMP, text, tool_input={"pattern": r"\bparse_config\b"})
    assert f"src/app/config.py:40:{DEF}" in out
    assert "src/app/cli.py:11:    result = parse_config(paths[10])" in out
    assert '"type"' not in out
    assert ctx.original_id() in out  # the raw JSON is one retrieve away
    assert len(out) < len(text) / 4


def test_definition_kept_when_its_file_is_summarised() -> None:
    big = {f"pkg/mod{k:03d}.py": _source(120) for k in range(60)}
    big["pkg/zz_defs.py"] = _source(2000, define=True)  # hundreds of matches, the definition buried among them
    text = _grep(big, "parse_config", 2)
    out, _ = run(COMP, text, tool_input={"command": "grep -rn -C2 parse_config pkg/"})
    assert f"pkg/zz_defs.py:40:{DEF}" in out
    assert out.splitlines()[1].startswith("pkg/zz_defs.py")
    assert "more matches" in out
    assert len(out) < len(text) / 5


def test_code_search_workload(shared: Path) -> None:
    tiktoken = pytest.importorskip("tiktoken")
    del tiktoken
    import sys

    sys.path.insert(0, str(shared / "bench"))
    import benchcore

    enc = benchcore.get_encoding("o200k_base")
    work = json.loads((shared / "bench/workloads/code_search.json").read_text())
    text = work["messages"][2]["content"][0]["content"]
    tool_input = work["messages"][1]["content"][1]["input"]
    assert COMP.sniff(Block(text, tool_name="Grep", tool_input=tool_input))
    out, _ = run(COMP, text, question=work["question"], tool_input=tool_input)
    for needle in work["needles"]:
        assert needle["text"] in out
    before, after = benchcore.count_text(text, enc), benchcore.count_text(out, enc)
    assert after <= 0.15 * before, (before, after)
    again, _ = run(COMP, text, question=work["question"], tool_input=tool_input)
    assert again == out


def test_deterministic() -> None:
    text = _grep(FILES, "parse_config", 4)
    outs = {
        run(COMP, text, question="parse_config callers", tool_input={"pattern": "parse_config"})[0] for _ in range(3)
    }
    assert len(outs) == 1


@pytest.mark.parametrize(
    ("tool_input", "name"),
    [
        ({"pattern": r"\burlparse\b"}, "urlparse"),
        ({"command": "grep -rnw -C 8 urlparse Lib/"}, "urlparse"),
        ({"command": "cd src && rg -n --glob '*.py' -e load_thing | head -50"}, "load_thing"),
        ({"command": ["bash", "-lc", "git grep -n 'def  *fooBar' -- src"]}, "fooBar"),
        ({"command": "rg -C3 -t py SomeClass ."}, "SomeClass"),
    ],
)
def test_searched_name_from_tool_input(tool_input: dict[str, object], name: str) -> None:
    block = Block("x", tool_input=tool_input)
    assert searched_names(block, Context("x"))[:1] == [name]


@pytest.mark.parametrize(
    "text",
    [
        "Just some prose.\nIt talks about things: many of them.\nNothing here is a search result.\n" * 5,
        "src/a.c:12:5: error: expected ';'\nsrc/a.c:14:1: warning: unused\nsrc/b.c:3:9: error: no member\n" * 5,
        "",
    ],
)
def test_sniff_rejects_non_search(text: str) -> None:
    assert not COMP.sniff(Block(text))


@pytest.mark.parametrize(
    "text",
    [
        "src/a.py:1:x\n" * 3,
        "--\n--\n",
        '{"type":"match","data":{"path":{"text":"a.py"},"lines":{"text":"x"},"line_number":"oops"}}\n' * 40,
        "src/a.py-1-only context\nsrc/a.py-2-more\n" * 50,
        "src/a.py:1:" + "\udcff" * 10 + "\n" + "src/a.py-2-ctx line here\n" * 300,
    ],
)
def test_malformed_input_skips_or_stays_valid(text: str) -> None:
    try:
        out, _ = run(COMP, text, tool_input={"pattern": "x"})
    except Skip:
        return
    assert out


# -- ripgrep --json over real files ----------------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent
URLPARSE_DEF = "def urlparse(url, scheme='', allow_fragments=True):"
RG_COMMAND = "rg --json -C 8 -w urlparse -g '*.py'"


@pytest.fixture(scope="module")
def rg_stdlib() -> str:
    """``rg --json -C 8 -w urlparse`` over the standard library, as ripgrep 13 prints it."""
    wl = engine_workloads()
    return str(wl.rg_json(wl.STDLIB, "urlparse"))


def test_rg_json_goes_to_the_search_compressor_and_saves_most(rg_stdlib: str) -> None:
    question = "Where is `urlparse` defined in the standard library, and what is its exact signature?"
    store = MemoryCCRStore()
    hints = tool_hints(ToolCall("Bash", {"command": RG_COMMAND}))
    outcome = route(Block(rg_stdlib, "Bash", {"command": RG_COMMAND}), question, hints, EngineConfig())
    assert outcome.compressor == "search", outcome.reason  # not the JSON compressor's NDJSON table
    assert URLPARSE_DEF in outcome.text
    assert len(outcome.text) <= 0.15 * len(rg_stdlib)
    # The whole raw JSON is one retrieve away, byte for byte; each file's records too.
    put_all(store, outcome.entries)
    whole = [ref for ref in find_refs(outcome.text) if ref.first is None]
    assert rg_stdlib in {retrieve(store, str(ref)) for ref in whole}
    again = route(Block(rg_stdlib, "Bash", {"command": RG_COMMAND}), question, hints, EngineConfig())
    assert again.text == outcome.text


def test_rg_json_saves_85_percent_of_tokens(rg_stdlib: str, shared: Path) -> None:
    pytest.importorskip("tiktoken")
    sys.path.insert(0, str(shared / "bench"))
    try:
        benchcore = importlib.import_module("benchcore")
    finally:
        sys.path.remove(str(shared / "bench"))
    enc = benchcore.get_encoding("o200k_base")
    out, _ = run(COMP, rg_stdlib, question="Which modules call `urlparse`?", tool_input={"command": RG_COMMAND})
    before, after = benchcore.count_text(rg_stdlib, enc), benchcore.count_text(out, enc)
    assert after <= 0.15 * before, (before, after)


def test_rg_json_builder_writes_what_ripgrep_writes(rg_stdlib: str) -> None:
    real = engine_workloads().real_rg_json(engine_workloads().STDLIB, "urlparse")
    if real is None:
        pytest.skip("ripgrep is not installed")

    def timeless(text: str) -> str:
        return re.sub(r'"(human|nanos|secs)":("[^"]*"|\d+)', r'"\1":0', text)

    assert timeless(real) == timeless(rg_stdlib)
