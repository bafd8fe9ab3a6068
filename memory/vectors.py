"""Embeddings for the shared memory: computed lazily in batches, kept in the DB, searched through an index.

The database is the source of truth (``memory_vectors``: item id, model, dim, float32 bytes). The vector index
beside it (:class:`headroom.memory.index.VectorIndex`, one file per model) is only a cache: a missing,
corrupt or stale file (its ids differ from the DB's) is rebuilt from the table on first use.

An item is embedded when its ``embed_model`` is not the current embedder's name, so a model change re-embeds
everything, in the background, batch by batch. Ingestion never waits on this: the feed writes items and
returns; :meth:`Vectors.embed_pending` is called by the daemon's worker thread (or by a CLI command).

After embedding a batch, each new item is checked against older items of its kind in its projects (rule 3 of
:mod:`headroom.memory.dedup`) and linked as their newer version when both checks agree.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import Select, delete, select, update
from sqlalchemy.orm import Session

from headroom.memory import pgvectors
from headroom.memory.dedup import is_new_version, may_link
from headroom.memory.embed import Embedder, EmbedderUnavailable
from headroom.memory.identity import current_user
from headroom.memory.index import VectorIndex
from headroom.memory.models import MemoryItemRow, MemorySightingRow, MemoryVectorRow
from headroom.memory.pgsearch import Scope
from headroom.memory.store import MemoryStore, link

log = logging.getLogger("headroom.memory")

BATCH = 32
EMBED_CHARS = 4000  # what the model sees of an item (it truncates at 256 word pieces anyway)
_NEIGHBOURS = 20  # nearest items checked for rule 3 of the dedup policy
#: Query embeddings kept (least recently used dropped): agents repeat their searches (the MCP tool, the
#: prompt hook), and a repeat then skips the model (~15-20 ms of CPU per query), ~0.4 MB at 384 floats.
QUERY_CACHE = 256


@dataclass
class EmbedReport:
    embedded: int = 0
    linked: int = 0
    pending: int = 0
    error: str | None = None


class Vectors:
    """The embedder, the index and the backlog for one store (thread-safe)."""

    def __init__(self, store: MemoryStore, embedder: Embedder, index_dir: Path | None) -> None:
        self.store = store
        self.embedder = embedder
        self.index_dir = index_dir
        self._index: VectorIndex | None = None
        self._lock = threading.RLock()
        self.error: str | None = None  # why embeddings are unavailable (doctor shows it)
        self._pg: bool | None = None
        self._indexed = False  # the HNSW index for this model's dimension exists (PostgreSQL)
        self._queries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    @property
    def shared(self) -> bool:
        """True on PostgreSQL with pgvector: vectors are searched in the database, one index for every machine."""
        if self._pg is None:
            if self.store.db.is_sqlite:
                self._pg = False
            else:
                with self.store.db.sessions() as s:
                    self._pg = pgvectors.has_embedding(s)
        return self._pg

    @property
    def index_path(self) -> Path | None:
        if self.index_dir is None or self.shared:
            return None
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in self.embedder.name)
        return self.index_dir / f"vectors-{safe}.idx"

    # -- the index ---------------------------------------------------------------------------------

    def index(self) -> VectorIndex:
        """The index, loaded from its file when it matches the DB, else rebuilt from the DB."""
        with self._lock:
            if self._index is not None:
                return self._index
            db_ids = self._vector_ids()
            path = self.index_path
            loaded = None
            if path is not None and path.exists():
                loaded = VectorIndex.load(self.embedder.dim, self.embedder.name, path)
                if loaded is not None and not loaded.matches(db_ids):
                    log.warning("memory: vector index %s is stale, rebuilding it from the database", path)
                    loaded = None
            if loaded is None:
                loaded = VectorIndex(self.embedder.dim, self.embedder.name, path)
                loaded.rebuild(self._vector_rows())
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    loaded.save()
            self._index = loaded
            return loaded

    def _vector_ids(self) -> set[int]:
        with self.store.db.sessions() as s:
            return set(
                s.execute(select(MemoryVectorRow.item_id).where(MemoryVectorRow.model == self.embedder.name)).scalars()
            )

    def _vector_rows(self) -> list[tuple[int, bytes]]:
        with self.store.db.sessions() as s:
            return [
                (int(i), bytes(v))
                for i, v in s.execute(
                    select(MemoryVectorRow.item_id, MemoryVectorRow.vector).where(
                        MemoryVectorRow.model == self.embedder.name
                    )
                )
            ]

    def save(self) -> None:
        with self._lock:
            if self._index is not None:
                self._index.save()

    def drop(self, ids: Collection[int]) -> None:
        """Forget vectors of deleted items in the index too."""
        with self._lock:
            if self._index is not None:
                self._index.remove(ids)

    # -- search ------------------------------------------------------------------------------------

    def search(
        self, query: str, k: int, allowed: Collection[int] | None, scope: Scope | None = None
    ) -> list[tuple[int, float]]:
        """(item id, cosine) best first; [] when the model cannot be loaded (the caller falls back to FTS).

        With pgvector (:attr:`shared`) the database answers within ``scope``; else the local index within
        ``allowed``.
        """
        try:
            vec = self.query_vector(query)
        except EmbedderUnavailable as exc:
            self.error = str(exc)
            return []
        if self.shared:
            with self.store.db.sessions() as s:
                return pgvectors.nearest(s, vec, k, model=self.embedder.name, dim=self.embedder.dim, scope=scope)
        return self.index().search(vec, k, allowed=allowed)

    def query_vector(self, query: str) -> np.ndarray:
        """The embedding of a search query, from the last :data:`QUERY_CACHE` queries when it is one of them."""
        key = (self.embedder.name, query[:EMBED_CHARS])
        with self._lock:
            cached = self._queries.get(key)
            if cached is not None:
                self._queries.move_to_end(key)
                return cached
        vec = np.array(self.embedder.embed([key[1]])[0], dtype=np.float32)  # outside the lock: ~15 ms
        vec.setflags(write=False)  # shared by later searches: nobody may change it in place
        with self._lock:
            self._queries[key] = vec
            while len(self._queries) > QUERY_CACHE:
                self._queries.popitem(last=False)
        return vec

    # -- the backlog -------------------------------------------------------------------------------

    def _pending_ids(self) -> Select[int]:
        return select(MemoryItemRow.id).where(
            (MemoryItemRow.embed_model.is_(None)) | (MemoryItemRow.embed_model != self.embedder.name)
        )

    def pending(self) -> int:
        with self.store.db.sessions() as s:
            return len(s.execute(self._pending_ids()).all())

    def has_pending(self) -> bool:
        """Whether any item waits for a vector (stops at the first one)."""
        with self.store.db.sessions() as s:
            return s.execute(self._pending_ids().limit(1)).first() is not None

    def embed_pending(self, limit: int | None = None, batch: int = BATCH) -> EmbedReport:
        """Embed up to ``limit`` items that lack a vector of the current model (all when None)."""
        report = EmbedReport()
        while limit is None or report.embedded < limit:
            n = batch if limit is None else min(batch, limit - report.embedded)
            try:
                done = self._embed_batch(n)
            except EmbedderUnavailable as exc:
                self.error = report.error = str(exc)
                break
            if done is None:
                break
            ids, vectors = done
            report.embedded += len(ids)
            report.linked += self._link_near_duplicates(ids, vectors)
        report.pending = self.pending()
        if report.embedded:
            self.save()
        return report

    def _embed_batch(self, n: int) -> tuple[list[int], np.ndarray] | None:
        """Embed the next ``n`` pending items; None when nothing is pending (for this process).

        On PostgreSQL many daemons share the backlog: the batch is claimed with ``FOR UPDATE SKIP LOCKED``
        and embedded and stored in that one transaction, so each item is embedded by one daemon, once
        (another daemon's claim skips these rows and takes the next ones). SQLite has one writer at a time:
        the batch is read, embedded outside any transaction (the write lock is not held for the model's
        time), then written.
        """
        query = (
            select(MemoryItemRow.id, MemoryItemRow.title, MemoryItemRow.content)
            .where((MemoryItemRow.embed_model.is_(None)) | (MemoryItemRow.embed_model != self.embedder.name))
            .order_by(MemoryItemRow.id)
            .limit(n)
        )
        db = self.store.db
        if db.engine.dialect.name != "postgresql":
            with db.sessions() as s:
                rows = s.execute(query).all()
            if not rows:
                return None
            ids = [int(r[0]) for r in rows]
            vectors = self.embedder.embed([_embed_text(title, content) for _, title, content in rows])
            with db.transaction() as s:
                keep = self._store_vectors(s, ids, vectors)
        else:
            with db.transaction() as s:
                rows = s.execute(query.with_for_update(skip_locked=True, of=MemoryItemRow)).all()
                if not rows:
                    return None
                ids = [int(r[0]) for r in rows]
                vectors = self.embedder.embed([_embed_text(title, content) for _, title, content in rows])
                keep = self._store_vectors(s, ids, vectors)
        if keep and not self.shared:
            self.index().add([ids[i] for i in keep], vectors[keep])
        return ids, vectors

    def _store_vectors(self, s: Session, ids: list[int], vectors: np.ndarray) -> list[int]:
        """Store the vectors of ``ids`` (those still there); the positions kept, for the index."""
        name, dim = self.embedder.name, self.embedder.dim
        s.execute(delete(MemoryVectorRow).where(MemoryVectorRow.item_id.in_(ids)))
        existing = set(s.execute(select(MemoryItemRow.id).where(MemoryItemRow.id.in_(ids))).scalars())
        for item_id, vec in zip(ids, vectors):
            if item_id not in existing:  # forgotten while being embedded
                continue
            s.add(MemoryVectorRow(item_id=item_id, model=name, dim=dim, vector=vec.astype(np.float32).tobytes()))
        s.execute(update(MemoryItemRow).where(MemoryItemRow.id.in_(existing)).values(embed_model=name))
        keep = [i for i, item_id in enumerate(ids) if item_id in existing]
        if self.shared and keep:  # pgvector: the value every machine searches, in the same transaction
            s.flush()
            if not self._indexed:
                self._indexed = pgvectors.ensure_index(s, dim)
            pgvectors.write(s, [ids[i] for i in keep], vectors[keep])
        return keep

    def _link_near_duplicates(self, ids: list[int], vectors: np.ndarray) -> int:
        """Rule 3: link each new item to an older, similar one of its kind in one of its projects.

        The index is asked for the nearest neighbours overall and the few candidates are checked in the DB:
        restricting the search to a project's items first would cost a set of every id per new item.
        """
        linked = 0
        index = None if self.shared else self.index()
        with self.store.db.transaction() as s:
            for item_id, vec in zip(ids, vectors):
                item = s.get(MemoryItemRow, item_id)
                if item is None or item.supersedes_id is not None or not may_link(item.kind, set(), set()):
                    continue
                if index is None:  # only among items this user may read: never link to a teammate's private one
                    near = pgvectors.nearest(
                        s,
                        vec,
                        _NEIGHBOURS,
                        model=self.embedder.name,
                        dim=self.embedder.dim,
                        scope=Scope(None, user=current_user()),
                        below=item_id,
                    )
                else:
                    near = [(i, score) for i, score in index.search(vec, _NEIGHBOURS) if i < item_id]
                if not near:
                    continue
                projects = select(MemorySightingRow.project).where(MemorySightingRow.item_id == item_id)
                candidates = set(
                    s.execute(
                        select(MemorySightingRow.item_id)
                        .join(MemoryItemRow, MemoryItemRow.id == MemorySightingRow.item_id)
                        .where(
                            MemorySightingRow.item_id.in_([i for i, _ in near]),
                            MemorySightingRow.project.in_(projects),
                            MemoryItemRow.kind == item.kind,
                            MemoryItemRow.status == "active",
                        )
                    ).scalars()
                )
                paths = _paths(s, [item_id])
                for other_id, score in near:
                    other = s.get(MemoryItemRow, other_id) if other_id in candidates else None
                    if other is None or not may_link(item.kind, paths, _paths(s, [other_id])):
                        continue
                    ok, overlap = is_new_version(score, other.content, item.content)
                    if ok:
                        link(other, item, f"similar {score:.2f}, lines {overlap:.2f}")
                        linked += 1
                        break
        return linked


def _paths(s: Session, item_ids: list[int]) -> set[str]:
    rows = s.execute(select(MemorySightingRow.path).where(MemorySightingRow.item_id.in_(item_ids))).scalars()
    return {os.path.normpath(p) for p in rows if p}


def _embed_text(title: str | None, content: str) -> str:
    head = content[:EMBED_CHARS]
    return f"{title}\n{head}" if title and not head.startswith(title) else head
