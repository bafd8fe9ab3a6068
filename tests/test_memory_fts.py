"""The full-text side of memory search on SQLite (``Searcher._fts``): the same ranking as a plain loop over
the posting lists, with and without a project filter."""

from __future__ import annotations

import math
import random

from sqlalchemy import func, select, text

from headroom.memory.api import Memory
from headroom.memory.db import Database
from headroom.memory.fts import COMMON_FRACTION, COMMON_MIN, MAX_TERMS
from headroom.memory.models import MemoryItemRow
from headroom.memory.search import Searcher

WORDS = [f"w{i}" for i in range(60)] + ["deploy", "staging", "cache", "retry", "backoff", "token"]
RARE = [f"rare{i}" for i in range(150)]  # each in a few items: the selective words a search keeps


def _reference(db: Database, words: list[str], allowed: set[int] | None, pool: int) -> list[int]:
    """The ranking as the first version computed it: a dict of summed idf, best first, ties to the newest."""
    with db.sessions() as s:
        held = {
            str(t): int(d)
            for t, d in s.execute(text("SELECT term, doc FROM memory_fts_vocab")).all()
            if str(t) in words
        }
        if not held:
            return []
        total = int(s.execute(select(func.max(MemoryItemRow.id))).scalar() or 1)
        ranked = sorted(held, key=lambda w: held[w])
        selective = [w for w in ranked if held[w] <= max(COMMON_MIN, total * COMMON_FRACTION)]
        scores: dict[int, float] = {}
        for term in (selective or ranked[:2])[:MAX_TERMS]:
            idf = math.log((total - held[term] + 0.5) / (held[term] + 0.5) + 1)
            rows = s.execute(text("SELECT rowid FROM memory_fts WHERE memory_fts MATCH :t"), {"t": f'"{term}"'})
            for (rowid,) in rows:
                if allowed is None or rowid in allowed:
                    scores[rowid] = scores.get(rowid, 0.0) + idf
    return sorted(scores, key=lambda i: (-scores[i], -i))[:pool]


def test_fts_ranks_as_the_plain_loop_does(db: Database) -> None:
    rng = random.Random(7)
    memory = Memory(db)
    for i in range(400):
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 25))) + " " + rng.choice(RARE)
        memory.put(f"item {i}: {body}", "decision", project=f"/p{i % 3}")
    searcher = Searcher(memory.store)
    for _ in range(40):
        pick = [rng.choice(WORDS + RARE) for _ in range(rng.randint(1, 8))]
        words = list(dict.fromkeys(pick))
        for project in (None, "/p1"):
            allowed = searcher.visible(project)
            assert searcher._fts(words, allowed) == _reference(db, words, allowed, searcher.pool), (words, project)
    assert searcher._fts(["nosuchword"], None) == []
    assert searcher._fts(["deploy"], {10**9}) == []  # a project that holds none of the matches


def test_words_fts5_folds_or_splits_rank_as_the_vocabulary_says(db: Database) -> None:
    """Words read with a LIMIT are plain tokens only: ``foo_bar`` (two tokens to FTS5, a phrase match) and
    ``café`` (folded to ``cafe``) are looked up in the vocabulary as before, so they still match nothing."""
    memory = Memory(db)
    for i in range(120):
        odd = "foo bar cafe naive" if i % 30 == 0 else "plain"  # a few items: selective words
        memory.put(f"note {i}: {odd} {'deploy' if i % 2 else 'retry'} rare{i % 7}", project="/p")
    searcher = Searcher(memory.store)
    for words in (["foo_bar"], ["café"], ["foo_bar", "rare3"], ["naïve", "cafe", "deploy"], ["rare1", "rare2"]):
        for allowed in (None, searcher.visible("/p")):
            want = _reference(db, words, allowed, searcher.pool)
            assert searcher._fts(words, allowed) == want, words
            assert searcher._fts(words, allowed, memory.store.generation()) == want, words
    assert searcher._fts(["foo_bar"], None) == []  # not one term in the vocabulary


def test_common_words_kept_for_a_generation_follow_every_change(db: Database) -> None:
    """Counts and posting lists of common words are reused while the store's generation stands, and a put or a
    forget (a new generation) is seen by the next search: always the ranking the plain loop gives."""
    memory = Memory(db)
    for i in range(300):
        memory.put(f"item {i}: deploy staging {'cache' if i % 3 else 'retry'}", project=f"/p{i % 2}")
    searcher = Searcher(memory.store)
    queries = [["deploy", "cache"], ["staging", "retry"], ["cache", "retry", "deploy"]]

    def check() -> None:
        for words in queries:
            for project in (None, "/p1"):
                allowed = searcher.visible(project)
                want = _reference(db, words, allowed, searcher.pool)
                for _ in range(2):  # the second time from what the first kept
                    assert searcher._fts(words, allowed, memory.store.generation()) == want, (words, project)

    check()
    kept = searcher._fulltext._common
    assert kept is not None and kept.lists and {"cache", "deploy"} <= kept.common
    # New items holding only the rarer common word change which items lead (the newest first on a tie).
    for i in range(40):
        memory.put(f"late {i}: retry retry", project="/p1")
    check()
    memory.forget(range(300, 341))
    check()
    assert searcher._fulltext._common is not kept
