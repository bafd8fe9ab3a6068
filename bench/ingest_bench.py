"""Ingestion benchmarks (issue 2): backfill throughput, live lag, idle cost, stats latency, vs ccusage.

These are measurements, not tests: timings on a shared 2-core machine swing too much to assert on, so they
are recorded (``bench/results/<date>-ingest[-<N>mb].md`` and a JSON twin) and compared by hand with the
targets. Every figure comes from the real CLI run as a subprocess, as a user would run it:

* **backfill**: ``headroom ingest --json`` on a fresh ``HEADROOM_HOME`` (empty DB) over a corpus built by
  ``bench/corpus.py``; MB/s from the bytes it reports read, over its own scan time and over wall time;
* **peer**: ``ccusage daily --json --by-agent --offline -z UTC`` over the same logs. The team rule is to
  quote medians and ratios against the peer measured in the same run, so runs alternate (headroom,
  ccusage, headroom, …) and see the same background load;
* **parity**: the last ccusage report vs ``headroom stats --by day --json`` per (day, agent) on input,
  output, cache-read and cache-creation tokens;
* **stats**: ``headroom stats --by day --json`` on the ingested DB, with ``--no-refresh`` (the query
  alone) and without it (the default, which first stats every log file to catch up);
* **live**: ``headroom daemon run`` on a small corpus; once it has backfilled, lines carrying unique
  markers are appended one at a time to a Claude, a Codex and a Gemini log and the DB is polled read-only
  (every 5 ms) until each marker's row is there;
* **idle**: the daemon's CPU time and RSS over a quiet window (``/proc``), then SIGTERM: time to exit and
  its exit code.

The corpus stays in the file cache for both tools ("cold" means an empty database, not a cold disk).

Usage: ``python bench/ingest_bench.py [--mb 200] [--runs 3] [--parts backfill,ccusage,stats,live]``;
``--baseline CMD`` also backfills with another headroom command (``bench/baseline.py`` makes one for any commit)
in turn with this code, and compares the two databases row for row.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import corpus
import mirror_compare
from bench_report import _version, machine, markdown, source_digest
from benchlib import (
    DEFAULT_MB,
    PARTS,
    REPO,
    TOKEN_FIELDS,
    ccusage_binary,
    ccusage_env,
    checked,
    db_bytes,
    headroom_binary,
    headroom_env,
    median,
    run,
    say,
)
from live_bench import bench_live


def _fresh(base: Path, previous: Path | None) -> Path:
    """An empty HEADROOM_HOME at ``base``; the previous run's is removed (one DB of each kind on disk at a time)."""
    shutil.rmtree(base, ignore_errors=True)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
    return base


def _backfill(cmd: list[str], env: dict[str, str], work: Path, base: Path) -> dict[str, Any]:
    result = checked(run(cmd, env, work), "headroom ingest")
    summary = json.loads(result.stdout)
    return {
        "wall_s": round(result.wall_s, 3),
        "scan_s": summary["seconds"],
        "cpu_s": round(result.cpu_s, 3),
        "max_rss_mb": round(result.max_rss_mb, 1),
        "bytes_read": summary["bytes_read"],
        "files": summary["files"],
        "records": summary["records"],
        "problems": summary["problems"],
        "mb_s_scan": round(summary["bytes_read"] / corpus.MB / summary["seconds"], 2),
        "mb_s_wall": round(summary["bytes_read"] / corpus.MB / result.wall_s, 2),
        "db_mb": round(db_bytes(base) / corpus.MB, 1),
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "runs": runs,
        "median_mb_s_scan": round(median([r["mb_s_scan"] for r in runs]), 2),
        "median_mb_s_wall": round(median([r["mb_s_wall"] for r in runs]), 2),
        "median_wall_s": round(median([r["wall_s"] for r in runs]), 3),
        "median_cpu_s": round(median([r["cpu_s"] for r in runs]), 3),
        "median_max_rss_mb": round(median([r["max_rss_mb"] for r in runs]), 1),
    }


def bench_backfill_and_peer(args: argparse.Namespace, logs: Path, work: Path, report: dict[str, Any]) -> Path | None:
    """Alternate cold backfills and ccusage runs; return the last backfilled HEADROOM_HOME."""
    headroom, ccusage = headroom_binary(), ccusage_binary(args.ccusage)
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    do_backfill, do_peer = "backfill" in args.parts, "ccusage" in args.parts and ccusage is not None
    if "ccusage" in args.parts and ccusage is None:
        report["ccusage"] = {"skipped": "ccusage not found (make tools, or --ccusage PATH)"}
    backfills: list[dict[str, Any]] = []
    baselines: list[dict[str, Any]] = []
    peers: list[dict[str, Any]] = []
    last_base: Path | None = None
    last_baseline: Path | None = None
    # With a baseline both write rows tagged with one machine id, so their databases can be compared row for row.
    machine_id = {"HEADROOM_MACHINE": "bench"} if args.baseline else {}
    for index in range(args.runs):
        if do_backfill and args.baseline:
            last_baseline = _fresh(work / f"hr-baseline-{index}", last_baseline)
            env = {**headroom_env(last_baseline, home, logs), **machine_id}
            baselines.append(_backfill([args.baseline, "ingest", "--json"], env, work, last_baseline))
            say(f"baseline backfill {index + 1}/{args.runs}: {baselines[-1]}")
        if do_backfill:
            base = _fresh(work / f"hr-backfill-{index}", last_base)
            env = {**headroom_env(base, home, logs), **machine_id}
            backfills.append(_backfill([headroom, "ingest", "--json"], env, work, base))
            say(f"backfill {index + 1}/{args.runs}: {backfills[-1]}")
            last_base = base
        if do_peer:
            assert ccusage is not None
            cmd = [ccusage, "daily", "--json", "--by-agent", "--offline", "-z", "UTC"]
            result = checked(run(cmd, ccusage_env(home, logs), work), "ccusage")
            peers.append(
                {
                    "wall_s": round(result.wall_s, 3),
                    "cpu_s": round(result.cpu_s, 3),
                    "max_rss_mb": round(result.max_rss_mb, 1),
                }
            )
            (work / "ccusage-daily.json").write_text(result.stdout, encoding="utf-8")
            say(f"ccusage {index + 1}/{args.runs}: {peers[-1]}")
    if backfills:
        report["backfill"] = _summary(backfills)
    if baselines and last_base is not None and last_baseline is not None:
        differences = mirror_compare.compare(last_baseline / "headroom.db", last_base / "headroom.db")
        report["baseline"] = {
            "command": args.baseline,
            **_summary(baselines),
            "same_rows": not differences,
            "differences": differences[:20],
        }
        say(f"baseline vs this: {'the same rows' if not differences else f'{len(differences)} differences'}")
        shutil.rmtree(last_baseline, ignore_errors=True)
    if peers:
        report["ccusage"] = {
            "version": _version([ccusage or "ccusage", "--version"]),
            "runs": peers,
            "median_wall_s": round(median([r["wall_s"] for r in peers]), 3),
            "median_cpu_s": round(median([r["cpu_s"] for r in peers]), 3),
            "median_max_rss_mb": round(median([r["max_rss_mb"] for r in peers]), 1),
        }
    return last_base


def bench_stats(args: argparse.Namespace, base: Path, logs: Path, work: Path, report: dict[str, Any]) -> None:
    """Warm ``headroom stats`` on the ingested DB: the query alone, then with the default catch-up scan."""
    headroom = headroom_binary()
    env = headroom_env(base, work / "home", logs)
    figures: dict[str, Any] = {"db_mb": round(db_bytes(base) / corpus.MB, 1)}
    output = ""
    for label, extra in (("no_refresh", ["--no-refresh"]), ("refresh", [])):
        walls = []
        for _ in range(args.stats_runs):
            result = checked(run([headroom, "stats", "--by", "day", "--json", *extra], env, work), "headroom stats")
            walls.append(result.wall_s)
            output = result.stdout if label == "no_refresh" else output
        figures[label] = {"runs_s": [round(w, 3) for w in walls], "median_s": round(median(walls), 3)}
        say(f"stats {label}: {figures[label]}")
    (work / "headroom-stats.json").write_text(output, encoding="utf-8")
    report["stats"] = figures
    peer = work / "ccusage-daily.json"
    if peer.exists() and "ccusage" in report and "runs" in report["ccusage"]:
        report["parity"] = parity(json.loads(peer.read_text(encoding="utf-8")), json.loads(output))


def parity(ccusage_report: dict[str, Any], headroom_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (day, agent): ccusage's four token totals against headroom's; every difference listed."""
    theirs: dict[tuple[str, str], tuple[int, ...]] = {}
    for day in ccusage_report.get("daily", []):
        for agent in day.get("agents", []):
            tokens = (
                agent["inputTokens"],
                agent["outputTokens"],
                agent["cacheReadTokens"],
                agent["cacheCreationTokens"],
            )
            if any(tokens):
                theirs[(day["period"], agent["agent"])] = tokens
    ours = {
        (row["day"], row["agent"]): (
            row["input_tokens"],
            row["output_tokens"],
            row["cache_read_tokens"],
            row["cache_creation_tokens"],
        )
        for row in headroom_rows
        if any(row[f"{name}_tokens"] for name in TOKEN_FIELDS)  # days with tool calls but no tokens
    }
    mismatches = []
    for key in sorted(set(theirs) | set(ours)):
        a, b = theirs.get(key), ours.get(key)
        if a != b:
            diff = {
                name: {"ccusage": x, "headroom": y, "diff": y - x}
                for name, x, y in zip(TOKEN_FIELDS, a or (0, 0, 0, 0), b or (0, 0, 0, 0))
                if x != y
            }
            mismatches.append({"day": key[0], "agent": key[1], "only_in": _only(a, b), "fields": diff})
    totals = {
        name: {"ccusage": sum(v[i] for v in theirs.values()), "headroom": sum(v[i] for v in ours.values())}
        for i, name in enumerate(TOKEN_FIELDS)
    }
    return {"rows_ccusage": len(theirs), "rows_headroom": len(ours), "mismatches": mismatches, "totals": totals}


def _only(a: object, b: object) -> str | None:
    return "headroom" if a is None else "ccusage" if b is None else None


# -- live lag, idle, shutdown ----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="headroom ingestion benchmarks (see bench/README.md)")
    parser.add_argument("--mb", type=float, default=DEFAULT_MB, help="corpus size in MB (default 200)")
    parser.add_argument("--runs", type=int, default=3, help="cold backfills and ccusage runs (default 3)")
    parser.add_argument("--stats-runs", type=int, default=5, help="runs of each stats variant (default 5)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--work", type=Path, default=Path("/tmp/headroom-bench"), help="scratch folder (corpora, DBs)")
    parser.add_argument("--fixtures", type=Path, help="the shared fixtures (default ../shared/fixtures)")
    parser.add_argument("--ccusage", help="the ccusage binary (default .tools/…/ccusage, then PATH)")
    parser.add_argument("--live-mb", type=float, default=5, help="corpus for the live daemon (default: 1 replica)")
    parser.add_argument("--appends", type=int, default=100, help="lines appended per agent (default 100)")
    parser.add_argument("--rate", type=float, default=5.0, help="appends per second, all agents (default 5)")
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="idle window (default 30)")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results", help="where results go")
    parser.add_argument("--no-save", action="store_true", help="print the report instead of saving it")
    parser.add_argument(
        "--baseline",
        help="another headroom command (the code before a change) to backfill in turn with this one; the two "
        "databases are then compared row for row (bench/mirror_compare.py)",
    )
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"date": datetime.now(timezone.utc).date().isoformat(), "machine": machine()}
    report["args"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    logs = work / f"corpus-{int(args.mb)}mb"
    needs_corpus = {"backfill", "ccusage", "stats"} & set(args.parts)
    if needs_corpus:
        say(f"corpus: {logs} ({args.mb:.0f} MB)")
        manifest = corpus.build(logs, args.mb, args.fixtures)
    else:
        manifest = corpus.build(work / "live-corpus", args.live_mb, args.fixtures, quiet=True)
    report["corpus"] = {
        "path": str(logs),
        "replicas": manifest.replicas,
        "files": manifest.files,
        "mb": round(manifest.bytes / corpus.MB, 1),
        "log_mb": round(manifest.log_bytes / corpus.MB, 1),
        "by_agent_mb": {k: round(v / corpus.MB, 1) for k, v in manifest.bytes_by_agent.items()},
    }
    h, w = "HEADROOM_HOME=<fresh dir with config.toml: agents.*.homes = the corpus>", "HOME=<empty dir>"
    report["commands"] = [
        f"python bench/corpus.py {logs} --mb {args.mb:g}",
        f"{w} {h} headroom ingest --json",
        f"{w} CLAUDE_CONFIG_DIR={logs}/claude CODEX_HOME={logs}/codex GEMINI_DATA_DIR={logs}/gemini "
        "ccusage daily --json --by-agent --offline -z UTC",
        f"{w} {h} headroom stats --by day --json --no-refresh",
        f"{w} {h} headroom stats --by day --json",
        f"{w} {h} headroom daemon run   # on its own corpus (--live-mb {args.live_mb:g}, whole replicas), "
        "then appends, an idle window, SIGTERM",
        "python bench/ingest_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
    ]
    base: Path | None = None
    if {"backfill", "ccusage"} & set(args.parts):
        base = bench_backfill_and_peer(args, logs, work, report)
    if "stats" in args.parts:
        if base is None:  # stats alone: backfill once to have a DB
            base = work / "hr-stats"
            shutil.rmtree(base, ignore_errors=True)
            env = headroom_env(base, work / "home", logs)
            checked(run([headroom_binary(), "ingest", "--json"], env, work), "headroom ingest")
        bench_stats(args, base, logs, work, report)
    if "live" in args.parts:
        bench_live(args, work, report)
    report["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report["machine"]["source_digest_end"] = source_digest()
    if report["machine"]["source_digest_end"] != report["machine"]["source_digest"]:
        say("warning: headroom's source changed during the run; its figures mix two versions")
    text = markdown(report)
    if args.no_save:
        print(text)
        return
    args.results.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.mb == DEFAULT_MB else f"-{int(args.mb)}mb"
    stem = args.results / f"{report['date']}-ingest{suffix}"
    stem.with_suffix(".md").write_text(text, encoding="utf-8")
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    say(f"wrote {stem}.md and {stem}.json")


if __name__ == "__main__":
    main()
