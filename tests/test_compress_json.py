"""The JSON compressor on real tool output (a GitHub issue page, a Prometheus matrix, kubectl events) and on
small inline records that pin each technique: tables, dropped columns, dedupe, anomalies, NDJSON, limits."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from compress_helpers import run

from headroom.engine.ccr import MemoryCCRStore, find_refs, put_all, retrieve
from headroom.engine.compressors.base import Block, Context, Skip
from headroom.engine.compressors.jsonc import JsonCompressor

C = JsonCompressor()


def _workload(shared: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((shared / "bench" / "workloads" / f"{name}.json").read_text())
    return data


def _tokens(shared: Path, text: str) -> int:
    sys.path.insert(0, str(shared / "bench"))
    try:
        import benchcore
    finally:
        sys.path.pop(0)
    return len(benchcore.get_encoding("o200k_base").encode(text, disallowed_special=()))


def _tool_results(workload: dict[str, Any]) -> list[str]:
    return [m["content"] for m in workload["messages"] if m["role"] == "tool" and isinstance(m["content"], str)]


def _issues(n: int = 30) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        number = 500 + i
        out.append(
            {
                "url": f"https://api.example.com/repos/acme/app/issues/{number}",
                "html_url": f"https://example.com/acme/app/issues/{number}",
                "id": 900_000_000 + i * 7919,
                "node_id": f"I_kwDOAbCdEf{i:08d}xyz",
                "number": number,
                "title": f"Issue title number {i}",
                "user": {"login": f"dev{i % 4}", "id": 1000 + i % 4, "avatar_url": "https://avatars.example/u/1"},
                "labels": [{"id": 1, "name": "bug", "color": "d73a4a"}]
                + ([{"id": 2, "name": "P1"}] if i % 5 == 0 else []),
                "state": "open" if i % 3 else "closed",
                "locked": False,
                "assignee": None,
                "milestone": None,
                "body": "### Describe the bug\n\n" + f"Detail line for issue {i}. " * 20 + "\n\nTraceback ...",
            }
        )
    return out


# -- sniff ----------------------------------------------------------------------------------------------------


def test_sniff_accepts_json_and_rejects_bracketed_logs() -> None:
    assert C.sniff(Block('  {"a": 1}'))
    assert C.sniff(Block('[{"a": 1}]'))
    assert C.sniff(Block('{"a": 1}\n{"a": 2}\n'))
    assert not C.sniff(Block("[Sun Dec 04 17:20:38 2005] [notice] jk2_init() Found child"))
    assert not C.sniff(Block("plain text"))


# -- real material -----------------------------------------------------------------------------------------------


def test_issue_list_keeps_every_number_title_state_and_label(shared: Path) -> None:
    workload = _workload(shared, "issue_triage")
    text = _tool_results(workload)[0]
    out, ctx = run(C, text, question=workload["question"])
    for issue in json.loads(text):
        row = next(line for line in out.splitlines() if line.startswith(f"{issue['number']} | {issue['title']} |"))
        assert f"| {issue['state']} |" in row
        assert ",".join(label["name"] for label in issue["labels"]) in row
    for needle in workload["needles"]:
        assert needle["text"] in out
    # The bulky parts are one retrieve away, and the header points at the exact original.
    assert out.splitlines()[0].startswith("[original JSON, 46 records; retrieve hr:")
    assert ctx.dropped["chars"] > 10_000
    assert "derived:" in out and "{number}" in out


def test_issue_list_saves_at_least_85_percent(shared: Path) -> None:
    workload = _workload(shared, "issue_triage")
    text = _tool_results(workload)[0]
    out, _ = run(C, text, question=workload["question"])
    before, after = _tokens(shared, text), _tokens(shared, out)
    assert after <= before * 0.15, (before, after)


def test_prometheus_matrix_is_summarised_per_series(shared: Path) -> None:
    workload = _workload(shared, "sre_incident")
    text = next(t for t in _tool_results(workload) if '"resultType":"matrix"' in t)
    out, ctx = run(C, text, question=workload["question"])
    series = json.loads(text)["data"]["result"]
    assert f"{len(series)} series" in out
    assert "UTC 2015-10-18" in out
    first = next(line for line in out.splitlines() if line.startswith("1. node_network_up"))
    assert "changes 1→0@18:05:00" in first
    assert "level shift" in out and "rising from 0" in out
    assert ctx.dropped["points"] == sum(len(s["values"]) for s in series)
    assert len(out) < len(text) / 5


def test_kubectl_events_keep_warnings_whole(shared: Path) -> None:
    workload = _workload(shared, "sre_incident")
    text = next(t for t in _tool_results(workload) if '"kind": "List"' in t)
    out, _ = run(C, text, question=workload["question"])
    events = json.loads(text)["items"]
    for event in events:
        assert event["message"] in out
        assert event["reason"] in out
    assert "notable:" in out and "type=Warning" in out
    assert "uid" not in out.split("columns:")[1]
    assert len(out) < len(text) / 2


def test_github_fixtures_compress_and_redeem(shared: Path) -> None:
    for path in sorted((shared / "bench" / "data" / "github").glob("*.json")):
        text = path.read_text()
        out, _ = run(C, text)
        assert len(out) < len(text) * 0.7, path.name


# -- techniques on inline records ----------------------------------------------------------------------------------


def test_table_drops_empty_constant_noise_and_derived_columns() -> None:
    text = json.dumps(_issues())
    out, ctx = run(C, text)
    assert "columns: number | title | user.login | labels | state | body" in out
    assert "  locked=false" in out
    assert "empty: assignee, milestone" in out
    assert "  url=https://api.example.com/repos/acme/app/issues/{number}" in out
    assert "  html_url=https://example.com/acme/app/issues/{number}" in out
    assert "not shown (in the original): id, node_id, user.id, user.avatar_url" in out
    assert "500 | Issue title number 0 | dev0 | bug,P1 | closed | Detail line for issue 0." in out
    assert "I_kwDO" not in out
    assert ctx.dropped["chars"] > 0
    assert len(out) < len(text) / 3


def test_long_fields_are_stashed_byte_exact() -> None:
    issues = _issues()
    out, ctx = run(C, json.dumps(issues))
    store = MemoryCCRStore()
    put_all(store, ctx.entries)
    bodies = {retrieve(store, str(ref)) for ref in find_refs(out)}
    assert issues[7]["body"] in bodies


def test_api_envelope_renders_meta_and_table() -> None:
    doc = {
        "data": [{"id": i, "name": f"svc-{i}", "status": "ok", "latency_ms": 10 + i % 7} for i in range(40)],
        "meta": {"page": 1, "per_page": 40, "next": None},
    }
    doc["data"][17]["status"] = "error"
    out, _ = run(C, json.dumps(doc, indent=2))
    assert "data: 40 records" in out
    assert "meta:" in out and "  page: 1" in out and "  empty: next" in out
    assert "17 | svc-17 | error |" in out
    assert "notable: status=error (id 17)" in out


def test_ndjson_lines_become_one_table() -> None:
    text = "\n".join(
        json.dumps({"ts": f"2024-01-01T00:00:{i:02d}Z", "level": "info", "msg": f"tick {i}"}) for i in range(30)
    )
    out, _ = run(C, text)
    assert out.startswith("[original NDJSON, 30 lines; retrieve hr:")
    assert "columns: ts | msg" in out
    assert "  level=info" in out
    assert "2024-01-01T00:00:29Z | tick 29" in out


def test_duplicate_rows_are_folded_with_a_count() -> None:
    rows = [{"host": "web-1", "check": "disk", "result": "pass"}] * 12 + [
        {"host": "web-2", "check": "disk", "result": "fail"}
    ] * 3
    out, ctx = run(C, json.dumps(rows, indent=2))
    assert "15 records (13 duplicates folded)" in out
    assert "web-1 | pass | ×12" in out
    assert "web-2 | fail | ×3" in out
    assert ctx.dropped["duplicate rows"] == 13


def test_anomalies_keep_full_detail_and_outliers_are_named() -> None:
    rows = [
        {"job": f"build-{i}", "status": "success", "duration_s": 60 + i % 5, "log": "all good " * 30} for i in range(30)
    ]
    rows[11] = {"job": "build-11", "status": "failed", "duration_s": 61, "log": "step 3 failed: " + "x" * 300}
    rows[20]["duration_s"] = 5000
    out, _ = run(C, json.dumps(rows))
    failed = next(line for line in out.splitlines() if line.startswith("build-11 |"))
    assert "x" * 300 in failed and "retrieve" not in failed
    ok = next(line for line in out.splitlines() if line.startswith("build-3 |"))
    assert "retrieve hr:" in ok
    assert "status=failed" in out
    assert "duration_s outlier 5000" in out


def test_mostly_constant_column_names_its_exceptions() -> None:
    rows = [{"id": i, "name": f"part-{i}", "price": i * 1.5, "archived": i in (7, 19)} for i in range(1, 60)]
    out, _ = run(C, json.dumps(rows))
    assert "archived=false except id 7: true, id 19: true" in out
    assert "columns: id | name | price\n" in out


def test_huge_array_keeps_head_tail_anomalies_and_question_hits() -> None:
    rows = [{"id": i, "name": f"item-{i}", "state": "ok", "note": f"n{i}"} for i in range(5000)]
    for row in rows[::7]:
        del row["note"]  # a column some rows lack must not break the elided rows' stash
    rows[2500]["state"] = "error"
    rows[3333]["name"] = "flux-capacitor"
    out, ctx = run(C, json.dumps(rows), question="what happened to the flux-capacitor?")
    lines = out.splitlines()
    assert any(line.startswith("0 | item-0 |") for line in lines)
    assert any(line.startswith("4999 | item-4999 |") for line in lines)
    assert any(line.startswith("2500 | item-2500 | error") for line in lines)
    assert any(line.startswith("3333 | flux-capacitor |") for line in lines)
    assert ctx.dropped["rows"] > 4000
    assert re.search(r"\[\d+ rows elided \(same columns\); retrieve hr:[0-9a-f]{12}\]", out)
    assert len(out) < 20_000


# -- limits -------------------------------------------------------------------------------------------------------


def test_invalid_json_skips() -> None:
    text = '[{"a": 1, "b": "x" ' + "," * 500 + "]"
    with pytest.raises(Skip, match="invalid json"):
        run(C, text)


def test_deep_nesting_skips_without_recursion_error() -> None:
    for text in ("[" * 10_000 + "]" * 10_000, '{"a":' * 10_000 + "1" + "}" * 10_000):
        with pytest.raises(Skip):
            run(C, text)


def test_moderate_nesting_is_bounded() -> None:
    doc: Any = {"leaf": "x" * 500}
    for _ in range(200):
        doc = {"k": doc}
    with pytest.raises(Skip, match="nesting"):
        run(C, json.dumps(doc))


def test_scalars_and_tiny_documents_skip() -> None:
    with pytest.raises(Skip):
        run(C, '"' + "x" * 1000 + '"')
    with pytest.raises(Skip):
        run(C, '{"a": 1}')


def test_output_is_deterministic() -> None:
    text = json.dumps(_issues(25))
    first = C.compress(Block(text), Context(text, question="which bugs are P1?", kind="json"))
    second = C.compress(Block(text), Context(text, question="which bugs are P1?", kind="json"))
    assert first == second


def test_cells_of_every_kind_render_and_redeem() -> None:
    rows = [
        {
            "pod": f"zk-{i % 5}",
            "pod_full": f"zk-{i % 5}.{i * 7919:016x}",
            "ids": list(range(i)),
            "mixed": [1, None, True, 2.5, "x"] if i % 2 else ["a", "b"],
            "pipe": f"a | b {i}",
            "note": f"one\ntwo {i}",
            "ratio": i / 7,
            "exit_code": 137 if i == 33 else 0,
        }
        for i in range(40)
    ]
    out, ctx = run(C, json.dumps(rows))
    assert "not shown (in the original): pod_full" in out  # a generated suffix on the pod name
    assert "notable: exit_code=137 (row 34)" in out
    row = next(line for line in out.splitlines() if line.startswith("zk-1 | 0,1,2,3,4,5,6,7,8,9,10 |"))
    assert "| 1,,true,2.5,x | a \\| b 11 | one\\ntwo 11 | 1.57143 |" in row
    long_row = next(line for line in out.splitlines() if "| a \\| b 34 |" in line)
    assert ",28,29 [4 more ids items; retrieve hr:" in long_row
    assert ctx.dropped["items"] == sum(max(0, i - 30) for i in range(40))
