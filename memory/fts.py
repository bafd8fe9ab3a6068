"""The full-text side of memory search on SQLite: the query's selective words' posting lists, ranked by idf.

FTS5's own bm25 ranking scores every match and, restricted to a project with ``rowid IN (…)``, runs the match
again per listed id: seconds at 100k items. Instead each selective word's posting list is read once (no
scoring: a walk of the doclist), filtered by the project's ids here, and scored with the idf of its document
count. Words held by more than :data:`COMMON_FRACTION` of the items are left out unless nothing else is left
(then the two rarest are used); at most :data:`MAX_TERMS` of the rarest are used.

Where the time goes at 100k items (bench/README.md, Memory): walking long doclists. The ``fts5vocab`` table
counts a word by walking its whole doclist (~1-3 ms for "the", "error" or "raise"), so a word's count is taken
from its posting list instead, read up to one past the common limit: a common word stops there. Only a query
of common words alone needs exact counts of them (to pick the two rarest) and their whole posting lists; those
are kept while the store does not change (:class:`CommonWords`, keyed on ``MemoryStore.generation``), as
agents' searches come in bursts and reuse the same common words.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from headroom.memory.store import MemoryStore

I64 = npt.NDArray[np.int64]

COMMON_FRACTION = 0.02  # a word in more than this share of items does not narrow a search
COMMON_MIN = 50
MAX_TERMS = 6
#: Ids of common words' posting lists kept per store generation at most (8 bytes each: 16 MB).
CACHED_IDS = 2_000_000
_PLAIN = re.compile(r"[a-z0-9]+")  # a word FTS5 indexes as it is: one token, nothing to fold


@dataclass
class CommonWords:
    """What is known of the common words while the store stays at ``version`` with ``total`` as its last id."""

    version: int
    total: int
    common: set[str] = field(default_factory=set)  # held by more than the limit
    counts: dict[str, int] = field(default_factory=dict)  # their exact counts, once the vocabulary gave them
    lists: dict[str, I64] = field(default_factory=dict)  # their whole posting lists (read-only)
    size: int = 0  # ids in ``lists``

    def keep(self, term: str, ids: I64) -> I64:
        if self.size + len(ids) <= CACHED_IDS:
            ids.setflags(write=False)  # shared by later searches
            self.lists[term] = ids
            self.size += len(ids)
        return ids


class FullText:
    """Ranks a store's items by the query's words (SQLite only: FTS5 and its vocabulary table)."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._members: dict[int, tuple[Collection[int], I64]] = {}
        self._common: CommonWords | None = None

    def rank(
        self, words: list[str], allowed: Collection[int] | None, pool: int, version: int | None = None
    ) -> list[int]:
        """The best ``pool`` ids among ``allowed`` (all when None) for ``words``: summed idf of the words
        each holds, ties to the newest. ``version`` is the store's generation the caller read, None to keep
        nothing."""
        with self.store.db.sessions() as s:
            # The DB-API cursor directly, and each posting list as one string: tens of thousands of rowids as
            # Python tuples, then ints in a dict, were most of a search at 100k items; parsed, filtered and
            # summed in numpy they are a few C loops.
            cursor = s.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute("SELECT max(id) FROM memory_items")
                total = int(cursor.fetchone()[0] or 1)
                limit = math.floor(max(COMMON_MIN, total * COMMON_FRACTION))
                cache = self._cache(version, total)
                postings, common = _postings(cursor, words, limit, cache)
                held = {w: len(ids) for w, ids in postings.items()}
                if common and not held:  # only common words: the two rarest, as counted by the vocabulary
                    counted = _counts(cursor, common, cache)
                    held = {w: counted[w] for w in sorted(sorted(counted), key=lambda w: counted[w])[:2]}
                    postings = {w: cache.lists[w] if w in cache.lists else _whole(cursor, w, cache) for w in held}
            finally:
                cursor.close()
        if not held:
            return []
        members = self._sorted_ids(allowed)
        found: list[I64] = []
        weights: list[npt.NDArray[np.float64]] = []
        # Sorted by count, ties in the words' byte order (the vocabulary's order, which the first version used).
        for term in sorted(held, key=lambda w: held[w])[:MAX_TERMS]:
            ids = postings[term]
            if not len(ids):
                continue
            idf = math.log((total - held[term] + 0.5) / (held[term] + 0.5) + 1)
            if members is not None:
                ids = ids[_member(ids, members)]
            found.append(ids)
            weights.append(np.full(len(ids), idf))
        if not found:
            return []
        # Summed per item in the order of the words (as a running sum would), best first, ties to the newest.
        unique, where = np.unique(np.concatenate(found), return_inverse=True)
        scores = np.bincount(where, weights=np.concatenate(weights))
        best = np.lexsort((-unique, -scores))[:pool]
        return [int(i) for i in unique[best]]

    def _cache(self, version: int | None, total: int) -> CommonWords:
        """The common words known at ``version`` (a fresh, unshared record when None or the store moved on)."""
        if version is None:
            return CommonWords(-1, total)
        with self._lock:
            cache = self._common
            if cache is None or cache.version != version or cache.total != total:
                cache = self._common = CommonWords(version, total)
            return cache

    def _sorted_ids(self, allowed: Collection[int] | None) -> I64 | None:
        """``allowed`` as a sorted array, kept while the same set comes back (the visible-id cache's sets)."""
        if allowed is None:
            return None
        cached = self._members.get(id(allowed))
        if cached is not None and cached[0] is allowed:  # the set itself is kept: its id cannot be reused
            return cached[1]
        members = np.sort(np.fromiter(allowed, dtype=np.int64, count=len(allowed)))
        if len(self._members) >= 64:  # one entry per project's visible set, and sets replaced on store changes
            self._members.clear()
        self._members[id(allowed)] = (allowed, members)
        return members


def _postings(cursor: Any, words: list[str], limit: int, cache: CommonWords) -> tuple[dict[str, I64], list[str]]:
    """The posting lists of the selective words among ``words`` (held by at most ``limit`` items), in the
    words' byte order, and the common words (held by more).

    A word that is one plain token (ASCII letters and digits) is read with ``LIMIT limit + 1``: a common word
    stops there instead of being walked to the end. Any other word (accents, ``_``, other scripts) is looked
    up in the vocabulary first, as before: a phrase query of ``foo_bar`` would match ``foo bar``, which the
    vocabulary does not hold as one term.
    """
    postings: dict[str, I64] = {}
    common: list[str] = []
    other = [w for w in words if not _PLAIN.fullmatch(w)]
    counted = _vocabulary(cursor, other) if other else {}
    for term in sorted([w for w in words if _PLAIN.fullmatch(w)] + list(counted)):
        if term in cache.common or counted.get(term, 0) > limit:
            common.append(term)
            continue
        ids = _posting_list(cursor, term, limit + 1)
        if len(ids) > limit:
            common.append(term)
            cache.common.add(term)
        elif len(ids):
            postings[term] = ids
    return postings, common


def _counts(cursor: Any, common: list[str], cache: CommonWords) -> dict[str, int]:
    """The exact counts of the ``common`` words (in their order), from the cache or the vocabulary."""
    missing = [w for w in common if w not in cache.counts]
    if missing:
        cache.counts.update(_vocabulary(cursor, missing))
    return {w: cache.counts[w] for w in common if w in cache.counts}


def _whole(cursor: Any, term: str, cache: CommonWords) -> I64:
    return cache.keep(term, _posting_list(cursor, term, None))


def _vocabulary(cursor: Any, words: list[str]) -> dict[str, int]:
    """How many items hold each of ``words`` (the ones held at all), from the ``fts5vocab`` table."""
    marks = ",".join("?" for _ in words)
    cursor.execute(f"SELECT term, doc FROM memory_fts_vocab WHERE term IN ({marks})", words)
    return {str(term): int(doc) for term, doc in cursor.fetchall()}


def _posting_list(cursor: Any, term: str, limit: int | None) -> I64:
    """The ids of the items holding ``term``, ascending (the first ``limit`` of them when given)."""
    match = '"' + term.replace('"', '""') + '"'
    if limit is None:
        cursor.execute("SELECT group_concat(rowid) FROM memory_fts WHERE memory_fts MATCH ?", (match,))
    else:
        cursor.execute(
            "SELECT group_concat(rowid) FROM (SELECT rowid FROM memory_fts WHERE memory_fts MATCH ? LIMIT ?)",
            (match, limit),
        )
    joined = cursor.fetchone()[0]
    return np.fromstring(joined, dtype=np.int64, sep=",") if joined else np.empty(0, dtype=np.int64)


def _member(ids: I64, members: I64) -> npt.NDArray[np.bool_]:
    """Which of ``ids`` are in the sorted, non-empty ``members``."""
    at = np.minimum(np.searchsorted(members, ids), len(members) - 1)
    out: npt.NDArray[np.bool_] = members[at] == ids
    return out
