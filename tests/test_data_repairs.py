"""Migrations that mend what older readers stored, on both backends: 0013, file reads stored with a Windows path
joined onto the session's folder get their own path back (so the next read of the file is linked to them);
0014, Gemini CLI's own "System: Please continue." stops counting as the user's turn."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text, update

from headroom.daemon.ingest import Ingestor
from headroom.memory.db import Database, alembic_config
from headroom.memory.models import EventRow, MemoryItemRow, MemorySightingRow, SessionRow
from headroom.memory.store import MemoryStore
from headroom.migrations import HEAD

pytestmark = pytest.mark.both_backends

PROJECT = "C:\\Users\\ada\\vault"
OWN = "c:/Users/ada/vault/notes.md"
JOINED = "c:\\users\\ada\\vault/" + OWN  # what the feed stored before (a POSIX join onto Gemini's folder)


def _upgrade_from(url: str, revision: str) -> None:
    """The database as ``revision`` left it (the repairs change no schema), then upgraded as `db upgrade` does."""
    from alembic import command

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD
    finally:
        engine.dispose()


def test_joined_paths_are_mended_and_the_next_read_supersedes(db: Database, database_url: str) -> None:
    store = MemoryStore(db)
    old = store.put("- [ ] milk\n- [ ] eggs\n", "file_read", project=PROJECT, agent="gemini", path=JOINED)
    posix = store.put("print('hello')\n", "file_read", project="/home/ada/app", path="/home/ada/app/main.py")
    assert old.item_id is not None and posix.item_id is not None
    _upgrade_from(database_url, "0012")
    with db.sessions() as s:
        paths = dict(s.execute(select(MemorySightingRow.item_id, MemorySightingRow.path)).all())
        titles = dict(s.execute(select(MemoryItemRow.id, MemoryItemRow.title)).all())
    assert paths[old.item_id] == OWN and titles[old.item_id] == OWN
    assert paths[posix.item_id] == titles[posix.item_id] == "/home/ada/app/main.py"  # left alone
    new = store.put("- [x] milk\n- [ ] eggs\n", "file_read", project=PROJECT, agent="claude", path=OWN)
    assert new.created and new.supersedes == old.item_id


def test_geminis_own_please_continue_stops_counting_as_a_turn(
    db: Database, database_url: str, shared: Path, tmp_path: Path
) -> None:
    chats = shared / "fixtures" / "sessions-more" / ".gemini" / "tmp" / "idaho-vault" / "chats"
    root = tmp_path / "tmp"
    (root / "idaho-vault" / "chats").mkdir(parents=True)
    shutil.copy(chats / "session-2026-04-16T22-38-b1f31681.json", root / "idaho-vault" / "chats")
    ingestor = Ingestor(db, {"gemini": [root]})
    ingestor.scan()
    with db.transaction() as s:  # as the reader before 0014 stored them
        s.execute(update(EventRow).where(EventRow.text == "System: Please continue.").values(kind="user_prompt"))
        s.execute(update(SessionRow).values(stale=True))
    ingestor.refresh()
    with db.sessions() as s:
        before = s.execute(select(SessionRow.turns)).scalar_one()
    _upgrade_from(database_url, "0013")
    ingestor.refresh()
    with db.sessions() as s:
        after = s.execute(select(SessionRow.turns)).scalar_one()
        kinds = set(s.execute(select(EventRow.kind).where(EventRow.text == "System: Please continue.")).scalars())
    assert kinds == {"meta"} and before - after == 12 and after > 0
