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

This file parses the command line, runs the parts and writes the report; the parts live beside it:
``memory_bench_corpus.py`` (the synthetic items and queries), ``memory_bench_load.py`` (the bulk load, sizes and
:class:`QueryRealItemsHash`), ``memory_bench_search.py``, ``memory_bench_lag.py``, ``memory_bench_peer.py`` and
``memory_bench_measure.py`` (small helpers); the embed part is here, as this script is its child process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))  # tests.helpers writes the Claude Code records the lag part appends

from bench_report import machine, source_digest  # noqa: E402
from memory_bench_corpus import Corpus  # noqa: E402
from memory_bench_lag import part_lag  # noqa: E402
from memory_bench_measure import rss_mb, say  # noqa: E402
from memory_bench_peer import part_peer  # noqa: E402
from memory_bench_search import part_search_size  # noqa: E402

from headroom.memory.embed import SentenceTransformerEmbedder  # noqa: E402

PARTS = ("search", "embed", "size", "lag", "peer")


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
            f"{lag['vector_max_after_first_s']} s). Lost: {lag['lost']}. Memory worker "
            f"{lag.get('worker', 'round ' + str(lag.get('round_seconds')) + ' s')}, "
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
