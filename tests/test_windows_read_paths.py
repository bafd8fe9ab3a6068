"""Migration 0013: file reads stored with a Windows path joined onto the session's folder get their own path back,
so a read of the same file after the upgrade is linked to them as its next version (both backends)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select, text

from headroom.memory.db import Database, alembic_config
from headroom.memory.models import MemoryItemRow, MemorySightingRow
from headroom.memory.store import MemoryStore

pytestmark = pytest.mark.both_backends

PROJECT = "C:\\Users\\ada\\vault"
OWN = "c:/Users/ada/vault/notes.md"
JOINED = "c:\\users\\ada\\vault/" + OWN  # what the feed stored before (a POSIX join onto Gemini's folder)


def _upgrade_from_0012(url: str) -> None:
    """The database as revision 0012 left it (0013 changes no schema), then upgraded as `db upgrade` does."""
    from alembic import command

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0012'"))
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0013"
    finally:
        engine.dispose()


def test_joined_paths_are_mended_and_the_next_read_supersedes(db: Database, database_url: str) -> None:
    store = MemoryStore(db)
    old = store.put("- [ ] milk\n- [ ] eggs\n", "file_read", project=PROJECT, agent="gemini", path=JOINED)
    posix = store.put("print('hello')\n", "file_read", project="/home/ada/app", path="/home/ada/app/main.py")
    _upgrade_from_0012(database_url)
    with db.sessions() as s:
        paths = dict(s.execute(select(MemorySightingRow.item_id, MemorySightingRow.path)).all())
        titles = dict(s.execute(select(MemoryItemRow.id, MemoryItemRow.title)).all())
    assert paths[old.item_id] == OWN and titles[old.item_id] == OWN
    assert paths[posix.item_id] == titles[posix.item_id] == "/home/ada/app/main.py"  # left alone
    new = store.put("- [x] milk\n- [ ] eggs\n", "file_read", project=PROJECT, agent="claude", path=OWN)
    assert new.created and new.supersedes == old.item_id
