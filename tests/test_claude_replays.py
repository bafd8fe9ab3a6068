"""Claude Code files that repeat what another file logged: compaction and side-question replays, Bedrock streams.

``tests/fixtures/claude-replay`` mirrors what real 2.1.8x logs show (made-up content): a session whose
``subagents/`` folder holds an ``agent-acompact-*`` file (the whole history replayed, then the harness's
"summarize" prompt and the summary), an ``agent-aside_question-*`` file (the history up to a ``/btw``
question, then the question and its answer), and a Bedrock sub-agent (``msg_bdrk_…`` ids, no
``requestId``, one line per streamed content block with partial output counts).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from headroom.daemon.ingest import Ingestor, LogFile
from headroom.learn.model import EventKind
from headroom.learn.readers import ClaudeReader
from headroom.memory.db import Database, open_database
from headroom.memory.models import EventRow, SessionRow, ToolCallRow, UsageRow
from tests.helpers import read_whole

ROOT = Path(__file__).resolve().parent / "fixtures" / "claude-replay" / "projects"
SID = "44444444-4444-4444-8444-444444444444"
PARENT = ROOT / "-home-dev-vault" / f"{SID}.jsonl"
SUB = PARENT.with_suffix("") / "subagents"
COMPACT = SUB / "agent-acompact-0a1b2c3d4e5f6a7b.jsonl"
ASIDE = SUB / "agent-aside_question-f0e1d2c3b4a59687.jsonl"
BEDROCK = SUB / "agent-a5b6c7d8e9f0a1b2c.jsonl"
# `ccusage daily --json --by-agent --offline -z UTC` (20.0.24) on tests/fixtures/claude-replay:
# input, output, cache read, cache creation, total.
CCUSAGE = {"2026-03-29": (55, 524, 12850, 5450, 18879)}

reader = ClaudeReader()


def test_a_replay_file_is_part_of_its_parent_session() -> None:
    for path in (COMPACT, ASIDE):
        batch = read_whole(reader, path, ROOT)
        assert batch.replay
        assert set(batch.sessions) == {SID}  # not a session of its own
        assert {call.session_key for call in batch.tool_calls} == {SID}
    compact = read_whole(reader, COMPACT, ROOT)
    harness = [e for e in compact.events if e.text and e.text.startswith("CRITICAL: Respond with TEXT ONLY")]
    assert [e.kind for e in harness] == [EventKind.META]  # the harness's prompt, never a user prompt
    assert not [e for e in compact.events if e.kind is EventKind.USER_PROMPT]
    assert not read_whole(reader, PARENT, ROOT).replay
    assert not read_whole(reader, BEDROCK, ROOT).replay  # an ordinary sub-agent stays its own session


def test_a_bedrock_subagent_counts_each_message_once() -> None:
    usage = read_whole(reader, BEDROCK, ROOT).usage
    assert len(usage) == 5  # one line per streamed content block
    kept: dict[str, tuple[int, int]] = {}
    for item in usage:
        kept[item.key] = max(kept.get(item.key, (0, 0)), (item.total, item.output_tokens))
    assert kept == {
        "m:msg_bdrk_01AAAAAAAAAAAAAAAAAAAAAAAA": (5090, 87),  # the last, complete copy
        "m:msg_bdrk_01BBBBBBBBBBBBBBBBBBBBBBBB": (5054, 12),
    }


def _ingest(db: Database, tmp_path: Path, order: list[Path]) -> None:
    root = tmp_path / "projects"
    ingestor = Ingestor(db, {"claude": [root]})
    for source in order:  # each file appears, and is read, in this order (as the watcher would see them)
        target = root / source.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        ingestor.ingest_file(LogFile("claude", root, target))
    ingestor.refresh()


@pytest.mark.parametrize(
    "order",
    [[PARENT, COMPACT, ASIDE, BEDROCK], [COMPACT, ASIDE, BEDROCK, PARENT], [ASIDE, PARENT, BEDROCK, COMPACT]],
    ids=["parent-first", "parent-last", "mixed"],
)
def test_replayed_calls_are_the_same_calls_whichever_file_is_read_first(
    db: Database, tmp_path: Path, order: list[Path]
) -> None:
    _ingest(db, tmp_path, order)
    with db.sessions() as dbs:
        sessions = {s.key: s for s in dbs.execute(select(SessionRow)).scalars()}
        assert set(sessions) == {SID, "agent-a5b6c7d8e9f0a1b2c"}
        main = sessions[SID]
        calls = {
            c.key: c.status for c in dbs.execute(select(ToolCallRow).where(ToolCallRow.session_id == main.id)).scalars()
        }
        events = list(dbs.execute(select(EventRow).where(EventRow.session_id == main.id)).scalars())
        usage = list(dbs.execute(select(UsageRow)).scalars())
    assert calls == {"toolu_rp_make": "error", "toolu_rp_pytest": "ok"}
    assert (main.tool_calls, main.failed_tool_calls, main.turns) == (2, 1, 2)
    prompts = sorted(e.text for e in events if e.kind == EventKind.USER_PROMPT.value)
    assert prompts == ["Run the tests please.", "Thanks. Now tidy the README."]
    texts = {e.text for e in events}
    # What the replays add is kept: the compaction's summary and the side question's answer.
    assert any(t and t.startswith("<analysis>The user asked to run tests") for t in texts)
    assert "The Makefile has no `test` target." in texts
    # The parent's own events keep the parent's copy (not the replay's sidechain flag).
    assert not any(e.sidechain for e in events if e.kind == EventKind.USER_PROMPT.value)
    totals = [0] * 5
    for row in usage:
        parts = (row.input_tokens, row.output_tokens, row.cache_read_tokens, row.cache_creation_tokens)
        for index, value in enumerate((*parts, sum(parts))):
            totals[index] += value
    assert {"2026-03-29": tuple(totals)} == CCUSAGE
    assert len(usage) == 8  # 4 parent calls + the summary + the side answer + 2 Bedrock messages


def _answers(db: Database) -> tuple[object, ...]:
    """What stats and learn see: sessions with their projects and counters, calls, usage."""
    with db.sessions() as dbs:
        sessions = sorted(
            (s.agent, s.key, s.project_root, s.turns, s.tool_calls, s.failed_tool_calls, s.input_tokens)
            for s in dbs.execute(select(SessionRow)).scalars()
        )
        calls = sorted((c.key, c.status) for c in dbs.execute(select(ToolCallRow)).scalars())
        usage = sorted((u.key, u.input_tokens, u.output_tokens) for u in dbs.execute(select(UsageRow)).scalars())
    return sessions, calls, usage


def test_a_database_from_before_0007_gives_the_answers_of_a_fresh_ingest(
    tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 0007 on rows the old readers wrote: replay files as sessions, raw project spellings."""
    from sqlalchemy import update

    import headroom.learn.readers.claude as claude_reader
    from headroom.daemon.ingest_upgrade import upgrade_identity

    windows = Path(__file__).resolve().parent / "fixtures" / "projects-windows"
    claude = tmp_path / "claude"
    shutil.copytree(ROOT, claude, dirs_exist_ok=True)
    shutil.copytree(windows / "claude" / "projects", claude, dirs_exist_ok=True)
    gemini = shutil.copytree(windows / "gemini" / "tmp", tmp_path / "gemini")
    roots = {"claude": [claude], "gemini": [gemini]}
    Ingestor(db, roots).scan()

    old = open_database(f"sqlite:///{tmp_path / 'old' / 'headroom.db'}")
    real_usage_line = claude_reader.usage_line

    def per_streamed_line(record: dict[str, Any], raw: bytes, file: str, offset: int, ts: Any) -> Any:
        line = real_usage_line(record, raw, file, offset, ts)
        if line is not None and line.key.startswith("m:"):  # the old key: one per streamed line
            line.key = f"t:{line.key[2:]}|{record.get('sessionId')}|{offset}"
        return line

    with monkeypatch.context() as patch:  # the old reader: replay files were sub-agent sessions
        patch.setattr(claude_reader, "_replay_kind", lambda stem: None)
        patch.setattr(claude_reader, "usage_line", per_streamed_line)
        Ingestor(old, roots).scan()
    with old.transaction() as s:  # the old project column: the logged spelling, no hash for Gemini
        s.execute(update(SessionRow).values(project_root=SessionRow.cwd))
        before = s.execute(select(SessionRow.key).where(SessionRow.key.like("agent-a%compact%"))).scalars().all()
        assert before  # the old rows really hold a replay session, and Bedrock usage per streamed line
        assert len(s.execute(select(UsageRow.key).where(UsageRow.key.like("t:msg_bdrk%"))).all()) == 5
        upgrade_identity(s.connection())  # what migration 0007 runs
    Ingestor(old, roots).scan()
    assert _answers(old) == _answers(db)
    old.close()
