"""The memory store on a real SQLite file: dedup, provenance, scoping, redaction, bad input, lifecycle."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from headroom.memory.api import Memory
from headroom.memory.db import Database
from headroom.memory.models import MemoryItemRow, MemorySightingRow
from headroom.memory.store import INLINE_CHARS, MemoryStore, utcnow

pytestmark = pytest.mark.both_backends  # each test runs on SQLite and on PostgreSQL (marked pg, slow)

FAKE_KEY = "AKIA" + "QWERTYUIOPASDFGH"  # an AWS access key id shape, built so no literal key sits in the source


@pytest.fixture
def memory(db: Database) -> Memory:
    return Memory(db)


@pytest.mark.sqlite_only
def test_the_db_file_is_owner_only(db: Database) -> None:
    assert db.url.startswith("sqlite:///")
    assert stat.S_IMODE(os.stat(db.url.removeprefix("sqlite:///")).st_mode) == 0o600


def test_exact_duplicates_are_one_item_with_many_sightings(memory: Memory) -> None:
    text = "def add(a, b):\n    return a + b\n"
    a = memory.put(
        text, "file_read", project="/p", agent="claude", session_key="s1", tool_call_key="t1", path="/p/x.py"
    )
    # The same content with CRLF line endings and trailing blanks, read by another agent: the same item.
    b = memory.put(
        "def add(a, b):  \r\n    return a + b\r\n\r\n",
        "file_read",
        project="/p",
        agent="codex",
        session_key="s2",
        tool_call_key="t9",
        path="/p/x.py",
    )
    assert a.created and not b.created and a.item_id == b.item_id
    item = memory.get(a.item_id)
    assert item is not None and item.agents == ["claude", "codex"] and len(item.sightings) == 2


def test_a_file_met_in_a_shell_output_and_in_a_read_is_one_item_alone_two_on_a_shared_database(
    memory: Memory, db: Database
) -> None:
    """A ``cat`` of a repository file (a private tool output) and a read of it (the team's) by one user.

    One person's file keys by content: one item, made ``team`` by the read. A shared database keys a private
    item by content and owner, so the shell sighting stays on a private item of the user's own, which no other
    member can read (the team load test's baseline models this, bench/team_load.py ``as_shared``)."""
    text = "# Vault\nThe swarm's state layer, version 1, awaiting review.\n"
    shell = memory.put(text, "tool_output", project="/p", agent="claude", session_key="s", tool_call_key="sh")
    read = memory.put(
        text, "file_read", project="/p", agent="claude", session_key="s", tool_call_key="rd", path="/p/a.md"
    )
    with db.sessions() as s:
        items = s.execute(select(MemoryItemRow.kind, MemoryItemRow.visibility).order_by(MemoryItemRow.id)).all()
    if db.is_sqlite:
        assert read.item_id == shell.item_id and [tuple(i) for i in items] == [("tool_output", "team")]
    else:
        assert read.item_id != shell.item_id
        assert [tuple(i) for i in items] == [("tool_output", "private"), ("file_read", "team")]


def test_the_same_meeting_read_again_adds_nothing(memory: Memory) -> None:
    where = {"project": "/p", "agent": "gemini", "session_key": "s", "tool_call_key": "t"}
    first = memory.put("some output that matters", "tool_output", **where)
    again = memory.put("some output that matters", "tool_output", **where)
    assert first.new_sighting and not again.new_sighting
    item = memory.get(first.item_id)
    assert item is not None and len(item.sightings) == 1


def test_secrets_are_redacted_before_storage_and_hashing(memory: Memory, db: Database) -> None:
    got = memory.put(f"AWS_ACCESS_KEY_ID={FAKE_KEY}\nregion=eu-west-1", "tool_output", project="/p")
    assert got.redactions == 1
    with db.sessions() as s:
        stored = s.execute(select(MemoryItemRow.content)).scalar_one()
    assert FAKE_KEY not in stored and "[REDACTED:" in stored and "region=eu-west-1" in stored
    if db.is_sqlite:  # nowhere in the file: not in the FTS index's shadow tables either
        raw = (Path(db.url.removeprefix("sqlite:///"))).read_bytes()
        assert FAKE_KEY.encode() not in raw
    else:  # nor in PostgreSQL's generated search column (its words are lower-cased)
        with db.engine.connect() as conn:
            words = conn.execute(text("SELECT search_tsv::text FROM memory_items")).scalar_one()
        assert words and FAKE_KEY.lower() not in words and "region" in words


def test_scoping_by_project(memory: Memory) -> None:
    a = memory.put("alpha project notes: deploy with make ship", "decision", project="/a")
    memory.put("beta project notes: deploy with ./release.sh", "decision", project="/b")
    g = memory.put("always answer in English", "instruction", project="/a", global_scope=True)
    assert memory.get(a.item_id, project="/b") is None
    assert memory.get(a.item_id, project="/a") is not None
    assert memory.get(g.item_id, project="/b") is not None
    hits = memory.search("deploy", project="/b").hits
    assert [h.item.content for h in hits] == ["beta project notes: deploy with ./release.sh"]
    assert {h.item.id for h in memory.search("deploy", project=None).hits} >= {a.item_id}


def test_a_shared_item_shows_only_the_asking_projects_provenance(memory: Memory) -> None:
    text = "[\n" + ",\n".join(f'{{"id": {i}}}' for i in range(50)) + "\n]"
    memory.put(text, "file_read", project="/a", agent="claude", session_key="1", path="/a/data.json")
    got = memory.put(text, "file_read", project="/b", agent="codex", session_key="2", path="/b/data.json")
    item = memory.get(got.item_id, project="/b")
    assert item is not None
    scoped = item.scoped("/b")
    assert scoped.title == "/b/data.json" and scoped.agents == ["codex"]
    assert all(s.project == "/b" for s in scoped.sightings)


def test_a_new_read_of_the_same_path_supersedes_the_old_one(memory: Memory) -> None:
    old = memory.put("v1\nline", "file_read", project="/p", path="/p/f.txt", session_key="a")
    new = memory.put("v2\nline", "file_read", project="/p", path="/p/f.txt", session_key="b")
    other = memory.put("v3\nline", "file_read", project="/q", path="/q/f.txt", session_key="c")
    assert new.supersedes == old.item_id and other.supersedes is None
    first = memory.get(old.item_id)
    assert first is not None and first.status == "superseded" and first.superseded_by == [new.item_id]
    assert memory.store.history(old.item_id) == [old.item_id, new.item_id]
    # Nothing was deleted: both versions are still there.
    assert memory.get(old.item_id) is not None and memory.get(new.item_id) is not None


def test_binary_and_empty_content_are_skipped_with_a_reason(memory: Memory) -> None:
    assert memory.put("\x00\x01\x02ELF\x00" * 100, "tool_output").skipped == "binary content"
    assert memory.put("   \n\n  ", "tool_output").skipped == "empty"
    with pytest.raises(ValueError, match="unknown memory kind"):
        memory.put("text", "gossip")


def test_non_utf8_text_is_stored_with_replacement_characters(memory: Memory) -> None:
    broken = b"caf\xe9 au lait, served hot".decode("utf-8", "surrogateescape")
    got = memory.put(broken, "tool_output")
    item = memory.get(got.item_id)
    assert item is not None and item.content == "caf\ufffd au lait, served hot"


def test_a_huge_blob_is_stored_by_reference_and_still_deduplicated(memory: Memory, db: Database) -> None:
    blob = "".join(f"line {i} of a very large log\n" for i in range(INLINE_CHARS // 20))
    assert len(blob) > INLINE_CHARS
    a = memory.put(blob, "tool_output", project="/p", session_key="1", ref="tool_call:42")
    b = memory.put(blob, "tool_output", project="/p", session_key="2")
    assert a.item_id == b.item_id
    item = memory.get(a.item_id)
    assert item is not None and item.ref == "tool_call:42" and item.size == len(blob.rstrip("\n"))
    assert len(item.content) < 20_000 and "not stored inline" in item.content


def test_forget_removes_the_item_its_sightings_and_its_links(memory: Memory, db: Database) -> None:
    old = memory.put("v1", "file_read", project="/p", path="/p/f", session_key="a")
    new = memory.put("v2", "file_read", project="/p", path="/p/f", session_key="b")
    assert memory.forget([old.item_id]) == 1
    assert memory.get(old.item_id) is None
    item = memory.get(new.item_id)
    assert item is not None and item.supersedes_id is None
    with db.sessions() as s:
        assert s.execute(select(func.count()).select_from(MemorySightingRow)).scalar() == 1


def test_redact_scan_cleans_what_was_stored_before_the_rules(memory: Memory, db: Database) -> None:
    got = memory.put("harmless note", "decision", project="/p")
    with db.transaction() as s:  # an item stored by an older version, before a rule existed
        s.get(MemoryItemRow, got.item_id).content = f"key {FAKE_KEY} in a note"  # type: ignore[union-attr]
    dry = memory.store.redact_scan(apply=False)
    assert dry["items"] == 1 and dry["findings"] == {"aws_access_key": 1}
    assert FAKE_KEY in memory.get(got.item_id).content  # type: ignore[union-attr]
    done = memory.store.redact_scan(apply=True)
    assert done["items"] == 1
    assert FAKE_KEY not in memory.get(got.item_id).content  # type: ignore[union-attr]
    assert memory.store.redact_scan()["items"] == 0


def test_prune_keeps_recent_latest_versions_decisions_and_globals(memory: Memory, db: Database) -> None:
    old_ts = utcnow() - timedelta(days=60)
    stale = [
        memory.put(f"old output {i} " + "x" * 1000, "tool_output", project="/p", session_key=str(i), ts=old_ts)
        for i in range(5)
    ]
    recent = memory.put("recent output " + "y" * 1000, "tool_output", project="/p", session_key="r")
    decision = memory.put("old decision " + "z" * 1000, "decision", project="/p", ts=old_ts)
    glob = memory.put("old global " + "w" * 1000, "instruction", global_scope=True, ts=old_ts)
    deleted = memory.prune(max_bytes=3000)
    assert deleted >= 3
    assert memory.get(recent.item_id) is not None
    assert memory.get(decision.item_id) is not None and memory.get(glob.item_id) is not None
    assert sum(memory.get(s.item_id) is None for s in stale) == deleted


def test_stats_counts_by_kind_and_agent(memory: Memory) -> None:
    memory.put("a decision worth keeping", "decision", project="/p", agent="claude")
    memory.put("output " * 50, "tool_output", project="/p", agent="codex", session_key="x")
    stats = memory.store.stats("/p")
    assert stats["items"] == 2 and stats["by_kind"] == {"decision": 1, "tool_output": 1}
    assert stats["sightings_by_agent"] == {"claude": 1, "codex": 1}


def test_timestamps_with_a_timezone_are_stored_as_utc(memory: Memory) -> None:
    from datetime import timezone

    ts = datetime(2026, 1, 2, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    got = memory.put("a timezone-aware sighting", "decision", project="/p", ts=ts)
    item = memory.get(got.item_id)
    assert item is not None and item.sightings[0].ts == datetime(2026, 1, 2, 10, 0)


def test_store_is_usable_from_many_threads(memory: Memory) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def put(i: int) -> int | None:
        return memory.put(f"shared content {i % 5}", "decision", project="/p", session_key=str(i)).item_id

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(put, range(40)))
    assert len(set(ids)) == 5
    assert sum(len(memory.get(i).sightings) for i in set(ids) if i is not None) == 40  # type: ignore[union-attr]


def test_memory_store_without_api(db: Database) -> None:
    store = MemoryStore(db)
    assert store.visible_ids(None) is None and store.visible_ids("/nowhere") == set()


def test_items_reads_what_get_reads(memory: Memory) -> None:
    """``items`` (search's front runners; on SQLite through the DB-API cursor with the column types' converters)
    gives the same records as ``get``: datetimes with microseconds, booleans, links both ways, None titles."""
    when = datetime(2026, 11, 3, 9, 30, 15, 123456)
    old = memory.put("v1\nline", "file_read", project="/p", path="/p/f.txt", session_key="a", ts=when)
    new = memory.put("v2\nline", "file_read", project="/p", path="/p/f.txt", session_key="b", agent="codex")
    memory.put("v2\nline", "file_read", project="/q", path="/q/f.txt", session_key="c", agent="claude")
    glob = memory.put(f"a shared note with {FAKE_KEY}", "decision", global_scope=True, title=None)
    ids = [i for i in (old.item_id, new.item_id, glob.item_id) if i is not None]
    got = memory.store.items([*ids, 10**9])  # an unknown id is left out
    assert sorted(got) == sorted(ids)
    for item_id in ids:
        assert got[item_id] == memory.get(item_id)
    assert got[ids[0]].superseded_by == [ids[1]] and got[ids[1]].supersedes_id == ids[0]
    assert got[ids[0]].sightings[0].ts == when and len(got[ids[1]].sightings) == 2
    assert got[ids[2]].global_scope is True and got[ids[2]].redactions == 1
    assert memory.store.items([]) == {}
