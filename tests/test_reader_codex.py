"""The Codex CLI reader: every rollout era, failure signals, replays, resumable reads, ccusage parity.

Own fixtures (``tests/fixtures/codex/home``, a synthetic ``CODEX_HOME``) are small and hand-designed; each
expectation below is derived from their content in a comment. The real logs in ``../shared`` are checked
against figures computed in the test from the raw JSON, and against ccusage 20.0.24's report.
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

from headroom.learn.model import Batch, EventKind, Merge, SessionInfo, ToolKind, ToolStatus, Usage
from headroom.learn.readers.codex import CodexReader
from headroom.learn.readers.jsonl import parse_chunk
from tests.helpers import ccusage_binary, read_whole

HOME = Path(__file__).resolve().parent / "fixtures" / "codex" / "home"
SESSIONS = HOME / "sessions"
ARCHIVED = HOME / "archived_sessions"
CURRENT = SESSIONS / "2025/12/01/rollout-2025-12-01T11-00-00-019ad95a-d500-7a00-8000-00000000000a.jsonl"
EARLY = SESSIONS / "rollout-2025-06-01T12-00-00-01972aef-1100-7b00-8000-00000000000b.jsonl"
LEGACY = SESSIONS / "rollout-2025-04-20-01965236-1c00-7c00-8000-00000000000c.json"
NEWER = SESSIONS / "2026/11/20/rollout-2026-11-20T22-00-00-01a1faf9-3b00-7d00-8000-00000000000d.jsonl"
PARENT = SESSIONS / "2026/01/10/rollout-2026-01-10T10-00-00-019ba722-4680-7e00-8000-0000000000e1.jsonl"
CHILD = SESSIONS / "2026/01/10/rollout-2026-01-10T10-00-30-019ba722-bbb0-7e00-8000-0000000000e2.jsonl"
ORPHAN = SESSIONS / "2026/01/10/rollout-2026-01-10T12-00-00-019ba790-2380-7e00-8000-0000000000e3.jsonl"
JSONL_FILES = [CURRENT, EARLY, NEWER, PARENT, CHILD, ORPHAN]

reader = CodexReader()


def read(path: Path, root: Path = SESSIONS) -> Batch:
    return read_whole(reader, path, root)


def dedup(usages: list[Usage]) -> dict[str, Usage]:
    """Ingestion's upsert: Merge.LAST keeps the last copy of a key (Codex usage is all LAST)."""
    kept: dict[str, Usage] = {}
    for usage in usages:
        known = kept.get(usage.key)
        if known is None or usage.merge is Merge.LAST or usage.total > known.total:
            kept[usage.key] = usage
    return kept


def daily(home: Path) -> dict[str, tuple[int, int, int, int]]:
    """Per UTC day (input, output, cache read, cache creation) over every rollout of a CODEX_HOME."""
    usages: list[Usage] = []
    for sub in ("sessions", "archived_sessions"):
        root = home / sub
        for path in sorted(reader.discover(root), key=str):
            usages += read(path, root).usage
    days: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for usage in dedup(usages).values():
        assert usage.ts is not None
        totals = days[usage.ts.date().isoformat()]
        for index, value in enumerate(
            (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_creation_tokens)
        ):
            totals[index] += value
    return {day: (a, b, c, d) for day, (a, b, c, d) in sorted(days.items()) if a or b or c or d}


def two_chunks(path: Path, root: Path, cut: int) -> Batch:
    """Read ``path`` in two incremental reads split at byte ``cut``, the state stored as JSON between."""
    data = path.read_bytes()
    state = reader.begin(path, root)
    first, second = Batch(), Batch()
    done = parse_chunk(reader, data[:cut], 0, state, first).consumed
    state = json.loads(json.dumps(state))
    parse_chunk(reader, data[done:], done, state, second, at_eof=True)
    merged = Batch()
    for info in [*first.sessions.values(), *second.sessions.values()]:
        merged.session(SessionInfo(**{name: getattr(info, name) for name in info.__slots__}))
    merged.events = first.events + second.events
    merged.tool_calls = first.tool_calls + second.tool_calls
    merged.usage = first.usage + second.usage
    return merged


def calls(batch: Batch) -> dict[str, dict[str, Any]]:
    """Tool calls folded by key the way ingestion folds partial rows (later non-None fields win)."""
    folded: dict[str, dict[str, Any]] = defaultdict(dict)
    for call in batch.tool_calls:
        for name in ("name", "input", "kind", "command", "path", "status", "output", "output_size", "exit_code"):
            if getattr(call, name) is not None:
                folded[call.key][name] = getattr(call, name)
        for name in ("failed", "duration_ms"):
            if getattr(call, name) is not None:
                folded[call.key][name] = getattr(call, name)
        if call.by_user:
            folded[call.key]["by_user"] = True
    return dict(folded)


# ---------------------------------------------------------------------------------------- discovery


@pytest.mark.parametrize(
    ("relative", "accepted"),
    [
        ("2025/12/01/rollout-2025-12-01T11-00-00-019ad95a-d500-7a00-8000-00000000000a.jsonl", True),
        ("rollout-2025-04-20-01965236-1c00-7c00-8000-00000000000c.json", True),
        ("2025/12/01/notes.jsonl", False),
        ("history.jsonl", False),
        ("rollout-x.jsonl.bak", False),
    ],
)
def test_accepts_rollouts_only(relative: str, accepted: bool) -> None:
    assert reader.accepts(SESSIONS / relative, SESSIONS) is accepted


def test_discover_and_whole_file() -> None:
    found = set(reader.discover(SESSIONS))
    assert found == {*JSONL_FILES, LEGACY}
    assert reader.whole_file(LEGACY) and not reader.whole_file(CURRENT)


# ---------------------------------------------------------------------- current format (cli 0.72)


def test_current_session_facts_and_resume() -> None:
    batch = read(CURRENT)
    # One session_meta, then a resume the next day without another: everything stays one session.
    assert list(batch.sessions) == ["019ad95a-d500-7a00-8000-00000000000a"]
    info = batch.sessions["019ad95a-d500-7a00-8000-00000000000a"]
    assert (info.kind, info.cwd, info.git_branch, info.cli_version) == ("main", "/work/demo", "main", "0.72.0")
    assert info.project_root == "/work/demo"
    assert info.started_at == datetime(2025, 12, 1, 10, 0)
    assert info.ended_at == datetime(2025, 12, 2, 9, 0, 9)  # the last token_count of the resumed day
    assert {e.session_key for e in batch.events} == {info.key}


def test_current_prompts_skip_injected_context_and_the_ui_mirror() -> None:
    batch = read(CURRENT)
    prompts = [e.text for e in batch.events if e.kind is EventKind.USER_PROMPT]
    # Two typed prompts; the event_msg/user_message copy of the first one is not a second prompt.
    assert prompts == ["Fix the failing test in calc.py", "Now add a test for subtract()"]
    meta = [e.text or "" for e in batch.events if e.kind is EventKind.META and e.role == "user"]
    assert [text.split("\n")[0] for text in meta] == [
        "# AGENTS.md instructions for /work/demo",
        "<environment_context>",
    ]
    assert [e.text for e in batch.events if e.kind is EventKind.REASONING] == ["**Running the tests**"]
    assert [e.text for e in batch.events if e.kind is EventKind.ASSISTANT_TEXT] == ["Fixed the sign in add()."]


def test_current_tool_outcomes() -> None:
    folded = calls(read(CURRENT))
    # call_A1: "Exit code: 2 / Wall time: 1.5 seconds"; A2: JSON-string output, metadata exit 0 in 0.25 s;
    # A3 refused by the user; A4 "apply_patch verification failed"; A5 cut by an interrupt ("aborted").
    assert folded["call_A1"]["status"] is ToolStatus.ERROR
    assert (folded["call_A1"]["exit_code"], folded["call_A1"]["duration_ms"]) == (2, 1500)
    assert folded["call_A1"]["input"] == '{"command": "pytest -q", "workdir": "/work/demo"}'
    assert folded["call_A2"]["name"] == "apply_patch" and folded["call_A2"]["input"].startswith("*** Begin Patch")
    assert (folded["call_A2"]["status"], folded["call_A2"]["exit_code"]) == (ToolStatus.OK, 0)
    inner = "Success. Updated the following files:\nM calc.py\n"
    assert (folded["call_A2"]["output"], folded["call_A2"]["output_size"]) == (inner, len(inner))
    assert folded["call_A3"]["status"] is ToolStatus.REJECTED
    assert folded["call_A4"]["status"] is ToolStatus.ERROR and "exit_code" not in folded["call_A4"]
    assert folded["call_A5"]["status"] is ToolStatus.CANCELLED
    tool_events = [e.tool_call_key for e in read(CURRENT).events if e.kind is EventKind.TOOL_CALL]
    assert tool_events == ["call_A1", "call_A2", "call_A3", "call_A4", "call_A5"]


def test_current_harness_signals() -> None:
    events = read(CURRENT).events
    kinds = Counter(e.kind for e in events)
    # One turn_aborted; one compaction written twice (compacted + context_compacted); a 429; an overflow.
    assert kinds[EventKind.INTERRUPT] == 1 and kinds[EventKind.COMPACTION] == 1
    errors = [(e.kind, e.status_code) for e in events if e.kind in (EventKind.API_ERROR, EventKind.CONTEXT_OVERFLOW)]
    assert errors == [(EventKind.API_ERROR, 429), (EventKind.CONTEXT_OVERFLOW, None)]


def test_unknown_lines_are_kept_raw() -> None:
    unknown = [e for e in read(CURRENT).events if e.kind is EventKind.UNKNOWN]
    # A new line type, a new event_msg type and a new response_item type; nothing else is unknown.
    assert [json.loads(e.raw or "")["type"] for e in unknown] == ["hologram_line", "event_msg", "response_item"]
    assert all(e.text is None for e in unknown)


def test_current_usage_from_last_or_from_total_deltas() -> None:
    usage = read(CURRENT).usage
    got = [(u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens, u.model) for u in usage]
    assert got == [
        (1000 - 800, 800, 50, 10, "gpt-5.1-codex"),  # last_token_usage; input includes the cached part
        # the repeated token_count (same cumulative total) is not a call; the next line has no `last`:
        # totals 2500/1800/120/30 minus 1000/800/50/10
        (1500 - 1000, 1000, 70, 20, "gpt-5.1-codex"),
        (300, 0, 20, 0, "gpt-5.2-codex"),  # resumed: the model of the newest turn_context
        (100 - 50, 50, 10, 0, "gpt-5.2-codex"),
    ]
    assert all(u.merge is Merge.LAST and u.cache_creation_tokens == 0 for u in usage)
    assert usage[0].key == "1764583206500|gpt-5.1-codex|1000|800|0|50|10|1050"  # ms|model|in|cached|write|out|…
    assert usage[0].ts == datetime(2025, 12, 1, 10, 0, 6, 500000)


def test_archived_copy_adds_nothing() -> None:
    archived = ARCHIVED / CURRENT.name
    assert dedup(read(CURRENT).usage + read(archived, ARCHIVED).usage).keys() == dedup(read(CURRENT).usage).keys()
    assert [e.key for e in read(archived, ARCHIVED).events] == [e.key for e in read(CURRENT).events]


def test_archived_file_shadowed_by_sessions_copy_counts_no_usage(tmp_path: Path) -> None:
    # ccusage drops an archived file when sessions/ holds the same relative path.
    for sub in ("sessions", "archived_sessions"):
        (tmp_path / sub).mkdir()
        shutil.copy(CURRENT, tmp_path / sub / CURRENT.name)
    assert read(tmp_path / "archived_sessions" / CURRENT.name, tmp_path / "archived_sessions").usage == []
    assert len(read(tmp_path / "sessions" / CURRENT.name, tmp_path / "sessions").usage) == 4


# ------------------------------------------------------------------------------------ older eras


def test_early_rust_format() -> None:
    batch = read(EARLY)
    info = batch.sessions["01972aef-1100-7b00-8000-00000000000b"]
    # No cwd field in that era: it comes from the <environment_context> block.
    assert (info.cwd, info.git_branch, info.started_at) == ("/work/old", "feature/ls", datetime(2025, 6, 1, 10))
    kinds = [e.kind for e in batch.events]
    assert kinds == [
        EventKind.META,
        EventKind.USER_PROMPT,
        EventKind.REASONING,
        EventKind.TOOL_CALL,
        EventKind.ASSISTANT_TEXT,
    ]
    folded = calls(batch)["call_B1"]
    assert (folded["status"], folded["exit_code"], folded["duration_ms"]) == (ToolStatus.ERROR, 2, 200)
    assert folded["output"] == "ls: cannot access 'missing': No such file or directory\n"
    assert batch.usage == []


def test_legacy_whole_file_json_parses_and_reparses_to_the_same_keys() -> None:
    first, second = read(LEGACY), read(LEGACY)
    assert [(e.key, e.kind) for e in first.events] == [
        ("i0", EventKind.USER_PROMPT),
        ("i1", EventKind.REASONING),
        ("i2", EventKind.TOOL_CALL),
        ("i4", EventKind.ASSISTANT_TEXT),
    ]
    assert first.events == second.events and first.tool_calls == second.tool_calls
    folded = calls(first)["call_C1"]
    assert (folded["status"], folded["exit_code"], folded["output"]) == (
        ToolStatus.ERROR,
        128,
        "fatal: not a git repository\n",
    )
    assert first.sessions["01965236-1c00-7c00-8000-00000000000c"].started_at == datetime(2025, 4, 20, 8)


# ------------------------------------------------------------------------ 2026 format (cli 0.169)


def test_newer_format_lines() -> None:
    batch = read(NEWER)
    # ordinal, world_state, token_usage_record, thread_settings_applied, task_* lines: known, no events.
    assert not [e for e in batch.events if e.kind is EventKind.UNKNOWN]
    assert [e.text for e in batch.events if e.kind is EventKind.USER_PROMPT] == ["Show me notes.txt"]
    folded = calls(batch)
    # Code mode: the script (call_D1) completed, but the command it ran failed; that command exists only as
    # an item_completed event, and it is the script's result: one call, not two.
    assert "exec-0001" not in folded
    script = folded["call_D1"]
    assert (script["name"], script["kind"], script["command"]) == ("exec", ToolKind.SHELL, "cat nope.txt")
    assert (script["status"], script["exit_code"], script["failed"]) == (ToolStatus.ERROR, 1, True)
    # Unified exec: "Process exited with code 1".
    assert (folded["call_D2"]["status"], folded["call_D2"]["exit_code"]) == (ToolStatus.ERROR, 1)
    assert folded["call_D3"]["status"] is ToolStatus.ERROR  # "Script failed"
    tool_events = [e.tool_call_key for e in batch.events if e.kind is EventKind.TOOL_CALL]
    assert tool_events == ["call_D1", "call_D2", "call_D3"]


def test_newer_usage_with_cache_writes() -> None:
    usage = read(NEWER).usage
    got = [
        (u.input_tokens, u.cache_read_tokens, u.cache_creation_tokens, u.output_tokens, u.reasoning_tokens)
        for u in usage
    ]
    # token_usage_record repeats the first call and is ignored; the second call wrote 100 cache tokens,
    # which ccusage takes out of input_tokens: 1200 - 1000 cached - 100 written = 100.
    assert got == [(800, 200, 0, 40, 0), (100, 1000, 100, 30, 5)]
    assert {u.model for u in usage} == {"gpt-5.5"}


# ----------------------------------------------------------------------- forks and sub-agents


def test_subagent_links_to_its_parent_and_drops_the_replayed_history() -> None:
    batch = read(CHILD)
    child = "019ba722-bbb0-7e00-8000-0000000000e2"
    assert list(batch.sessions) == [child]  # the replayed parent session_meta names no session
    info = batch.sessions[child]
    assert (info.kind, info.parent_key, info.subagent_id) == ("subagent", "019ba722-4680-7e00-8000-0000000000e1", child)
    assert info.started_at == datetime(2026, 1, 10, 9, 0, 30)
    # The parent's prompt, replayed with its own timestamp, is not the child's.
    assert [e.text for e in batch.events if e.kind is EventKind.USER_PROMPT] == [
        "Explore src/ and report the entry points"
    ]
    # Its two replayed token_counts equal the parent's calls before the fork: only the child's own call counts.
    assert [(u.input_tokens, u.output_tokens, u.reasoning_tokens) for u in batch.usage] == [(3000, 80, 10)]


def test_subagent_without_its_parent_log_skips_the_leading_burst_even_across_reads() -> None:
    data = ORPHAN.read_bytes()
    after_first_count = data.index(b"\n", data.index(b'"token_count"')) + 1
    batch = two_chunks(ORPHAN, SESSIONS, after_first_count)
    # The first call cannot be judged before the second token_count (10 ms later: a burst): it is
    # emitted, then retracted with zero tokens under the same key. The call 9 s later is the child's own.
    provisional, retraction, own = batch.usage
    assert provisional.key == retraction.key and provisional.input_tokens == 500
    assert retraction.total == 0 and retraction.merge is Merge.LAST
    kept = [u for u in dedup(batch.usage).values() if u.total]
    assert [(u.input_tokens, u.cache_read_tokens, u.output_tokens) for u in kept] == [(600, 100, 7)]
    assert own.model == "gpt-5.2-codex"


def test_fork_replay_matches_the_parent_calls(tmp_path: Path) -> None:
    # A user fork of PARENT at 09:00:25 replays its two calls, rewritten to the fork instant, then works.
    fork_dir = tmp_path / "sessions" / "2026" / "01" / "10"
    fork_dir.mkdir(parents=True)
    shutil.copy(PARENT, fork_dir / PARENT.name)
    lines = [json.loads(line) for line in PARENT.read_text().splitlines()]
    replay = [dict(line, timestamp=f"2026-01-10T09:00:25.00{n}Z") for n, line in enumerate(lines[3:5])]
    meta = {
        "timestamp": "2026-01-10T09:00:25.000Z",
        "type": "session_meta",
        "payload": {"id": "019ba722-b000-7f00-8000-000000000001", "forked_from_id": lines[0]["payload"]["id"]},
    }
    own = {
        "timestamp": "2026-01-10T09:00:40.000Z",
        "type": "event_msg",
        "payload": {"type": "token_count", "info": {"last_token_usage": {"input_tokens": 9, "output_tokens": 1}}},
    }
    fork = fork_dir / "rollout-2026-01-10T10-00-25-019ba722-b000-7f00-8000-000000000001.jsonl"
    fork.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in [meta, *replay, own]))
    batch = read(fork, tmp_path / "sessions")
    assert batch.sessions["019ba722-b000-7f00-8000-000000000001"].parent_key == lines[0]["payload"]["id"]
    assert [(u.input_tokens, u.output_tokens, u.model) for u in batch.usage] == [(9, 1, "gpt-5")]


# ------------------------------------------------------------------------- resumable reads


@pytest.mark.parametrize("path", JSONL_FILES, ids=lambda p: p.name[:30])
def test_two_chunks_split_mid_line_equal_one_pass(path: Path) -> None:
    whole = read(path)
    size = path.stat().st_size
    for cut in (size // 3, size // 2, 2 * size // 3):
        split = two_chunks(path, SESSIONS, cut)
        assert split.events == whole.events
        assert split.tool_calls == whole.tool_calls
        assert split.usage == whole.usage
        assert split.sessions == whole.sessions


def test_two_chunks_on_real_logs(shared: Path) -> None:
    for root in (shared / "fixtures" / "sessions" / "codex" / "sessions", shared / "fixtures" / "generated" / "codex"):
        for path in sorted(reader.discover(root)):
            whole = read(path, root)
            split = two_chunks(path, root, path.stat().st_size // 2)
            assert (split.events, split.tool_calls, split.usage) == (whole.events, whole.tool_calls, whole.usage)


@pytest.mark.parametrize(
    "record",
    [
        {},
        {"type": 3, "payload": []},
        {"type": "event_msg", "payload": {"type": "token_count", "info": "x"}},
        {"type": "event_msg", "timestamp": True, "payload": {"type": "token_count", "info": {"last_token_usage": 1}}},
        {"type": "response_item", "payload": {"type": "function_call_output", "call_id": "c", "output": 7}},
        {"type": "response_item", "payload": {"type": "message", "role": "user", "content": [None, {"text": 5}]}},
        {"type": "session_meta", "payload": {"id": 5, "source": {"subagent": "review"}}},
        {"type": "event_msg", "payload": {"type": "item_completed", "item": {"type": "FileChange", "id": 3}}},
        {"type": "turn_context", "payload": {"model": ["x"], "cwd": None}},
        {"record_type": "state"},
    ],
)
def test_odd_shapes_never_raise(record: dict[str, Any]) -> None:
    state = reader.begin(CURRENT, SESSIONS)
    out = Batch()
    reader.feed(record, json.dumps(record).encode(), 10, state, out)
    json.dumps(state)
    assert all(e.kind is EventKind.UNKNOWN for e in out.events if e.raw is not None)


# ------------------------------------------------------------------------------- token totals

# `ccusage daily --json --by-agent --offline -z UTC` (20.0.24), codex rows, on tests/fixtures/codex/home:
# (input, output, cache read, cache creation). Each figure also follows from the fixtures' comments:
# 2025-12-01: 200+500 / 50+70 / 800+1000; 2025-12-02: 300+50 / 20+10 / 50; 2026-01-10: parent
# 3 x 1000 / 350 / 15000 plus the sub-agent's 3000 / 80 and the orphan's own 600 / 7 / 100;
# 2026-11-20: 800+100 / 40+30 / 200+1000 / 100.
CCUSAGE_OWN = {
    "2025-12-01": (700, 120, 1800, 0),
    "2025-12-02": (350, 30, 50, 0),
    "2026-01-10": (6600, 437, 15100, 0),
    "2026-11-20": (900, 70, 1200, 100),
}
# The same report on ../shared's real rollouts (cli 0.77-0.87) and on the 0.169 scenarios together.
CCUSAGE_SHARED = {
    "2025-12-21": (3246, 330, 22784, 0),
    "2025-12-29": (120009, 10757, 1121152, 0),
    "2026-01-03": (479, 34, 3712, 0),
    "2026-01-04": (326076, 61270, 12319104, 0),
    "2026-01-13": (82467, 18081, 885632, 0),
    "2026-01-16": (99402, 18895, 1484928, 0),
}
CCUSAGE_GENERATED = {"2026-11-20": (1116128, 32472, 0, 0)}


def test_daily_totals_equal_ccusage_on_own_fixtures() -> None:
    assert daily(HOME) == CCUSAGE_OWN


def test_daily_totals_equal_ccusage_on_real_logs(shared: Path) -> None:
    assert daily(shared / "fixtures" / "sessions" / "codex") == CCUSAGE_SHARED


def test_daily_totals_equal_ccusage_on_generated_logs(shared: Path, tmp_path: Path) -> None:
    assert daily(_generated_home(shared, tmp_path)) == CCUSAGE_GENERATED


def test_real_logs_usage_equals_a_plain_scan(shared: Path) -> None:
    """The simplest reading of the rule, written here from the raw JSON: per file, ``last`` when the
    cumulative total moved, else the total's delta; zero calls dropped. No file here is a fork."""
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for path in sorted((shared / "fixtures" / "sessions" / "codex").rglob("rollout-*.jsonl")):
        previous = None
        for line in path.read_text().splitlines():
            record = json.loads(line)
            payload = record.get("payload") or {}
            if record.get("type") != "event_msg" or payload.get("type") != "token_count" or not payload.get("info"):
                continue
            total, last = payload["info"].get("total_token_usage"), payload["info"].get("last_token_usage")
            if total == previous:
                continue
            previous = total
            day = expected[record["timestamp"][:10]]
            day[0] += last["input_tokens"] - last["cached_input_tokens"]
            day[1] += last["output_tokens"]
            day[2] += last["cached_input_tokens"]
    ours = daily(shared / "fixtures" / "sessions" / "codex")
    assert {day: (i, o, c, 0) for day, (i, o, c) in expected.items()} == ours


# ------------------------------------------------------------------------------------ real logs


def test_real_logs_prompts_and_tool_calls(shared: Path) -> None:
    root = shared / "fixtures" / "sessions" / "codex" / "sessions"
    for path in sorted(reader.discover(root)):
        records = [json.loads(line) for line in path.read_text().splitlines()]
        payloads = [(r["type"], r["payload"]) for r in records]
        mirrors = sum(1 for kind, p in payloads if kind == "event_msg" and p.get("type") == "user_message")
        invoked = [p["call_id"] for kind, p in payloads if kind == "response_item" and p["type"].endswith("_call")]
        failing = set()
        for kind, p in payloads:
            if kind != "response_item" or not p["type"].endswith("_call_output"):
                continue
            text = p["output"]
            if text.startswith('{"output"'):
                inner = json.loads(text)
                failing |= {p["call_id"]} if inner["metadata"]["exit_code"] != 0 else set()
            elif text.startswith("apply_patch verification failed") or (
                text.startswith("Exit code: ") and not text.startswith("Exit code: 0\n")
            ):
                failing.add(p["call_id"])
        batch = read(path, root)
        # The UI mirrors every typed prompt once, and nothing else.
        assert sum(e.kind is EventKind.USER_PROMPT for e in batch.events) == mirrors, path.name
        assert [e.tool_call_key for e in batch.events if e.kind is EventKind.TOOL_CALL] == invoked
        folded = calls(batch)
        assert {key for key, call in folded.items() if call.get("status") is ToolStatus.ERROR} == failing
        assert all(e.kind is not EventKind.UNKNOWN for e in batch.events)


def test_real_logs_interrupt(shared: Path) -> None:
    root = shared / "fixtures" / "sessions" / "codex" / "sessions"
    path = root / "2026/01/03/rollout-2026-01-03T13-54-09-019b83ec-22c4-7073-bbed-758a085c5209.jsonl"
    assert [e.text for e in read(path, root).events if e.kind is EventKind.INTERRUPT] == ["interrupted"]


def test_generated_logs_failures(shared: Path) -> None:
    root = shared / "fixtures" / "generated" / "codex"
    for scenario in ("fail-then-fix", "fail-then-fix.code-mode", "fail-then-fix.websocket"):
        (path,) = reader.discover(root / scenario)
        batch = read(path, root / scenario)
        assert [e.text for e in batch.events if e.kind is EventKind.USER_PROMPT] == [
            "Show me what is in notes.txt in this project."
        ]
        failed = [c for c in calls(batch).values() if c.get("failed")]
        # The scenario's one failure: `cat does-not-exist.txt` exits 1, directly or inside a code-mode script
        # (then the script is the call: 3 calls, not 6).
        assert [(c["exit_code"], c["command"]) for c in failed] == [(1, "cat does-not-exist.txt")], scenario
        assert len(calls(batch)) == 3, scenario
        assert not [e for e in batch.events if e.kind is EventKind.UNKNOWN]


# -------------------------------------------------------------------------------- live ccusage


def _generated_home(shared: Path, tmp_path: Path) -> Path:
    home = tmp_path / "generated"
    for scenario in sorted((shared / "fixtures" / "generated" / "codex").iterdir()):
        shutil.copytree(scenario, home / "sessions", dirs_exist_ok=True)
    return home


def _ccusage(home: Path, tmp_path: Path) -> dict[str, tuple[int, int, int, int]]:
    binary = ccusage_binary()
    assert binary is not None
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "CODEX_HOME": str(home)}
    args = [binary, "daily", "--json", "--by-agent", "--offline", "-z", "UTC"]
    out = subprocess.run(args, env=env, capture_output=True, check=True, timeout=300).stdout
    return {
        day["period"]: (a["inputTokens"], a["outputTokens"], a["cacheReadTokens"], a["cacheCreationTokens"])
        for day in json.loads(out)["daily"]
        for a in day["agents"]
        if a["agent"] == "codex"
    }


@pytest.mark.ccusage
@pytest.mark.skipif(ccusage_binary() is None, reason="ccusage is not installed (make tools installs it)")
def test_ccusage_live(shared: Path, tmp_path: Path) -> None:
    assert _ccusage(HOME, tmp_path) == CCUSAGE_OWN == daily(HOME)
    real = shared / "fixtures" / "sessions" / "codex"
    assert _ccusage(real, tmp_path) == CCUSAGE_SHARED
    generated = _generated_home(shared, tmp_path)
    assert _ccusage(generated, tmp_path) == CCUSAGE_GENERATED == daily(generated)
