"""Vectors on PostgreSQL: pgvector values in ``memory_vectors.embedding``, searched through an HNSW index.

Every daemon of a team writes its embeddings into the one table and searches it there, so a vector one machine
writes is found by every other at once (a local index per daemon would only see it after a restart). The
float32 bytes stay beside the pgvector value: they are what SQLite uses and what a re-index reads.

The HNSW index is an expression index over ``embedding::vector(dim)``, partial on ``dim`` (revision 0009 makes
the 384-dimension one; :func:`ensure_index` makes another model's on first use, when the role may). A query
orders by ``<=>`` (cosine distance) within the scope's filters. HNSW filters after it walks the graph, so a
narrow scope can get fewer than ``k`` rows from the index: ``hnsw.ef_search`` is raised for the query, and
when that still comes back short the query runs again as an exact scan (index scans off), which is also what
the planner picks by itself for a small project.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from headroom.memory.pgsearch import Scope

log = logging.getLogger("headroom.memory")

EF_SEARCH = 200


def literal(vector: npt.NDArray[np.floating]) -> str:
    """pgvector's text form of ``vector``."""
    return "[" + ",".join(f"{float(v):.7g}" for v in np.asarray(vector, dtype=np.float32).reshape(-1)) + "]"


def has_embedding(session: Session) -> bool:
    """Whether the database keeps pgvector values (revision 0009 ran on a server with the extension)."""
    row = session.execute(
        text(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'memory_vectors' AND column_name = 'embedding'"
        )
    ).first()
    return row is not None


def ensure_index(session: Session, dim: int) -> bool:
    """Create the HNSW index for ``dim`` if missing; False (and exact scans) when the role may not."""
    dim = int(dim)
    name = f"ix_memory_vectors_hnsw_{dim}"
    if session.execute(text("SELECT 1 FROM pg_indexes WHERE indexname = :n"), {"n": name}).first() is not None:
        return True
    try:
        with session.begin_nested():
            session.execute(
                text(
                    f"CREATE INDEX IF NOT EXISTS {name} ON memory_vectors USING hnsw "
                    f"((embedding::vector({dim})) vector_cosine_ops) WHERE dim = {dim}"
                )
            )
    except DBAPIError as exc:
        log.warning("memory: cannot create the vector index for %d dimensions (%s); searches scan exactly", dim, exc)
        return False
    return True


def write(session: Session, ids: Sequence[int], vectors: npt.NDArray[np.floating]) -> None:
    """Set the pgvector value of rows already written as bytes (the same transaction)."""
    session.execute(
        text("UPDATE memory_vectors SET embedding = CAST(:v AS vector) WHERE item_id = :i"),
        [{"v": literal(vec), "i": int(i)} for i, vec in zip(ids, vectors)],
    )


def nearest(
    session: Session,
    query: npt.NDArray[np.floating],
    k: int,
    *,
    model: str,
    dim: int,
    scope: Scope | None = None,
    below: int | None = None,
) -> list[tuple[int, float]]:
    """(item id, cosine similarity) of the ``k`` nearest vectors of ``model`` in ``scope``, best first.

    ``below``: only items with a smaller id (older ones, for near-duplicate linking).
    """
    dim = int(dim)
    where, params = scope.sql("i") if scope is not None else ("TRUE", {})
    if below is not None:
        where += " AND i.id < :below"
        params["below"] = int(below)
    sql = text(
        f"SELECT v.item_id, 1 - (v.embedding::vector({dim}) <=> CAST(:q AS vector({dim}))) "
        "FROM memory_vectors v JOIN memory_items i ON i.id = v.item_id "
        f"WHERE v.dim = {dim} AND v.model = :model AND v.embedding IS NOT NULL AND {where} "
        f"ORDER BY v.embedding::vector({dim}) <=> CAST(:q AS vector({dim})) LIMIT :k"
    )
    params.update(q=literal(query), model=model, k=int(k))
    session.execute(text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(max(EF_SEARCH, int(k)))})
    rows = [(int(i), float(s)) for i, s in session.execute(sql, params)]
    if len(rows) < k and (scope is not None or below is not None):
        # The graph's candidates were filtered away: scan exactly (for this statement only).
        session.execute(text("SELECT set_config('enable_indexscan', 'off', true)"))
        rows = [(int(i), float(s)) for i, s in session.execute(sql, params)]
        session.execute(text("SELECT set_config('enable_indexscan', 'on', true)"))
    return rows
