"""Hybrid search over the shared memory: full-text (SQLite FTS5, bm25) and vectors, fused by rank.

Each side returns its best ``pool`` candidates among the items the project may see; reciprocal rank fusion
(``1 / (60 + rank)`` summed over both lists) orders the union, so an exact identifier found only by FTS and a
paraphrase found only by the vectors both surface. A superseded version ranks below its successor (its score
is halved) but stays findable. When the embedding model cannot be loaded, search is full-text only and says
so in :attr:`SearchResult.mode`; on PostgreSQL (no FTS5) the text side is a LIKE scan.

Visible ids per project are cached and refreshed when any process changes the store
(``MemoryStore.generation``, one row read per search): the 100k-item benchmark spends most of a search in
that query otherwise.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select, text

from headroom.memory.models import MemoryItem
from headroom.memory.store import Item, MemoryStore
from headroom.memory.vectors import Vectors

RRF_K = 60
_TOKEN = re.compile(r"[\w][\w.\-/]*", re.UNICODE)


@dataclass
class Hit:
    item: Item
    score: float
    via: str  # "text", "vector" or "both"
    similarity: float | None = None

    def as_dict(self, *, content: bool = False, project: str | None = None) -> dict[str, Any]:
        """The hit as JSON, with only ``project``'s provenance when one is given."""
        out = self.item.scoped(project).as_dict(content=content)
        out.update(score=round(self.score, 5), via=self.via, similarity=self.similarity)
        return out


@dataclass
class SearchResult:
    hits: list[Hit]
    mode: str  # "hybrid", "text" (no embeddings) or "vector"
    note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Searcher:
    """Search one store, with or without vectors."""

    def __init__(self, store: MemoryStore, vectors: Vectors | None = None, pool: int = 50) -> None:
        self.store = store
        self.vectors = vectors
        self.pool = pool
        self._visible: dict[tuple[str | None, bool], tuple[int, set[int] | None]] = {}
        self._lock = threading.Lock()

    def visible(self, project: str | None, include_global: bool = True) -> set[int] | None:
        key = (project, include_global)
        version = self.store.generation()
        with self._lock:
            hit = self._visible.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        ids = self.store.visible_ids(project, include_global=include_global)
        with self._lock:
            self._visible[key] = (version, ids)
        return ids

    def search(
        self,
        query: str,
        *,
        project: str | None,
        k: int = 10,
        kinds: Sequence[str] | None = None,
        include_global: bool = True,
    ) -> SearchResult:
        """The ``k`` best items for ``query`` that ``project`` may see (every project when None)."""
        query = query.strip()
        if not query:
            return SearchResult([], "text", "empty query")
        allowed = self.visible(project, include_global)
        if allowed is not None and kinds:
            allowed = self._of_kinds(allowed, kinds)
        elif kinds:
            allowed = self._of_kinds(None, kinds)
        if allowed is not None and not allowed:
            return SearchResult([], "text", "nothing stored for this project yet")
        text_ranked = self._text(query, allowed)
        vec_ranked: list[tuple[int, float]] = []
        mode, note = "text", None
        if self.vectors is not None:
            vec_ranked = self.vectors.search(query, self.pool, allowed)
            if self.vectors.error:
                note = f"full-text only: {self.vectors.error}"
            else:
                mode = "hybrid"
        else:
            note = "full-text only: embeddings are off"
        scores: dict[int, float] = {}
        via: dict[int, str] = {}
        sims = dict(vec_ranked)
        for rank, item_id in enumerate(text_ranked):
            scores[item_id] = scores.get(item_id, 0.0) + 1 / (RRF_K + rank + 1)
            via[item_id] = "text"
        for rank, (item_id, _sim) in enumerate(vec_ranked):
            scores[item_id] = scores.get(item_id, 0.0) + 1 / (RRF_K + rank + 1)
            via[item_id] = "both" if item_id in via else "vector"
        items = self.store.items(list(scores))
        for item_id, item in items.items():
            if item.status == "superseded" and (allowed is None or set(item.superseded_by) & allowed):
                scores[item_id] /= 2
        best = sorted((i for i in scores if i in items), key=lambda i: (-scores[i], -i))[:k]
        hits = [Hit(items[i], scores[i], via[i], sims.get(i)) for i in best]
        return SearchResult(hits, mode, note)

    def _of_kinds(self, allowed: set[int] | None, kinds: Sequence[str]) -> set[int]:
        with self.store.db.sessions() as s:
            q = select(MemoryItem.id).where(MemoryItem.kind.in_(list(kinds)))
            ids = set(s.execute(q).scalars())
        return ids if allowed is None else ids & allowed

    def _text(self, query: str, allowed: Collection[int] | None) -> list[int]:
        tokens = [t for t in _TOKEN.findall(query.lower()) if len(t) > 1][:16]
        if not tokens:
            return []
        if self.store.db.is_sqlite:
            match = " OR ".join('"' + t.replace('"', '""') + '"' for t in tokens)
            # A small project filters in SQL (its ids inline: they are ints); a large one over-fetches and filters
            # here, where a huge IN () list would cost more than it saves.
            sql = "SELECT rowid FROM memory_fts WHERE memory_fts MATCH :q"
            limit = self.pool
            if allowed is not None and len(allowed) <= 2000:
                sql += " AND rowid IN (" + ",".join(str(int(i)) for i in allowed) + ")"
            elif allowed is not None:
                limit = self.pool * 20
            with self.store.db.sessions() as s:
                rows = s.execute(text(sql + " ORDER BY bm25(memory_fts) LIMIT :n"), {"q": match, "n": limit})
                ids = [int(r) for r in rows.scalars()]
            if allowed is not None:
                ids = [i for i in ids if i in allowed]
            return ids[: self.pool]
        with self.store.db.sessions() as s:  # PostgreSQL: no FTS5; a plain scan is enough for a team's store
            conds = [MemoryItem.content.ilike(f"%{t}%") for t in tokens] + [
                MemoryItem.title.ilike(f"%{t}%") for t in tokens
            ]
            q = select(MemoryItem.id).where(or_(*conds)).order_by(MemoryItem.last_seen_at.desc()).limit(self.pool * 8)
            ids = [int(i) for i in s.execute(q).scalars()]
        if allowed is not None:
            ids = [i for i in ids if i in allowed]
        return ids[: self.pool]
