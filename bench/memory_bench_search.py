"""The memory benchmark's ``search`` part (``memory_bench.py``): hybrid search latency over the loaded items.

Queries in their project, text-only and across all projects, the query embedding alone (at both torch thread
settings), searches right after a store change (visible-id cache dropped), and a cProfile of the hybrid path.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Any

from benchlib import percentile
from memory_bench_corpus import PROJECTS, Corpus, Generated, make_queries
from memory_bench_load import LOAD_BATCH, QueryRealItemsHash, _item_count, load_and_measure
from memory_bench_measure import pcts, say, timed

from headroom.memory.api import Memory
from headroom.memory.db import open_database
from headroom.memory.embed import SentenceTransformerEmbedder

TARGET_P50_MS = 20.0


def part_search_size(args: argparse.Namespace, work: Path, parts: set[str]) -> dict[str, Any]:
    db_file = work / "memory.db"
    index_dir = work / "index"
    db = open_database(f"sqlite:///{db_file}")
    real = SentenceTransformerEmbedder(threads=args.query_threads)
    embedder = QueryRealItemsHash(real)
    corpus = Corpus(args.seed)
    samples: list[Generated] = []
    out: dict[str, Any] = {"items_requested": args.items, "projects": PROJECTS, "load": {}, "size": {}}
    if args.reuse and _item_count(db) >= args.items:
        # Measure again on a DB an earlier run loaded (the tree is shared: the code may have changed since). The
        # generator is replayed without writing, so the queries are the same as that run's.
        say(f"reusing {db_file}: replaying the generator for the query samples")
        for lo in range(0, args.items, LOAD_BATCH):
            for _g in [corpus.item(n) for n in range(lo, min(args.items, lo + LOAD_BATCH))]:
                if len(samples) < 400 and corpus.rng.random() < 0.01:
                    samples.append(_g)
        memory = Memory(db, embedder=embedder, index_dir=index_dir)
        assert memory.vectors is not None
        t = time.perf_counter()
        memory.vectors.index()
        out["reused"] = {"db": str(db_file), "index_load_s": round(time.perf_counter() - t, 2)}
    else:
        memory = load_and_measure(args, db, db_file, index_dir, embedder, corpus, samples, out)
    if "search" not in parts:
        return out
    assert memory.vectors is not None
    t = time.perf_counter()
    real.load()
    out["query_model_load_s"] = round(time.perf_counter() - t, 2)
    text_only = Memory(db)
    queries = make_queries(corpus, samples, args.queries)
    projects = sorted({p for _, p, _ in queries})
    allowed_sizes = {p: len(memory.searcher.visible(p) or ()) for p in projects}
    for p in projects:  # warm the per-project visible-id caches of both searchers (measured cold separately)
        memory.search("warm up", project=p, k=10)
        text_only.search("warm up", project=p, k=10)
    memory.search("warm up", project=None, k=10)
    lat: dict[str, list[float]] = {"hybrid": [], "query_embedding": [], "text_only": [], "all_projects": []}
    modes: set[str] = set()
    empty = 0
    say(f"measuring {len(queries)} queries over {len(projects)} projects")
    for q, p, _family in queries:
        ms, res = timed(partial(memory.search, q, project=p, k=10))
        lat["hybrid"].append(ms)
        modes.add(res.mode)
        empty += not res.hits
        lat["query_embedding"].append(timed(partial(real.embed, [q]))[0])
        lat["text_only"].append(timed(partial(text_only.search, q, project=p, k=10))[0])
        lat["all_projects"].append(timed(partial(memory.search, q, project=None, k=10))[0])
    # The visible-id cache is dropped on every store change: with a daemon feeding items, a search often runs
    # right after a change. Measure that case too (the cache cleared before each query).
    # torch's thread count decides the query embedding's cost on a busy machine: measure the other setting too.
    import torch

    other = 2 if args.query_threads == 1 else 1
    torch.set_num_threads(other)
    lat_other = [timed(partial(real.embed, [q]))[0] for q, _, _ in queries[:60]]
    torch.set_num_threads(args.query_threads)
    cold: list[float] = []
    for q, p, _family in queries[:100]:
        memory.searcher._visible.clear()
        cold.append(timed(partial(memory.search, q, project=p, k=10))[0])
    index = memory.vectors.index()
    big = max(allowed_sizes.values())
    out["search"] = {
        "queries": len(queries),
        "families": {f: sum(1 for *_, x in queries if x == f) for f in ("words", "path", "paraphrase")},
        "latency_ms": {k: pcts(v) for k, v in lat.items()},
        "hybrid_after_store_change_ms": pcts(cold),
        "query_threads": args.query_threads,
        f"query_embedding_torch_threads_{other}_ms": pcts(lat_other),
        "hybrid_by_family_p50_ms": {
            f: round(statistics.median([ms for ms, (*_, x) in zip(lat["hybrid"], queries) if x == f]), 2)
            for f in ("words", "path", "paraphrase")
        },
        "modes": sorted(modes),
        "queries_without_hits": empty,
        "index_items": len(index),
        "uses_ann": index.uses_ann,
        "visible_items_per_project": {
            "min": min(allowed_sizes.values()),
            "median": statistics.median(allowed_sizes.values()),
            "max": big,
        },
        "vector_path": (
            "project filter: exact scan of the project's rows when it sees < max(ann_threshold, 5 %) of the index "
            f"({max(index.ann_threshold, 0.05 * len(index)):.0f} items), else HNSW with over-fetch; all projects: HNSW"
        ),
        "projects_over_exact_limit": sum(
            1 for v in allowed_sizes.values() if v >= max(index.ann_threshold, 0.05 * len(index))
        ),
        "target_p50_ms": TARGET_P50_MS,
        "met": percentile(lat["hybrid"], 50) <= TARGET_P50_MS,
    }
    out["search"]["profile"] = profile_search(memory, queries[:60])
    db.close()
    return out


def profile_search(memory: Memory, queries: list[tuple[str, str, str]]) -> dict[str, Any]:
    """cProfile over a slice of the hybrid queries: where a search spends its time (cumulative, own code first)."""
    prof = cProfile.Profile()
    prof.enable()
    for q, p, _ in queries:
        memory.search(q, project=p, k=10)
    prof.disable()
    stats = pstats.Stats(prof)
    total = float(stats.total_tt)  # type: ignore[attr-defined]
    rows = []
    for (fname, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((ct, tt, nc, f"{Path(fname).name}:{line}:{func}"))
    rows.sort(reverse=True)
    per_query = 1000 / len(queries)
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(30)
    return {
        "queries": len(queries),
        "total_ms_per_query": round(total * per_query, 2),
        "top_cumulative_ms_per_query": [
            {"where": w, "cum_ms": round(ct * per_query, 2), "own_ms": round(tt * per_query, 2), "calls": nc}
            for ct, tt, nc, w in rows[:40]
        ],
        "text": buf.getvalue()[-6000:],
    }
