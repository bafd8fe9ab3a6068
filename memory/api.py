"""``Memory``: the shared memory's Python interface (put, get, search, forget), over one database.

It ties the parts together: the item store (dedup, provenance, redaction), the vectors (embedder, index,
backlog) and the hybrid searcher. Embeddings are optional: without an embedder, or with one whose model fails
to load, everything works on full-text search and :meth:`Memory.status` says why.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from headroom.memory.db import Database
from headroom.memory.embed import Embedder
from headroom.memory.records import Item, PutResult
from headroom.memory.search import Searcher, SearchResult
from headroom.memory.store import MemoryStore
from headroom.memory.vectors import EmbedReport, Vectors

log = logging.getLogger("headroom.memory")


class Memory:
    """The shared memory over ``db``; ``embedder=None`` means full-text search only."""

    def __init__(self, db: Database, *, embedder: Embedder | None = None, index_dir: Path | None = None) -> None:
        self.db = db
        self.store = MemoryStore(db)
        self.vectors = Vectors(self.store, embedder, index_dir) if embedder is not None else None
        self.searcher = Searcher(self.store, self.vectors)

    def close(self) -> None:
        """Stop the search pool's threads (the database is the caller's to close)."""
        self.searcher.close()

    def put(self, content: str, kind: str = "decision", **where: Any) -> PutResult:
        """Store ``content`` (redacted first) with where it was met; see :class:`headroom.memory.store.Draft`."""
        return self.store.put(content, kind, **where)

    def get(self, item_id: int, *, project: str | None = None) -> Item | None:
        """One item with its provenance; None when unknown or not visible from ``project``."""
        return self.store.get(item_id, project=project)

    def search(
        self,
        query: str,
        *,
        project: str | None = None,
        k: int = 10,
        kinds: Sequence[str] | None = None,
        include_global: bool = True,
    ) -> SearchResult:
        """The best ``k`` items ``project`` may see (``None``: every project)."""
        return self.searcher.search(query, project=project, k=k, kinds=kinds, include_global=include_global)

    def forget(self, item_ids: Iterable[int]) -> int:
        """Delete items on request (never by similarity); returns how many existed."""
        ids = list(item_ids)
        n = self.store.forget(ids)
        if self.vectors is not None:
            self.vectors.drop(ids)
        return n

    def prune(self, max_bytes: int, *, keep_days: int = 30) -> int:
        """Keep stored content under ``max_bytes`` (see :meth:`MemoryStore.prune_ids` for what is spared)."""
        ids = self.store.prune_ids(max_bytes, keep_days=keep_days)
        if ids:
            log.info("memory: pruning %d items to stay under %.0f MB", len(ids), max_bytes / 1e6)
        return self.forget(ids)

    def embed_pending(self, limit: int | None = None, batch: int = 32) -> EmbedReport:
        """Embed the backlog (the daemon's worker calls this; so may a CLI command)."""
        if self.vectors is None:
            return EmbedReport(error="embeddings are off")
        return self.vectors.embed_pending(limit, batch)

    def status(self) -> dict[str, Any]:
        """Embedding state for ``doctor`` and ``memory stats``."""
        if self.vectors is None:
            return {"embeddings": "off", "search": "full-text"}
        v = self.vectors
        return {
            "embeddings": "unavailable" if v.error else v.embedder.name,
            "error": v.error,
            "search": "full-text" if v.error else "hybrid",
            "pending": v.pending(),
            "index_file": str(v.index_path) if v.index_path else None,
        }
