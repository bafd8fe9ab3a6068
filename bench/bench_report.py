"""Machine facts and the Markdown report of the ingestion benchmark."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from benchlib import REPO, TARGETS


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, IndexError):
        memory = f"{int(Path('/proc/meminfo').read_text().split()[1]) / 1024**2:.1f} GiB"
    return {
        "nproc": os.cpu_count(),
        "cpu": model or platform.processor(),
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "headroom_commit": _version(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
        "source_digest": source_digest(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def source_digest() -> str:
    """A hash of the package's source: the tree is shared with people editing it, so a run records what it
    measured and flags a change in the middle of the run."""
    digest = hashlib.blake2b(digest_size=8)
    for package in ("daemon", "learn", "memory", "engine", "migrations"):
        for path in sorted((REPO / package).rglob("*.py")):
            digest.update(str(path.relative_to(REPO)).encode())
            with contextlib.suppress(OSError):
                digest.update(path.read_bytes())
    return digest.hexdigest()


def _version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60).stdout.strip()
    except OSError:
        return "?"


def _fmt(value: Any, unit: str = "") -> str:
    return "–" if value is None else f"{value}{unit}"


def _verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("met" if ok else "**missed**")


def markdown(report: dict[str, Any]) -> str:
    """The human half of the results: headline table first, then the detail behind each figure."""
    m, c = report["machine"], report["corpus"]
    back, peer, stats = report.get("backfill"), report.get("ccusage"), report.get("stats")
    live, par = report.get("live"), report.get("parity")
    lines = [
        f"# Ingestion benchmark, {report['date']} ({c['log_mb']} MB of logs)",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['memory']}, Linux {m['kernel']}, Python {m['python']}, "
        f"SQLite {m['sqlite']}; headroom {m['headroom_commit']}; load average {m['loadavg_start']} at start, "
        f"{m.get('loadavg_end')} at end (other work shares this machine: wall times carry that noise, CPU "
        "times much less).",
        "",
        f"Source digest {m['source_digest']}"
        + (
            f" at start, **{m['source_digest_end']} at end: the code changed during the run**."
            if m.get("source_digest_end") not in (None, m["source_digest"])
            else " (unchanged during the run)."
        ),
        "",
        f"Corpus: `bench/corpus.py`, {c['replicas']} replicas of the shared fixtures with fresh ids, "
        f"{c['files']} files, {c['log_mb']} MB of session logs ({c['mb']} MB on disk; claude "
        f"{c['by_agent_mb'].get('claude')} MB, codex {c['by_agent_mb'].get('codex')} MB, gemini "
        f"{c['by_agent_mb'].get('gemini')} MB).",
        "",
        "## Headline (medians)",
        "",
        "| what | result | target | |",
        "|---|---|---|---|",
    ]
    if back:
        lines.append(
            f"| cold backfill (`headroom ingest`, empty DB) | {back['median_mb_s_scan']} MB/s "
            f"({back['median_mb_s_wall']} MB/s over wall time incl. start-up) | ≥ 20 MB/s | "
            f"{_verdict(back['median_mb_s_scan'] >= TARGETS['backfill_mb_s'])} |"
        )
    if stats:
        big = c["log_mb"] >= 1000  # 1 GB of session logs (decimal, as `headroom ingest` reports MB)
        lines.append(
            f"| `headroom stats --by day --json --no-refresh` | {stats['no_refresh']['median_s']} s on "
            f"{c['log_mb']} MB of logs (DB {stats['db_mb']} MB) | ≤ 1 s on ≥ 1 GB | "
            f"{_verdict(stats['no_refresh']['median_s'] <= TARGETS['stats_s']) if big else 'corpus < 1 GB'} |"
        )
        refreshed = stats["refresh"]["median_s"]
        lines.append(
            f"| `headroom stats --by day --json` (default: catch-up scan first) | {refreshed} s "
            f"| ≤ 1 s on ≥ 1 GB | {_verdict(refreshed <= TARGETS['stats_s']) if big else 'corpus < 1 GB'} |"
        )
    if live:
        lag = live["lag"]["all"]
        idle = live["idle"]
        lines += [
            f"| live lag, append → row visible | p50 {lag['p50_s']} s, p95 {lag['p95_s']} s, max {lag['max_s']} s "
            f"({lag['n']} lines, {lag['lost']} lost) | p95 ≤ 1 s | "
            f"{_verdict(lag['p95_s'] <= TARGETS['live_p95_s'] and not lag['lost'])} |",
            f"| idle CPU (daemon, {idle['seconds']} s quiet) | {idle['cpu_pct']} % of one core, "
            f"{idle['wakeups_per_s']} wake-ups/s | ~0 % | {_verdict(idle['cpu_pct'] < TARGETS['idle_cpu_pct'])} |",
            f"| idle RSS (daemon) | {idle['rss_start_mb']} → {idle['rss_end_mb']} MB (peak {idle['peak_rss_mb']} MB) "
            f"| ≤ 150 MB | {_verdict(max(idle['rss_end_mb'], idle['rss_start_mb']) <= TARGETS['idle_rss_mb'])} |",
            f"| shutdown on SIGTERM | {live['shutdown']['seconds']} s, exit code {live['shutdown']['exit_code']} "
            f"| clean, exit 0 | {_verdict(live['shutdown']['exit_code'] == 0)} |",
        ]
    if par:
        ok = not par["mismatches"]
        lines.append(
            f"| token parity with ccusage (per day and agent) | {par['rows_ccusage']} rows, "
            f"{len(par['mismatches'])} differ | equal | {_verdict(ok)} |"
        )
    if back and peer:
        lines += ["", "## Against the peer (ccusage, measured in the same run)", ""]
        lines += [
            "| | median wall | median CPU | peak RSS |",
            "|---|---|---|---|",
            f"| headroom cold backfill (`headroom ingest --json`, empty DB) | {back['median_wall_s']} s | "
            f"{back['median_cpu_s']} s | {back['median_max_rss_mb']} MB |",
            f"| ccusage {peer['version'].split()[-1]} (`ccusage daily --json --by-agent --offline -z UTC`) | "
            f"{peer['median_wall_s']} s | {peer['median_cpu_s']} s | {peer['median_max_rss_mb']} MB |",
        ]
        if stats:
            lines += [
                "| headroom warm (`headroom stats --by day --json --no-refresh`) | "
                f"{stats['no_refresh']['median_s']} s | | |",
                f"| headroom warm, default (`headroom stats --by day --json`) | {stats['refresh']['median_s']} s | | |",
            ]
        lines += [""]
        ratio = back["median_wall_s"] / peer["median_wall_s"]
        lines.append(
            f"* Cold, headroom ÷ ccusage: **{ratio:.1f}×** the wall time "
            f"({back['median_cpu_s'] / peer['median_cpu_s']:.1f}× the CPU time). headroom parses every log into a "
            "queryable mirror (events, tool calls, usage) once; ccusage re-reads every log for every report."
        )
        if stats:
            warm = stats["no_refresh"]["median_s"] / peer["median_wall_s"]
            warm_r = stats["refresh"]["median_s"] / peer["median_wall_s"]
            lines.append(
                f"* Warm, headroom ÷ ccusage: **{warm:.2f}×** the wall time with `--no-refresh`, {warm_r:.2f}× "
                "with the default catch-up scan (below 1: headroom answers faster)."
            )
    if back:
        lines += [
            "",
            "## Backfill runs",
            "",
            "| run | wall s | scan s | CPU s | MB/s (scan) | MB/s (wall) | "
            "peak RSS MB | files | records | problems | DB MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for i, r in enumerate(back["runs"], 1):
            lines.append(
                f"| {i} | {r['wall_s']} | {r['scan_s']} | {r['cpu_s']} | {r['mb_s_scan']} | {r['mb_s_wall']} | "
                f"{r['max_rss_mb']} | {r['files']} | {r['records']} | {r['problems']} | {r['db_mb']} |"
            )
    base = report.get("baseline")
    if back and base:
        lines += ["", f"## Against the baseline (`{base['command']}`, backfilled in turn with this code)", ""]
        lines += [
            "| | median wall | median CPU | MB/s (wall) | MB/s (scan) |",
            "|---|---|---|---|---|",
            f"| baseline | {base['median_wall_s']} s | {base['median_cpu_s']} s | {base['median_mb_s_wall']} | "
            f"{base['median_mb_s_scan']} |",
            f"| this code | {back['median_wall_s']} s | {back['median_cpu_s']} s | {back['median_mb_s_wall']} | "
            f"{back['median_mb_s_scan']} |",
            "",
            f"* This code ÷ baseline: {back['median_wall_s'] / base['median_wall_s']:.2f}× the wall time, "
            f"{back['median_cpu_s'] / base['median_cpu_s']:.2f}× the CPU time.",
            "* The last two databases hold "
            + ("**the same rows** (bench/mirror_compare.py)." if base["same_rows"] else "**different rows**:"),
        ]
        lines += [f"  * {line}" for line in base["differences"]]
        runs = ", ".join(f"{r['wall_s']}/{r['cpu_s']}" for r in base["runs"])
        lines += ["", f"Baseline runs (wall s / CPU s): {runs}"]
    if peer:
        lines += ["", "ccusage runs (wall s): " + ", ".join(str(r["wall_s"]) for r in peer["runs"])]
    if stats:
        lines += [
            "",
            "Stats runs (s): `--no-refresh` "
            + ", ".join(map(str, stats["no_refresh"]["runs_s"]))
            + "; default "
            + ", ".join(map(str, stats["refresh"]["runs_s"])),
        ]
    if par:
        lines += ["", "## Token parity", ""]
        lines.append(
            "Totals over the corpus: "
            + "; ".join(f"{k} ccusage {v['ccusage']:,} / headroom {v['headroom']:,}" for k, v in par["totals"].items())
            + "."
        )
        if par["mismatches"]:
            lines += ["", "| day | agent | field | ccusage | headroom | headroom − ccusage |"]
            lines += ["|---|---|---|---|---|---|"]
            for item in par["mismatches"]:
                for name, d in item["fields"].items():
                    cells = (
                        item["day"],
                        item["agent"],
                        name,
                        f"{d['ccusage']:,}",
                        f"{d['headroom']:,}",
                        f"{d['diff']:+,}",
                    )
                    lines.append("| " + " | ".join(cells) + " |")
        else:
            lines.append("Every (day, agent) row has the same input, output, cache-read and cache-creation tokens.")
    if live:
        lines += [
            "",
            "## Live daemon",
            "",
            f"`headroom daemon run` on a {live['corpus_mb']} MB corpus ({live['corpus_files']} files): ready after "
            f"{live['ready_s']} s ({live['backfill_log_line']}); RSS after backfill "
            f"{live['after_backfill']['rss_mb']} MB (peak {live['after_backfill']['hwm_mb']} MB), "
            f"{live['after_backfill']['threads']} threads.",
            "",
            f"{report['args']['appends']} lines per agent appended round-robin at {report['args']['rate']} Hz in "
            "all (one `write` each), DB polled read-only every 5 ms:",
            "",
            "| agent | lines | lost | p50 s | p95 s | max s |",
            "|---|---|---|---|---|---|",
        ]
        for agent, lag in live["lag"].items():
            cells = (agent, lag["n"], lag["lost"], lag["p50_s"], lag["p95_s"], _fmt(lag["max_s"]))
            lines.append("| " + " | ".join(map(str, cells)) + " |")
        idle = live["idle"]
        lines += [
            "",
            f"Idle for {idle['seconds']} s: {idle['cpu_s']} CPU-seconds ({idle['cpu_pct']} %), "
            f"{idle['wakeups_per_s']} context switches/s over {idle['threads']} threads; RSS {idle['rss_start_mb']} → "
            f"{idle['rss_end_mb']} MB. SIGTERM → exit in {live['shutdown']['seconds']} s with code "
            f'{live["shutdown"]["exit_code"]} ("stopped" logged: {live["shutdown"]["logged_stopped"]}).',
        ]
    lines += ["", "## Commands", ""]
    lines += [f"    {cmd}" for cmd in report["commands"]]
    return "\n".join(lines) + "\n"
