"""Embeddings, the vector index beside the DB and hybrid search, with the deterministic fake embedder.

The real model runs in tests marked slow (``test_embed.py``, ``test_memory_model.py``); everything here goes
through the same interfaces with :class:`HashEmbedder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, text

from headroom.memory.api import Memory
from headroom.memory.db import Database
from headroom.memory.embed import EmbedderUnavailable, HashEmbedder
from headroom.memory.models import MemoryItemRow, MemoryVectorRow

pytestmark = pytest.mark.both_backends  # each test runs on SQLite and on PostgreSQL (marked pg, slow)


def _memory(db: Database, tmp_path: Path, embedder: object | None = None) -> Memory:
    return Memory(db, embedder=embedder or HashEmbedder(), index_dir=tmp_path / "index")  # type: ignore[arg-type]


NOTES = [
    "The deploy script pushes the container image to the registry, then restarts the service.",
    "Run the unit tests with make test; pytest alone misses the database fixtures.",
    "The configuration loader reads config.toml from the XDG config directory.",
    "Database migrations are generated with alembic and run on every open.",
    "The proxy listens on 127.0.0.1:8787 and forwards to the provider's API.",
]


def _fill(memory: Memory, project: str = "/p") -> list[int]:
    ids = []
    for i, note in enumerate(NOTES):
        got = memory.put(note, "decision", project=project, session_key=f"s{i}")
        assert got.item_id is not None
        ids.append(got.item_id)
    return ids


def test_embedding_is_lazy_and_records_the_model(db: Database, tmp_path: Path) -> None:
    memory = _memory(db, tmp_path)
    _fill(memory)
    assert memory.vectors is not None and memory.vectors.pending() == len(NOTES)
    report = memory.embed_pending()
    assert (report.embedded, report.pending, report.error) == (len(NOTES), 0, None)
    with db.sessions() as s:
        assert set(s.execute(select(MemoryItemRow.embed_model)).scalars()) == {"hash-v1-384"}
        dims = set(s.execute(select(MemoryVectorRow.dim)).scalars())
    assert dims == {384}
    if db.is_sqlite:  # the local index file beside the database
        assert (tmp_path / "index").is_dir()
    else:  # no local index: the pgvector values every machine searches
        with db.engine.connect() as conn:
            filled = conn.execute(text("SELECT count(*) FROM memory_vectors WHERE embedding IS NOT NULL")).scalar()
        assert filled == len(NOTES) and not (tmp_path / "index").exists()


def test_a_model_change_embeds_everything_again(db: Database, tmp_path: Path) -> None:
    memory = _memory(db, tmp_path)
    _fill(memory)
    memory.embed_pending()
    other = _memory(db, tmp_path, HashEmbedder(dim=128))
    assert other.vectors is not None and other.vectors.pending() == len(NOTES)
    assert other.embed_pending().embedded == len(NOTES)
    hits = other.search("container registry deploy", project="/p").hits
    assert hits and hits[0].item.content == NOTES[0]


def test_hybrid_search_finds_by_words_and_by_similarity(db: Database, tmp_path: Path) -> None:
    memory = _memory(db, tmp_path)
    ids = _fill(memory)
    memory.embed_pending()
    result = memory.search("alembic migrations", project="/p", k=3)
    assert result.mode == "hybrid" and result.hits[0].item.id == ids[3] and result.hits[0].via == "both"
    # No word of the query is in the note (FTS finds nothing); the character n-grams still are.
    fuzzy = memory.search("configurations loaders", project="/p", k=3)
    assert fuzzy.hits and fuzzy.hits[0].item.id == ids[2] and fuzzy.hits[0].via == "vector"


def test_vector_search_respects_project_scope(db: Database, tmp_path: Path) -> None:
    memory = _memory(db, tmp_path)
    _fill(memory, "/a")
    secret_plan = memory.put("Project B ships on Friday with the new billing module.", "decision", project="/b")
    memory.embed_pending()
    for query in ("billing module friday", "ships"):
        assert all(h.item.id != secret_plan.item_id for h in memory.search(query, project="/a").hits)
    assert memory.search("billing module friday", project="/b").hits[0].item.id == secret_plan.item_id


@pytest.mark.sqlite_only  # PostgreSQL keeps no index file
def test_a_missing_or_corrupt_index_file_is_rebuilt_from_the_db(db: Database, tmp_path: Path) -> None:
    memory = _memory(db, tmp_path)
    ids = _fill(memory)
    memory.embed_pending()
    assert memory.vectors is not None
    path = memory.vectors.index_path
    assert path is not None and path.exists()
    expected = [h.item.id for h in memory.search("unit tests make", project="/p").hits]
    for damage in ("delete", "garbage", "truncate"):
        if damage == "delete":
            path.unlink()
        elif damage == "garbage":
            path.write_bytes(b"\x00not an index" * 100)
        else:
            path.write_bytes(path.read_bytes()[:10])
        fresh = _memory(db, tmp_path)  # a restart
        assert [h.item.id for h in fresh.search("unit tests make", project="/p").hits] == expected
        assert fresh.vectors is not None and path.exists() and len(fresh.vectors.index()) == len(ids)


def test_a_stale_index_file_is_rebuilt(db: Database, tmp_path: Path) -> None:
    memory = _memory(db, tmp_path)
    _fill(memory)
    memory.embed_pending()
    late = memory.put("A late note about the websocket transport.", "decision", project="/p")
    other = _memory(db, tmp_path)  # another process embeds it; this one's file no longer matches the DB
    other.embed_pending()
    fresh = _memory(db, tmp_path)
    assert fresh.vectors is not None and late.item_id in fresh.vectors.index()


def test_forget_takes_the_vector_out_of_the_index(db: Database, tmp_path: Path) -> None:
    memory = _memory(db, tmp_path)
    ids = _fill(memory)
    memory.embed_pending()
    memory.forget([ids[0]])
    assert memory.vectors is not None and ids[0] not in memory.vectors.index()
    assert all(h.item.id != ids[0] for h in memory.search("deploy container registry", project="/p").hits)


class BrokenEmbedder:
    name = "broken"
    dim = 8
    loaded = True

    def load(self) -> None:
        """Nothing to load: the failure comes at embed time."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        raise EmbedderUnavailable("the model folder is missing (test)")


def test_an_embedder_that_cannot_load_falls_back_to_full_text(db: Database, tmp_path: Path) -> None:
    memory = _memory(db, tmp_path, BrokenEmbedder())
    ids = _fill(memory)
    report = memory.embed_pending()
    assert report.embedded == 0 and report.error and "model folder is missing" in report.error
    result = memory.search("alembic", project="/p")
    assert result.mode == "text" and result.note and "full-text only" in result.note
    assert result.hits[0].item.id == ids[3]
    assert memory.status()["search"] == "full-text"


def test_near_duplicates_are_linked_never_deleted(db: Database, tmp_path: Path) -> None:
    memory = _memory(db, tmp_path)
    base = "\n".join(f"def handler_{i}(request):\n    return respond(request, code={200 + i})" for i in range(30))
    changed = base.replace("code=215", "code=299")
    unrelated = "\n".join(f"SELECT * FROM table_{i} WHERE id = {i};" for i in range(60))
    old = memory.put(base, "tool_output", project="/p", session_key="1")
    new = memory.put(changed, "tool_output", project="/p", session_key="2")
    other = memory.put(unrelated, "tool_output", project="/p", session_key="3")
    elsewhere = memory.put(changed + "\n# q", "tool_output", project="/q", session_key="4")
    report = memory.embed_pending()
    assert report.linked == 1
    got = memory.get(new.item_id)
    assert got is not None and got.supersedes_id == old.item_id and got.link_reason.startswith("similar")
    assert memory.get(old.item_id).status == "superseded"  # type: ignore[union-attr]
    assert memory.get(other.item_id).supersedes_id is None  # type: ignore[union-attr]
    assert memory.get(elsewhere.item_id).supersedes_id is None  # type: ignore[union-attr]  # another project
    # The older version ranks below the newer one but is still found.
    hits = [h.item.id for h in memory.search("handler respond request code", project="/p", k=5).hits]
    assert old.item_id in hits and hits.index(new.item_id) < hits.index(old.item_id)


def test_full_text_without_embeddings(db: Database) -> None:
    memory = Memory(db)
    ids = _fill(memory)
    result = memory.search("proxy 127.0.0.1", project="/p")
    assert result.mode == "text" and result.hits[0].item.id == ids[4]
    assert memory.search("   ", project="/p").hits == []
    assert memory.search('weird "quotes" AND OR NOT (', project="/p").mode == "text"  # FTS syntax is escaped


def test_look_alikes_the_calibration_found_are_not_linked(db: Database, tmp_path: Path) -> None:
    """Two files made from one template, and two prompts from one template, are different things."""
    memory = _memory(db, tmp_path)
    page = "\n".join(f"  <Field name='field_{i}' label='Field {i}' required />" for i in range(40))
    memory.put("export function SignIn() {\n" + page, "file_read", project="/p", path="/p/SignIn.tsx", session_key="1")
    other = memory.put(
        "export function SignUp() {\n" + page, "file_read", project="/p", path="/p/SignUp.tsx", session_key="2"
    )
    prompt = "You are the QA agent. Review the story below and list every acceptance criterion that fails.\n"
    memory.put(prompt + "Story 1: login", "instruction", project="/p", session_key="3")
    second = memory.put(prompt + "Story 2: login", "instruction", project="/p", session_key="4")
    assert memory.embed_pending().linked == 0
    assert memory.get(other.item_id).supersedes_id is None  # type: ignore[union-attr]
    assert memory.get(second.item_id).supersedes_id is None  # type: ignore[union-attr]


class _Counting(HashEmbedder):
    """The hash embedder, counting the one-text calls (a search's query embedding)."""

    def __init__(self) -> None:
        super().__init__()
        self.queries: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 1:
            self.queries.append(texts[0])
        return super().embed(texts)


def test_a_repeated_query_is_embedded_once(db: Database, tmp_path: Path) -> None:
    from headroom.memory.vectors import QUERY_CACHE

    embedder = _Counting()
    memory = _memory(db, tmp_path, embedder)
    ids = _fill(memory)
    memory.embed_pending()
    embedder.queries.clear()
    first = memory.search("alembic migrations", project="/p", k=3)
    again = memory.search("  alembic migrations ", project="/p", k=3)  # the same query once stripped
    assert [h.item.id for h in first.hits] == [h.item.id for h in again.hits] and first.hits[0].item.id == ids[3]
    assert embedder.queries == ["alembic migrations"]
    assert memory.vectors is not None
    vector = memory.vectors.query_vector("alembic migrations")
    assert not vector.flags.writeable  # shared between searches
    np.testing.assert_array_equal(vector, HashEmbedder().embed(["alembic migrations"])[0])
    for i in range(QUERY_CACHE):  # the least recently used query leaves the cache
        memory.vectors.query_vector(f"query {i}")
    memory.search("alembic migrations", project="/p", k=3)
    assert embedder.queries.count("alembic migrations") == 2
