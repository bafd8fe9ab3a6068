"""The daemon's memory worker: feed, embed and retention jobs; and the memory inside a running daemon."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.pool import NullPool

from headroom.daemon.cli.common import App
from headroom.daemon.cli.doctor import _memory_state
from headroom.daemon.config import load_config
from headroom.daemon.memory_service import MemoryWorker, expire_originals, open_memory
from headroom.daemon.service import Service
from headroom.engine.ccr import CCREntry
from headroom.memory.api import Memory
from headroom.memory.ccr_store import FileCCRStore
from headroom.memory.db import open_database
from headroom.memory.embed import HashEmbedder
from headroom.memory.memo_store import DBBlockMemo
from headroom.memory.models import BlockMemoRow, MemoryItemRow
from headroom.memory.store import utcnow
from tests.helpers import claude_record, claude_session_lines, claude_tree
from tests.test_service import scalar, wait_for

pytestmark = pytest.mark.both_backends  # each test runs on SQLite and on PostgreSQL (marked pg, slow)


@pytest.fixture(autouse=True)
def _backend(database_url: str) -> str:
    """These tests open the database where the CLI does: on the PostgreSQL leg, the test server's."""
    return database_url


def test_a_round_feeds_and_embeds(generated_logs: Path) -> None:
    config = load_config()
    db = open_database(config.database_url)
    from headroom.daemon.service import make_ingestor

    make_ingestor(config, db).scan()
    memory = Memory(db, embedder=HashEmbedder(), index_dir=config.paths.index_dir)
    worker = MemoryWorker(config, memory)
    worker.run_round()
    assert worker.state.fed_items > 0 and worker.state.embedded == worker.state.fed_items
    assert memory.vectors is not None and memory.vectors.pending() == 0
    assert worker.state.errors == 0
    db.close()


def test_retention_expires_old_originals_and_memo_entries(tmp_path: Path) -> None:
    config = load_config()
    config.paths.ensure()
    db = open_database(config.database_url)
    memo = DBBlockMemo(db)
    store = FileCCRStore(config.paths.ccr_dir)
    old, fresh = CCREntry("a" * 12, "old original"), CCREntry("b" * 12, "fresh original")
    store.put(old)
    store.put(fresh)
    eight_days_ago = time.time() - 8 * 86400
    os.utime(store._path(old.id), (eight_days_ago, eight_days_ago))
    memo.put("/p", "k-old", "old text", [old.id])
    memo.put("/p", "k-new", "new text", [fresh.id])
    memo.writer.flush()
    with db.transaction() as s:
        row = s.execute(select(BlockMemoRow).where(BlockMemoRow.key == "k-old")).scalar_one()
        row.last_used_at = utcnow().replace(year=2020)
    done = expire_originals(config, memo)
    assert done == {"ccr_expired": 1, "memo_expired": 1}
    assert store.get(old.id) is None and store.get(fresh.id) == "fresh original"
    assert memo.get("/p", "k-new") == "new text" and memo.get("/p", "k-old") is None
    memo.close()
    db.close()


def test_a_used_original_is_kept_past_its_first_write(tmp_path: Path) -> None:
    store = FileCCRStore(tmp_path / "ccr")
    entry = CCREntry("c" * 12, "still read every day")
    store.put(entry)
    long_ago = time.time() - 30 * 86400
    os.utime(store._path(entry.id), (long_ago, long_ago))
    assert store.get(entry.id) == "still read every day"  # a retrieval refreshes it
    assert store.expire(7 * 86400).deleted == 0


def test_a_failing_round_is_counted_and_the_next_one_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config()
    db = open_database(config.database_url)
    worker = MemoryWorker(config, Memory(db))
    calls = []

    def boom(max_batches: int | None = None) -> None:
        calls.append(1)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(worker.feed, "run", boom)
    worker.start()
    worker.wake()
    wait_for(lambda: worker.state.errors >= 1, 10)
    worker.wake()
    wait_for(lambda: len(calls) >= 2, 10)
    worker.stop()
    assert "disk on fire" in (worker.state.last_error or "")
    db.close()


def test_doctor_says_when_the_model_cannot_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEADROOM_EMBEDDINGS")
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[memory]\nmodel_path = "{tmp_path / "no-model"}"\n')
    app = App(config_path=str(config_file))
    state = _memory_state(app)
    assert state["embeddings"].startswith("unavailable, search falls back to full-text")
    app.close()


def _count(url: str, sql: str) -> int:
    """Read the daemon's database from outside, as another process would."""
    if url.startswith("sqlite:///"):
        return scalar(Path(url.removeprefix("sqlite:///")), sql)
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar() or 0)
    except ProgrammingError:  # the daemon has not created the schema yet
        return 0
    finally:
        engine.dispose()


def test_the_daemon_feeds_what_the_agents_log(claude_root: Path, running_service: Service, database_url: str) -> None:
    path = claude_tree(claude_root)
    ask = claude_record("prompt", 90, text="Please find out why the deploy script fails on the staging cluster")
    path.write_bytes(b"".join(claude_session_lines(4)) + json.dumps(ask).encode() + b"\n")
    wait_for(lambda: _count(database_url, "select count(*) from memory_items where kind = 'instruction'") == 1, 20)
    assert running_service.memory is not None and running_service.memory.memory.vectors is None  # embeddings off
    assert _count(database_url, "select count(*) from memory_sightings where agent = 'claude'") > 0


def test_open_memory_follows_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config()
    db = open_database(config.database_url)
    assert open_memory(config, db).vectors is None  # the tests' HEADROOM_EMBEDDINGS=off
    monkeypatch.delenv("HEADROOM_EMBEDDINGS")
    on = open_memory(load_config(), db)
    assert on.vectors is not None and on.vectors.embedder.name == "all-MiniLM-L6-v2"
    assert not on.vectors.embedder.loaded  # type: ignore[attr-defined]  # lazily: nothing is loaded yet
    db.close()


def test_items_survive_a_restart_of_the_store(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'r.db'}"
    db = open_database(db_url)
    got = Memory(db).put("a note that must outlive the process", "decision", project="/p")
    db.close()
    db2 = open_database(db_url)
    with db2.sessions() as s:
        assert s.get(MemoryItemRow, got.item_id) is not None
    db2.close()


class SlowLoadingEmbedder(HashEmbedder):
    """A model that takes a while to load, like torch and all-MiniLM-L6-v2 do."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded = False
        self.release = threading.Event()

    def load(self) -> None:
        self.release.wait(10)
        self.loaded = True


def test_loading_the_model_never_holds_back_the_feed(tmp_path: Path) -> None:
    config = load_config()
    db = open_database(config.database_url)
    embedder = SlowLoadingEmbedder()
    memory = Memory(db, embedder=embedder, index_dir=tmp_path / "index")
    memory.put("a first note, fed before the model is there", "decision", project="/p")
    worker = MemoryWorker(config, memory)
    started = time.monotonic()
    worker.run_round()  # starts the load on its own thread and returns
    assert time.monotonic() - started < 2 and worker.state.embedded == 0
    assert memory.search("first note", project="/p").hits  # full text works meanwhile
    embedder.release.set()
    assert worker._loader is not None
    worker._loader.join(5)
    worker.run_round()
    assert worker.state.embedded == 1
    db.close()


def test_the_model_is_loaded_only_once_something_needs_a_vector(tmp_path: Path) -> None:
    config = load_config()
    db = open_database(config.database_url)
    embedder = SlowLoadingEmbedder()
    embedder.release.set()
    memory = Memory(db, embedder=embedder, index_dir=tmp_path / "index")
    worker = MemoryWorker(config, memory)
    worker.run_round()  # an empty store: an idle daemon stays small
    assert worker._loader is None and not embedder.loaded
    memory.put("the first note", "decision", project="/p")
    worker.run_round()
    assert worker._loader is not None
    worker._loader.join(5)
    worker.run_round()
    assert embedder.loaded and worker.state.embedded == 1
    db.close()
