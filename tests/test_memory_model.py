"""The shared memory with the real embedding model (all-MiniLM-L6-v2, loaded offline) and at real sizes.

Slow: loading torch and the model takes seconds. CI runs these (``make test`` runs the slow marker too).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from headroom.daemon.config import load_config
from headroom.daemon.memory_feed import MemoryFeed
from headroom.daemon.service import make_ingestor
from headroom.memory.api import Memory
from headroom.memory.db import open_database
from headroom.memory.embed import SentenceTransformerEmbedder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    model = SentenceTransformerEmbedder(threads=2)
    model.load()
    return model


def test_the_agents_sessions_searched_by_meaning(generated_logs: Path, embedder: SentenceTransformerEmbedder) -> None:
    config = load_config()
    db = open_database(config.database_url)
    make_ingestor(config, db).scan()
    memory = Memory(db, embedder=embedder, index_dir=config.paths.index_dir)
    MemoryFeed(memory.store).run()
    report = memory.embed_pending()
    assert report.error is None and report.pending == 0 and report.embedded > 10
    project = "/tmp/agent-home-codex-test-fix-correction/src/calc"
    # No word in common with "add() must also accept digit strings": found by meaning.
    result = memory.search("support numbers given as text in the addition function", project=project, k=3)
    assert result.mode == "hybrid"
    assert any("digit strings" in hit.item.content for hit in result.hits)
    assert all(project in hit.item.projects or hit.item.global_scope for hit in result.hits)
    db.close()


def test_a_50_mb_blob_is_stored_by_reference_and_embedded_from_its_excerpt(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'big.db'}")
    memory = Memory(db, embedder=embedder, index_dir=tmp_path / "index")
    line = "2026-11-21T10:00:00Z INFO worker-7 processed batch 91823 in 12 ms (queue depth 3)\n"
    blob = line * (50_000_000 // len(line))
    got = memory.put(blob, "tool_output", project="/p", session_key="s", ref="tool_call:7")
    item = memory.get(got.item_id)  # type: ignore[arg-type]
    assert item is not None and item.size >= 49_000_000 and len(item.content) < 20_000
    assert memory.embed_pending().embedded == 1
    assert memory.search("worker processed batch queue depth", project="/p").hits[0].item.id == got.item_id
    db.close()
