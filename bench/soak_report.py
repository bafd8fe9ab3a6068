"""The soak's verdicts and its markdown report, split from bench/soak_bench.py (the runner)."""

from __future__ import annotations

import json
from typing import Any

TARGETS = {"rss_slope_mb_per_10min": 2.0, "fd_slope_per_10min": 1.0, "errors": 0, "idle_cpu_pct": 1.0}


def slope_per_10min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value), per 600 s."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return round(sum((x - mx) * (y - my) for x, y in points) / sxx * 600, 3)


def series_summary(samples: list[dict[str, Any]], key: str, warmup_s: float) -> dict[str, Any]:
    after = [s for s in samples if s["t_s"] >= warmup_s] or samples
    values = [s[key] for s in samples]
    return {
        "first_sample": values[0] if values else None,
        "start_after_warmup": after[0][key] if after else None,
        "end": values[-1] if values else None,
        "min": min(values) if values else None,
        "max": max(values) if values else None,
        "slope_per_10min_after_warmup": slope_per_10min([(s["t_s"], float(s[key])) for s in after]),
    }


def verdicts(r: dict[str, Any]) -> dict[str, bool]:
    rss, fds = r["rss_mb"]["slope_per_10min_after_warmup"], r["fds"]["slope_per_10min_after_warmup"]
    return {
        "rss_flat": rss is not None and rss <= TARGETS["rss_slope_mb_per_10min"],
        "fds_flat": fds is not None and fds <= TARGETS["fd_slope_per_10min"] and r["fds"]["end"] <= r["fds"]["max"],
        "zero_errors": r["errors"]["total"] == 0,
        "nothing_lost": r["db"]["lost"] == 0 and r["db"]["usage_rows"] == r["db"]["usage_expected"],
        "idle_cpu": r["idle"]["cpu_pct"] <= TARGETS["idle_cpu_pct"],
        "clean_shutdown": r["shutdown"]["exit_code"] == 0,
    }


def markdown(r: dict[str, Any]) -> str:
    s, e, d, i = r["soak"], r["errors"], r["db"], r["idle"]
    rss, fds, thr = r["rss_mb"], r["fds"], r["threads"]
    m = r["machine"]
    lines = [
        f"# Daemon soak ({s['minutes']} min)",
        "",
        f"Command: `{r['command']}`",
        "",
        f"Machine: {json.dumps({k: m[k] for k in m if k != 'loadavg_end'})}; "
        f"load average at end {m.get('loadavg_end')}.",
        f"Embeddings: {r['embeddings']}.",
        "",
        f"Load: {s['records_written']:,} Claude Code records ({s['records_per_s']}/s) into "
        f"{s['session_files']} session files; {s['requests']:,} `/v1/messages` requests "
        f"({s['requests_per_s']}/s, {s['streams']:,} streaming) through "
        f"the daemon's proxy to the fake upstream; request latency p50 / p99 / max "
        f"{s['request_latency_ms']['p50']} / {s['request_latency_ms']['p99']} / {s['request_latency_ms']['max']} ms.",
        "",
        "| what | target | recorded |",
        "|---|---|---|",
        f"| start-up to healthy (every component running) | | {r['startup']['to_healthy_s']} s |",
        f"| RSS: first sample / after warm-up / end / max | flat | {rss['first_sample']} / "
        f"{rss['start_after_warmup']} / "
        f"{rss['end']} / {rss['max']} MB |",
        f"| RSS slope after warm-up | ≤ {TARGETS['rss_slope_mb_per_10min']} MB per 10 min | "
        f"{rss['slope_per_10min_after_warmup']} MB per 10 min |",
        f"| open FDs: first / after warm-up / end / max | flat | {fds['first_sample']} / {fds['start_after_warmup']} / "
        f"{fds['end']} / {fds['max']} |",
        f"| FD slope after warm-up | ≤ {TARGETS['fd_slope_per_10min']} per 10 min | "
        f"{fds['slope_per_10min_after_warmup']} per 10 min |",
        f"| threads: first / end / max | | {thr['first_sample']} / {thr['end']} / {thr['max']} |",
        *(
            f"| {key}: after warm-up / end / max, slope per 10 min | | {p['start_after_warmup']} / {p['end']} / "
            f"{p['max']}, {p['slope_per_10min_after_warmup']} |"
            for key, p in r.get("memory_parts_mb", {}).items()
        ),
        f"| daemon CPU during the soak (mean, % of one core) | | {r['soak_cpu_pct_mean']} % |",
        f"| ingest lag from /healthz, p50 / p95 / max ({r['ingest_lag_s']['polls']} polls, 1 s apart) | | "
        f"{r['ingest_lag_s']['p50']} / {r['ingest_lag_s']['p95']} / {r['ingest_lag_s']['max']} s |",
        f"| errors (all kinds, see below) | 0 | {e['total']} |",
        f"| records found in the DB (events + tool outputs) vs written | equal | {d['records_found']} / "
        f"{d['records_written']} (lost: {d['lost']}) |",
        f"| idle CPU, {i['window_s']} s after {i['wait_s']} s quiet | ~0 % (≤ {TARGETS['idle_cpu_pct']} %) | "
        f"{i['cpu_pct']} % ({i['cpu_ticks']} ticks); RSS {i['rss_mb']} MB, {i['fds']} FDs, {i['threads']} threads |",
        f"| shutdown, SIGTERM → exit | clean | {r['shutdown']['s']} s, exit code {r['shutdown']['exit_code']}, "
        f'"stopped" logged: {r["shutdown"]["stopped_logged"]} |',
        "",
        "Errors: " + json.dumps({k: v for k, v in e.items() if not k.endswith("examples")}),
        "",
        f"DB at the end: {json.dumps(d)}",
        "",
        f"Verdicts: {json.dumps(r['verdicts'])}",
        "",
    ]
    for key in ("daemon_error_examples", "daemon_warning_examples", "request_failure_examples"):
        if e[key]:
            lines += [f"{key}:", "", "```", *e[key], "```", ""]
    lines += [
        "Samples (every 10 s):",
        "",
        "| t s | RSS MB | SQLite heap MB | Python heap MB | prefix cache MB | FDs | threads | CPU % | records "
        "| requests | lag s |",
    ]
    lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for smp in r["samples"]:
        lines.append(
            f"| {smp['t_s']} | {smp['rss_mb']} | {smp.get('sqlite_heap_mb')} | {smp.get('python_heap_mb')} | "
            f"{smp.get('prefix_cache_mb')} | {smp['fds']} | {smp['threads']} | {smp['cpu_pct']} | "
            f"{smp['records_written']} | {smp['requests']} | {smp['ingest_lag_s']} |"
        )
    return "\n".join(lines) + "\n"
