"""The vector index kept beside the database: a search structure and a disposable on-disk cache of it.

The database is the source of truth for vectors (item id -> float32 bytes, with the model name and dimension);
this module only makes them searchable. If the cache file is missing, stale or damaged, ``load()`` returns None and
the caller ``rebuild()``s from the DB, so nothing here ever needs repairing by hand.

**Two modes.** Below ``ann_threshold`` items the index is an exact scan: a float32 matrix (rows L2-normalised, so
cosine similarity is a dot product) plus an int64 id array and an id -> row dict; deletes swap the last row in. At and
above the threshold it additionally keeps a usearch HNSW graph and answers from it. The matrix stays the canonical
copy in both modes: candidates from the graph are re-scored exactly against it (so scores are true float32 cosines and
the graph may store f16), small ``allowed`` subsets are scanned exactly, and anything the graph misses falls back to
it. It costs 4 * dim bytes per item (154 MB at 100k x 384), which buys exact answers and a graph that is only ever a
hint.

**ANN settings** (measured on 2 CPU cores, 384-d; see ``ANN_*``): cosine metric, f16 storage (same recall as f32 on
every set tried, half the memory, faster scans), connectivity 16 (32 doubled build time for no recall gain on
clustered data), expansion_add 128, expansion_search 256. Uniformly random unit vectors are HNSW's worst case (no
cluster structure): recall@10 there is ~0.95 at ef=128 and ~0.995 at ef=256 for 2k items, while clustered,
embedding-like data reaches 1.0 already at ef=64. ef=256 still answers in a few ms, far inside the 20 ms budget.

**Building the graph** for many items takes seconds to minutes on a laptop, so it is never done under the lock: the
thread whose ``add()``/``rebuild()`` crossed the threshold snapshots the matrix, builds the graph unlocked (searches
meanwhile scan exactly), then takes the lock again, replays the ids touched in between, and swaps the graph in.

**File format** (format 1). ``<path>`` is an uncompressed ``.npz`` (numpy zip, read with ``allow_pickle=False``)
holding ``ids`` (int64, n), ``vectors`` (float32, n x dim) and, in ANN mode, ``hnsw`` (uint8: usearch's own
serialisation). ``<path>.json`` is the sidecar: ``{"format", "model", "dim", "count", "ids_sha256", "file_sha256",
"ann"}``; ``ids_sha256`` hashes the sorted ids as little-endian int64, ``file_sha256`` the whole data file. The hash
is checked before numpy or usearch parse a byte, because a C extension fed a damaged buffer may crash rather than
raise. Both files are written to a 0600 temp file and ``os.replace``d, data first: a crash between the two leaves a
hash mismatch, i.e. a cache miss, never a wrong answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from usearch.index import Index

from headroom.memory.files import write_atomic

__all__ = ["ANN_CONNECTIVITY", "ANN_DTYPE", "ANN_EXPANSION_ADD", "ANN_EXPANSION_SEARCH", "VectorIndex"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
ANN_DTYPE = "f16"
ANN_CONNECTIVITY = 16
ANN_EXPANSION_ADD = 128
ANN_EXPANSION_SEARCH = 256
_OVERFETCH = 8  # an `allowed` filter first asks the graph for k * 8 candidates, doubling until k pass
_SMALL_ALLOWED_FRACTION = 0.05
_GATHER_ROWS = 256  # rows scored per block in an exact search of a subset (384 KB at 384-d)

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _ids_sha256(ids: I64) -> str:
    return hashlib.sha256(np.sort(ids).astype("<i8").tobytes()).hexdigest()


def _normalise(vectors: F32) -> F32:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0.0] = 1.0  # a zero vector stays zero (similarity 0 to everything) instead of becoming NaN
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


def _gathered_scores(matrix: F32, rows: npt.NDArray[np.intp], q: F32) -> F32:
    """``matrix[rows] @ q``, :data:`_GATHER_ROWS` rows at a time.

    Gathered at once, a 10,000-item project's rows are a fresh 15 MB array per search: the kernel maps it page
    by page as it is written, and that (not the product) was 16 ms of the search at 100k items; a block of
    rows stays in the CPU's cache and its buffer is reused by malloc (bench/README.md, Memory)."""
    out: F32 = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), _GATHER_ROWS):
        np.matmul(matrix[rows[start : start + _GATHER_ROWS]], q, out=out[start : start + _GATHER_ROWS])
    return out


def _top_k(scores: F32, k: int) -> npt.NDArray[np.intp]:
    if k < len(scores):
        part = np.argpartition(-scores, k - 1)[:k]
        return part[np.argsort(-scores[part], kind="stable")]
    return np.argsort(-scores, kind="stable")


class VectorIndex:
    """Cosine top-k over (item id, unit vector) pairs: exact below ``ann_threshold`` items, HNSW above."""

    def __init__(self, dim: int, model: str, path: Path | None = None, *, ann_threshold: int = 20_000) -> None:
        if dim < 1:
            raise ValueError(f"dim must be positive, not {dim}")
        self.dim, self.model, self.path, self.ann_threshold = dim, model, path, max(1, ann_threshold)
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()  # keeps one save's data file and sidecar together
        self._vectors: F32 = np.empty((0, dim), dtype=np.float32)  # capacity >= count; rows past count are junk
        self._ids: I64 = np.empty(0, dtype=np.int64)
        self._count = 0
        self._row: dict[int, int] = {}
        self._ann: Index | None = None
        self._building = False
        self._touched: set[int] = set()  # ids changed while a graph is being built off-lock
        self._generation = 0  # bumped by rebuild(): a graph built from an older snapshot is thrown away
        self._layout = 0  # bumped whenever an id gets, loses or changes its row (see _rows_of)
        self._allowed_rows: dict[int, tuple[Collection[int], int, npt.NDArray[np.intp]]] = {}

    # ---- mutation -------------------------------------------------------------------------------------------

    def add(self, ids: Sequence[int], vectors: npt.NDArray[Any]) -> None:
        """Insert or replace vectors (normalised on the way in); re-adding an id replaces its vector."""
        keys = np.asarray(ids, dtype=np.int64).reshape(-1)
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim == 1 and len(keys) == 1:
            matrix = matrix.reshape(1, -1)
        if matrix.shape != (len(keys), self.dim):
            raise ValueError(f"expected vectors of shape ({len(keys)}, {self.dim}), got {matrix.shape}")
        if not len(keys):
            return
        matrix = _normalise(matrix)
        with self._lock:
            for key, vector in zip(keys.tolist(), matrix):
                row = self._row.get(key)
                if row is None:
                    row = self._append_row(key)
                self._vectors[row] = vector
            if self._ann is not None:
                self._ann_put(self._ann, np.unique(keys))
            if self._building:
                self._touched.update(keys.tolist())
        self._maybe_build_ann()

    def remove(self, ids: Iterable[int]) -> None:
        """Forget these ids; unknown ids are ignored."""
        with self._lock:
            gone = [int(key) for key in ids if int(key) in self._row]
            for key in gone:
                row, last = self._row.pop(key), self._count - 1
                if row != last:  # keep rows dense: the last row moves into the hole
                    moved = int(self._ids[last])
                    self._vectors[row], self._ids[row], self._row[moved] = self._vectors[last], moved, row
                self._count = last
                self._layout += 1
            if self._ann is not None and gone:
                self._ann.remove(np.array(gone, dtype=np.int64).view(np.uint64))
                if self._count < self.ann_threshold // 2:  # hysteresis: no rebuild/drop churn around the threshold
                    self._ann = None
            if self._building:
                self._touched.update(gone)

    def rebuild(self, rows: Iterable[tuple[int, npt.NDArray[Any] | bytes]]) -> None:
        """Replace everything with ``rows`` (as read from the DB; bytes are float32)."""
        latest: dict[int, F32] = {}  # parsed before taking the lock: reading the DB may be slow
        for key, raw in rows:
            vector = np.frombuffer(raw, dtype=np.float32) if isinstance(raw, bytes | bytearray | memoryview) else raw
            vector = np.asarray(vector, dtype=np.float32).reshape(-1)
            if vector.shape != (self.dim,):
                raise ValueError(f"item {key}: vector has {vector.size} values, the index expects {self.dim}")
            latest[int(key)] = vector
        ids = np.fromiter(latest, dtype=np.int64, count=len(latest))
        matrix = _normalise(np.stack(list(latest.values()))) if latest else np.empty((0, self.dim), np.float32)
        with self._lock:
            self._install(ids, matrix)
        self._maybe_build_ann()

    def _install(self, ids: I64, matrix: F32) -> None:
        self._ids, self._vectors, self._count = ids, matrix, len(ids)
        self._layout += 1
        self._row = {key: row for row, key in enumerate(ids.tolist())}
        self._ann, self._touched = None, set()
        self._generation += 1

    def _append_row(self, key: int) -> int:
        if self._count == len(self._ids):  # grow by half again: amortised O(1) appends
            capacity = max(64, self._count + self._count // 2)
            grown = np.empty((capacity, self.dim), dtype=np.float32)
            grown[: self._count] = self._vectors[: self._count]
            grown_ids = np.empty(capacity, dtype=np.int64)
            grown_ids[: self._count] = self._ids[: self._count]
            self._vectors, self._ids = grown, grown_ids
        row = self._count
        self._ids[row], self._row[key] = key, row
        self._count += 1
        self._layout += 1
        return row

    # ---- the HNSW graph -------------------------------------------------------------------------------------

    def _new_ann(self) -> Index:
        return Index(
            ndim=self.dim,
            metric="cos",
            dtype=ANN_DTYPE,
            connectivity=ANN_CONNECTIVITY,
            expansion_add=ANN_EXPANSION_ADD,
            expansion_search=ANN_EXPANSION_SEARCH,
        )

    def _ann_put(self, ann: Index, keys: I64) -> None:
        """(Re)insert the current vectors of ``keys`` into ``ann``; the caller holds the lock."""
        ukeys = keys.view(np.uint64)
        present = np.asarray(ann.contains(ukeys), dtype=bool)
        if present.any():
            ann.remove(ukeys[present])  # usearch refuses duplicate keys, so a replacement is remove + add
        live = [int(key) for key in keys.tolist() if int(key) in self._row]
        if live:
            rows = [self._row[key] for key in live]
            ann.add(np.array(live, dtype=np.int64).view(np.uint64), self._vectors[rows])

    def _maybe_build_ann(self) -> None:
        while True:
            with self._lock:
                if self._ann is not None or self._building or self._count < self.ann_threshold:
                    return
                self._building, self._touched, generation = True, set(), self._generation
                ids, matrix = self._ids[: self._count].copy(), self._vectors[: self._count].copy()
            try:
                ann = self._new_ann()
                ann.add(ids.view(np.uint64), matrix)
            except Exception:
                log.exception("building the HNSW index failed; searches stay exact")
                with self._lock:
                    self._building = False
                return
            with self._lock:
                self._building = False
                if generation == self._generation:
                    if self._touched:
                        self._ann_put(ann, np.fromiter(self._touched, dtype=np.int64))
                    self._touched = set()
                    if self._count >= self.ann_threshold // 2:
                        self._ann = ann
                    return
            # rebuild() replaced everything meanwhile: loop to build from the new contents

    # ---- queries --------------------------------------------------------------------------------------------

    def search(
        self, query: npt.NDArray[Any], k: int = 10, *, allowed: Collection[int] | None = None
    ) -> list[tuple[int, float]]:
        """The ``k`` nearest ids as (id, cosine similarity), best first; ``allowed`` restricts the candidates."""
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if q.shape != (self.dim,):
            raise ValueError(f"expected a query of {self.dim} values, got {q.size}")
        q = _normalise(q.reshape(1, -1))[0]
        allowed_set = None if allowed is None else allowed if isinstance(allowed, set | frozenset) else set(allowed)
        with self._lock:
            if k <= 0 or self._count == 0:
                return []
            if allowed_set is None:
                if self._ann is None:
                    return self._exact(q, k, None)
                return self._ann_search(q, k, None) or self._exact(q, k, None)
            small = max(self.ann_threshold, _SMALL_ALLOWED_FRACTION * self._count)
            if self._ann is None or len(allowed_set) < small:
                return self._exact(q, k, self._rows_of(allowed_set))
            return self._ann_search(q, k, allowed_set) or self._exact_allowed(q, k, allowed_set)

    def _exact(self, q: F32, k: int, rows: npt.NDArray[np.intp] | None) -> list[tuple[int, float]]:
        if rows is None:
            scores, ids = self._vectors[: self._count] @ q, self._ids[: self._count]
        elif len(rows) * 4 > self._count:  # gathering many rows copies more memory than scanning them all
            scores, ids = (self._vectors[: self._count] @ q)[rows], self._ids[rows]
        else:
            scores, ids = _gathered_scores(self._vectors, rows, q), self._ids[rows]
        best = _top_k(scores, k)
        return [(int(key), float(score)) for key, score in zip(ids[best], scores[best])]

    def _exact_allowed(self, q: F32, k: int, allowed: Collection[int]) -> list[tuple[int, float]]:
        return self._exact(q, k, self._rows_of(allowed))

    def _rows_of(self, allowed: Collection[int]) -> npt.NDArray[np.intp]:
        """The rows of ``allowed``'s ids (under the lock), kept while the same set object comes back and no row
        moved: a project's visible set is cached and reused by every search (memory/search.py), and listing
        its rows in Python was most of a vector search at 100k items (~6 ms for a 2,500-item project).
        Callers replace such a set rather than change it in place."""
        hit = self._allowed_rows.get(id(allowed))
        if hit is not None and hit[0] is allowed and hit[1] == self._layout:
            return hit[2]
        rows = np.array([self._row[key] for key in allowed if key in self._row], dtype=np.intp)
        if len(self._allowed_rows) >= 64:  # one per project's visible set; sets are replaced on store changes
            self._allowed_rows.clear()
        self._allowed_rows[id(allowed)] = (allowed, self._layout, rows)  # the set is kept: its id cannot be reused
        return rows

    def _ann_search(self, q: F32, k: int, allowed: Collection[int] | None) -> list[tuple[int, float]]:
        """Graph candidates re-scored exactly; [] when the graph cannot produce k (the caller then scans)."""
        assert self._ann is not None
        want = min(k, self._count if allowed is None else len(allowed))
        fetch = k if allowed is None else k * _OVERFETCH
        while True:
            found = self._ann.search(q, fetch, threads=1)
            keys = [key for key in found.keys.view(np.int64).tolist() if key in self._row]
            if allowed is not None:
                keys = [key for key in keys if key in allowed]
            if len(keys) >= want:
                break
            if fetch >= self._count:
                return []
            fetch *= 2
        rows = np.array([self._row[key] for key in keys], dtype=np.intp)
        return self._exact(q, k, rows)

    def __len__(self) -> int:
        return self._count

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, int | np.integer) and not isinstance(item_id, bool) and int(item_id) in self._row

    def matches(self, ids: Collection[int]) -> bool:
        """Does the index hold exactly these ids? (A saved file older than the DB does not.)"""
        wanted = {int(key) for key in ids}
        with self._lock:
            return len(wanted) == self._count and all(key in self._row for key in wanted)

    @property
    def uses_ann(self) -> bool:
        """True while searches go through the HNSW graph (for tests and `headroom doctor`-style reports)."""
        return self._ann is not None

    # ---- persistence ----------------------------------------------------------------------------------------

    @staticmethod
    def _meta_path(path: Path) -> Path:
        return path.with_name(path.name + ".json")

    def save(self) -> None:
        """Write the data file and its sidecar atomically, owner-only; a no-op for an in-memory index."""
        if self.path is None:
            return
        path = self.path
        with self._save_lock:
            with self._lock:
                arrays: dict[str, npt.NDArray[Any]] = {
                    "ids": self._ids[: self._count].copy(),
                    "vectors": self._vectors[: self._count].copy(),
                }
                if self._ann is not None:
                    blob = self._ann.save()  # no path given: usearch returns the serialisation
                    assert blob is not None
                    arrays["hnsw"] = np.frombuffer(bytes(blob), dtype=np.uint8)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, lambda f: np.savez(f, allow_pickle=False, **arrays))
            meta = {
                "format": FORMAT_VERSION,
                "model": self.model,
                "dim": self.dim,
                "count": len(arrays["ids"]),
                "ids_sha256": _ids_sha256(arrays["ids"]),
                "file_sha256": _sha256_file(path),
                "ann": "hnsw" in arrays,
            }
            payload = json.dumps(meta, indent=1).encode()
            write_atomic(self._meta_path(path), payload)

    @classmethod
    def load(cls, dim: int, model: str, path: Path, **kw: Any) -> VectorIndex | None:
        """The index saved at ``path``, or None (with a warning) when it is missing, damaged or for another model."""
        try:
            return cls._load(dim, model, path, **kw)
        except Exception as exc:  # a cache must never take the daemon down: any failure is a miss
            log.warning("ignoring the vector index at %s (%s: %s); it will be rebuilt", path, type(exc).__name__, exc)
            return None

    @classmethod
    def _load(cls, dim: int, model: str, path: Path, **kw: Any) -> VectorIndex | None:
        meta_path = cls._meta_path(path)
        if not path.is_file() or not meta_path.is_file():
            log.warning("no vector index at %s; it will be rebuilt", path)
            return None
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        expected = {"format": FORMAT_VERSION, "model": model, "dim": dim}
        stale = {key: meta.get(key) for key, value in expected.items() if meta.get(key) != value}
        if stale:
            raise ValueError(f"it was written for {stale}, not {expected}")
        if meta.get("file_sha256") != _sha256_file(path):
            raise ValueError("its checksum does not match (truncated or modified)")
        with np.load(path, allow_pickle=False) as data:
            ids = np.ascontiguousarray(data["ids"], dtype=np.int64)
            matrix = np.ascontiguousarray(data["vectors"], dtype=np.float32)
            blob = data["hnsw"] if "hnsw" in data.files else None
        if ids.ndim != 1 or matrix.shape != (len(ids), dim) or len(ids) != meta.get("count"):
            raise ValueError(f"its arrays have shapes {ids.shape} and {matrix.shape}")
        if len(np.unique(ids)) != len(ids) or _ids_sha256(ids) != meta.get("ids_sha256"):
            raise ValueError("its ids are duplicated or do not match the recorded checksum")
        index = cls(dim, model, path, **kw)
        index._install(ids, matrix)
        if blob is not None and len(ids) >= index.ann_threshold // 2:
            try:
                ann = index._new_ann()
                ann.load(blob)
                # Not restored from usearch's file. The ignore: usearch's setter lacks annotations, so mypy sees a
                # read-only property.
                ann.expansion_search = ANN_EXPANSION_SEARCH  # type: ignore[misc]
                if len(ann) != len(ids) or not np.asarray(ann.contains(ids.view(np.uint64)), dtype=bool).all():
                    raise ValueError("the graph's keys differ from the ids")
                index._ann = ann
            except Exception as exc:  # e.g. a usearch upgrade changed its format: the vectors are still good
                log.warning("rebuilding the HNSW graph for %s (%s)", path, exc)
        index._maybe_build_ann()
        return index
