"""Memory search on a real PostgreSQL: the tsvector column and GIN index, pgvector HNSW, scope before LIMIT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from headroom.memory.api import Memory
from headroom.memory.db import Database
from headroom.memory.embed import HashEmbedder
from headroom.memory.pgsearch import query_terms, split_words

pytestmark = [pytest.mark.pg, pytest.mark.slow]


def test_split_words_matches_the_column_expression(pg_db: Database) -> None:
    sample = "parseConfig(snake_case) src/app/main.py HTTPServer v2Beta déjà-vu x"
    with pg_db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO memory_items (content_hash, kind, title, content, size, global_scope, status, "
                "redactions, sightings, created_at, last_seen_at) VALUES ('h', 'decision', NULL, :c, 1, false, "
                "'active', 0, 0, now(), now())"
            ),
            {"c": sample},
        )
        lexemes = conn.execute(text("SELECT tsvector_to_array(search_tsv) FROM memory_items")).scalar_one()
    assert sorted(set(lexemes)) == sorted(set(split_words(sample)))
    assert query_terms("parseConfig a src/app.py") == ["'parse' <-> 'config'", "'src' <-> 'app' <-> 'py'"]


def test_text_search_ranks_identifiers_and_filters_the_project_before_the_limit(pg_db: Database) -> None:
    memory = Memory(pg_db)
    # 500 newer items in another project share the query's words: the old ILIKE scan (newest first, 400 rows,
    # then the project filter) returned nothing for /mine.
    for n in range(500):
        memory.put(f"log line {n}: the retry loop in fetch_remote_config timed out", "tool_output", project="/other")
    target = memory.put("def fetch_remote_config(url):\n    return load(url)", "file_read", project="/mine").item_id
    memory.put("remote fetching notes, config in another file", "decision", project="/mine")
    result = memory.search("fetch_remote_config", project="/mine")
    assert [h.item.id for h in result.hits][:1] == [target]
    assert all("/mine" in h.item.projects for h in result.hits)
    camel = memory.put("class RetryPolicyBuilder: builds retry policies", "file_read", project="/mine").item_id
    assert memory.search("RetryPolicyBuilder", project="/mine").hits[0].item.id == camel
    assert memory.search("policy builder", project="/mine").hits[0].item.id == camel
    assert memory.search("fetch_remote_config", project="/nowhere").hits == []
    assert memory.search("...", project="/mine").hits == []


def test_a_word_the_statistics_call_common_is_not_counted(pg_db: Database) -> None:
    """A word ANALYZE saw in every item is common without a count (counting builds its whole bitmap: the slow
    part of a search at 1M items); the rare word is counted and ranks as it did."""
    memory = Memory(pg_db)
    for n in range(300):
        memory.put(f"entry {n}: a common line of the build output", "tool_output", project="/p")
    rare = {memory.put(f"rare sighting {n} in a common place", "tool_output", project="/p").item_id for n in range(3)}
    with pg_db.engine.begin() as conn:
        conn.execute(text("ANALYZE memory_items"))
    statements: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        statements.append((statement, parameters))

    event.listen(pg_db.engine, "before_cursor_execute", seen)
    try:
        hits = {h.item.id for h in memory.search("common rare", project="/p", k=10).hits}
    finally:
        event.remove(pg_db.engine, "before_cursor_execute", seen)
    assert hits == rare
    counts = [params for sql, params in statements if "count(*)" in sql and "LIMIT" in sql]
    assert counts and all("common" not in str(params) for params in counts)


def test_kinds_and_global_items_are_filtered_in_sql(pg_db: Database) -> None:
    memory = Memory(pg_db)
    note = memory.put("always run alembic through headroom db upgrade", "decision", global_scope=True).item_id
    read = memory.put("alembic upgrade head is run by headroom", "file_read", project="/a").item_id
    both = {h.item.id for h in memory.search("alembic upgrade", project="/b").hits}
    assert both == {note}
    assert {h.item.id for h in memory.search("alembic", project="/a", kinds=["file_read"]).hits} == {read}
    assert {h.item.id for h in memory.search("alembic", project="/a", include_global=False).hits} == {read}
    assert {h.item.id for h in memory.search("alembic", project=None).hits} == {note, read}


def test_vectors_live_in_postgres_and_every_machine_sees_them_at_once(pg_db: Database, tmp_path: Path) -> None:
    machine_a = Memory(pg_db, embedder=HashEmbedder(), index_dir=tmp_path / "a")
    machine_b = Memory(pg_db, embedder=HashEmbedder(), index_dir=tmp_path / "b")
    assert machine_b.search("anything", project="/p").hits == []  # B is warm before A writes
    item = machine_a.put("the container image is pushed to the registry before the restart", "decision", project="/p")
    assert machine_a.embed_pending().embedded == 1
    with pg_db.engine.connect() as conn:
        stored = conn.execute(text("SELECT vector_dims(embedding) FROM memory_vectors")).scalar_one()
        index = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname LIKE 'ix_memory_vectors_hnsw%'"))
        assert "hnsw" in index.scalar_one()
    assert stored == 384
    # Words the text side cannot match: only the vector side finds it, on the other machine, without a restart.
    result = machine_b.search("containers pushed registries", project="/p")
    assert result.mode == "hybrid" and [h.item.id for h in result.hits] == [item.item_id]
    assert result.hits[0].via in {"vector", "both"} and result.hits[0].similarity is not None
    assert machine_b.search("containers pushed registries", project="/q").hits == []
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # no local index files on PostgreSQL
    assert machine_b.status()["index_file"] is None


def test_a_narrow_scope_still_gets_its_nearest_vectors(pg_db: Database, tmp_path: Path) -> None:
    memory = Memory(pg_db, embedder=HashEmbedder(dim=16), index_dir=None)
    for n in range(300):
        memory.put(f"shared background note number {n} about builds", "decision", project="/big")
    mine = memory.put("a rare note about builds for the small project", "decision", project="/small").item_id
    memory.embed_pending()
    hits = memory.search("note about builds", project="/small").hits
    assert [h.item.id for h in hits] == [mine]


def test_near_duplicates_link_through_pgvector(pg_db: Database) -> None:
    memory = Memory(pg_db, embedder=HashEmbedder())
    body = "\n".join(f"line {n}: setting value_{n} = {n * 3}" for n in range(40))
    old = memory.put(body, "tool_output", project="/p", session_key="s1").item_id
    memory.embed_pending()
    new = memory.put(body + "\nline 40: setting value_40 = 120", "tool_output", project="/p", session_key="s2")
    report = memory.embed_pending()
    item = memory.get(new.item_id or 0)
    assert report.linked == 1 and item is not None and item.supersedes_id == old


def test_models_and_migrations_agree_on_postgres(pg_db: Database) -> None:
    """`alembic check` on PostgreSQL: the search column and indexes of 0009 are known, not drift."""
    from alembic import command

    from headroom.memory.db import alembic_config

    command.check(alembic_config(pg_db.url))


def test_near_duplicates_never_link_to_another_users_private_item(
    pg_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headroom.memory import identity

    body = "\n".join(f"line {n}: setting value_{n} = {n * 3}" for n in range(40))
    try:
        monkeypatch.setenv("HEADROOM_USER", "ada")
        identity.reset()
        memory = Memory(pg_db, embedder=HashEmbedder())
        old = memory.put(body, "tool_output", project="/p", session_key="s1").item_id
        memory.embed_pending()
        monkeypatch.setenv("HEADROOM_USER", "bob")
        identity.reset()
        new = memory.put(body + "\nline 40: setting value_40 = 120", "tool_output", project="/p", session_key="s2")
        assert memory.embed_pending().linked == 0
        item = memory.get(new.item_id or 0)
        assert item is not None and item.supersedes_id is None and memory.get(old or 0) is None
    finally:
        identity.reset()


def test_vector_search_is_exact_for_a_small_scope_and_keeps_the_privacy_filter(
    pg_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small project is ranked exactly, a large one through the graph: the same answer, never another's item."""
    from headroom.memory import identity, pgvectors
    from headroom.memory.pgsearch import Scope

    embedder = HashEmbedder()
    try:
        monkeypatch.setenv("HEADROOM_USER", "bob")
        identity.reset()
        memory = Memory(pg_db, embedder=embedder)
        theirs = memory.put("deploy the billing service to staging", "decision", project="/small").item_id
        monkeypatch.setenv("HEADROOM_USER", "ada")
        identity.reset()
        memory = Memory(pg_db, embedder=embedder)
        small = [
            memory.put(f"note {n}: deploy the billing job", "decision", project="/small").item_id for n in range(4)
        ]
        for n in range(60):
            memory.put(f"background {n}: builds and deploys of service {n}", "decision", project="/big")
        memory.embed_pending()
        query = embedder.embed(["deploy the billing service"])[0]

        def ask(project: str) -> list[int]:
            with pg_db.sessions() as s:
                scope = Scope(project, True, (), "ada")
                return [i for i, _ in pgvectors.nearest(s, query, 10, model=embedder.name, dim=384, scope=scope)]

        assert sorted(ask("/small")) == sorted(small) and theirs not in ask("/small")  # bob's is closest, not ada's
        exact = ask("/big")
        monkeypatch.setattr(pgvectors, "EXACT_SCOPE", 1)  # every scope walks the HNSW graph now
        assert set(ask("/big")) == set(exact) and len(exact) == 10  # (equal distances may swap places)
        assert sorted(ask("/small")) == sorted(small)  # the graph's short answer reruns exactly, still filtered
    finally:
        identity.reset()
