"""The daemon soak: a real ``headroom daemon run`` under steady load for ``--minutes``, watched for leaks and errors.

What it measures (see bench/README.md, "Soak"):

- **start-up**: from spawning the daemon until ``GET /healthz`` answers with every daemon component "running";
- **soak**: a writer appends Claude Code session records (prompt, tool call, tool output of a few KB, answer) to
  ``--sessions`` session files at ``--rate`` records/s, every file replaced by a new session every ``--rotate-s``
  seconds; a client sends Anthropic ``/v1/messages`` requests (every ``--stream-every``-th one streaming) through the
  daemon's proxy to the fake upstream (``tests/fake_provider.py``, served as bench/proxy_bench.py serves it) at
  ``--req-rate`` requests/s. Every ``--sample-s`` seconds: the daemon's RSS, open FDs, threads, CPU time and
  ``/healthz``'s daemon section; ``/healthz`` is also polled every second for the ingest lag;
- **idle CPU**: the load stops, ``--idle-wait-s`` seconds pass, then CPU % over ``--idle-s`` seconds;
- **nothing lost**: events (and tool outputs, which complete their tool call's row) in the DB at the end
  against records written;
- **shutdown**: SIGTERM to exit.

Embeddings are off (``HEADROOM_EMBEDDINGS=off``) so the RSS is the daemon's own, not the model's ~400 MB.
Each sample also records where the memory goes, from ``/healthz``: SQLite's heap, the proxy's prefix cache and,
with ``--tracemalloc``, the Python heap. The load lives in soak_load.py, the verdicts and report in
soak_report.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))  # tests.helpers: the Claude Code record envelope

from bench_report import machine, source_digest  # noqa: E402
from benchlib import clean_env, percentile  # noqa: E402
from proxy_bench import start_fake  # noqa: E402
from soak_load import Counters, client, writer  # noqa: E402
from soak_report import markdown, series_summary, verdicts  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# -- the daemon process ----------------------------------------------------------------------------------------


def proc_stats(pid: int) -> dict[str, Any]:
    """RSS (MB), open FDs, threads and CPU seconds (utime + stime) of ``pid``, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return {
        "rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 1),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(fields["Threads"].strip()),
        "cpu_s": (int(stat[11]) + int(stat[12])) / CLK,
    }


def healthz(url: str) -> dict[str, Any] | None:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        answer = httpx.get(f"{url}/healthz", timeout=5, trust_env=False)
        if answer.status_code == 200:
            return dict(answer.json())
    return None


def component_states(health: dict[str, Any] | None) -> dict[str, str]:
    daemon = (health or {}).get("daemon") or {}
    return {name: str(c.get("state")) for name, c in (daemon.get("components") or {}).items()}


def component_errors(health: dict[str, Any] | None) -> dict[str, Any]:
    """Every non-empty error field of the daemon section (last_error per component, memory worker's count)."""
    daemon = (health or {}).get("daemon") or {}
    out: dict[str, Any] = {}
    if daemon.get("last_error"):
        out["daemon.last_error"] = daemon["last_error"]
    if (daemon.get("config") or {}).get("last_error"):
        out["config.last_error"] = daemon["config"]["last_error"]
    for name, comp in (daemon.get("components") or {}).items():
        if comp.get("last_error"):
            out[f"{name}.last_error"] = comp["last_error"]
        if comp.get("errors"):
            out[f"{name}.errors"] = comp["errors"]
        if comp.get("state") != "running":
            out[f"{name}.state"] = comp.get("state")
    return out


# -- the run -----------------------------------------------------------------------------------------------------


def _mb(value: int | None) -> float | None:
    return round(value / 2**20, 2) if value is not None else None


def ro_count(db_file: Path, sql: str) -> int | None:
    try:
        conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute(sql).fetchone()
        return int(row[0]) if row else None
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def log_lines(path: Path, levels: tuple[str, ...]) -> list[str]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if any(f" {level} " in line for level in levels) or line.startswith("Traceback"):
            out.append(line)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    work: Path = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    home, claude = work / "home", work / "claude"
    folder = claude / "projects" / "-home-dev-src-soakshop"
    folder.mkdir(parents=True)
    home.mkdir()
    fake = start_fake(work)
    say(f"fake upstream at {fake.url}")
    (home / "config.toml").write_text(
        f'[proxy]\nanthropic_upstream = "{fake.url}"\nprefix_cache_mb = {args.prefix_cache_mb}\n', encoding="utf-8"
    )
    env = {
        **clean_env(work / "user-home"),
        "HEADROOM_HOME": str(home),
        "HEADROOM_PROXY_PORT": "0",
        "HEADROOM_EMBEDDINGS": "off",
        "CLAUDE_CONFIG_DIR": str(claude),
        "CODEX_HOME": str(work / "no-codex"),
        "GEMINI_CLI_HOME": str(work / "no-gemini"),
        **({"PYTHONTRACEMALLOC": "1"} if args.tracemalloc else {}),
    }
    cmd = [sys.executable, "-c", "from headroom.daemon.cli import main; main()", "daemon", "run"]
    out_file = work / "daemon.out"
    report: dict[str, Any] = {
        "machine": machine(),
        "source_digest_start": source_digest(),
        "command": " ".join(["python", "bench/soak_bench.py", *sys.argv[1:]]),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "json"},
        "embeddings": "off (HEADROOM_EMBEDDINGS=off): the RSS is the daemon's own, without the model",
    }
    state_file = home / "state" / "proxy.json"
    t_spawn = time.perf_counter()
    with out_file.open("ab") as sink:
        proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        return _soak(args, report, proc, t_spawn, state_file, home, folder, out_file, fake.url)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        fake.stop()


def _soak(
    args: argparse.Namespace,
    report: dict[str, Any],
    proc: subprocess.Popen[bytes],
    t_spawn: float,
    state_file: Path,
    home: Path,
    folder: Path,
    out_file: Path,
    upstream: str,
) -> dict[str, Any]:
    # -- start-up
    url, health, states = None, None, {}
    deadline = t_spawn + 120
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited with {proc.returncode}:\n{out_file.read_text()[-3000:]}")
        if url is None and state_file.exists():
            with contextlib.suppress(ValueError, OSError):
                url = json.loads(state_file.read_text())["url"].rstrip("/")
        if url is not None:
            health = healthz(url)
            states = component_states(health)
            if states and all(s == "running" for s in states.values()):
                break
        time.sleep(0.02)
    else:
        raise SystemExit(f"not healthy within 120 s (states {states}):\n{out_file.read_text()[-3000:]}")
    startup = time.perf_counter() - t_spawn
    report["startup"] = {"to_healthy_s": round(startup, 3), "components": states, "proxy_url": url}
    say(f"healthy after {startup:.2f} s: {states}")
    assert url is not None
    pid = proc.pid

    # -- soak
    counters = Counters()
    stop = threading.Event()
    lags: list[float] = []
    health_failures: list[str] = []
    samples: list[dict[str, Any]] = []
    errors_seen: dict[str, Any] = {}

    def lag_poller() -> None:
        while not stop.wait(1.0):
            h = healthz(url)
            if h is None:
                health_failures.append(time.strftime("%H:%M:%S"))
                continue
            ingest = ((h.get("daemon") or {}).get("components") or {}).get("ingest") or {}
            if "lag_s" in ingest:
                lags.append(float(ingest["lag_s"]))

    threads = [
        threading.Thread(target=writer, args=(folder, args, counters, stop), daemon=True),
        threading.Thread(target=client, args=(url, args, counters, stop), daemon=True),
        threading.Thread(target=lag_poller, daemon=True),
    ]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    end = t0 + args.minutes * 60
    prev_cpu, prev_t = proc_stats(pid)["cpu_s"], t0
    while True:
        now = time.monotonic()
        stats = proc_stats(pid)
        h = healthz(url)
        daemon = (h or {}).get("daemon") or {}
        comps = daemon.get("components") or {}
        errs = component_errors(h) if h is not None else {"healthz": "no answer"}
        for k, v in errs.items():
            errors_seen.setdefault(k, v)
        sample = {
            "t_s": round(now - t0, 1),
            **stats,
            "cpu_pct": round((stats["cpu_s"] - prev_cpu) / max(1e-9, now - prev_t) * 100, 1),
            "records_written": counters.records,
            "requests": counters.requests,
            "request_failures": len(counters.failures) + sum(counters.non_200.values()),
            "ingest_lag_s": (comps.get("ingest") or {}).get("lag_s"),
            "pending_paths": (comps.get("ingest") or {}).get("pending_paths"),
            "embed_backlog": (comps.get("memory") or {}).get("embed_backlog"),
            "memory_rounds": (comps.get("memory") or {}).get("rounds"),
            "proxy_requests": (h or {}).get("requests"),
            "proxy_upstream_errors": (h or {}).get("upstream_errors"),
            "proxy_compression_failures": (h or {}).get("compression_failures"),
            "proxy_stats_dropped": (h or {}).get("stats_dropped"),
            "db_size_mb": round(((daemon.get("database") or {}).get("size_bytes") or 0) / 2**20, 1),
            # Where the memory goes (health's process section; the Python heap only with --tracemalloc).
            "sqlite_heap_mb": _mb((daemon.get("process") or {}).get("sqlite_heap_bytes")),
            "python_heap_mb": _mb((daemon.get("process") or {}).get("python_heap_bytes")),
            "prefix_cache_mb": _mb(((comps.get("proxy") or {}).get("prefix_cache") or {}).get("bytes")),
            "prefix_cache_entries": ((comps.get("proxy") or {}).get("prefix_cache") or {}).get("entries"),
            "component_errors": errs,
        }
        samples.append(sample)
        prev_cpu, prev_t = stats["cpu_s"], now
        say(
            f"t={sample['t_s']:>6}s rss={stats['rss_mb']} MB fds={stats['fds']} threads={stats['threads']} "
            f"cpu={sample['cpu_pct']}% records={counters.records} requests={counters.requests} "
            f"fail={sample['request_failures']} lag={sample['ingest_lag_s']} errs={errs or '-'}"
        )
        if proc.poll() is not None or now >= end:
            break
        time.sleep(max(0.0, min(end, t0 + len(samples) * args.sample_s) - time.monotonic()))
    stop.set()
    for t in threads:
        t.join(60)
    load_s = time.monotonic() - t0
    if proc.poll() is not None:
        raise SystemExit(f"the daemon died during the soak ({proc.returncode}):\n{out_file.read_text()[-3000:]}")

    # -- idle: nothing written, nothing sent
    db_file = home / "headroom.db"
    caught_up_s = None
    # A tool result is no event of its own: it completes its tool call's row (output, status).
    expected_events = counters.records - counters.by_kind.get("tool_result", 0)
    t_stop = time.monotonic()
    while time.monotonic() - t_stop < args.idle_wait_s:
        if caught_up_s is None and (ro_count(db_file, "SELECT count(*) FROM events") or 0) >= expected_events:
            caught_up_s = round(time.monotonic() - t_stop, 2)
        time.sleep(0.5)
    before, tb = proc_stats(pid), time.monotonic()
    time.sleep(args.idle_s)
    after, ta = proc_stats(pid), time.monotonic()
    idle_pct = (after["cpu_s"] - before["cpu_s"]) / (ta - tb) * 100
    idle_health = healthz(url)

    # -- what reached the DB
    events = ro_count(db_file, "SELECT count(*) FROM events")
    sessions = ro_count(db_file, "SELECT count(*) FROM sessions")
    tool_calls = ro_count(db_file, "SELECT count(*) FROM tool_calls")
    tool_outputs = ro_count(db_file, "SELECT count(*) FROM tool_calls WHERE output IS NOT NULL")
    by_kind_db = {
        "prompt": ro_count(db_file, "SELECT count(*) FROM events WHERE kind = 'user_prompt'"),
        "tool_use": ro_count(db_file, "SELECT count(*) FROM events WHERE kind = 'tool_call'"),
        "tool_result": tool_outputs,
        "text": ro_count(db_file, "SELECT count(*) FROM events WHERE kind = 'assistant_text'"),
    }
    proxy_rows = ro_count(db_file, "SELECT count(*) FROM proxy_requests")
    usage_rows = ro_count(db_file, "SELECT count(*) FROM usage")
    memory_items = ro_count(db_file, "SELECT count(*) FROM memory_items")
    issues = ro_count(db_file, "SELECT count(*) FROM ingest_issues")

    # -- shutdown
    t_term = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    try:
        rc: int | None = proc.wait(60)
    except subprocess.TimeoutExpired:
        rc = None
    shutdown_s = time.perf_counter() - t_term

    log_file = home / "state" / "logs" / "daemon.log"
    out_text = out_file.read_text(encoding="utf-8", errors="replace")
    error_lines = log_lines(out_file, ("ERROR", "CRITICAL"))
    warning_lines = log_lines(out_file, ("WARNING",))
    non_200 = sum(counters.non_200.values())
    lat = counters.latencies_ms
    report.update(
        {
            "soak": {
                "minutes": args.minutes,
                "load_s": round(load_s, 1),
                "records_written": counters.records,
                "records_per_s": round(counters.records / load_s, 2),
                "session_files": len(counters.sessions),
                "write_errors": counters.write_errors,
                "requests": counters.requests,
                "streams": counters.streams,
                "requests_per_s": round(counters.requests / load_s, 2),
                "request_latency_ms": {
                    "p50": round(percentile(lat, 50), 2),
                    "p99": round(percentile(lat, 99), 2),
                    "max": round(max(lat), 2) if lat else None,
                },
                "upstream": upstream,
            },
            "rss_mb": series_summary(samples, "rss_mb", args.warmup_s),
            "fds": series_summary(samples, "fds", args.warmup_s),
            "threads": series_summary(samples, "threads", args.warmup_s),
            "memory_parts_mb": {
                key: series_summary(samples, key, args.warmup_s)
                for key in ("sqlite_heap_mb", "python_heap_mb", "prefix_cache_mb", "prefix_cache_entries")
                if all(smp.get(key) is not None for smp in samples)
            },
            "soak_cpu_pct_mean": round(
                (samples[-1]["cpu_s"] - samples[0]["cpu_s"]) / max(1e-9, samples[-1]["t_s"] - samples[0]["t_s"]) * 100,
                1,
            ),
            "ingest_lag_s": {
                "polls": len(lags),
                "p50": percentile(lags, 50),
                "p95": percentile(lags, 95),
                "max": max(lags) if lags else None,
            },
            "errors": {
                "request_failures": len(counters.failures),
                "request_failure_examples": counters.failures[:10],
                "non_200": counters.non_200,
                "bad_bodies": counters.bad_bodies,
                "healthz_no_answer": len(health_failures),
                "component_errors_seen": errors_seen,
                "proxy_upstream_errors_end": samples[-1]["proxy_upstream_errors"],
                "proxy_compression_failures_end": samples[-1]["proxy_compression_failures"],
                "proxy_stats_dropped_end": samples[-1]["proxy_stats_dropped"],
                "ingest_issues_rows": issues,
                "daemon_error_lines": len(error_lines),
                "daemon_error_examples": error_lines[:20],
                "daemon_warning_lines": len(warning_lines),
                "daemon_warning_examples": warning_lines[:20],
                "total": len(counters.failures)
                + non_200
                + counters.bad_bodies
                + len(health_failures)
                + len(errors_seen)
                + len(error_lines)
                + len(counters.write_errors),
            },
            "idle": {
                "wait_s": args.idle_wait_s,
                "window_s": round(ta - tb, 1),
                "cpu_pct": round(idle_pct, 3),
                "cpu_ticks": round((after["cpu_s"] - before["cpu_s"]) * CLK),
                "rss_mb": after["rss_mb"],
                "fds": after["fds"],
                "threads": after["threads"],
                "components": component_states(idle_health),
                "component_errors": component_errors(idle_health),
            },
            "db": {
                "events": events,
                "records_written": counters.records,
                "events_expected": expected_events,
                "records_written_by_kind": counters.by_kind,
                "found_by_kind": by_kind_db,
                "records_found": (events or 0) + (tool_outputs or 0),
                "lost": counters.records - (events or 0) - (tool_outputs or 0),
                "caught_up_after_load_s": caught_up_s,
                "sessions": sessions,
                "session_files": len(counters.sessions),
                "tool_calls": tool_calls,
                "tool_calls_written": counters.by_kind.get("tool_use", 0),
                "tool_calls_with_output": tool_outputs,
                "usage_rows": usage_rows,
                "usage_expected": counters.by_kind.get("tool_use", 0) + counters.by_kind.get("text", 0),
                "proxy_requests_rows": proxy_rows,
                "requests_sent": counters.requests,
                "memory_items": memory_items,
            },
            "shutdown": {
                "s": round(shutdown_s, 3),
                "exit_code": rc,
                "stopped_logged": "stopped" in out_text[-5000:],
                "log_file": str(log_file),
            },
            "samples": samples,
            "source_digest_end": source_digest(),
        }
    )
    report["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report["verdicts"] = verdicts(report)
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0, help="length of the soak (default 30)")
    ap.add_argument("--rate", type=float, default=20.0, help="session records appended per second")
    ap.add_argument("--sessions", type=int, default=3, help="session files written at once")
    ap.add_argument("--rotate-s", type=float, default=60.0, help="every file is replaced by a new session this often")
    ap.add_argument("--req-rate", type=float, default=5.0, help="proxy requests per second")
    ap.add_argument("--stream-every", type=int, default=3, help="every N-th request streams")
    ap.add_argument("--sample-s", type=float, default=10.0)
    ap.add_argument("--warmup-s", type=float, default=120.0, help="samples before this are warm-up (slopes skip them)")
    ap.add_argument("--idle-wait-s", type=float, default=30.0)
    ap.add_argument("--idle-s", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--prefix-cache-mb",
        type=float,
        default=64.0,
        help="[proxy] prefix_cache_mb (a small cap fills within the soak)",
    )
    ap.add_argument(
        "--tracemalloc", action="store_true", help="run the daemon under PYTHONTRACEMALLOC=1 to see its Python heap"
    )
    ap.add_argument("--work", type=Path, default=Path("/tmp/headroom-bench/soak"))
    ap.add_argument("--json", type=Path, help="write the report here (and a .md beside it)")
    args = ap.parse_args()
    report = run(args)
    text = markdown(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        args.json.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
