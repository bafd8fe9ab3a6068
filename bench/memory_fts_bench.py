"""The full-text side of memory search at 100k items: the numpy ranking against the earlier Python loop.

The memory benchmark's full load (``memory_bench.py --parts search``) goes through the store (dedup, sightings,
vectors) at ~170 items/s; this one writes the same generator's items (``memory_bench_corpus.Corpus``: 50
projects, skewed sizes, file contents, logs, docs, decisions, prompts) with plain SQL inserts, so 100k load in a
minute or two, and measures only ``Searcher._fts`` on the same queries (in each item's project, as search
does), alternating the current implementation and the loop it replaced (kept here as ``loop_fts``). Rankings
are compared query by query. CPU time per query (``time.thread_time``) is reported beside wall time, as a
loaded machine moves wall time far more than CPU time.

    .venv/bin/python bench/memory_fts_bench.py --items 100000 --json bench/results/DATE-memory-fts.json

``--hybrid`` then gives every item a random unit vector (search latency depends on the vectors' shape, not their
meaning: see memory_bench.py), builds the index, and times whole searches as the daemon runs them, the query
embedded by the real model (numpy backend): hybrid, full text only, and the query embedding alone, in turn.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory_bench_corpus import Corpus, make_queries
from sqlalchemy import func, select, text

from headroom.memory.api import Memory
from headroom.memory.db import open_database
from headroom.memory.fts import COMMON_FRACTION, COMMON_MIN, MAX_TERMS
from headroom.memory.models import MemoryItemRow
from headroom.memory.search import _WORD, Searcher


def loop_fts(searcher: Searcher, words: list[str], allowed: Any) -> list[int]:
    """``Searcher._fts`` as it was before the numpy version (2026-11-21's code, verbatim in effect)."""
    with searcher.store.db.sessions() as s:
        marks = ",".join(f":w{i}" for i in range(len(words)))
        params: dict[str, Any] = {f"w{i}": w for i, w in enumerate(words)}
        vocab = text(f"SELECT term, doc FROM memory_fts_vocab WHERE term IN ({marks})")
        held = {str(term): int(doc) for term, doc in s.execute(vocab, params)}
        if not held:
            return []
        total = int(s.execute(select(func.max(MemoryItemRow.id))).scalar() or 1)
        ranked = sorted(held, key=lambda w: held[w])
        selective = [w for w in ranked if held[w] <= max(COMMON_MIN, total * COMMON_FRACTION)]
        scores: dict[int, float] = {}
        cursor = s.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            for term in (selective or ranked[:2])[:MAX_TERMS]:
                idf = math.log((total - held[term] + 0.5) / (held[term] + 0.5) + 1)
                cursor.execute("SELECT rowid FROM memory_fts WHERE memory_fts MATCH ?", ('"' + term + '"',))
                hits = (r[0] for r in cursor.fetchall())
                for rowid in hits if allowed is None else (r for r in hits if r in allowed):
                    scores[rowid] = scores.get(rowid, 0.0) + idf
        finally:
            cursor.close()
    return sorted(scores, key=lambda i: (-scores[i], -i))[: searcher.pool]


def load(db: Any, items: int, corpus: Corpus) -> list[Any]:
    samples = []
    now = datetime(2026, 12, 1)
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        for n in range(items):
            g = corpus.item(n)
            d = g.drafts[0]
            cur.execute(
                "INSERT INTO memory_items (id, content_hash, kind, title, content, size, global_scope, status, "
                "redactions, sightings, created_at, last_seen_at) VALUES (?,?,?,?,?,?,0,'active',0,?,?,?)",
                (n + 1, f"h{n}", d.kind, d.title, d.content, len(d.content), len(g.drafts), now, now),
            )
            for draft in g.drafts:
                cur.execute(
                    "INSERT INTO memory_sightings (item_id, project, agent, session_key, tool_call_key, path, "
                    "source, ts) VALUES (?,?,?,?,?,?,'log',?)",
                    (n + 1, draft.project, draft.agent, draft.session_key, "", draft.path, now),
                )
            if len(samples) < 400 and corpus.rng.random() < 0.01:
                samples.append(g)
            if n % 5000 == 4999:
                raw.commit()
        raw.commit()
    finally:
        raw.close()
    return samples


def random_vectors(db: Any, items: int, model: str) -> None:
    """A seeded random unit vector for each of items 1..``items``, stored as ``model``'s (the search's cost does
    not depend on what the vectors mean; the labelled quality bench measures that)."""
    import numpy as np

    rng = np.random.default_rng(3)
    raw = db.engine.raw_connection()
    try:
        for lo in range(0, items, 5000):
            ids = range(lo + 1, min(items, lo + 5000) + 1)
            vectors = rng.standard_normal((len(ids), 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            raw.cursor().executemany(
                "INSERT INTO memory_vectors (item_id, model, dim, vector) VALUES (?,?,384,?)",
                [(i, model, v.tobytes()) for i, v in zip(ids, vectors, strict=True)],
            )
            raw.cursor().execute(
                "UPDATE memory_items SET embed_model = ? WHERE id BETWEEN ? AND ?", (model, ids[0], ids[-1])
            )
        raw.commit()
    finally:
        raw.close()


def measure_hybrid(db: Any, work: Path, queries: list[tuple[str, str, str]], items: int) -> dict[str, Any]:
    """Whole searches: hybrid (real query embedding + index + fusion), text only, and the embedding alone."""
    from memory_bench_load import QueryRealItemsHash

    from headroom.memory.embed import SentenceTransformerEmbedder

    real = SentenceTransformerEmbedder(threads=1)
    embedder = QueryRealItemsHash(real)
    random_vectors(db, items, embedder.name)
    memory = Memory(db, embedder=embedder, index_dir=work / "index")
    text_only = Memory(db)
    assert memory.vectors is not None
    started = time.perf_counter()
    memory.vectors.index()
    index_s = time.perf_counter() - started
    real.embed(["warm up"])
    for p in sorted({p for _, p, _ in queries}):
        memory.search("warm up", project=p, k=10)
        text_only.search("warm up", project=p, k=10)
    lat: dict[str, list[float]] = {"hybrid": [], "text_only": [], "query_embedding": []}
    modes = set()
    for q, p, _ in queries:
        t = time.perf_counter()
        modes.add(memory.search(q, project=p, k=10).mode)
        lat["hybrid"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        text_only.search(q, project=p, k=10)
        lat["text_only"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        real.embed([q])
        lat["query_embedding"].append((time.perf_counter() - t) * 1000)
    return {
        "index_build_s": round(index_s, 1),
        "uses_ann": memory.vectors.index().uses_ann,
        "modes": sorted(modes),
        "p50_ms": {k: round(statistics.median(v), 2) for k, v in lat.items()},
        "p95_ms": {k: round(sorted(v)[int(0.95 * (len(v) - 1))], 2) for k, v in lat.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hybrid", action="store_true", help="also time whole hybrid searches (see above)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hr-fts-") as tmp:
        db = open_database(f"sqlite:///{Path(tmp) / 'memory.db'}")
        corpus = Corpus(args.seed)
        started = time.perf_counter()
        samples = load(db, args.items, corpus)
        load_s = time.perf_counter() - started
        searcher = Memory(db).searcher
        queries = make_queries(corpus, samples, args.queries)
        wall: dict[str, list[float]] = {"numpy": [], "loop": []}
        cpu: dict[str, list[float]] = {"numpy": [], "loop": []}
        differ = 0
        for q, project, _family in queries:
            words = list(dict.fromkeys(w for w in _WORD.findall(q.lower()) if len(w) > 1))[:32]
            allowed = searcher.visible(project)
            got = {}
            order = [("numpy", searcher._fts), ("loop", lambda w, a: loop_fts(searcher, w, a))]
            if len(wall["numpy"]) % 2:  # the first of the two meets the posting lists' pages cold: take turns
                order.reverse()
            for name, run in order:
                w0, c0 = time.perf_counter(), time.thread_time()
                got[name] = run(words, allowed)
                cpu[name].append((time.thread_time() - c0) * 1000)
                wall[name].append((time.perf_counter() - w0) * 1000)
            differ += got["numpy"] != got["loop"]
        hybrid = measure_hybrid(db, Path(tmp), queries, args.items) if args.hybrid else None
        db.close()
    med = {f"{k}_{n}": round(statistics.median(v[n]), 2) for k, v in (("wall_ms", wall), ("cpu_ms", cpu)) for n in v}
    result = {
        "items": args.items,
        "queries": len(queries),
        "load_s": round(load_s, 1),
        "p50": med,
        "cpu_ratio_numpy_to_loop": round(med["cpu_ms_numpy"] / med["cpu_ms_loop"], 2),
        "wall_ratio_numpy_to_loop": round(med["wall_ms_numpy"] / med["wall_ms_loop"], 2),
        "rankings_differ": differ,
    }
    if hybrid is not None:
        result["hybrid"] = hybrid
    text_out = json.dumps(result, indent=2)
    print(text_out)
    if args.json:
        args.json.write_text(text_out + "\n")


if __name__ == "__main__":
    main()
