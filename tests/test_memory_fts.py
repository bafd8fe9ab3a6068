"""The full-text side of memory search on SQLite (``Searcher._fts``): the same ranking as a plain loop over
the posting lists, with and without a project filter."""

from __future__ import annotations

import math
import random

from sqlalchemy import func, select, text

from headroom.memory.api import Memory
from headroom.memory.db import Database
from headroom.memory.models import MemoryItemRow
from headroom.memory.search import COMMON_FRACTION, COMMON_MIN, MAX_TERMS, Searcher

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
