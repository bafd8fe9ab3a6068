"""The Claude Code reader: layouts of every version, failure signals, resumable reads, ccusage parity.

Own fixtures (``tests/fixtures/claude/projects``) are synthetic and small; each expectation below is
derived from their content in a comment. The real logs in ``../shared`` are checked against counts
computed independently from the raw JSON in the test itself, and against ccusage.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from headroom.learn.model import Batch, EventKind, ToolKind, ToolStatus, Usage
from headroom.learn.readers.claude import ClaudeReader
from headroom.learn.readers.jsonl import parse_chunk, read_file
from tests.helpers import ccusage_binary, read_whole

OWN = Path(__file__).resolve().parent / "fixtures" / "claude"
PROJECTS = OWN / "projects"
V1 = PROJECTS / "-work-demo" / "11111111-1111-4111-8111-111111111111.jsonl"
V2 = PROJECTS / "C--work-shop" / "22222222-2222-4222-8222-222222222222.jsonl"
V2_AGENT = PROJECTS / "C--work-shop" / "agent-1a2b3c4d.jsonl"
V21 = PROJECTS / "-home-dev-app" / "33333333-3333-4333-8333-333333333333.jsonl"
V21_AGENT = V21.with_suffix("") / "subagents" / "agent-a0123456789abcdef.jsonl"

reader = ClaudeReader()


def read(path: Path, root: Path = PROJECTS) -> Batch:
    return read_whole(reader, path, root)


def dedup(usages: list[Usage]) -> dict[str, Usage]:
    """Ingestion's rule for Merge.MAX copies of one key: a non-sidechain copy beats a sidechain one,
    then the larger total wins, and on a tie the first copy stays (ccusage's rule)."""
    kept: dict[str, Usage] = {}
    for usage in usages:
        known = kept.get(usage.key)
        if known is None or (not usage.sidechain, usage.total) > (not known.sidechain, known.total):
            kept[usage.key] = usage
    return kept


def daily(root: Path) -> dict[str, list[int]]:
    """Per UTC day [input, output, cache read, cache creation] over every log under ``root``."""
    usages: list[Usage] = []
    for path in sorted(reader.discover(root), key=str):  # ccusage reads files in path order
        usages += read(path, root).usage
    days: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for usage in dedup(usages).values():
        assert usage.ts is not None
        totals = days[usage.ts.date().isoformat()]
        for index, value in enumerate(
            (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_creation_tokens)
        ):
            totals[index] += value
    return dict(days)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


# ---------------------------------------------------------------------------------------- discovery


@pytest.mark.parametrize(
    ("relative", "accepted"),
    [
        ("-work-demo/11111111-1111-4111-8111-111111111111.jsonl", True),
        ("C--work-shop/agent-1a2b3c4d.jsonl", True),  # v2.0 sub-agent beside the session
        ("p/33333333-3333-4333-8333-333333333333/subagents/agent-a0123456789abcdef.jsonl", True),
        ("p/s/subagents/workflows/wf_1/agent-abc.jsonl", True),
        ("p/s/subagents/agent-aside_question-0f1e.jsonl", True),
        ("p/s/subagents/workflows/wf_1/journal.jsonl", False),
        ("p/s/subagents/agent-a0123456789abcdef.meta.json", False),
        ("p/s/tool-results/b1x2y3z4.txt", False),
        ("p/s/tool-results/agent-x.jsonl", False),
        ("p/memory/notes.jsonl", False),
        ("p/s/other.jsonl", False),  # nothing else is written below a session folder
        ("stray.jsonl", False),
        (".credentials.json", False),
        ("p/.credentials.json", False),
    ],
)
def test_accepts_only_session_and_subagent_logs(relative: str, accepted: bool) -> None:
    root = Path("/home/u/.claude/projects")
    assert reader.accepts(root / relative, root) is accepted


def test_accepts_nothing_outside_the_root() -> None:
    assert not reader.accepts(Path("/elsewhere/p/s.jsonl"), Path("/home/u/.claude/projects"))


def test_discover_finds_every_layout_and_skips_side_files() -> None:
    assert sorted(reader.discover(PROJECTS)) == sorted([V1, V2, V2_AGENT, V21, V21_AGENT])


# ---------------------------------------------------------------------------------------- v1.0.x


def test_v1_session_facts_come_from_the_records() -> None:
    batch = read(V1)
    assert list(batch.sessions) == ["11111111-1111-4111-8111-111111111111"]
    session = batch.sessions["11111111-1111-4111-8111-111111111111"]
    assert session.kind == "main" and session.parent_key is None
    assert session.title == "Fix the flaky test"  # the old-style summary record
    assert (session.cwd, session.project_root, session.git_branch) == ("/work/demo", "/work/demo", "main")
    assert session.cli_version == "1.0.100"
    assert session.started_at == ts("2025-09-01T10:00:00")
    assert session.ended_at == ts("2025-09-01T10:02:00")


def test_v1_prompts_exclude_commands_and_inline_sidechains_are_flagged() -> None:
    events = read(V1).events
    prompts = [(e.text, e.sidechain) for e in events if e.kind is EventKind.USER_PROMPT]
    assert prompts == [
        ("Run the tests please", False),
        ("Search the repo for flaky tests", True),  # the inline Task sub-agent's prompt
        ("Thanks, that works.", False),
    ]
    command = next(e for e in events if e.text and e.text.startswith("<command-name>/clear"))
    assert command.kind is EventKind.META
    sidechain_text = [e.text for e in events if e.sidechain and e.kind is EventKind.ASSISTANT_TEXT]
    assert sidechain_text == ["Found one: test_flaky."]
    assert [e.kind for e in events if e.kind is EventKind.INTERRUPT] == [EventKind.INTERRUPT]


def test_v1_streamed_usage_keeps_the_final_copy() -> None:
    usages = read(V1).usage
    # msg_v1_A was written as two lines (text, then tool_use) with output_tokens 5 then 42.
    copies = [u for u in usages if u.key == "r:msg_v1_A|req_v1_A"]
    assert [u.output_tokens for u in copies] == [5, 42]
    assert dedup(usages)["r:msg_v1_A|req_v1_A"].output_tokens == 42
    sidechain = dedup(usages)["r:msg_v1_S|req_v1_S"]
    assert sidechain.sidechain is True
    assert sidechain.cache_creation_tokens == 30  # the 5m/1h split (20 + 10) wins over the flat 50
    assert not any("msg_v1_D" in u.key for u in usages)  # its line has "cwd":null, which ccusage drops


def test_v1_tool_failures_are_told_apart() -> None:
    calls = read(V1).tool_calls
    bash_call, bash_result = (c for c in calls if c.key == "toolu_v1_bash")
    assert (bash_call.name, bash_call.input, bash_call.status) == ("Bash", '{"command":"pytest -q"}', None)
    assert bash_result.status is ToolStatus.ERROR
    assert bash_result.exit_code == 2
    assert bash_result.output == "FAILED test_x.py::test_flaky"  # Claude's "Exit code 2" line is the wrapper
    assert bash_result.output_size == len(bash_result.output)
    assert (bash_call.kind, bash_call.command, bash_result.failed) == (ToolKind.SHELL, "pytest -q", True)
    assert bash_result.duration_ms == 2500  # called at 10:00:02.500, answered at 10:00:05.000
    edit_result = next(c for c in calls if c.key == "toolu_v1_edit" and c.status is not None)
    assert edit_result.status is ToolStatus.REJECTED and edit_result.failed is False  # a refusal is no failure


def test_v1_odd_records_become_unknown_or_multi_block_events() -> None:
    events = read(V1).events
    unknown = [e for e in events if e.kind is EventKind.UNKNOWN]
    assert len(unknown) == 1
    assert unknown[0].key == "a1000000-0000-4000-8000-000000000011"
    assert unknown[0].raw is not None and json.loads(unknown[0].raw)["type"] == "brand-new-record"
    assert all(e.raw is None for e in events if e.kind is not EventKind.UNKNOWN)
    two = [e for e in events if e.key.startswith("a1000000-0000-4000-8000-000000000012")]
    assert [(e.key[-2:], e.kind) for e in two] == [
        ("12", EventKind.REASONING),
        (".1", EventKind.ASSISTANT_TEXT),
    ]
    keys = [e.key for e in events]
    assert len(keys) == len(set(keys))


# ---------------------------------------------------------------------------------------- v2.0.x


def test_v2_harness_errors_overflow_and_compaction() -> None:
    events = read(V2).events
    kinds = [(e.kind, e.status_code) for e in events if e.kind not in (EventKind.ASSISTANT_TEXT, EventKind.META)]
    assert kinds == [
        (EventKind.USER_PROMPT, None),
        (EventKind.API_ERROR, 529),  # system/api_error, retried
        (EventKind.API_ERROR, 400),  # isApiErrorMessage "API Error: 400 …" from the <synthetic> model
        (EventKind.USER_PROMPT, None),
        (EventKind.TOOL_CALL, None),
        (EventKind.CONTEXT_OVERFLOW, None),  # "Prompt is too long"
        (EventKind.COMPACTION, None),
        (EventKind.USER_PROMPT, None),
    ]
    retry = next(e for e in events if e.status_code == 529)
    assert retry.text == "Overloaded (retry 1/10)"
    compaction = next(e for e in events if e.kind is EventKind.COMPACTION)
    assert compaction.text == "Conversation compacted (trigger=auto, preTokens=167000)"
    prompts = [e.text for e in events if e.kind is EventKind.USER_PROMPT]
    assert prompts == ["Why does checkout fail?", "Try again please", "fix it"]  # IDE context dropped
    summary = next(e for e in events if e.text and e.text.startswith("This session is being continued"))
    assert summary.kind is EventKind.META


def test_v2_tool_output_flattens_blocks() -> None:
    result = next(c for c in read(V2).tool_calls if c.status is not None)
    assert result.status is ToolStatus.OK
    assert result.output == "def checkout(): ...\n[image]"
    assert result.output_size == len("def checkout(): ...\n[image]")


def test_v2_proxy_ids_without_request_id() -> None:
    usages = read(V2).usage
    # The synthetic error placeholders carry no tokens and are skipped.
    assert all(u.model != "<synthetic>" and u.model is not None for u in usages)
    # msg_20251101090100: two streamed lines (1 s apart) plus a verbatim --resume copy of the first.
    proxy = [u for u in usages if "msg_20251101090100" in u.key]
    assert len(proxy) == 3 and len({u.key for u in proxy}) == 2
    kept = dedup(usages)
    assert sum(u.input_tokens for u in kept.values()) == 5000 + 5000 + 6000


def test_v2_subagent_file_is_its_own_session() -> None:
    batch = read(V2_AGENT)
    session = batch.sessions["agent-1a2b3c4d"]
    assert (session.kind, session.parent_key, session.subagent_id) == (
        "subagent",
        "22222222-2222-4222-8222-222222222222",
        "1a2b3c4d",
    )
    assert session.git_branch == "dev" and session.cwd == "C:\\work\\shop"
    warmup = batch.events[0]
    assert (warmup.session_key, warmup.kind, warmup.text, warmup.sidechain) == (
        "agent-1a2b3c4d",
        EventKind.USER_PROMPT,
        "Warmup",
        True,
    )
    assert [u.session_key for u in batch.usage] == ["agent-1a2b3c4d"]


# ---------------------------------------------------------------------------------------- v2.1.x


def test_v21_subagent_links_to_parent_with_meta_title() -> None:
    session = read(V21_AGENT).sessions["agent-a0123456789abcdef"]
    assert session.kind == "subagent"
    assert session.parent_key == "33333333-3333-4333-8333-333333333333"
    assert session.subagent_id == "a0123456789abcdef"
    assert session.title == "Explore: Count errors"  # from agent-<id>.meta.json


def test_v21_custom_title_beats_a_later_ai_title() -> None:
    assert read(V21).sessions["33333333-3333-4333-8333-333333333333"].title == "count-log-errors"


def test_v21_progress_copies_win_like_in_ccusage() -> None:
    parent, child = read(V21), read(V21_AGENT)
    mirrored = [u for u in parent.usage if u.key == "r:msg_v21_sub1|req_v21_sub1"]
    assert [(u.session_key, u.sidechain, u.output_tokens) for u in mirrored] == [("agent-a0123456789abcdef", False, 2)]
    assert parent.sessions["agent-a0123456789abcdef"].parent_key == "33333333-3333-4333-8333-333333333333"
    own = [u.output_tokens for u in child.usage if u.key == "r:msg_v21_sub1|req_v21_sub1"]
    assert own == [2, 90, 90]
    # The non-sidechain copy stays even though the sub-agent's own last line is larger (ccusage does so).
    assert dedup(parent.usage + child.usage)["r:msg_v21_sub1|req_v21_sub1"].output_tokens == 2
    assert dedup(child.usage + parent.usage)["r:msg_v21_sub1|req_v21_sub1"].output_tokens == 2


def test_v21_hooks_and_noise() -> None:
    events = read(V21).events
    meta = [e.text for e in events if e.kind is EventKind.META]
    assert meta == [
        "Stop: lint failed: unused import",
        "lint failed: unused import",
    ]  # hook error, stop summary
    assert Counter(e.kind for e in events) == Counter(
        {EventKind.USER_PROMPT: 1, EventKind.TOOL_CALL: 1, EventKind.ASSISTANT_TEXT: 1, EventKind.META: 2}
    )
    task = next(c for c in read(V21).tool_calls if c.status is not None)
    assert (task.status, task.output, task.duration_ms) == (ToolStatus.OK, "There are 3 ERROR lines.", 5000)


def test_v21_subagent_tool_outcomes() -> None:
    results = {c.key: c for c in read(V21_AGENT).tool_calls if c.status is not None}
    assert (results["toolu_v21_grep"].status, results["toolu_v21_grep"].exit_code) == (ToolStatus.OK, 0)
    assert results["toolu_v21_wc"].status is ToolStatus.CANCELLED  # "Cancelled: parallel tool call"
    assert results["toolu_v21_rm"].status is ToolStatus.REJECTED  # "Permission … was denied"
    assert results["toolu_v21_rm"].exit_code is None


# ---------------------------------------------------------------------------------------- resumability


def _chunked(path: Path, root: Path, cut: int) -> Batch:
    """Read ``path`` in two calls split at byte ``cut``, the state stored as JSON in between."""
    data = path.read_bytes()
    state = reader.begin(path, root)
    first, second = Batch(), Batch()
    done = parse_chunk(reader, data[:cut], 0, state, first).consumed
    state = json.loads(json.dumps(state))
    parse_chunk(reader, data[done:], done, state, second, at_eof=True)
    for info in second.sessions.values():
        first.session(info)
    first.events += second.events
    first.tool_calls += second.tool_calls
    first.usage += second.usage
    return first


def _same(one: Batch, two: Batch) -> None:
    assert one.events == two.events
    assert one.tool_calls == two.tool_calls
    assert one.usage == two.usage
    assert one.sessions == two.sessions


@pytest.mark.parametrize("path", [V1, V2, V2_AGENT, V21, V21_AGENT], ids=lambda p: p.name[:12])
def test_two_chunks_split_mid_line_equal_one_pass(path: Path) -> None:
    whole = read(path)
    size = path.stat().st_size
    for cut in (1, size // 3, size // 2 + 7, size - 2):
        _same(_chunked(path, PROJECTS, cut), whole)


def test_two_chunks_on_real_logs(shared: Path) -> None:
    root = shared / "fixtures" / "sessions" / "claude" / "projects"
    for path in sorted(reader.discover(root)):
        whole, _state, _result = read_file(reader, path, root)
        _same(_chunked(path, root, path.stat().st_size // 2 + 11), whole)


# ---------------------------------------------------------------------------------------- tolerance

_ODD_RECORDS: list[dict[str, Any]] = [
    {},
    {"type": 3},
    {"type": "assistant", "message": "not an object"},
    {"type": "assistant", "message": {"content": [None, 5, {"type": "tool_use"}, {"type": "mystery"}]}},
    {
        "type": "assistant",
        "message": {"content": "plain", "usage": {"input_tokens": "9", "output_tokens": 1}},
    },
    {"type": "assistant", "isApiErrorMessage": True, "message": {"content": []}, "error": "rate_limit"},
    {"type": "user", "message": {"content": 5}},
    {
        "type": "user",
        "message": {"content": [{"type": "tool_result", "tool_use_id": "t", "content": {"a": 1}}]},
    },
    {"type": "user", "toolUseResult": {"exitCode": True}, "message": {"content": [{"type": "tool_result"}]}},
    {"type": "system", "subtype": "api_error", "error": "boom", "retryAttempt": "x"},
    {"type": "system", "subtype": "compact_boundary", "compactMetadata": [1]},
    {"type": "system", "subtype": "stop_hook_summary", "hookErrors": "nope"},
    {"type": "attachment", "attachment": ["x"]},
    {"type": "progress", "data": {"message": {"message": {"usage": None}}}},
    {"type": "custom-title", "customTitle": 7},
    {"type": "summary", "summary": "   "},
    {"type": "future-thing", "sessionId": 12, "timestamp": "not a time", "cwd": ["x"]},
]


@pytest.mark.parametrize("record", _ODD_RECORDS, ids=range(len(_ODD_RECORDS)))
def test_odd_shapes_never_raise(record: dict[str, Any]) -> None:
    state = reader.begin(V1, PROJECTS)
    out = Batch()
    reader.feed(record, json.dumps(record).encode(), 0, state, out)
    json.dumps(state)
    if record.get("type") in (None, 3, "future-thing"):
        assert [e.kind for e in out.events] == [EventKind.UNKNOWN]
        assert out.events[0].key == f"{state['file']}:0"  # no uuid: the line's place stands in


def test_interrupted_bash_is_cancelled_and_exit_codes_are_read() -> None:
    state = reader.begin(V1, PROJECTS)
    out = Batch()

    def result(call_id: str, content: str, **extra: Any) -> dict[str, Any]:
        block = {"type": "tool_result", "tool_use_id": call_id, "content": content}
        return {"type": "user", "message": {"content": [block]}, **extra}

    records = [
        result("t1", "partial", toolUseResult={"stdout": "", "interrupted": True}),
        result("t2", "<status>completed</status>", toolUseResult={"shellId": "b1", "exitCode": 3}),
        result("t3", "The user doesn't want to take this action right now. STOP what you are doing."),
    ]
    records[2]["message"]["content"][0]["is_error"] = True
    for offset, record in enumerate(records):
        reader.feed(record, json.dumps(record).encode(), offset, state, out)
    outcomes = [(c.key, c.status, c.exit_code) for c in out.tool_calls]
    assert outcomes == [
        ("t1", ToolStatus.CANCELLED, None),
        ("t2", ToolStatus.OK, 3),
        ("t3", ToolStatus.CANCELLED, None),
    ]


# ---------------------------------------------------------------------------------------- usage rules


def _usage_of(record: dict[str, Any]) -> list[Usage]:
    out = Batch()
    reader.feed(record, json.dumps(record, separators=(",", ":")).encode(), 40, reader.begin(V1, PROJECTS), out)
    return out.usage


def _assistant(**changes: Any) -> dict[str, Any]:
    usage = {"input_tokens": 1, "output_tokens": 2, "cache_read_input_tokens": 3}
    record: dict[str, Any] = {
        "type": "assistant",
        "sessionId": "s",
        "version": "2.1.0",
        "timestamp": "2026-01-02T03:04:05.678Z",
        "requestId": "req_1",
        "message": {"id": "msg_1", "model": "claude-x", "content": [], "usage": usage},
    }
    for name, value in changes.items():
        target = record["message"] if name in ("id", "model") else record
        if name in usage or name in ("cache_creation", "cache_creation_input_tokens", "speed"):
            target = usage
        if value is _DROP:
            target.pop(name, None)
        else:
            target[name] = value
    return record


_DROP = object()


def test_usage_keys_follow_ccusage() -> None:
    assert [u.key for u in _usage_of(_assistant())] == ["r:msg_1|req_1"]
    assert [u.key for u in _usage_of(_assistant(requestId=_DROP))] == ["t:msg_1|s|2026-01-02T03:04:05.678"]
    assert [u.key for u in _usage_of(_assistant(id=_DROP))] == [f"l:{reader.begin(V1, PROJECTS)['file']}:40"]
    long_id = "m" * 300
    (usage,) = _usage_of(_assistant(id=long_id))
    assert usage.key.startswith("h:") and len(usage.key) <= 255


@pytest.mark.parametrize(
    ("changes", "counted"),
    [
        ({}, True),
        ({"version": "dev-build"}, False),  # not semver
        ({"version": _DROP}, True),
        ({"model": None}, False),  # a watched field is null
        ({"sessionId": ""}, False),
        ({"output_tokens": 1.0}, False),  # ccusage's decoder wants integers
        ({"output_tokens": _DROP}, False),
        ({"speed": "ludicrous"}, False),
        ({"speed": "fast"}, True),
        ({"timestamp": 1767323045}, False),
        ({"isSidechain": "yes"}, False),
        ({"model": "<synthetic>"}, True),  # it has tokens, so ccusage counts it (unpriced)
    ],
)
def test_usage_eligibility_follows_ccusage(changes: dict[str, Any], counted: bool) -> None:
    assert bool(_usage_of(_assistant(**changes))) is counted


def test_cache_creation_prefers_the_split() -> None:
    split = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
    (usage,) = _usage_of(_assistant(cache_creation_input_tokens=100, cache_creation=split))
    assert usage.cache_creation_tokens == 0
    (usage,) = _usage_of(_assistant(cache_creation_input_tokens=100))
    assert usage.cache_creation_tokens == 100
    zero = _assistant(model="<synthetic>", input_tokens=0, output_tokens=0, cache_read_input_tokens=0)
    assert _usage_of(zero) == []


# ---------------------------------------------------------------------------------------- real logs


def _raw_records(root: Path) -> dict[Path, list[dict[str, Any]]]:
    return {
        path: [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        for path in sorted(root.rglob("*.jsonl"))
    }


def test_real_logs_sessions_and_links(shared: Path) -> None:
    root = shared / "fixtures" / "sessions" / "claude" / "projects"
    raw = _raw_records(root)
    batches = {path: read(path, root) for path in reader.discover(root)}
    assert set(batches) == set(raw)  # every .jsonl there is a session or sub-agent log
    main_ids = {
        r["sessionId"] for p, rs in raw.items() if not p.name.startswith("agent-") for r in rs if "sessionId" in r
    }
    agents = {r["agentId"]: r["sessionId"] for p, rs in raw.items() if p.name.startswith("agent-") for r in rs}
    sessions = {}
    for batch in batches.values():
        sessions.update({k: v for k, v in batch.sessions.items() if k not in sessions or v.cwd})
    assert set(sessions) == main_ids | {f"agent-{a}" for a in agents}
    assert len(main_ids) == 7 and len(agents) == 3
    for agent_id, parent in agents.items():
        assert sessions[f"agent-{agent_id}"].parent_key == parent
        assert sessions[f"agent-{agent_id}"].kind == "subagent"


def test_real_logs_failures_match_the_raw_flags(shared: Path) -> None:
    root = shared / "fixtures" / "sessions" / "claude" / "projects"
    for path, records in _raw_records(root).items():
        results = [
            block
            for r in records
            if r.get("type") == "user" and isinstance(r["message"].get("content"), list)
            for block in r["message"]["content"]
            if block.get("type") == "tool_result"
        ]
        outcomes = Counter(c.status for c in read(path, root).tool_calls if c.status is not None)
        assert sum(outcomes.values()) == len(results), path.name
        failed = sum(n for status, n in outcomes.items() if status is not ToolStatus.OK)
        assert failed == sum(1 for b in results if b.get("is_error") is True), path.name
        rejected = [
            b
            for b in results
            if str(b.get("content")).startswith(
                ("The user doesn't want to proceed", "Permission for this tool use was denied")
            )
        ]
        assert outcomes[ToolStatus.REJECTED] == len(rejected), path.name


def test_real_logs_error_signals(shared: Path) -> None:
    root = shared / "fixtures" / "sessions" / "claude" / "projects"
    for path, records in _raw_records(root).items():
        kinds = Counter(e.kind for e in read(path, root).events)
        too_long = sum(1 for r in records if r.get("isApiErrorMessage") and "Prompt is too long" in json.dumps(r))
        api_errors = sum(1 for r in records if r.get("subtype") == "api_error" or r.get("isApiErrorMessage"))
        assert kinds[EventKind.API_ERROR] == api_errors - too_long, path.name
        stderr = sum(1 for r in records if "Conversation too long" in json.dumps(r.get("message", {})))
        assert kinds[EventKind.CONTEXT_OVERFLOW] == too_long + stderr, path.name
        interrupts = sum(
            1
            for r in records
            if r.get("type") == "user" and '"[Request interrupted by user' in json.dumps(r["message"])
        )
        assert kinds[EventKind.INTERRUPT] == interrupts, path.name
        compactions = sum(1 for r in records if r.get("subtype") == "compact_boundary")
        assert kinds[EventKind.COMPACTION] == compactions, path.name


def test_real_logs_streaming_dedup(shared: Path) -> None:
    root = shared / "fixtures" / "sessions" / "claude" / "projects"
    path = root / "-home-vwestberg-Claude" / "8c880a68-969b-4b92-8733-a4927179d072.jsonl"
    usages = read(path, root).usage
    assert len(usages) == 15 and len(dedup(usages)) == 8  # 15 assistant lines, 8 (id, requestId) pairs
    sample = root / "sample-project" / "5c0375b4-57a5-4f26-b12d-d022ee4e51b7.jsonl"
    kept = dedup(read(sample, root).usage)
    assert kept["r:msg_01QdKEzwwjhMrbE13LjZjnMA|req_011CStqNVgnpUWr5a1ihYAWa"].output_tokens == 263  # 3, 263


# What `ccusage daily --json --by-agent --offline -z UTC` (20.0.24) reports for ../shared's Claude logs,
# [input, output, cache read, cache creation] per day; re-checked live by the ccusage-marked test below.
CCUSAGE_SHARED = {
    "2025-09-07": [129, 3629, 324259, 47747],
    "2025-10-30": [15444333, 18374, 0, 0],
    "2025-11-01": [688789, 2531, 0, 0],
    "2026-04-09": [135, 7049, 808957, 75053],
}
CCUSAGE_OWN = {
    "2025-09-01": [45, 139, 3600, 240],
    "2025-11-01": [16800, 321, 0, 0],
    "2026-04-09": [17, 149, 42700, 9680],
}


def test_daily_totals_equal_ccusage_on_own_fixtures() -> None:
    assert daily(PROJECTS) == CCUSAGE_OWN


def test_daily_totals_equal_ccusage_on_real_logs(shared: Path) -> None:
    assert daily(shared / "fixtures" / "sessions" / "claude" / "projects") == CCUSAGE_SHARED


def _ccusage(config_dir: Path, home: Path) -> dict[str, list[int]]:
    binary = ccusage_binary()
    if not binary:
        pytest.skip("ccusage is not installed (make tools installs it)")
    env = {**os.environ, "HOME": str(home), "CLAUDE_CONFIG_DIR": str(config_dir)}
    args = [binary, "daily", "--json", "--by-agent", "--offline", "-z", "UTC"]
    report = json.loads(subprocess.run(args, env=env, capture_output=True, check=True, timeout=120).stdout)
    return {
        day["period"]: [a["inputTokens"], a["outputTokens"], a["cacheReadTokens"], a["cacheCreationTokens"]]
        for day in report["daily"]
        for a in day["agents"]
        if a["agent"] == "claude"
    }


@pytest.mark.ccusage
def test_ccusage_live(shared: Path, tmp_path: Path) -> None:
    assert _ccusage(OWN, tmp_path) == daily(PROJECTS) == CCUSAGE_OWN
    real = shared / "fixtures" / "sessions" / "claude"
    assert _ccusage(real, tmp_path) == daily(real / "projects") == CCUSAGE_SHARED
    generated = tmp_path / "generated"
    for scenario in sorted((shared / "fixtures" / "generated" / "claude").iterdir()):
        shutil.copytree(scenario, generated / "projects", dirs_exist_ok=True)
    assert _ccusage(generated, tmp_path) == daily(generated / "projects")
