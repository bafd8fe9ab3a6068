"""Full-text search on PostgreSQL: the generated ``search_tsv`` column (revision 0009), GIN, idf-ranked.

The query is split the way the column was built (:func:`split_words`, the same rules as the SQL expression in
the migration): camelCase cut at each lower-to-upper step, anything not a letter or digit separating words.
A query word that splits into parts (``snake_case``, ``parseConfig``, ``src/app.py``) becomes a phrase
(``'snake' <-> 'case'``), so an identifier matches itself rather than its parts anywhere in a file.

Ranking follows the SQLite side (:meth:`headroom.memory.search.Searcher._fts`) so both backends answer alike:
each query term's document frequency is counted (capped: a count past the "common" limit stops early; a term
the planner's statistics already put far past it is not counted at all, see :func:`_estimates`), terms
held by more than :data:`COMMON_FRACTION` of the items are dropped unless nothing else is left, at most
:data:`MAX_TERMS` of the rarest are kept, and an item scores the summed idf of the terms it holds (the newest
first among equals; ``ts_rank_cd`` over the title breaks ties among the front runners). The project, kind
and visibility filters are part of the same SQL statement, before its ``LIMIT``: a project's best items are
never cut by other projects' rows.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

COMMON_FRACTION = 0.02
COMMON_MIN = 50
MAX_TERMS = 6
#: A term the planner expects in more than this many times the common limit is common without a count.
ESTIMATE_MARGIN = 2
MAX_QUERY_WORDS = 16

_NON_ALNUM = re.compile(r"[\W_]+")
_QUERY_WORD = re.compile(r"\S+")
# The title's words as the column indexes them (the migration's expression): a small value, cheap to build for
# the few front runners, where the stored tsvector of a large item is TOASTed and costly to read.
TITLE_TSV = (
    "to_tsvector('simple', regexp_replace(regexp_replace(coalesce(i.title, ''), "
    "'([[:lower:][:digit:]])([[:upper:]])', '\\1 \\2', 'g'), '[^[:alnum:]]+', ' ', 'g'))"
)


def split_words(text_: str) -> list[str]:
    """The lower-cased words ``text_`` is indexed as (the Python twin of the migration's SQL expression)."""
    cut = "".join(
        f" {c}" if c.isupper() and n and (text_[n - 1].islower() or text_[n - 1].isdigit()) else c
        for n, c in enumerate(text_)
    )
    return [w.lower() for w in _NON_ALNUM.split(cut) if w]


@dataclass(frozen=True)
class Scope:
    """Which items a search may return: a project's (and the global ones) or every project's, of some kinds."""

    project: str | None
    include_global: bool = True
    kinds: tuple[str, ...] = ()
    #: The searching user: only their own and the team's items (row-level security says the same for a
    #: member's role; this keeps it true for a connection that bypasses the policies). None: no filter.
    user: str | None = None

    def sql(self, alias: str = "i") -> tuple[str, dict[str, Any]]:
        """A boolean SQL condition over ``memory_items AS alias`` and its parameters."""
        conds: list[str] = []
        params: dict[str, Any] = {}
        if self.user is not None:
            conds.append(f"({alias}.visibility = 'team' OR {alias}.user_id IN (:scope_user, ''))")
            params["scope_user"] = self.user
        if self.project is not None:
            seen = (
                f"EXISTS (SELECT 1 FROM memory_sightings s WHERE s.item_id = {alias}.id AND s.project = :scope_project)"
            )
            conds.append(f"({seen} OR {alias}.global_scope)" if self.include_global else seen)
            params["scope_project"] = self.project
        if self.kinds:
            conds.append(f"{alias}.kind = ANY(:scope_kinds)")
            params["scope_kinds"] = list(self.kinds)
        return (" AND ".join(conds) or "TRUE"), params


def query_terms(query: str) -> list[str]:
    """tsquery terms for ``query``: one per distinct query word, a phrase when the word splits into parts."""
    terms: list[str] = []
    for raw in _QUERY_WORD.findall(query):
        words = split_words(raw)
        parts = words if len(words) > 1 else [w for w in words if len(w) > 1]
        if not parts:
            continue
        term = " <-> ".join(f"'{p}'" for p in parts)  # parts are letters and digits only: nothing to escape
        if term not in terms:
            terms.append(term)
    return terms[:MAX_QUERY_WORDS]


def has_tsv(session: Session) -> bool:
    """Whether this PostgreSQL database has the search column (revision 0009 ran)."""
    row = session.execute(
        text(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'memory_items' AND column_name = 'search_tsv'"
        )
    ).first()
    return row is not None


def text_search(session: Session, query: str, scope: Scope, pool: int) -> list[int]:
    """The ids of the ``pool`` best items for ``query`` within ``scope``, best first."""
    terms = query_terms(query)
    if not terms:
        return []
    # Counts and candidates come from the GIN index (bitmap scans), never from a sequential scan: under a
    # LIMIT the planner may pick one, and for a rare word it reads every row's tsvector to find nothing (30 ms
    # at 5k items). Off for this transaction only, in the same round trip as the item count.
    total = int(
        session.execute(
            text("SELECT (SELECT coalesce(max(id), 1) FROM memory_items), set_config('enable_seqscan', 'off', true)")
        ).scalar()
        or 1
    )
    cap = max(COMMON_MIN, int(total * COMMON_FRACTION))
    estimated = _estimates(session, terms)
    held = {t: min(e, total) for t, e in estimated.items() if e > ESTIMATE_MARGIN * cap}
    counted = [t for t in terms if t not in held]
    if counted:
        counts = ", ".join(
            f"(SELECT count(*) FROM (SELECT 1 FROM memory_items WHERE search_tsv @@ to_tsquery('simple', :t{n}) "
            f"LIMIT :cap1) AS c{n})"
            for n in range(len(counted))
        )
        params: dict[str, Any] = {f"t{n}": t for n, t in enumerate(counted)}
        row = session.execute(text(f"SELECT {counts}"), {**params, "cap1": cap + 1}).one()
        held.update({t: int(c) for t, c in zip(counted, row) if int(c) > 0})
    if not held:
        return []
    ranked = sorted(held, key=lambda t: held[t])
    selective = [t for t in ranked if held[t] <= cap]
    chosen = (selective or ranked[:2])[:MAX_TERMS]
    # A capped count understates a common word's frequency; its idf is then an upper bound, which only matters
    # when nothing selective is left (and then every candidate shares the same few words).
    idf = {t: math.log((total - held[t] + 0.5) / (held[t] + 0.5) + 1) for t in chosen}
    where, scope_params = scope.sql("i")
    # One index scan per term, summed per item: each branch reads only the GIN index (and the heap for the
    # scope and a phrase's recheck). Scoring every candidate with `@@` per term in one scan instead detoasts
    # each item's tsvector once per term: 2-3x slower on real logs, whose large outputs are TOASTed.
    branches = " UNION ALL ".join(
        f"SELECT i.id, CAST(:idf{n} AS float8) AS w FROM memory_items i "
        f"WHERE i.search_tsv @@ to_tsquery('simple', :q{n}) AND {where}"
        for n in range(len(chosen))
    )
    # Among equal idf sums, ts_rank_cd (title words weigh more, close words more than scattered ones) decides,
    # computed only for the front runners.
    sql = (
        f"SELECT i.id FROM (SELECT id, sum(w) AS score FROM ({branches}) AS m GROUP BY id "
        "ORDER BY score DESC, id DESC LIMIT :wide) AS top JOIN memory_items i ON i.id = top.id "
        f"ORDER BY top.score DESC, ts_rank_cd({TITLE_TSV}, to_tsquery('simple', :anyq)) DESC, i.id DESC "
        "LIMIT :pool"
    )
    qparams: dict[str, Any] = {
        "pool": pool,
        "wide": 2 * pool,
        "anyq": " | ".join(f"({t})" for t in chosen),
        **scope_params,
    }
    for n, t in enumerate(chosen):
        qparams[f"q{n}"], qparams[f"idf{n}"] = t, idf[t]
    return [int(i) for i in session.execute(text(sql), qparams).scalars()]


def _estimates(session: Session, terms: list[str]) -> dict[str, int]:
    """How many items the planner expects to hold each term: a plan, no scan.

    Counting a common word is the slow part of a search at 1M items: its GIN bitmap is built whole before the
    ``LIMIT`` can stop anything (735k matches of "the": ~50-60 ms, lossy past ``work_mem`` and then rechecked
    row by row; up to 640 ms for a query of three). ANALYZE keeps the column's most common lexemes with their
    frequencies, so the planner's estimate for such a word is close (a sample of 30,000 rows); a word it does
    not track gets a small estimate and is counted as before, as is everything when the table was never
    analysed (the default estimate is 0.5 % of the rows). A member's role gets the estimate of the rows its
    policies let it see, as its count would be of those. An estimate costs ~0.1 ms a term at any size; counting
    a word every item holds cost 0.26 ms at 5k items, 3.5 ms at 100k, 124-172 ms at 1M (one GIN table, idle).
    """
    out: dict[str, int] = {}
    for term in terms:
        plan = session.execute(
            text("EXPLAIN (FORMAT JSON) SELECT 1 FROM memory_items WHERE search_tsv @@ to_tsquery('simple', :t)"),
            {"t": term},
        ).scalar()
        if isinstance(plan, str):
            plan = json.loads(plan)
        out[term] = int(plan[0]["Plan"]["Plan Rows"])  # type: ignore[index]
    return out


def visible_among(session: Session, ids: Sequence[int], scope: Scope) -> set[int]:
    """Which of ``ids`` the scope may see (a superseded item is penalised only for a successor it can see)."""
    if not ids:
        return set()
    where, params = scope.sql("i")
    rows = session.execute(
        text(f"SELECT i.id FROM memory_items i WHERE i.id = ANY(:ids) AND {where}"),
        {
            "ids": list(ids),
            **params,
        },
    )
    return {int(r[0]) for r in rows}
