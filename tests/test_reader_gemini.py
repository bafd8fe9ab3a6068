"""GeminiReader: layout, both file formats, keys, failure signals and ccusage-exact token counts.

The synthetic fixtures (``tests/fixtures/gemini/gemini-home`` is a ``~/.gemini``) were written by hand to
hit each trap once; the expectations below are worked out from their numbers in the comments. The real
logs in ../shared are checked against numbers computed here by a plain JSON scan and against ccusage.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from headroom.learn.model import (
    Batch,
    Event,
    EventKind,
    Merge,
    SessionInfo,
    ToolCall,
    ToolKind,
    ToolStatus,
    Usage,
)
from headroom.learn.readers.gemini import GeminiReader
from headroom.learn.readers.jsonl import parse_chunk
from tests.helpers import ccusage_binary, read_whole

HOME = Path(__file__).parent / "fixtures" / "gemini" / "gemini-home"
ROOT = HOME / "tmp"
ALPHA = ROOT / "alpha"
MAIN_ID = "aaaa0001-1111-4111-8111-111111111111"
SUB_ID = "bbbb0002-2222-4222-8222-222222222222"
SKILL_ID = "cccc0003-3333-4333-8333-333333333333"
SKILL_DIR = "skill-extraction-1a2b3c4d"
OLD_ID = "dddd0004-4444-4444-8444-444444444444"
LEGACY_DIR = ROOT / hashlib.sha256(b"/home/dev/legacy").hexdigest()
MAIN = ALPHA / "chats" / "session-2026-03-01T23-58-aaaa0001.jsonl"
SUB = ALPHA / "chats" / MAIN_ID / f"{SUB_ID}.jsonl"
SKILL = ALPHA / "chats" / SKILL_DIR / f"{SKILL_ID}.jsonl"
LEGACY = LEGACY_DIR / "chats" / "session-2025-12-31T23-50-dddd0004.json"
TWIN = LEGACY.with_suffix(".jsonl")

# ccusage 20.0.24 `daily --json --by-agent --offline -z UTC` on the real logs (input, output, cache read,
# cache creation), as run by hand; test_real_logs_match_a_plain_scan re-derives them independently.
CCUSAGE_SESSIONS = {"2026-04-24": (19401, 168, 16838, 0), "2026-04-25": (467325, 4890, 1409386, 0)}
CCUSAGE_GENERATED = {"2026-11-20": (311748, 4231, 0, 0)}


def read(path: Path, root: Path = ROOT) -> Batch:
    return read_whole(GeminiReader(), path, root)


class Final:
    """What ingestion keeps from a set of batches: later copies of a key overwrite earlier ones."""

    def __init__(self, *batches: Batch) -> None:
        self.events: dict[str, Event] = {}
        self.tools: dict[str, ToolCall] = {}
        self.usage: dict[str, Usage] = {}
        self.sessions: dict[str, SessionInfo] = {}
        for batch in batches:
            for info in batch.sessions.values():
                known = self.sessions.setdefault(info.key, SessionInfo(info.key))
                known.merge(info)
            self.events.update((e.key, e) for e in batch.events)
            self.tools.update((t.key, t) for t in batch.tool_calls)
            for u in batch.usage:
                known_u = self.usage.get(u.key)
                if known_u is None or u.merge is Merge.LAST or u.total > known_u.total:
                    self.usage[u.key] = u

    def days(self) -> dict[str, tuple[int, int, int, int]]:
        sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for u in self.usage.values():
            assert u.ts is not None
            row = sums[u.ts.date().isoformat()]
            counts = (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_creation_tokens)
            for i, value in enumerate(counts):
                row[i] += value
        return {day: (a, b, c, d) for day, (a, b, c, d) in sums.items()}


# --- layout ------------------------------------------------------------------------------------------


def test_accepts_only_chat_files() -> None:
    reader = GeminiReader()
    yes = [
        "p/chats/session-2026-03-01T23-58-aaaa0001.jsonl",
        "p/chats/session-2025-12-31T23-50-dddd0004.json",
        f"p/chats/{MAIN_ID}/{SUB_ID}.jsonl",
        f"p/chats/skill-extraction-1a2b3c4d/{SKILL_ID}.jsonl",
    ]
    no = [
        "p/logs.json",
        "p/chats/notes.json",
        "p/chats/session-x.json.tmp",
        "p/tool-outputs/session-1/run_shell_command_1_0.txt",
        "p/checkpoints/2026-03-01-a.py-replace.json",
        f"p/{MAIN_ID}/plans/plan.md",
        "p/chats/a/b/c.jsonl",
        "projects.json",
    ]
    assert [reader.accepts(ROOT / p, ROOT) for p in yes] == [True] * len(yes)
    assert [reader.accepts(ROOT / p, ROOT) for p in no] == [False] * len(no)
    assert not reader.accepts(HOME.parent / "elsewhere" / "chats" / "session-x.jsonl", ROOT)
    assert sorted(reader.discover(ROOT)) == sorted([MAIN, SUB, SKILL, LEGACY, TWIN])
    assert reader.whole_file(LEGACY) and not reader.whole_file(TWIN)


def test_begin_maps_project_dirs_and_parents(tmp_path: Path) -> None:
    reader = GeminiReader()
    main, sub, skill, legacy = (reader.begin(p, ROOT) for p in (MAIN, SUB, SKILL, LEGACY))
    assert main["project"] == "/home/dev/alpha"  # from alpha/.project_root
    assert legacy["project"] == "/home/dev/legacy"  # sha256 dir name matched against projects.json
    assert (main["kind"], main["parent"]) == ("main", None)
    assert (sub["kind"], sub["parent"], sub["sid"]) == ("subagent", MAIN_ID, SUB_ID)
    assert (skill["kind"], skill["parent"], skill["agent_id"]) == ("subagent", None, SKILL_DIR)
    json.dumps(main)  # state must survive a JSON round trip

    # A slug dir that lost its .project_root still resolves through projects.json; an unknown one does not.
    tmp = tmp_path / ".gemini" / "tmp"
    (tmp_path / ".gemini").mkdir()
    (tmp_path / ".gemini" / "projects.json").write_text(json.dumps({"projects": {"/srv/beta": "beta-1"}}))
    assert reader.begin(tmp / "beta-1" / "chats" / "session-x.jsonl", tmp)["project"] == "/srv/beta"
    assert reader.begin(tmp / "gamma" / "chats" / "session-x.jsonl", tmp)["project"] is None
    # An unregistered hash dir is known by its hash until ingestion matches it with a root seen elsewhere.
    assert reader.begin(tmp / ("0" * 64) / "chats" / "session-x.jsonl", tmp)["project"] == "sha256:" + "0" * 64


# --- the current JSONL format ----------------------------------------------------------------------------


def test_usage_per_day_of_the_alpha_project() -> None:
    final = Final(read(MAIN), read(SUB), read(SKILL))
    # g-0001 (last copy): input 1200 incl. cached 400 (total 1295 = 1200+60+30+5 proves it) + tool 5 = 805.
    # 03-02: g-0002 2000-1500 | g-0003 3000 (rewound, still billed) | g-0004 500 | g-0005 100 | g-0006 70
    #        | sub-agent 300-100 | skill extractor 40.
    assert final.days() == {
        "2026-03-01": (805, 60, 400, 0),
        "2026-03-02": (500 + 3000 + 500 + 100 + 70 + 200 + 40, 100 + 10 + 5 + 10 + 7 + 30 + 4, 1500 + 100, 0),
    }
    assert sorted(final.usage) == sorted(
        [f"{MAIN_ID}:g-000{i}" for i in range(1, 7)] + [f"{SUB_ID}:sg-0001", f"{SKILL_ID}:kg-0001"]
    )
    assert all(u.merge is Merge.LAST for u in final.usage.values())


def test_reappended_message_last_copy_wins() -> None:
    batch = read(MAIN)
    copies = [u for u in batch.usage if u.key == f"{MAIN_ID}:g-0001"]
    assert len(copies) == 3  # one per record: ingestion keeps the last
    last = Final(batch).usage[f"{MAIN_ID}:g-0001"]
    assert (last.input_tokens, last.output_tokens, last.cache_read_tokens) == (805, 60, 400)
    assert last.reasoning_tokens == 30  # thoughts: ccusage leaves them out of output
    assert last.model == "gemini-2.5-pro" and last.ts == datetime(2026, 3, 1, 23, 58, 20)

    # g-0006's last copy has all-zero tokens: like ccusage, it yields nothing and the first copy stands.
    g6 = Final(batch).usage[f"{MAIN_ID}:g-0006"]
    assert (g6.input_tokens, g6.output_tokens) == (70, 7)
    # g-0005: total 150 exceeds input+output 110; the rest is reasoning (ccusage's total fallback).
    g5 = Final(batch).usage[f"{MAIN_ID}:g-0005"]
    assert (g5.input_tokens, g5.output_tokens, g5.reasoning_tokens) == (100, 10, 40)
    # g-0003 names no model: ccusage prices it with the file's last model.
    assert Final(batch).usage[f"{MAIN_ID}:g-0003"].model == "gemini-2.5-pro"

    # Tool calls: the executing copy is overwritten by the finished one.
    shell_copies = [t for t in batch.tool_calls if t.key == "run_shell_command_1772409500000_0"]
    assert [t.status for t in shell_copies] == [ToolStatus.PENDING, ToolStatus.ERROR]


def test_tool_call_outcomes() -> None:
    tools = Final(read(MAIN)).tools
    shell = tools["run_shell_command_1772409500000_0"]
    # Recorded as "success", but the command exited 1.
    assert (shell.status, shell.exit_code, shell.name) == (ToolStatus.ERROR, 1, "run_shell_command")
    assert shell.input == '{"command":"python -m pytest -q","description":"Run the tests"}'
    assert shell.output is not None and shell.output.startswith("F.")  # the "Output: … Exit Code:" frame is gone
    assert (shell.kind, shell.command, shell.failed) == (ToolKind.SHELL, "python -m pytest -q", True)
    assert shell.output_size == len(shell.output)
    assert shell.started_at == datetime(2026, 3, 1, 23, 58, 25)
    missing = tools["read_file_1772409500001_1"]
    assert (missing.status, missing.output) == (ToolStatus.ERROR, "File not found: /home/dev/alpha/nope.py")
    assert tools["replace_1772409700000_0"].status is ToolStatus.REJECTED  # the user refused it
    assert tools["write_file_1772409700001_1"].status is ToolStatus.REJECTED  # the policy refused it
    assert tools["run_shell_command_1772409700002_2"].status is ToolStatus.CANCELLED  # Ctrl-C while running
    events = Final(read(MAIN)).events
    assert {k for k, e in events.items() if e.kind is EventKind.TOOL_CALL} == {f"tool:{k}" for k in tools}
    assert events["tool:read_file_1772409500001_1"].tool_call_key == "read_file_1772409500001_1"


def test_timeline_kinds() -> None:
    events = Final(read(MAIN)).events
    kinds = {key: e.kind for key, e in events.items() if not key.startswith("tool:")}
    rewind = next(k for k in kinds if k.startswith("rewind:"))
    unknown = next(k for k in kinds if k.startswith("unknown:"))
    assert kinds == {
        "ctx-0001": EventKind.META,  # the session context a checkpoint opens the file with
        "u-0001": EventKind.USER_PROMPT,  # u-0001r only carries tool results: no event
        "g-0001:thoughts": EventKind.REASONING,
        "g-0001": EventKind.ASSISTANT_TEXT,
        "i-0001": EventKind.INTERRUPT,
        "e-0001": EventKind.API_ERROR,
        "w-0001": EventKind.META,
        "i-0002": EventKind.CONTEXT_OVERFLOW,
        "u-0002": EventKind.USER_PROMPT,
        "g-0003": EventKind.ASSISTANT_TEXT,
        rewind: EventKind.INTERRUPT,
        "u-0003": EventKind.USER_PROMPT,
        "g-0004": EventKind.ASSISTANT_TEXT,
        "snap-0001": EventKind.COMPACTION,  # /compress: new turns of a checkpoint
        "ack-0001": EventKind.META,
        "g-0005": EventKind.ASSISTANT_TEXT,
        unknown: EventKind.UNKNOWN,
        "x-0001": EventKind.UNKNOWN,
        "g-0006": EventKind.ASSISTANT_TEXT,
    }
    assert events["e-0001"].status_code == 503
    assert events["g-0001:thoughts"].text == "Plan: Run the suite first."
    assert "u-0002" in (events[rewind].text or "") and events[rewind].ts == datetime(2026, 3, 2, 0, 2, 5)
    assert '"totally"' in (events[unknown].raw or "") and events["x-0001"].raw is not None
    assert all(e.raw is None for e in events.values() if e.kind is not EventKind.UNKNOWN)
    # The checkpoint's masked copies of known turns do not overwrite what was logged first.
    assert events["u-0003"].text == "do it @differently"  # displayContent: what the user typed
    assert events["g-0004"].text == "Done differently."
    assert events["g-0004"].ts == datetime(2026, 3, 2, 0, 3, 5)


def test_sessions_and_subagents() -> None:
    final = Final(read(MAIN), read(SUB), read(SKILL))
    main, sub, skill = final.sessions[MAIN_ID], final.sessions[SUB_ID], final.sessions[SKILL_ID]
    assert (main.kind, main.parent_key, main.project_root) == ("main", None, "/home/dev/alpha")
    assert main.cwd == "/home/dev/alpha"
    assert (main.started_at, main.ended_at) == (datetime(2026, 3, 1, 23, 58), datetime(2026, 3, 2, 0, 4, 31))
    assert main.title == "Fix the failing tests"
    assert (sub.kind, sub.parent_key, sub.project_root) == ("subagent", MAIN_ID, "/home/dev/alpha")
    assert (skill.kind, skill.parent_key, skill.subagent_id) == ("subagent", None, SKILL_DIR)
    assert all(u.sidechain for k, u in final.usage.items() if not k.startswith(MAIN_ID))
    assert not any(u.sidechain for k, u in final.usage.items() if k.startswith(MAIN_ID))


# --- the legacy whole-file JSON and its migrated twin -------------------------------------------------------


def test_legacy_json_and_its_jsonl_twin_agree() -> None:
    legacy, twin = Final(read(LEGACY)), Final(read(TWIN))
    assert legacy.usage == twin.usage  # same keys, timestamps, models and numbers: ingestion keeps one
    assert legacy.events.keys() == twin.events.keys() and legacy.tools == twin.tools
    # lg-0001: 8000 incl. 6000 cached (total 8052 = 8000+40+12); lg-0002: 9000 + tool 2.
    assert legacy.days() == {"2025-12-31": (2000, 40, 6000, 0), "2026-01-01": (9002, 20, 0, 0)}
    session = legacy.sessions[OLD_ID]
    assert (session.project_root, session.title) == ("/home/dev/legacy", "List the files")
    shell = legacy.tools["run_shell_command_1767225000000_0"]
    assert (shell.status, shell.exit_code) == (ToolStatus.OK, 0)  # the older shell output format
    assert legacy.events["li-0001"].kind is EventKind.INTERRUPT


def test_legacy_rewrites_keep_their_keys() -> None:
    reader = GeminiReader()
    doc = json.loads(LEGACY.read_text())
    state = reader.begin(LEGACY, ROOT)
    before = json.dumps(state)
    first = Batch()
    reader.feed_document(doc, state, first)
    assert json.dumps(state) == before  # every re-parse starts from the same state
    doc["messages"].append(
        {"id": "lg-0003", "timestamp": "2026-01-01T00:11:00.000Z", "type": "gemini", "content": "More.",
         "tokens": {"input": 10, "output": 1, "cached": 0, "thoughts": 0, "tool": 0, "total": 11},
         "model": "gemini-2.5-pro"}
    )  # fmt: skip
    second = Batch()
    reader.feed_document(doc, state, second)
    one, two = Final(first), Final(second)
    assert one.usage.keys() < two.usage.keys() and all(one.usage[k] == two.usage[k] for k in one.usage)
    assert one.events.keys() < two.events.keys() and one.tools == two.tools

    odd = Batch()
    reader.feed_document([1, 2], state, odd)  # not a ConversationRecord: kept raw, never raised
    assert [e.kind for e in odd.events] == [EventKind.UNKNOWN]


def test_legacy_usage_follows_ccusage_fallbacks() -> None:
    doc = {
        "sessionId": "s1",
        "startTime": "2025-09-01T10:00:00.000Z",
        "messages": [
            {"id": "a", "type": "gemini", "model": "m", "tokens": {"input": 5, "output": 1, "total": 6}},
            {"id": "b", "timestamp": "2025-09-02T10:00:00Z", "type": "gemini", "tokens": {"input": 7}},
            {"id": "c", "timestamp": "2025-09-02T10:00:00Z", "type": "gemini", "model": "m", "tokens": None},
            {"id": "d", "timestamp": "2025-09-02T10:00:00Z", "type": "gemini", "model": "m",
             "tokens": {"input": 100, "output": 2, "cached": 60}},
        ],
    }  # fmt: skip
    reader = GeminiReader()
    out = Batch()
    reader.feed_document(doc, reader.begin(ROOT / "p" / "chats" / "session-x.json", ROOT), out)
    usage = {u.key: u for u in out.usage}
    # a: no timestamp -> the session start; b: no model and no fallback in this format -> not counted;
    # c: null tokens; d: no total to prove that input includes cached -> ccusage keeps input whole.
    assert sorted(usage) == ["s1:a", "s1:d"]
    assert usage["s1:a"].ts == datetime(2025, 9, 1, 10)
    assert (usage["s1:d"].input_tokens, usage["s1:d"].cache_read_tokens) == (100, 60)


# --- robustness ------------------------------------------------------------------------------------------


def _jsonl_files() -> list[Path]:
    return [MAIN, SUB, SKILL, TWIN]


@pytest.mark.parametrize("path", _jsonl_files(), ids=lambda p: p.name)
def test_two_chunks_with_a_json_round_trip_equal_one_pass(path: Path) -> None:
    reader = GeminiReader()
    data = path.read_bytes()
    whole = Batch()
    parse_chunk(reader, data, 0, reader.begin(path, ROOT), whole, at_eof=True)
    starts = [i + 1 for i, byte in enumerate(data) if byte == 0x0A][:-1]
    ends = [*starts[1:], len(data)]
    # Cut mid-way through each line: the first call leaves that torn line for the second.
    for cut in (start + (end - start) // 2 for start, end in zip(starts, ends, strict=True)):
        first, second = Batch(), Batch()
        state = reader.begin(path, ROOT)
        done = parse_chunk(reader, data[:cut], 0, state, first).consumed
        assert 0 < done < len(data)
        state = json.loads(json.dumps(state))
        parse_chunk(reader, data[done:], done, state, second, at_eof=True)
        assert first.events + second.events == whole.events
        assert first.tool_calls + second.tool_calls == whole.tool_calls
        assert first.usage + second.usage == whole.usage
        assert Final(first, second).sessions == Final(whole).sessions


OVERFLOW_ERROR = (
    'ApiError: {"error":{"code":400,"message":"The input token count (2000000) exceeds the maximum number '
    'of tokens allowed (1048576)."}}'
)
ODD_RECORDS: list[Any] = [
    {"id": 5},
    {"type": "gemini", "tokens": "x", "model": 3},
    {"$set": 3},
    {"$set": {"messages": "no", "directories": [None], "projectHash": 1}},
    {"$set": {"messages": [None, {"type": "user"}, {"id": "n", "type": "gemini", "toolCalls": {"a": 1}}]}},
    {"$rewindTo": 7},
    {"sessionId": "s", "kind": "robot", "startTime": 12},
    {"id": "a", "type": "gemini", "toolCalls": [1, {"status": 9, "result": {"x": 1}, "args": [1]}],
     "thoughts": "x", "content": {"weird": True}, "tokens": {"input": "12", "output": -3, "total": None}},
    {"id": "b", "type": "user", "content": None, "displayContent": 4},
    {"id": "c", "type": "error", "content": [{"text": OVERFLOW_ERROR}]},
    {"id": "d", "type": "gemini", "timestamp": "x", "tokens": {"input": 1.9, "output": 2}, "model": " "},
]  # fmt: skip


def test_odd_records_never_raise() -> None:
    reader = GeminiReader()
    data = b"".join(json.dumps(r).encode() + b"\n" for r in ODD_RECORDS)
    out = Batch()
    result = parse_chunk(reader, data, 0, reader.begin(MAIN, ROOT), out, at_eof=True)
    assert result.problems == [] and result.records == len(ODD_RECORDS)
    events = {e.key: e for e in out.events}
    assert (events["c"].kind, events["c"].status_code) == (EventKind.CONTEXT_OVERFLOW, 400)
    # No record names a usable model (and "a" has no valid count): ccusage counts nothing here, nor do we.
    assert out.usage == []


# --- the real logs in ../shared ------------------------------------------------------------------------


def _plain_scan(root: Path) -> dict[str, tuple[int, int, int, int]]:
    """ccusage's Gemini rule restated over plain json, for the shapes the real logs have."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for path in root.rglob("*.jsonl"):
        last: dict[str, dict[str, Any]] = {}
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("type") == "gemini" and isinstance(rec.get("tokens"), dict) and rec.get("model"):
                last[rec["id"]] = rec
        for rec in last.values():
            t = rec["tokens"]
            assert t["total"] == t["input"] + t["output"] + t["thoughts"] + t["tool"]
            row = sums[rec["timestamp"][:10]]
            row[0] += t["input"] - t["cached"] + t["tool"]
            row[1] += t["output"]
            row[2] += t["cached"]
    return {day: (a, b, c, d) for day, (a, b, c, d) in sums.items()}


def _read_root(root: Path) -> Final:
    reader = GeminiReader()
    return Final(*(read(path, root) for path in sorted(reader.discover(root))))


def _generated_root(shared: Path, tmp_path: Path) -> Path:
    root = tmp_path / "generated" / "tmp"
    for scenario in sorted((shared / "fixtures" / "generated" / "gemini").iterdir()):
        shutil.copytree(scenario, root, dirs_exist_ok=True)
    return root


def test_real_logs_match_a_plain_scan(shared: Path, tmp_path: Path) -> None:
    sessions = shared / "fixtures" / "sessions" / "gemini" / "tmp"
    assert _plain_scan(sessions) == CCUSAGE_SESSIONS
    assert _read_root(sessions).days() == CCUSAGE_SESSIONS
    generated = _generated_root(shared, tmp_path)
    assert _plain_scan(generated) == CCUSAGE_GENERATED
    assert _read_root(generated).days() == CCUSAGE_GENERATED


def test_the_clis_own_please_continue_is_no_prompt(shared: Path) -> None:
    """Gemini CLI sends "System: Please continue." itself (an invalid stream, its next-speaker check): a real
    session holds it twelve times between the user's prompts; it is not a turn of the user's, nor an instruction."""
    root = shared / "fixtures" / "sessions-more" / ".gemini" / "tmp"
    path = root / "idaho-vault" / "chats" / "session-2026-04-16T22-38-b1f31681.json"
    events = read(path, root).events
    harness = [e for e in events if (e.text or "").strip() == "System: Please continue."]
    assert len(harness) == 12 and {e.kind for e in harness} == {EventKind.META}
    assert sum(e.kind is EventKind.USER_PROMPT for e in events) > 0


def test_real_shell_failures(shared: Path, tmp_path: Path) -> None:
    sessions = shared / "fixtures" / "sessions" / "gemini" / "tmp"
    # Plain scan: the last copy of each shell call, its status and the "Exit Code: N" it printed.
    expected: dict[str, tuple[str, int | None]] = {}
    for path in sessions.rglob("*.jsonl"):
        for line in path.read_text().splitlines():
            for call in json.loads(line).get("toolCalls") or []:
                if call["name"] == "run_shell_command":
                    response = call["result"][0]["functionResponse"]["response"]
                    text = response.get("output") or response.get("error") or ""
                    codes = re.findall(r"^Exit Code: (\d+)$", text, re.M)
                    expected[call["id"]] = (call["status"], int(codes[-1]) if codes else None)
    tools = _read_root(sessions).tools
    failed = {k for k, (status, code) in expected.items() if status == "error" or (code or 0) != 0}
    assert len(failed) == 7  # 4 x git exit 128, 3 x exit 127 (command not found), all logged as "success"
    assert {k for k in expected if tools[k].status is ToolStatus.ERROR} == failed
    assert {k: tools[k].exit_code for k in expected} == {k: code for k, (_s, code) in expected.items()}
    assert {k for k in expected if tools[k].status is ToolStatus.CANCELLED} == {
        k for k, (status, _c) in expected.items() if status == "cancelled"
    }

    final = _read_root(_generated_root(shared, tmp_path))
    by_command = {json.loads(t.input or "{}").get("command"): t for t in final.tools.values()}
    assert (by_command["cat does-not-exist.txt"].status, by_command["cat does-not-exist.txt"].exit_code) == (
        ToolStatus.ERROR,
        1,
    )
    grep = by_command["grep -c ' ERROR ' log/server.log"]
    assert (grep.status, grep.exit_code) == (ToolStatus.ERROR, 2)
    assert by_command["grep -c ' ERROR ' logs/server.log"].status is ToolStatus.OK
    assert {s.project_root for s in final.sessions.values()} == {
        "/tmp/agent-home-gemini-big-output/src/inventory-service",
        "/tmp/agent-home-gemini-fail-then-fix/src/shopping",
        "/tmp/agent-home-gemini-test-fix-correction/src/calc",
    }


def test_real_resume_checkpoint_does_not_redate_events(shared: Path, tmp_path: Path) -> None:
    """test-fix-correction resumes: a second metadata line and a checkpoint that re-creates every turn."""
    path = next((_generated_root(shared, tmp_path) / "calc" / "chats").glob("*.jsonl"))
    logged = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if isinstance(rec.get("id"), str) and rec.get("type") == "user" and "functionResponse" not in line:
            logged[rec["id"]] = rec["timestamp"]
    events = Final(read(path, path.parents[2])).events
    prompts = {k: e.ts for k, e in events.items() if e.kind is EventKind.USER_PROMPT}
    assert {k: ts.isoformat(timespec="milliseconds") + "Z" for k, ts in prompts.items() if ts} == logged
    assert not any(k.endswith("_response") for k in events)


# --- ccusage itself (when installed) --------------------------------------------------------------------


def _ccusage(root: Path, home: Path) -> dict[str, tuple[int, int, int, int]]:
    exe = ccusage_binary()
    assert exe is not None
    env = {**os.environ, "HOME": str(home), "GEMINI_DATA_DIR": str(root)}
    out = subprocess.run(
        [exe, "daily", "--json", "--by-agent", "--offline", "-z", "UTC"],
        env=env, capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    days = {}
    for day in json.loads(out).get("daily", []):
        for agent in day.get("agents", []):
            if agent["agent"] == "gemini":
                keys = ("inputTokens", "outputTokens", "cacheReadTokens", "cacheCreationTokens")
                days[day["period"]] = tuple(agent[k] for k in keys)
    return days


@pytest.mark.ccusage
@pytest.mark.skipif(ccusage_binary() is None, reason="ccusage is not installed (make tools installs it)")
def test_totals_equal_ccusage(shared: Path, tmp_path: Path) -> None:
    home = tmp_path / "ccusage-home"
    home.mkdir()
    sessions = shared / "fixtures" / "sessions" / "gemini" / "tmp"
    assert _ccusage(sessions, home) == _read_root(sessions).days() == CCUSAGE_SESSIONS
    generated = _generated_root(shared, tmp_path)
    assert _ccusage(generated, home) == _read_root(generated).days() == CCUSAGE_GENERATED

    own = tmp_path / "own"
    shutil.copytree(ROOT, own)
    (own / TWIN.relative_to(ROOT)).unlink()
    assert _ccusage(own, home) == _read_root(own).days()
    # With the migrated twin present ccusage counts the legacy session twice; we count it once.
    twice = _ccusage(ROOT, home)
    ours = _read_root(ROOT).days()
    for day in ("2025-12-31", "2026-01-01"):
        assert twice[day] == tuple(2 * n for n in ours[day])
