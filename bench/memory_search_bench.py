"""Memory search quality: recall@10 and MRR on labelled queries built from real agent sessions.

The real session fixtures (``$HEADROOM_SHARED/fixtures/sessions``: Claude Code, Codex and Gemini CLI logs) are
ingested and fed into a fresh store as the daemon does, and every item is embedded (``--embedder numpy``, the
real all-MiniLM-L6-v2; ``hash`` for a quick run without the model). Two families of labelled queries:

- **topic**: for each file an agent read, the words of its name and folder ("http retry" for
  ``src/http/retry.py``); the answer is that file's item.
- **mention**: each later prompt that names a file an agent read in the same project; the prompt's text is the
  query and the file's item the answer (the prompt's own item is left out of its ranking: it is the query).

Each query runs in its project, k = 10, in four modes: full text, vectors, hybrid, and hybrid without the rank
corrections of memory/ranking.py (``before``). Reported per family and mode: recall@10, MRR, and the share of
queries whose answer is first.

    HEADROOM_SHARED=/work/shared .venv/bin/python bench/memory_search_bench.py --json bench/results/X.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select

REPO = Path(__file__).resolve().parents[1]
_WORD = re.compile(r"[a-z0-9]+")


def _roots(shared: Path) -> dict[str, list[Path]]:
    base = shared / "fixtures" / "sessions"
    roots = {
        "claude": base / "claude" / "projects",
        "codex": base / "codex" / "sessions",
        "gemini": base / "gemini" / "tmp",
    }
    return {agent: [root] for agent, root in roots.items() if root.is_dir()}


def build(shared: Path, work: Path, embedder_name: str) -> tuple[Any, Any, float]:
    """A store of the fixtures' items, embedded: (Memory with vectors, Memory text-only, seconds to embed)."""
    os.environ["HEADROOM_HOME"] = str(work / "home")
    from headroom.daemon.ingest import Ingestor
    from headroom.daemon.memory_feed import MemoryFeed
    from headroom.memory.api import Memory
    from headroom.memory.db import open_database
    from headroom.memory.embed import HashEmbedder, SentenceTransformerEmbedder

    db = open_database(f"sqlite:///{work / 'memory.db'}")
    Ingestor(db, _roots(shared)).scan()
    embedder = HashEmbedder() if embedder_name == "hash" else SentenceTransformerEmbedder(threads=1)
    memory = Memory(db, embedder=embedder, index_dir=work / "index")
    MemoryFeed(memory.store).run()
    started = time.perf_counter()
    memory.embed_pending()
    return memory, Memory(db), time.perf_counter() - started


def labelled(memory: Any) -> list[dict[str, Any]]:
    """The labelled queries (see the module docstring)."""
    from headroom.memory.models import MemoryItemRow, MemorySightingRow

    with memory.store.db.sessions() as s:
        rows = s.execute(
            select(
                MemoryItemRow.id,
                MemoryItemRow.kind,
                MemoryItemRow.title,
                MemoryItemRow.content,
                MemorySightingRow.project,
            )
            .join(MemorySightingRow, MemorySightingRow.item_id == MemoryItemRow.id)
            .where(MemoryItemRow.kind.in_(["file_read", "instruction"]))
        ).all()
    files: dict[tuple[str, str], int] = {}  # (project, file name) -> item
    prompts: list[tuple[int, str, str]] = []
    queries: list[dict[str, Any]] = []
    seen: set[tuple[int, str]] = set()
    for item_id, kind, title, content, project in rows:
        if (item_id, project) in seen:
            continue
        seen.add((item_id, project))
        if kind == "file_read" and title:
            path = PurePosixPath(title.lower())
            files.setdefault((project, path.name), item_id)
            words = [w for w in _WORD.findall(path.stem) + _WORD.findall(path.parent.name) if len(w) > 2]
            if words:
                q = " ".join(dict.fromkeys(words))
                queries.append({"family": "topic", "q": q, "project": project, "want": item_id})
        elif kind == "instruction":
            prompts.append((item_id, content, project))
    for item_id, content, project in prompts:
        lowered = content.lower()
        for (file_project, name), file_id in files.items():
            if file_project == project and len(name) > 4 and name in lowered:
                queries.append(
                    {"family": "mention", "q": content[:300], "project": project, "want": file_id, "skip": item_id}
                )
                break
    return queries


def evaluate(memory: Any, text_only: Any, queries: list[dict[str, Any]]) -> dict[str, Any]:
    from headroom.memory import search

    def ranked(mode: str, q: dict[str, Any]) -> list[int]:
        if mode == "vector":
            allowed = memory.searcher.visible(q["project"])
            ids = [i for i, _ in memory.vectors.search(q["q"], 11, allowed)]
        else:
            source = text_only if mode == "text" else memory
            ids = [h.item.id for h in source.search(q["q"], project=q["project"], k=11).hits]
        return [i for i in ids if i != q.get("skip")][:10]

    out: dict[str, Any] = {}
    rerank = search.rerank
    for mode in ("text", "vector", "hybrid", "before"):
        search.rerank = (lambda *a: None) if mode == "before" else rerank  # type: ignore[assignment]
        by_family: dict[str, list[int | None]] = {}
        latencies: list[float] = []
        for q in queries:
            t = time.perf_counter()
            ids = ranked(mode, q)
            latencies.append((time.perf_counter() - t) * 1000)
            rank = ids.index(q["want"]) + 1 if q["want"] in ids else None
            by_family.setdefault(q["family"], []).append(rank)
        search.rerank = rerank  # type: ignore[assignment]
        out[mode] = {
            family: {
                "queries": len(ranks),
                "recall@10": round(sum(r is not None for r in ranks) / len(ranks), 3),
                "mrr": round(sum(1 / r for r in ranks if r) / len(ranks), 3),
                "first": round(sum(r == 1 for r in ranks) / len(ranks), 3),
            }
            for family, ranks in sorted(by_family.items())
        }
        out[mode]["p50_ms"] = round(statistics.median(latencies), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--embedder", choices=("numpy", "hash"), default="numpy")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    shared = Path(os.environ.get("HEADROOM_SHARED", REPO.parent / "shared"))
    if not (shared / "fixtures" / "sessions").is_dir():
        sys.exit(f"no session fixtures under {shared} (set HEADROOM_SHARED)")
    with tempfile.TemporaryDirectory(prefix="hr-msb-") as tmp:
        memory, text_only, embed_s = build(shared, Path(tmp), args.embedder)
        queries = labelled(memory)
        result = {
            "embedder": args.embedder,
            "items": memory.store.stats()["items"] if hasattr(memory.store, "stats") else None,
            "embed_s": round(embed_s, 1),
            "queries": {f: sum(q["family"] == f for q in queries) for f in ("topic", "mention")},
            "results": evaluate(memory, text_only, queries),
        }
        memory.store.db.close()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
