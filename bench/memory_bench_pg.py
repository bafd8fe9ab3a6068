"""Memory search on PostgreSQL against SQLite on the same items and labelled queries (issue 17).

The corpus: every item the memory feed makes from the real public session logs (``fixtures/sessions`` and
``fixtures/sessions-more``: prompts, file reads, command outputs, fetched pages of all three agents, in their
own projects), padded to ``--items`` with the memory benchmark's synthetic generator (code, logs, command
output, prose over 50 projects; :mod:`memory_bench_corpus`) so the index holds many items that share words
with the real ones. The same drafts, in the same order, go into a fresh SQLite file and a fresh PostgreSQL
database (a local ``pgserver`` with pgvector: PostgreSQL 16).

The labelled queries are made from real items only (seeded): a third are 2-3 words drawn from the item's words,
a third a file's name (file reads) or 2 words, a third a run of 4 consecutive words of a prompt or note. A query
runs in its source item's project, as an agent's search does, and counts as a hit when that item is among the
first 10; the reciprocal rank of the item (0 past 10) gives the MRR. Both backends answer every query in the
same run, text-only (no embeddings: the text sides are what differ), then optionally (``--hybrid``) with the
deterministic hash embedder so the vector side (local index vs pgvector HNSW) is timed too.

    python bench/memory_bench_pg.py --items 20000 --json bench/results/<date>-memory-pg.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import percentile
from memory_bench_corpus import Corpus
from memory_bulk import FastHashEmbedder, Loader, drop_pg_indexes
from sqlalchemy import text

from headroom.memory.api import Memory
from headroom.memory.db import Database, open_database
from headroom.memory.embed import HashEmbedder
from headroom.memory.identity import current_user
from headroom.memory.models import MemoryItemRow, MemorySightingRow
from headroom.memory.pgsearch import Scope
from headroom.memory.records import Draft

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{4,}")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def real_drafts(shared: Path, work: Path) -> list[Draft]:
    """Ingest the real logs into a scratch SQLite DB, feed the memory, and read the items back as drafts."""
    db_file = work / "real.db"
    sets = [
        (
            shared / "fixtures/sessions/claude",
            shared / "fixtures/sessions/codex",
            shared / "fixtures/sessions/gemini/tmp",
        ),
        (
            shared / "fixtures/sessions-more/.claude",
            shared / "fixtures/sessions-more/.codex",
            shared / "fixtures/sessions-more/.gemini/tmp",
        ),
    ]
    for n, (claude, codex, gemini_tmp) in enumerate(sets):
        home = work / f"gemini-home-{n}"
        (home / ".gemini").mkdir(parents=True, exist_ok=True)
        link = home / ".gemini" / "tmp"
        if not link.exists():
            link.symlink_to(gemini_tmp)
        env = dict(
            os.environ,
            CLAUDE_CONFIG_DIR=str(claude),
            CODEX_HOME=str(codex),
            GEMINI_CLI_HOME=str(home),
            HEADROOM_DATABASE_URL=f"sqlite:///{db_file}",
            HEADROOM_HOME=str(work / "headroom"),
        )
        headroom = str(Path(sys.executable).parent / "headroom")
        subprocess.run([headroom, "ingest"], env=env, check=True, capture_output=True)
    from headroom.daemon.memory_feed import MemoryFeed

    db = open_database(f"sqlite:///{db_file}")
    memory = Memory(db)
    MemoryFeed(memory.store).run()
    drafts: list[Draft] = []
    with db.sessions() as s:
        rows = s.query(MemoryItemRow).order_by(MemoryItemRow.id).all()
        first: dict[int, MemorySightingRow] = {}
        for sighting in s.query(MemorySightingRow).order_by(MemorySightingRow.id):
            first.setdefault(sighting.item_id, sighting)
        for item in rows:
            seen = first.get(item.id)
            if seen is None:
                continue
            drafts.append(
                Draft(
                    item.content,
                    item.kind,
                    project=seen.project,
                    agent=seen.agent,
                    session_key=seen.session_key,
                    tool_call_key=seen.tool_call_key,
                    path=seen.path,
                    title=item.title,
                    ts=seen.ts,
                    source="log",
                )
            )
    db.close()
    return drafts


def make_queries(drafts: list[Draft], n: int, seed: int) -> list[tuple[str, int, str]]:
    """(query, index of the source draft, family) for ``n`` real items with enough words to ask about."""
    r = random.Random(seed)
    usable = [i for i, d in enumerate(drafts) if len(set(_WORD.findall(d.content))) >= 6]
    picked = r.sample(usable, min(n, len(usable)))
    out: list[tuple[str, int, str]] = []
    for k, i in enumerate(picked):
        d = drafts[i]
        words = list(dict.fromkeys(_WORD.findall(d.content)))
        family = ("words", "name", "run")[k % 3]
        if family == "name" and d.kind == "file_read" and d.path:
            out.append((d.path.replace("\\", "/").rsplit("/", 1)[-1], i, "name"))
        elif family == "run":
            seq = d.content.split()
            start = r.randint(0, max(0, len(seq) - 4))
            out.append((" ".join(seq[start : start + 4]), i, "run"))
        else:
            out.append((" ".join(r.sample(words, min(len(words), r.randint(2, 3)))), i, "words"))
    return out


def measure(memory: Memory, queries: list[tuple[str, int, str]], ids: list[int], projects: list[str]) -> dict[str, Any]:
    hits, rr, ms = 0, 0.0, []
    by_family: dict[str, int] = {}
    for query, i, _family in queries:
        memory.search(query, project=projects[i], k=10)  # warm: the first search of a project loads caches
    for query, i, family in queries:
        t = time.perf_counter()
        result = memory.search(query, project=projects[i], k=10)
        ms.append((time.perf_counter() - t) * 1000)
        got = [h.item.id for h in result.hits]
        if ids[i] in got:
            hits += 1
            rr += 1 / (got.index(ids[i]) + 1)
            by_family[family] = by_family.get(family, 0) + 1
    return {
        "top10": hits,
        "queries": len(queries),
        "mrr": round(rr / len(queries), 3),
        "top10_by_family": by_family,
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "max_ms": round(max(ms), 2),
    }


def vector_measure(
    memory: Memory, name: str, queries: list[tuple[str, int, str]], ids: list[int], projects: list[str]
) -> dict[str, Any]:
    """The vector side alone (pgvector HNSW within the scope's filters, or the local index within the visible set)."""
    assert memory.vectors is not None
    vectors = memory.vectors

    def ask(query: str, project: str) -> list[tuple[int, float]]:
        if name == "postgresql":
            return vectors.search(query, 10, None, Scope(project, True, (), current_user()))
        return vectors.search(query, 10, memory.searcher.visible(project, True))

    for query, i, _family in queries:
        ask(query, projects[i])
    hits, rr, ms = 0, 0.0, []
    for query, i, _family in queries:
        t = time.perf_counter()
        got = [item for item, _score in ask(query, projects[i])]
        ms.append((time.perf_counter() - t) * 1000)
        if ids[i] in got:
            hits += 1
            rr += 1 / (got.index(ids[i]) + 1)
    return {
        "top10": hits,
        "mrr": round(rr / len(queries), 3),
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "max_ms": round(max(ms), 2),
    }


def load_all(loader: Loader, real: list[Draft], total: int, chunk: int, seed: int) -> list[int]:
    """Write ``total`` items: the real ones at seeded random places among synthetic ones; the real items' ids.

    A real item's id is then not simply among the first; items are generated and written a chunk at a time,
    never all held at once.
    """
    at = sorted(random.Random(seed).sample(range(total), len(real)))
    real_at = dict(zip(at, range(len(real))))
    real_ids: list[int] = [-1] * len(real)
    corpus = Corpus(seed)
    synthetic = 0
    t = time.perf_counter()
    for lo in range(0, total, chunk):
        drafts: list[Draft] = []
        owner: list[int] = []  # the real draft's index, or -1
        for pos in range(lo, min(total, lo + chunk)):
            if pos in real_at:
                drafts.append(real[real_at[pos]])
                owner.append(real_at[pos])
            else:
                made = corpus.item(synthetic).drafts
                synthetic += 1
                drafts.extend(made)
                owner.extend([-1] * len(made))
        for who, got in zip(owner, loader.write(drafts)):
            if who >= 0:
                real_ids[who] = got if got is not None else -1
        if lo // chunk % 10 == 0:
            say(f"  {min(total, lo + chunk)} / {total} items written, {time.perf_counter() - t:.0f} s")
    loader.finish()
    return real_ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=20_000, help="distinct items in all (real + synthetic)")
    ap.add_argument("--queries", type=int, default=80)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument(
        "--hybrid", action="store_true", help="also load hash-embedder vectors; time hybrid and vector search"
    )
    ap.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    ap.add_argument("--chunk", type=int, default=5000, help="items per bulk-load chunk")
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("HEADROOM_SHARED", "/work/shared")))
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--reuse", action="store_true", help="search the databases an earlier run left in --work")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="mbpg-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="xdg-"))
    # One identity for this process and the ingest it runs: the feed reads its own machine's rows only.
    os.environ.setdefault("HEADROOM_USER", "bench")
    os.environ.setdefault("HEADROOM_MACHINE", "bench-machine")
    started = time.perf_counter()

    say("ingesting and feeding the real logs")
    real = real_drafts(args.shared, work)
    queries = make_queries(real, args.queries, args.seed)
    total = max(args.items, len(real))
    say(f"{len(real)} real items, {total} items in all, {len(queries)} queries")

    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    backends: dict[str, Database] = {}
    server = None
    if "sqlite" in names:
        backends["sqlite"] = open_database(f"sqlite:///{work / 'bench.db'}")
    if "postgresql" in names:
        import pgserver

        server = pgserver.get_server(work / "pg", cleanup_mode="stop")
        if not args.reuse:
            server.psql("DROP DATABASE IF EXISTS bench")
            server.psql("CREATE DATABASE bench")
        socket_dir = server.get_uri().split("host=")[1]
        backends["postgresql"] = open_database(f"postgresql+psycopg://postgres@/bench?host={socket_dir}")
    loader = Loader(backends, FastHashEmbedder() if args.hybrid else None)
    projects = [d.project for d in real]
    # The query texts come from the logs (some from repositories whose licence forbids copying their text):
    # the results keep only each query's family, never the words.
    out: dict[str, Any] = {"real_items": len(real), "queries": [family for _q, _i, family in queries]}
    if args.reuse:  # the databases of an earlier run in --work: find the real items by their dedup key
        real_ids = loader.lookup(real)
        with next(iter(backends.values())).engine.connect() as conn:
            out["items"] = conn.execute(text("SELECT count(*) FROM memory_items")).scalar()
            out["sightings"] = conn.execute(text("SELECT count(*) FROM memory_sightings")).scalar()
    else:
        if "postgresql" in backends:
            drop_pg_indexes(backends["postgresql"])
        real_ids = load_all(loader, real, total, args.chunk, args.seed)
        out["items"], out["sightings"] = loader.next_item - 1, loader.next_sighting - 1
        out["load_s"] = round(sum(loader.seconds.values()), 1)
        out["load_parts_s"] = {k: round(v, 1) for k, v in loader.seconds.items()}
        say(f"loaded: {json.dumps(out['load_parts_s'])}")
    out["results"] = {name: {} for name in backends}
    for name, db in backends.items():
        say(f"text search on {name}")
        out["results"][name]["text"] = measure(Memory(db), queries, real_ids, projects)
    if args.hybrid:
        for name, db in backends.items():
            memory = Memory(db, embedder=HashEmbedder(), index_dir=work / f"index-{name}")
            if name == "sqlite":
                say("building the local vector index")
                t = time.perf_counter()
                assert memory.vectors is not None
                memory.vectors.index()
                out["results"][name]["index_s"] = round(time.perf_counter() - t, 1)
            say(f"vector and hybrid search on {name}")
            out["results"][name]["vector"] = vector_measure(memory, name, queries, real_ids, projects)
            out["results"][name]["hybrid"] = measure(memory, queries, real_ids, projects)
            memory.close()
    for db in backends.values():
        db.close()
    if server is not None:
        server.cleanup()
    out["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps({k: v for k, v in out.items() if k != "queries"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
