"""The block memo in the database: what the proxy served for a content, per project, for every agent.

When Claude's request carries a file and Codex's request later carries the same file, the engine asks the
memo first (``headroom.engine.memo.BlockMemo``) and serves Codex the bytes Claude got, with the same CCR ids:
one compression, one original, the same prompt-cache-friendly text for everyone in the project.

Lookups read an in-process LRU first, then the DB. Writes land in the LRU at once and reach the DB through
a :class:`~headroom.memory.writer.BatchWriter`, so a request never waits for SQLite's write lock (which the
daemon's ingestion may hold). Entries unused for the CCR retention are expired together with the originals
they point at (:meth:`DBBlockMemo.expire`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from headroom.memory.db import Database
from headroom.memory.models import BlockMemoRow
from headroom.memory.store import utcnow
from headroom.memory.upsert import insert_for
from headroom.memory.writer import BatchWriter

CACHE_ENTRIES = 4096


@dataclass(frozen=True)
class _Entry:
    project: str
    key: str
    text: str
    entry_ids: str
    ts: datetime


class DBBlockMemo:
    """The memo of every project; :meth:`scoped` gives the view the engine uses for one request."""

    def __init__(self, db: Database, *, cache_entries: int = CACHE_ENTRIES) -> None:
        self.db = db
        self._cache: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._max = cache_entries
        self._lock = threading.Lock()
        self.writer: BatchWriter[_Entry] = BatchWriter(self._write, "headroom-block-memo")
        self.hits = 0
        self.misses = 0

    def scoped(self, project: str) -> ProjectMemo:
        return ProjectMemo(self, project)

    def get(self, project: str, key: str) -> str | None:
        with self._lock:
            text = self._cache.get((project, key))
            if text is not None:
                self._cache.move_to_end((project, key))
                self.hits += 1
                return text
        with self.db.sessions() as s:
            text = s.execute(
                select(BlockMemoRow.text).where(BlockMemoRow.project == project, BlockMemoRow.key == key)
            ).scalar()
        if text is None:
            self.misses += 1
            return None
        self.hits += 1
        self._remember(project, key, text)
        self.writer.submit(_Entry(project, key, "", "", utcnow()))  # an empty text only refreshes last use
        return text

    def put(self, project: str, key: str, text: str, entry_ids: Sequence[str]) -> None:
        self._remember(project, key, text)
        self.writer.submit(_Entry(project, key, text, " ".join(entry_ids), utcnow()))

    def _remember(self, project: str, key: str, text: str) -> None:
        with self._lock:
            self._cache[(project, key)] = text
            self._cache.move_to_end((project, key))
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)

    def _write(self, entries: list[_Entry]) -> None:
        with self.db.transaction() as s:
            for e in entries:
                if not e.text:
                    s.execute(
                        update(BlockMemoRow)
                        .where(BlockMemoRow.project == e.project, BlockMemoRow.key == e.key)
                        .values(last_used_at=e.ts)
                    )
                    continue
                row = {
                    "project": e.project,
                    "key": e.key,
                    "text": e.text,
                    "entry_ids": e.entry_ids,
                    "created_at": e.ts,
                    "last_used_at": e.ts,
                }
                # The engine puts only on a miss or when the stored text points at expired originals: replace.
                # One statement on either backend: another daemon may memo the same block at the same moment.
                stmt = insert_for(s)(BlockMemoRow).values(**row)
                s.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["project", "key"],
                        set_={"text": e.text, "entry_ids": e.entry_ids, "last_used_at": e.ts},
                    )
                )

    def expire(self, older_than: timedelta, now: datetime | None = None) -> int:
        """Delete entries unused for ``older_than`` (their originals expire at the same age)."""
        cutoff = (now or utcnow()) - older_than
        self.writer.flush()
        with self.db.transaction() as s:
            n = len(s.execute(select(BlockMemoRow.id).where(BlockMemoRow.last_used_at < cutoff)).all())
            s.execute(delete(BlockMemoRow).where(BlockMemoRow.last_used_at < cutoff))
        with self._lock:
            self._cache.clear()
        return n

    def close(self) -> None:
        self.writer.close()


class ProjectMemo:
    """One project's view of the memo (implements ``headroom.engine.memo.BlockMemo``)."""

    def __init__(self, memo: DBBlockMemo, project: str) -> None:
        self.memo = memo
        self.project = project

    def get(self, key: str) -> str | None:
        return self.memo.get(self.project, key)

    def put(self, key: str, text: str, entry_ids: Sequence[str]) -> None:
        self.memo.put(self.project, key, text, entry_ids)
