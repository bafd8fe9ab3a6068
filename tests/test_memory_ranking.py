"""Rank corrections (memory/ranking.py): the file a query is about before the prompts and outputs that mention it."""

from __future__ import annotations

from pathlib import Path

import pytest

from headroom.memory.api import Memory
from headroom.memory.db import Database
from headroom.memory.embed import HashEmbedder
from headroom.memory.ranking import named
from headroom.memory.records import Item

pytestmark = pytest.mark.both_backends  # each test runs on SQLite and on PostgreSQL (marked pg, slow)

RETRY = (
    "import time\n\n"
    + "\n".join(f"def helper_{i}(value):\n    return value * {i}\n" for i in range(40))
    + "\n\nclass RetryPolicy:\n    '''How the http client retries a failed request: exponential backoff.'''\n"
    "    def delay(self, attempt):\n        return min(30, 2 ** attempt)\n"
)
PROMPTS = [
    "the http client retry backoff in src/http/retry.py gives up too early, make the backoff longer",
    "why does the retry backoff of the http client wait 30 s? see retry.py",
    "add jitter to the http client retry backoff (retry.py)",
    "the retry backoff logs are noisy in the http client, quieten retry.py",
]


def _project(memory: Memory) -> tuple[int, list[int]]:
    file_id = None
    for agent, session in (("claude", "s1"), ("codex", "s2"), ("gemini", "s3")):  # three agents read it
        result = memory.put(
            RETRY, "file_read", project="/shop", path="/shop/src/http/retry.py", agent=agent, session_key=session
        )
        file_id = result.item_id
    prompts = [
        memory.put(p, "instruction", project="/shop", agent="claude", session_key=f"p{i}").item_id
        for i, p in enumerate(PROMPTS)
    ]
    for i in range(30):  # unrelated items, so the words are not common to everything
        memory.put(f"note {i}: the build uses make and the cache lives in /var/cache/app{i}", project="/shop")
    assert file_id is not None and all(prompts)
    return file_id, [p for p in prompts if p is not None]


def test_the_file_comes_before_the_prompts_that_mention_it(db: Database, tmp_path: Path) -> None:
    for memory in (Memory(db), Memory(db, embedder=HashEmbedder(), index_dir=tmp_path / "index")):
        if memory.vectors is not None:
            memory.embed_pending()
        file_id, prompts = _project(memory) if memory.vectors is None else (_ids(memory))
        if memory.vectors is not None:
            memory.embed_pending()
        for query in ("http client retry backoff", "retry backoff too early", "retry.py", "jitter in the backoff"):
            hits = [h.item.id for h in memory.search(query, project="/shop", k=10).hits]
            assert file_id in hits, (query, memory.search(query, project="/shop").mode)
            mentions = [hits.index(p) for p in prompts if p in hits]
            assert mentions, query
            assert hits.index(file_id) < min(mentions), (query, hits)
        assert memory.search("http client retry backoff", project="/shop").hits[0].item.id == file_id


def _ids(memory: Memory) -> tuple[int, list[int]]:
    """The ids the first (text-only) pass stored: the same DB, found again."""
    hits = memory.search("retry.py", project="/shop", k=20).hits
    file_id = next(h.item.id for h in hits if h.item.kind == "file_read")
    return file_id, [h.item.id for h in hits if h.item.kind == "instruction"]


def test_without_a_mention_or_a_name_the_fused_order_stands(db: Database) -> None:
    memory = Memory(db)
    file_id, _ = _project(memory)
    hits = [h.item.id for h in memory.search("cache lives in var", project="/shop", k=10).hits]
    assert file_id not in hits[:3]  # the file neither matches nor is named: no lift from nowhere


def _item(kind: str, title: str | None) -> Item:
    from datetime import datetime

    now = datetime(2026, 12, 1)
    return Item(1, kind, title, "", 0, None, False, "active", None, [], None, 0, now, now)


def test_what_counts_as_naming_a_file() -> None:
    item = _item("file_read", "/home/dev/shop/src/http/retry_policy.py")
    assert named("look at retry_policy.py", item)
    assert named("/home/dev/shop/src/http/retry_policy.py please", item)
    assert named("the retry policy", item)  # every word of the stem
    assert not named("the retry", item)
    assert not named("retry policy", _item("instruction", "retry policy"))  # only files are sources
    assert not named("a.py", _item("file_read", "/x/a.py"))  # too short a name to mean it
    assert not named("anything", _item("file_read", None))
