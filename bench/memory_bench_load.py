"""The bulk load the memory benchmark's ``search`` and ``size`` parts share (``memory_bench.py``).

Items get :class:`HashEmbedder` vectors (see ``memory_bench.py``'s module doc for why) while queries go through the
real model: :class:`QueryRealItemsHash`. Items are written with ``put_many`` in batches and their vectors in bulk,
with a size checkpoint (files, tables, a freshly built and reloaded index) at 10k items and at the end.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from memory_bench_corpus import Corpus, Generated
from memory_bench_measure import file_sizes, say, table_sizes

from headroom.memory.api import Memory
from headroom.memory.db import Database
from headroom.memory.embed import HashEmbedder, SentenceTransformerEmbedder

HASH_CHARS = 300  # what the hash embedder reads of an item: its cost is per character, its vector only a stand-in
LOAD_BATCH = 1000

# -- the embedder the search part uses ----------------------------------------------------------------------------


class QueryRealItemsHash:
    """Queries (one text) through all-MiniLM-L6-v2, item batches through the hash embedder: see the module doc."""

    name = "bench-hash384+minilm-queries"
    dim = 384

    def __init__(self, real: SentenceTransformerEmbedder) -> None:
        self.real = real
        self.fake = HashEmbedder(384)

    @property
    def loaded(self) -> bool:
        return self.real.loaded

    def load(self) -> None:
        self.real.load()

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if len(texts) == 1:
            return self.real.embed(texts)
        return self.fake.embed([t[:HASH_CHARS] for t in texts])


def load_items(
    db: Database, embedder: QueryRealItemsHash, corpus: Corpus, start: int, stop: int, samples: list[Generated]
) -> dict[str, float]:
    """Put items ``start..stop`` with ``put_many`` in batches, then write their hash vectors in bulk."""
    from sqlalchemy import insert, update

    from headroom.memory.models import MemoryItemRow, MemoryVectorRow
    from headroom.memory.store import MemoryStore
    from headroom.memory.vectors import _embed_text

    store = MemoryStore(db)
    put_s = vec_s = 0.0
    created = 0
    for lo in range(start, stop, LOAD_BATCH):
        gens = [corpus.item(n) for n in range(lo, min(stop, lo + LOAD_BATCH))]
        for g in gens:
            if len(samples) < 400 and corpus.rng.random() < 0.01:
                samples.append(g)
        drafts = [d for g in gens for d in g.drafts]
        t = time.perf_counter()
        results = store.put_many(drafts)
        put_s += time.perf_counter() - t
        new_ids = sorted({r.item_id for r in results if r.created and r.item_id is not None})
        created += len(new_ids)
        t = time.perf_counter()
        by_id = {r.item_id: d for r, d in zip(results, drafts) if r.created}
        texts = [_embed_text(by_id[i].title or by_id[i].path, by_id[i].content) for i in new_ids]
        vectors = embedder.embed(texts)
        with db.transaction() as s:
            s.execute(
                insert(MemoryVectorRow),
                [
                    {"item_id": i, "model": embedder.name, "dim": embedder.dim, "vector": v.tobytes()}
                    for i, v in zip(new_ids, vectors)
                ],
            )
            s.execute(update(MemoryItemRow).where(MemoryItemRow.id.in_(new_ids)).values(embed_model=embedder.name))
        vec_s += time.perf_counter() - t
        if (lo // LOAD_BATCH) % 10 == 9:
            say(f"loaded {min(stop, lo + LOAD_BATCH):,} items")
    return {"items_created": created, "put_many_s": round(put_s, 1), "hash_vectors_s": round(vec_s, 1)}


def build_index(db: Database, embedder: QueryRealItemsHash, index_dir: Path) -> tuple[Memory, dict[str, Any]]:
    """A fresh Memory whose index is rebuilt from the DB (the daemon's first search after a restart does this)."""
    for p in index_dir.glob("*"):
        p.unlink()
    memory = Memory(db, embedder=embedder, index_dir=index_dir)
    assert memory.vectors is not None
    t = time.perf_counter()
    index = memory.vectors.index()
    build = time.perf_counter() - t
    t = time.perf_counter()
    memory.vectors._index = None  # load it back from the file, as a restarted daemon does
    index = memory.vectors.index()
    reload_s = time.perf_counter() - t
    return memory, {
        "index_items": len(index),
        "uses_ann": index.uses_ann,
        "index_build_and_save_s": round(build, 1),
        "index_load_from_file_s": round(reload_s, 2),
    }


def _item_count(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM memory_items").scalar() or 0)


def load_and_measure(
    args: argparse.Namespace,
    db: Database,
    db_file: Path,
    index_dir: Path,
    embedder: QueryRealItemsHash,
    corpus: Corpus,
    samples: list[Generated],
    out: dict[str, Any],
) -> Memory:
    """Load the items with a size checkpoint at 10k and at the end; returns a Memory over the final index."""
    checkpoints = sorted({min(10_000, args.items), args.items})
    done = 0
    for cp in checkpoints:
        say(f"loading items {done:,}..{cp:,}")
        t = time.perf_counter()
        out["load"][str(cp)] = load_items(db, embedder, corpus, done, cp, samples)
        out["load"][str(cp)]["wall_s"] = round(time.perf_counter() - t, 1)
        done = cp
        memory, idx = build_index(db, embedder, index_dir)
        with db.engine.connect() as conn:
            counts = conn.exec_driver_sql(
                "SELECT (SELECT count(*) FROM memory_items), (SELECT count(*) FROM memory_sightings), "
                "(SELECT sum(length(content)) FROM memory_items)"
            ).one()
        sizes = file_sizes(db_file, index_dir)
        out["size"][str(cp)] = {
            **sizes,
            **idx,
            "items": int(counts[0]),
            "sightings": int(counts[1]),
            "content_chars": int(counts[2]),
            "per_10k_items_mb": {
                k: round(v / int(counts[0]) * 10_000 / 1e6, 2) for k, v in sizes.items() if k.endswith("bytes")
            },
            "tables": table_sizes(db_file),
        }
        say(f"{cp:,}: {json.dumps({k: v for k, v in out['size'][str(cp)].items() if k != 'tables'})}")
    return memory
