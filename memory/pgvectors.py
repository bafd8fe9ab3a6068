"""Vectors on PostgreSQL: pgvector values in ``memory_vectors.embedding``, searched through an HNSW index.

Every daemon of a team writes its embeddings into the one table and searches it there, so a vector one machine
writes is found by every other at once (a local index per daemon would only see it after a restart). The
float32 bytes stay beside the pgvector value: they are what SQLite uses and what a re-index reads.

The HNSW index is an expression index over ``embedding::vector(dim)``, partial on ``dim`` (revision 0009 makes
the 384-dimension one; :func:`ensure_index` makes another model's on first use, when the role may). A query
orders by ``<=>`` (cosine distance) within the scope's filters. HNSW filters after it walks the graph, so a
narrow scope can get fewer than ``k`` rows from the index: a small project's items are ranked exactly (found
through the sightings index), a larger one's through the graph with ``hnsw.ef_search`` widened, and a short
answer is rerun exactly (see :func:`nearest`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from sqlalchemy import TextClause, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from headroom.memory.pgsearch import Scope

log = logging.getLogger("headroom.memory")

EF_SEARCH = 200
EF_MAX = 1000  # pgvector's largest hnsw.ef_search
#: A scope (a project's items and the global ones) smaller than this is ranked exactly: a few thousand
#: distances cost a few milliseconds, where the graph's candidates would mostly be filtered away.
EXACT_SCOPE = 5000
ENOUGH = 10  # rows of a scoped graph answer that make an exact rerun unnecessary (a search shows 10)


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


def _scope_size(session: Session, scope: Scope | None, cap: int) -> int | None:
    """How many items a project's scope holds, counted up to ``cap`` from the sightings index; None: unscoped."""
    if scope is None or scope.project is None:
        return None
    n = session.execute(
        text("SELECT count(*) FROM (SELECT 1 FROM memory_sightings WHERE project = :p LIMIT :cap) AS c"),
        {"p": scope.project, "cap": cap},
    ).scalar()
    if scope.include_global and int(n or 0) < cap:
        n = int(n or 0) + int(
            session.execute(
                text("SELECT count(*) FROM (SELECT 1 FROM memory_items WHERE global_scope LIMIT :cap) AS g"),
                {"cap": cap},
            ).scalar()
            or 0
        )
    return int(n or 0)


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

    pgvector 0.6 filters the graph's ``ef_search`` candidates after the walk (no iterative scan before 0.8):
    a project holding 0.3 % of the items keeps none of 200 candidates, and the exact rerun then scanned
    every vector (seconds at 1M items). So a scope of fewer than :data:`EXACT_SCOPE` items (counted, capped,
    from the sightings index) is ranked exactly from the start: its items are found through that index and
    only their distances computed. A larger scope walks the graph with ``ef_search`` widened in proportion
    to how much of the table it holds (up to pgvector's 1000), and reruns exactly only when it comes back with
    fewer than :data:`ENOUGH` rows. The scope's filters (project, kinds, visibility) are in the statement either way.
    """
    dim = int(dim)
    where, params = scope.sql("i") if scope is not None else ("TRUE", {})
    if below is not None:
        where += " AND i.id < :below"
        params["below"] = int(below)
    distance = f"v.embedding::vector({dim}) <=> CAST(:q AS vector({dim}))"

    def sql(exact: bool) -> TextClause:
        source = "memory_vectors v"
        if exact and scope is not None and scope.project is not None:
            # The scope's items first (the sightings index by project, and the global items), then only their
            # vectors: `EXISTS (...) OR global_scope` alone cannot drive a join, and the planner scanned and
            # sorted every vector (4.7 s at 100k items for a project of two).
            glob = " UNION SELECT g.id FROM memory_items g WHERE g.global_scope" if scope.include_global else ""
            source = (
                f"(SELECT DISTINCT s.item_id FROM memory_sightings s WHERE s.project = :scope_project{glob}) AS c "
                "JOIN memory_vectors v ON v.item_id = c.item_id"
            )
        # `+ 0` makes the ORDER BY expression differ from the HNSW index's, so an exact query never walks it.
        order = f"({distance}) + 0" if exact else distance
        return text(
            f"SELECT v.item_id, 1 - ({distance}) FROM {source} JOIN memory_items i ON i.id = v.item_id "
            f"WHERE v.dim = {dim} AND v.model = :model AND v.embedding IS NOT NULL AND {where} "
            f"ORDER BY {order} LIMIT :k"
        )

    params.update(q=literal(query), model=model, k=int(k))
    size = _scope_size(session, scope, EXACT_SCOPE)
    if size is not None and size < EXACT_SCOPE:
        return [(int(i), float(s)) for i, s in session.execute(sql(True), params)]
    ef = EF_SEARCH
    if size is not None:
        total = session.execute(
            text("SELECT greatest(reltuples, 1) FROM pg_class WHERE relname = 'memory_vectors'")
        ).scalar()
        ef = int(min(EF_MAX, max(EF_SEARCH, 2 * k * float(total or 1) / max(size, 1))))
    session.execute(text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(max(ef, int(k)))})
    rows = [(int(i), float(s)) for i, s in session.execute(sql(False), params)]
    if len(rows) < min(k, ENOUGH) and (scope is not None or below is not None):
        # The graph's candidates were filtered away: rank the scope exactly. A graph answer of ENOUGH rows is
        # kept even when short of k (a pool for fusion): its nearest are the ones that count, and the exact
        # rank of a scope of many thousand items costs several times the walk.
        rows = [(int(i), float(s)) for i, s in session.execute(sql(True), params)]
    return rows
