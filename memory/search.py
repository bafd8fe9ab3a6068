"""Hybrid search over the shared memory: full-text (SQLite FTS5, bm25) and vectors, fused by rank.

Each side returns its best ``pool`` candidates among the items the project may see; reciprocal rank fusion
(``1 / (60 + rank)`` summed over both lists) orders the union, so an exact identifier found only by FTS and a
paraphrase found only by the vectors both surface. A superseded version ranks below its successor (its score
is halved) but stays findable. When the embedding model cannot be loaded, search is full-text only and says
so in :attr:`SearchResult.mode`.

On PostgreSQL both sides run in the database with the scope (project, kinds, and through row-level security
what the user may see) in the same statement: the text side over the ``search_tsv`` column
(:mod:`headroom.memory.pgsearch`), the vector side over pgvector's HNSW index (:mod:`headroom.memory.pgvectors`).
No set of visible ids is built there; a database from before revision 0009 keeps the old LIKE scan.
A file the query names, or that a front runner mentions, is then placed before the items that mention it
(memory/ranking.py).

Visible ids per project are cached and refreshed when any process changes the store
(``MemoryStore.generation``, one row read per search): the 100k-item benchmark spends most of a search in
that query otherwise.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select

from headroom.memory import pgsearch
from headroom.memory.fts import FullText
from headroom.memory.identity import current_user
from headroom.memory.models import MemoryItemRow
from headroom.memory.pgsearch import Scope
from headroom.memory.ranking import rerank
from headroom.memory.records import Item
from headroom.memory.store import MemoryStore
from headroom.memory.vectors import Vectors

RRF_K = 60
_WORD = re.compile(r"\w+")  # as FTS5's unicode61 tokenizer splits text


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
        self._executor: ThreadPoolExecutor | None = None
        self._tsv: bool | None = None
        self._fulltext = FullText(store)

    @property
    def in_database(self) -> bool:
        """True on PostgreSQL with the search column: the scope is applied in SQL, not as a set of ids."""
        if self._tsv is None:
            if self.store.db.is_sqlite:
                self._tsv = False
            else:
                with self.store.db.sessions() as s:
                    self._tsv = pgsearch.has_tsv(s)
        return self._tsv

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="headroom-search")
            return self._executor

    def close(self) -> None:
        """Stop the pool's threads (started by the first hybrid search); a later search starts a new pool."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def visible(self, project: str | None, include_global: bool = True, version: int | None = None) -> set[int] | None:
        """The ids ``project`` may see, kept per store generation (``version``: that generation, read by the
        caller; read here when None)."""
        key = (project, include_global)
        version = self.store.generation() if version is None else version
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
        if self.in_database:
            scope = Scope(project, include_global, tuple(kinds or ()), current_user())
            return self._search_in_db(query, scope, k)
        version = self.store.generation()
        allowed = self.visible(project, include_global, version)
        if allowed is not None and kinds:
            allowed = self._of_kinds(allowed, kinds)
        elif kinds:
            allowed = self._of_kinds(None, kinds)
        if allowed is not None and not allowed:
            return SearchResult([], "text", "nothing stored for this project yet")
        # The query embedding (torch, GIL released) runs beside the full-text query: latency is the slower
        # of the two, not their sum.
        pending = self._pool().submit(self.vectors.search, query, self.pool, allowed) if self.vectors else None
        text_ranked = self._text(query, allowed, version)
        vec_ranked: list[tuple[int, float]] = pending.result() if pending is not None else []
        mode, note = self._mode()
        return self._fuse(query, text_ranked, vec_ranked, k, mode, note, lambda ids: ids & allowed if allowed else ids)

    def _search_in_db(self, query: str, scope: Scope, k: int) -> SearchResult:
        """PostgreSQL: the text and vector sides each in one statement, filtered by ``scope`` before LIMIT."""
        vectors = self.vectors if self.vectors is not None and self.vectors.shared else None
        pending = self._pool().submit(vectors.search, query, self.pool, None, scope) if vectors else None
        with self.store.db.sessions() as s:
            text_ranked = pgsearch.text_search(s, query, scope, self.pool)
        vec_ranked: list[tuple[int, float]] = pending.result() if pending is not None else []
        mode, note = self._mode()
        if self.vectors is not None and vectors is None:
            mode, note = "text", "full-text only: the server has no pgvector extension"

        def visible(ids: set[int]) -> set[int]:
            with self.store.db.sessions() as s:
                return pgsearch.visible_among(s, sorted(ids), scope)

        return self._fuse(query, text_ranked, vec_ranked, k, mode, note, visible)

    def _mode(self) -> tuple[str, str | None]:
        if self.vectors is None:
            return "text", "full-text only: embeddings are off"
        if self.vectors.error:
            return "text", f"full-text only: {self.vectors.error}"
        return "hybrid", None

    def _fuse(
        self,
        query: str,
        text_ranked: list[int],
        vec_ranked: list[tuple[int, float]],
        k: int,
        mode: str,
        note: str | None,
        visible: Callable[[set[int]], set[int]],
    ) -> SearchResult:
        """Reciprocal rank fusion of the two lists; ``visible`` says which successors the scope can see."""
        scores: dict[int, float] = {}
        via: dict[int, str] = {}
        sims = dict(vec_ranked)
        for rank, item_id in enumerate(text_ranked):
            scores[item_id] = scores.get(item_id, 0.0) + 1 / (RRF_K + rank + 1)
            via[item_id] = "text"
        for rank, (item_id, _sim) in enumerate(vec_ranked):
            scores[item_id] = scores.get(item_id, 0.0) + 1 / (RRF_K + rank + 1)
            via[item_id] = "both" if item_id in via else "vector"
        # Only the front runners are loaded in full; the superseded penalty can reorder them, not promote others.
        front = sorted(scores, key=lambda i: (-scores[i], -i))[: max(2 * k, k + 10)]
        items = self.store.items(front)
        newer = {i for item in items.values() if item.status == "superseded" for i in item.superseded_by}
        seen = visible(newer) if newer else set()
        for item_id, item in items.items():
            if item.status == "superseded" and set(item.superseded_by) & seen:
                scores[item_id] /= 2
        rerank(query, items, scores, RRF_K)  # the item a query is about before the items that mention it
        best = sorted(items, key=lambda i: (-scores[i], -i))[:k]
        hits = [Hit(items[i], scores[i], via[i], sims.get(i)) for i in best]
        return SearchResult(hits, mode, note)

    def _of_kinds(self, allowed: set[int] | None, kinds: Sequence[str]) -> set[int]:
        with self.store.db.sessions() as s:
            q = select(MemoryItemRow.id).where(MemoryItemRow.kind.in_(list(kinds)))
            ids = set(s.execute(q).scalars())
        return ids if allowed is None else ids & allowed

    def _text(self, query: str, allowed: Collection[int] | None, version: int | None = None) -> list[int]:
        words = list(dict.fromkeys(w for w in _WORD.findall(query.lower()) if len(w) > 1))[:32]
        if not words:
            return []
        if self.store.db.is_sqlite:
            return self._fts(words, allowed, version)
        with self.store.db.sessions() as s:  # PostgreSQL: no FTS5; a plain scan is enough for a team's store
            conds = [MemoryItemRow.content.ilike(f"%{w}%") for w in words] + [
                MemoryItemRow.title.ilike(f"%{w}%") for w in words
            ]
            q = (
                select(MemoryItemRow.id)
                .where(or_(*conds))
                .order_by(MemoryItemRow.last_seen_at.desc())
                .limit(self.pool * 8)
            )
            ids = [int(i) for i in s.execute(q).scalars()]
        if allowed is not None:
            ids = [i for i in ids if i in allowed]
        return ids[: self.pool]

    def _fts(self, words: list[str], allowed: Collection[int] | None, version: int | None = None) -> list[int]:
        """The full-text ranking on SQLite (memory/fts.py); ``version``: the store's generation, for its cache."""
        return self._fulltext.rank(words, allowed, self.pool, version)
