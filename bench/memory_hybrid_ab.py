"""Hybrid memory search at 100k items, before and after a change, taking turns per query in one process.

On a shared machine the load moves wall times several-fold between two runs, so two runs cannot be compared;
here the search code of another git revision (``--before``: memory/search.py, memory/store.py and
memory/index.py, loaded from ``git show REV:path`` as separate modules) and the working tree's
search the same store, with the same query encoder and the same queries, in a shuffled order per query. The
query-embedding cache is cleared before each search, so every search embeds its query. ``after_cold`` is the
working tree's search with the full-text side's per-generation cache dropped first: what the first search after
a store change gets.

The store is ``memory_fts_bench.py``'s: the same generator's 100k items written with plain SQL, a random unit
vector per item, and the HNSW index built once (``--build`` writes it to ``--work``; ~25 min under load, the
index build being most of it), then reused:

    .venv/bin/python bench/memory_hybrid_ab.py --work /tmp/m100k --build
    .venv/bin/python bench/memory_hybrid_ab.py --work /tmp/m100k --before 43bee50 --json bench/results/X.json

Reported per variant: wall and process CPU time (both threads) p50/p95, and how many queries gave the same 10
hits as ``before``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pickle
import random
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parents[1]
MODEL_NAME = "bench-hash384+minilm-queries"  # memory_bench_load.QueryRealItemsHash.name


def build(work: Path, items: int) -> None:
    """The 100k store, its 200 queries (pickled) and the vector index file."""
    from memory_bench_corpus import Corpus, make_queries
    from memory_bench_load import QueryRealItemsHash
    from memory_fts_bench import load, random_vectors

    from headroom.memory.api import Memory
    from headroom.memory.db import open_database
    from headroom.memory.embed import SentenceTransformerEmbedder

    work.mkdir(parents=True, exist_ok=True)
    db = open_database(f"sqlite:///{work / 'memory.db'}")
    corpus = Corpus(1)
    samples = load(db, items, corpus)
    (work / "queries.pkl").write_bytes(pickle.dumps(make_queries(corpus, samples, 200)))
    random_vectors(db, items, MODEL_NAME)
    memory = Memory(db, embedder=QueryRealItemsHash(SentenceTransformerEmbedder(threads=1)), index_dir=work / "index")
    memory.vectors.index()  # built from the table and saved beside the DB
    db.close()


def _module_at(rev: str, path: str, name: str) -> ModuleType | None:
    """``path`` as it was at ``rev``, imported as module ``name``; None when the file did not exist there."""
    done = subprocess.run(["git", "show", f"{rev}:{path}"], check=False, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        return None
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    exec(compile(done.stdout, f"{rev}:{path}", "exec"), module.__dict__)
    return module


def run(work: Path, before: str, count: int | None, seed: int) -> dict[str, Any]:
    from memory_bench_load import QueryRealItemsHash

    from headroom.memory.api import Memory
    from headroom.memory.db import open_database
    from headroom.memory.embed import SentenceTransformerEmbedder
    from headroom.memory.vectors import Vectors

    queries = pickle.loads((work / "queries.pkl").read_bytes())[:count]
    db = open_database(f"sqlite:///{work / 'memory.db'}")
    real = SentenceTransformerEmbedder(threads=1)
    embedder = QueryRealItemsHash(real)
    memory = Memory(db, embedder=embedder, index_dir=work / "index")
    memory.vectors.index()
    real.load()
    old_index = _module_at(before, "memory/index.py", "before_index")
    old_store = _module_at(before, "memory/store.py", "before_store")
    old_search = _module_at(before, "memory/search.py", "before_search")
    assert old_index is not None and old_store is not None and old_search is not None
    store = old_store.MemoryStore(db)
    vectors = Vectors(store, embedder, work / "index")
    vectors._index = old_index.VectorIndex.load(embedder.dim, embedder.name, vectors.index_path)
    assert vectors._index is not None
    vectors._queries = memory.vectors._queries  # one cache, cleared before each search
    variants = {"before": old_search.Searcher(store, vectors), "after": memory.searcher, "after_cold": memory.searcher}
    for project in sorted({p for _, p, _ in queries}):
        for searcher in variants.values():
            searcher.search("warm up", project=project, k=10)
    wall: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    hits: dict[str, list[list[int]]] = {k: [] for k in variants}
    rng = random.Random(seed)
    started = os.getloadavg()
    for query, project, _ in queries:
        order = list(variants)
        rng.shuffle(order)
        for name in order:
            memory.vectors._queries.clear()
            if name == "after_cold":
                memory.searcher._fulltext._common = None
            w, c = time.perf_counter(), time.process_time()
            result = variants[name].search(query, project=project, k=10)
            wall[name].append((time.perf_counter() - w) * 1000)
            cpu[name].append((time.process_time() - c) * 1000)
            hits[name].append([h.item.id for h in result.hits])

    def pct(values: list[float], f: float) -> float:
        return round(sorted(values)[int(f * (len(values) - 1))], 2)

    return {
        "items": 100000,
        "queries": len(queries),
        "before": before,
        "load_average_start": started,
        "load_average_end": os.getloadavg(),
        "wall_p50_ms": {k: pct(v, 0.5) for k, v in wall.items()},
        "wall_p95_ms": {k: pct(v, 0.95) for k, v in wall.items()},
        "cpu_p50_ms": {k: pct(v, 0.5) for k, v in cpu.items()},
        "cpu_p95_ms": {k: pct(v, 0.95) for k, v in cpu.items()},
        "same_top10_as_before": {k: sum(a == b for a, b in zip(hits["before"], v)) for k, v in hits.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="the store's folder (memory.db, index/, queries)")
    parser.add_argument("--build", action="store_true", help="build the store in --work first")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--before", default=None, help="the git revision to compare with (default: no run)")
    parser.add_argument("--queries", type=int, default=None, help="the first N queries only")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.build:
        build(args.work, args.items)
    if args.before is None:
        return
    result = run(args.work, args.before, args.queries, args.seed)
    print(json.dumps(result, indent=1))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
