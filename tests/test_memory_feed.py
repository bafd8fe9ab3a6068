"""The feed from the session mirror into the memory, on the logs the real CLIs wrote, and its extraction rules."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from headroom.daemon.config import load_config
from headroom.daemon.memory_feed import PENDING_GRACE, MemoryFeed
from headroom.daemon.service import make_ingestor
from headroom.learn.knowledge import Found, describe_call, from_prompt, from_tool_call, unwrap_output
from headroom.memory.api import Memory
from headroom.memory.db import Database, open_database
from headroom.memory.models import MemoryItemRow, MemorySightingRow, ToolCallRow
from headroom.memory.store import utcnow

pytestmark = pytest.mark.both_backends  # each test runs on SQLite and on PostgreSQL (marked pg, slow)


@pytest.fixture(autouse=True)
def _backend(database_url: str) -> str:
    """These tests open the database where the CLI does: on the PostgreSQL leg, the test server's."""
    return database_url


@pytest.fixture
def fed(generated_logs: Path) -> tuple[Memory, Database]:
    config = load_config()
    db = open_database(config.database_url)
    make_ingestor(config, db).scan()
    memory = Memory(db)
    MemoryFeed(memory.store).run()
    yield memory, db
    db.close()


def _items_for(db: Database, suffix: str) -> list[tuple[int, list[str]]]:
    with db.sessions() as s:
        rows = s.execute(
            select(MemorySightingRow.item_id, MemorySightingRow.agent).where(MemorySightingRow.path.like(f"%{suffix}"))
        ).all()
    by_item: dict[int, list[str]] = {}
    for item_id, agent in rows:
        by_item.setdefault(item_id, []).append(agent)
    return sorted(by_item.items())


def test_the_same_file_read_by_three_agents_is_one_item(fed: tuple[Memory, Database]) -> None:
    """records.json: Claude's numbered Read, Codex's `cat` behind its exec header, Gemini's read_file."""
    memory, db = fed
    items = _items_for(db, "/data/records.json")
    assert len(items) == 1, items
    item_id, agents = items[0]
    assert {"claude", "codex", "gemini"} <= set(agents)
    item = memory.get(item_id)
    assert item is not None and item.kind == "file_read"
    assert item.content.startswith('[\n{"id": 1, "name": "hinge-gear-1"')  # no line numbers, no header
    # calc.py read by all three before any edit: one item as well
    assert {a for _, agents in _items_for(db, "/calc/test_calc.py") for a in agents} == {"claude", "codex", "gemini"}
    assert len(_items_for(db, "/calc/test_calc.py")) == 1


def test_prompts_become_instructions_with_provenance(fed: tuple[Memory, Database]) -> None:
    memory, _db = fed
    hits = memory.search("digit strings", project=None, kinds=["instruction"]).hits
    assert hits and "add() must also accept digit strings" in hits[0].item.content
    assert set(hits[0].item.agents) == {"claude", "codex", "gemini"}


def test_feeding_again_adds_nothing(fed: tuple[Memory, Database]) -> None:
    memory, db = fed
    with db.sessions() as s:
        before = (len(s.execute(select(MemoryItemRow.id)).all()), len(s.execute(select(MemorySightingRow.id)).all()))
    report = MemoryFeed(memory.store).run()
    assert (report.tool_calls, report.prompts, report.sightings) == (0, 0, 0)
    with db.sessions() as s:
        after = (len(s.execute(select(MemoryItemRow.id)).all()), len(s.execute(select(MemorySightingRow.id)).all()))
    assert after == before


def test_a_fresh_feed_over_the_same_rows_gives_the_same_store(fed: tuple[Memory, Database], tmp_path: Path) -> None:
    """The cursor is what makes it exactly-once; without it the natural keys still make re-feeding idempotent."""
    memory, db = fed
    with db.transaction() as s:
        from headroom.memory.models import StateValueRow

        s.execute(update(StateValueRow).values(value="0"))
    report = MemoryFeed(memory.store).run()
    assert report.tool_calls > 0 and report.sightings == 0 and report.items_created == 0


def _shell_call(
    session_id: int, key: str, name: str, *, started_at: datetime, output: str | None = None
) -> ToolCallRow:
    """A Codex ``cat <name>`` call as the mirror stores it: pending without ``output``, ok with it."""
    return ToolCallRow(
        session_id=session_id,
        key=key,
        name="exec_command",
        input=json.dumps({"cmd": f"cat {name}"}),
        kind="shell",
        command=f"cat {name}",
        status="pending" if output is None else "ok",
        output=output,
        started_at=started_at,
    )


def test_a_pending_tool_call_holds_the_cursor_until_it_completes_or_grows_old(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'feed.db'}")
    from headroom.memory.models import SessionRow

    now = utcnow()
    with db.transaction() as s:
        session = SessionRow(agent="codex", key="s1", cwd="/p", project_root="/p")
        s.add(session)
        s.flush()
        s.add(_shell_call(session.id, "c1", "a.txt", started_at=now))
        s.add(_shell_call(session.id, "c2", "b.txt", started_at=now, output="contents of b.txt here"))
    memory = Memory(db)
    first = MemoryFeed(memory.store, now=now).run()
    assert first.tool_calls == 0  # c1 is waiting for its output: nothing past it is taken yet
    with db.transaction() as s:
        s.execute(
            update(ToolCallRow).where(ToolCallRow.key == "c1").values(status="ok", output="contents of a.txt here")
        )
    second = MemoryFeed(memory.store, now=now).run()
    assert second.tool_calls == 2 and second.items_created == 2
    with db.transaction() as s:
        s.add(_shell_call(1, "c3", "c.txt", started_at=now - PENDING_GRACE - timedelta(minutes=1)))
        s.add(_shell_call(1, "c4", "d.txt", started_at=now, output="contents of d.txt here"))
    third = MemoryFeed(memory.store, now=now).run()  # c3 never completed (an interrupted session): passed over
    assert third.tool_calls == 2 and third.items_created == 1
    # ...but looked at again: a sub-agent's task that ran past the grace has its output fed when it lands.
    with db.transaction() as s:
        s.execute(
            update(ToolCallRow).where(ToolCallRow.key == "c3").values(status="ok", output="contents of c.txt here")
        )
    fourth = MemoryFeed(memory.store, now=now).run()
    assert fourth.items_created == 1 and fourth.tool_calls == 0
    with db.sessions() as s:
        contents = set(s.execute(select(MemoryItemRow.content)).scalars())
    assert any("contents of c.txt" in c for c in contents)
    assert MemoryFeed(memory.store, now=now).run().items_created == 0  # once only
    db.close()


def test_a_call_passed_over_is_forgotten_after_a_while_and_a_damaged_list_reads_as_empty(tmp_path: Path) -> None:
    from headroom.daemon.memory_feed import _LATE, LATE_KEEP
    from headroom.memory.identity import current_machine
    from headroom.memory.models import SessionRow
    from headroom.memory.store import get_state, set_state

    db = open_database(f"sqlite:///{tmp_path / 'feed.db'}")
    now = utcnow()
    with db.transaction() as s:
        session = SessionRow(agent="codex", key="s1", cwd="/p", project_root="/p")
        s.add(session)
        s.flush()
        s.add(_shell_call(session.id, "c1", "a.txt", started_at=now - PENDING_GRACE - timedelta(minutes=1)))
    memory = Memory(db)
    MemoryFeed(memory.store, now=now).run()
    with db.sessions() as s:
        assert get_state(s, _LATE, current_machine()) is not None
    MemoryFeed(memory.store, now=now + LATE_KEEP + timedelta(minutes=1)).run()
    with db.sessions() as s:
        assert get_state(s, _LATE, current_machine()) == "[]"
        set_state(s, _LATE, "not json", current_machine())
        s.commit()
    assert MemoryFeed(memory.store, now=now).run().items_created == 0
    db.close()


@pytest.mark.parametrize(
    ("name", "args", "output", "kind", "content", "path"),
    [
        (
            "Read",
            '{"file_path": "/p/a.py"}',
            "     1\tx = 1\n     2\ty = 2\n",
            "file_read",
            "x = 1\ny = 2\n",
            "/p/a.py",
        ),
        (
            "Read",
            '{"file_path": "/p/a.py"}',
            "1\u2192x = 1\n2\u2192y = 2\n<system-reminder>ignore</system-reminder>",
            "file_read",
            "x = 1\ny = 2\n",
            "/p/a.py",
        ),
        (
            "exec_command",
            '{"cmd": "cat notes.txt"}',
            "Chunk ID: 1a\nWall time: 0.0 seconds\nProcess exited with code 0\nOriginal token count: 3\n"
            "Output:\nmilk\neggs\n",
            "file_read",
            "milk\neggs\n",
            "/p/notes.txt",
        ),
        (
            "run_shell_command",
            '{"command": "cat notes.txt"}',
            "<untrusted_context>\nOutput: milk\neggs\nProcess Group PGID: 12\n</untrusted_context>",
            "file_read",
            "milk\neggs",
            "/p/notes.txt",
        ),
        (
            "read_file",
            '{"file_path": "notes.txt"}',
            "milk\neggs\nbread\n",
            "file_read",
            "milk\neggs\nbread\n",
            "/p/notes.txt",
        ),
        (
            "exec_command",
            '["/bin/bash", "-lc", "cat notes.txt"]',
            "milk\neggs\nbread\n",
            "file_read",
            "milk\neggs\nbread\n",
            "/p/notes.txt",
        ),
        (  # Codex's shell_command tool: a `cat` is a file read here too, as it is a shell command to learn
            "shell_command",
            '{"command": "cat README.md", "workdir": "/p"}',
            "Exit code: 0\nWall time: 0.1 seconds\nOutput:\n# Shop\nA shopping list.\n",
            "file_read",
            "# Shop\nA shopping list.\n",
            "/p/README.md",
        ),
    ],
)
def test_wrappers_are_stripped_so_contents_compare(
    name: str, args: str, output: str, kind: str, content: str, path: str
) -> None:
    found = _found(name, args, output)
    assert found is not None and (found.kind, found.content, found.path) == (kind, content, path)


def _found(name: str, args: str, output: str) -> Found | None:
    """What memory keeps from a call, through the fields the readers store (kind, command, path, clean output)."""
    kind, command, path = describe_call(name, args)
    return from_tool_call(kind, name, command, path, unwrap_output(output), args, "/p")


WINDOWS_CWD = "C:\\Users\\ada\\vault"


@pytest.mark.parametrize(
    ("name", "args", "path"),
    [
        # an absolute Windows path is the file's, whatever the session's folder (it was joined onto it)
        ("Read", '{"file_path": "c:/Users/ada/vault/notes.md"}', "c:/Users/ada/vault/notes.md"),
        ("read_file", '{"file_path": "C:\\\\Users\\\\ada\\\\vault\\\\notes.md"}', "C:\\Users\\ada\\vault\\notes.md"),
        ("read_file", '{"file_path": "docs/notes.md"}', "C:\\Users\\ada\\vault\\docs\\notes.md"),
        ("Read", '{"file_path": "/c/Users/ada/vault/notes.md"}', "/c/Users/ada/vault/notes.md"),  # Git Bash
        # Claude Code on Windows reads through Git Bash in the folder it names first
        (
            "Bash",
            '{"command": "cd \\"C:\\\\Users\\\\ada\\\\vault\\" && cat \\"notes.md\\" 2>&1"}',
            "C:\\Users\\ada\\vault\\notes.md",
        ),
        ("Bash", '{"command": "cd docs && cat notes.md"}', "C:\\Users\\ada\\vault\\docs\\notes.md"),
    ],
)
def test_windows_file_reads_keep_the_files_path(name: str, args: str, path: str) -> None:
    kind, command, logged = describe_call(name, args)
    found = from_tool_call(kind, name, command, logged, "milk\neggs\nbread\n", args, WINDOWS_CWD)
    assert found is not None and (found.kind, found.path, found.title) == ("file_read", path, path)


@pytest.mark.parametrize(
    "command",
    [
        'cd "C:\\Users\\ada\\vault" && cat "notes.md" 2>&1 | head -80',  # the first lines only
        "cd C:\\Users\\ada\\vault && cat notes.md",  # unquoted: shlex drops the backslashes, the folder is unknown
        "cd docs && cat -n notes.md",
    ],
)
def test_a_cat_elsewhere_that_is_not_a_plain_read_is_an_output(command: str) -> None:
    args = json.dumps({"command": command})
    kind, shell, path = describe_call("Bash", args)
    found = from_tool_call(kind, "Bash", shell, path, "x" * 300, args, WINDOWS_CWD)
    assert found is not None and found.kind == "tool_output"


def test_what_is_not_kept() -> None:
    assert _found("Edit", '{"file_path": "/p/a"}', "The file has been updated." * 20) is None
    assert _found("apply_patch", "*** Begin Patch", "Success. Updated the following files" * 20) is None
    assert _found("Bash", '{"command": "grep -c x f"}', "34") is None  # too short to matter
    assert _found("Bash", '{"command": "ls"}', "") is None
    assert from_prompt("ok") is None


def test_long_outputs_and_fetches_are_kept_with_a_title() -> None:
    out = _found("Bash", '{"command": "pytest -q"}', "F" * 300)
    assert out is not None and out.kind == "tool_output" and out.title == "$ pytest -q"
    doc = _found("WebFetch", '{"url": "https://docs.example.com/x"}', "doc text " * 50)
    assert doc is not None and doc.kind == "fetched_doc" and doc.title == "https://docs.example.com/x"
    assert unwrap_output("Script completed\nWall time 0.0 seconds\nOutput:\nhello") == "hello"


REPLAY = Path(__file__).resolve().parent / "fixtures" / "claude-replay" / "projects"
REPLAY_SESSION = "44444444-4444-4444-8444-444444444444"


def _replay_files() -> tuple[Path, Path]:
    parent = REPLAY / "-home-dev-vault" / f"{REPLAY_SESSION}.jsonl"
    return parent, parent.with_suffix("") / "subagents" / "agent-acompact-0a1b2c3d4e5f6a7b.jsonl"


def _instructions(db: Database) -> set[tuple[str, str]]:
    with db.sessions() as s:
        rows = s.execute(
            select(MemoryItemRow.content, MemorySightingRow.tool_call_key)
            .join(MemorySightingRow, MemorySightingRow.item_id == MemoryItemRow.id)
            .where(MemoryItemRow.kind == "instruction")
        ).all()
    return {(content, key) for content, key in rows}


def test_a_prompt_first_stored_by_a_compaction_replay_is_fed_when_its_own_line_arrives(
    db: Database, tmp_path: Path
) -> None:
    """The team load test's missing prompts (issue 17): a compaction agent's file replays its parent's history
    (same uuids), and its copies of the parent's prompts are stored as META (a compaction file's prompts are
    the harness's). When that file is read and fed before the parent's own lines arrive, the parent's line
    makes the row a prompt — and the prompt must be fed then, as a read of the finished files feeds it."""
    from headroom.daemon.ingest import Ingestor, LogFile
    from tests.helpers import claude_session_lines, claude_tree

    parent, compact = _replay_files()
    root = tmp_path / "projects"
    ingestor = Ingestor(db, {"claude": [root]})
    memory = Memory(db)
    other = claude_tree(root)  # another session, prompted after the compaction: the feed's cursor passes it
    steps = [(compact, root / compact.relative_to(REPLAY)), (None, other), (parent, root / parent.relative_to(REPLAY))]
    for source, target in steps:  # the compaction file, fed; another session's prompt, fed; the parent's lines
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes() if source else b"".join(claude_session_lines(1)))
        ingestor.ingest_file(LogFile("claude", root, target))
        ingestor.refresh()
        MemoryFeed(memory.store).run()
    prompt = "Thanks. Now tidy the README."
    assert _instructions(db) == {(prompt, "prompt:e4000000-0000-4000-8000-000000000020")}
    assert MemoryFeed(memory.store).run().items_created == 0  # once only


def test_sightings_follow_their_sessions_project_when_it_is_renamed(db: Database, tmp_path: Path) -> None:
    """The team load test's item-by-item comparison: a Windows project first seen as ``c:\\...`` and later as
    ``C:\\...`` (the preferred spelling, to which the mirror moves the sessions), or a Gemini project known only by
    its hash until another agent's session names it. The feed had put the first session's items with the old
    name; a search in the project (sightings match it exactly) must find them as a read of the finished logs does."""
    from headroom.daemon.ingest import Ingestor, LogFile
    from tests.helpers import claude_record, claude_tree

    root = tmp_path / "projects"
    ingestor = Ingestor(db, {"claude": [root]})
    memory = Memory(db)
    sessions = (("aaaaaaaa-1111-4111-8111-111111111111", "c:\\Users\\lo\\vault"), (None, "C:\\Users\\lo\\vault"))
    for n, (session, cwd) in enumerate(sessions):
        key = session or "bbbbbbbb-2222-4222-8222-222222222222"
        text = f"Please tidy the vault's daily notes, part {n}"
        line = claude_record("prompt", 0, text=text, cwd=cwd, sessionId=key, uuid=f"p{n}")
        log = claude_tree(root, key)
        log.write_text(json.dumps(line) + "\n", encoding="utf-8")
        ingestor.ingest_file(LogFile("claude", root, log))
        ingestor.refresh()
        MemoryFeed(memory.store).run()
    with db.sessions() as s:
        assert set(s.execute(select(MemorySightingRow.project)).scalars()) == {"C:\\Users\\lo\\vault"}
    hits = memory.search("tidy daily notes", project="C:\\Users\\lo\\vault", kinds=["instruction"]).hits
    assert {h.item.content[-6:] for h in hits} == {"part 0", "part 1"}
