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

Usage: ``python bench/ingest_bench.py [--mb 200] [--runs 3] [--parts backfill,ccusage,stats,live]``
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import corpus

REPO = Path(__file__).resolve().parents[1]
PARTS = ("backfill", "ccusage", "stats", "live")
DEFAULT_MB = 200.0
TARGETS = {
    "backfill_mb_s": 20.0,  # >= 20 MB/s of session logs
    "live_p95_s": 1.0,  # append -> row visible, p95 <= 1 s
    "idle_cpu_pct": 1.0,  # "~0 %": we call anything under 1 % of one core idle
    "idle_rss_mb": 150.0,  # RSS <= 150 MB
    "stats_s": 1.0,  # `headroom stats` on >= 1 GB of logs <= 1 s
}
TOKEN_FIELDS = ("input", "output", "cache_read", "cache_creation")
POLL_S = 0.005
MARKER_TIMEOUT_S = 10.0


# -- running commands ------------------------------------------------------------------------------


@dataclass
class Run:
    """One finished subprocess: wall time, its own CPU time and peak RSS (from wait4)."""

    wall_s: float
    cpu_s: float
    max_rss_mb: float
    rc: int
    stdout: str
    stderr: str


def run(cmd: list[str], env: dict[str, str], work: Path, timeout: float = 1800) -> Run:
    """Run ``cmd`` and account for exactly that child (wait4), not for anything else running here."""
    out_path, err_path = work / "cmd.stdout", work / "cmd.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not reap it again
    return Run(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,
        rc=proc.returncode,
        stdout=out_path.read_text(encoding="utf-8", errors="replace"),
        stderr=err_path.read_text(encoding="utf-8", errors="replace"),
    )


def checked(result: Run, what: str) -> Run:
    if result.rc != 0:
        raise SystemExit(f"{what} failed with exit code {result.rc}:\n{result.stderr[-2000:]}")
    return result


def headroom_binary() -> str:
    beside = Path(sys.executable).with_name("headroom")
    found = str(beside) if beside.exists() else shutil.which("headroom")
    if not found:
        raise SystemExit("the headroom command is not installed (make setup)")
    return found


def ccusage_binary(given: str | None) -> str | None:
    local = REPO / ".tools" / "node_modules" / ".bin" / "ccusage"
    return given or os.environ.get("HEADROOM_CCUSAGE") or (str(local) if local.exists() else shutil.which("ccusage"))


def clean_env(home: Path) -> dict[str, str]:
    """The caller's environment without anything that points at real agent logs or a real headroom."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADROOM_", "CLAUDE_", "CODEX_", "GEMINI_"))}
    env["HOME"] = str(home)  # so nothing falls back to the user's own ~/.claude, ~/.codex, ~/.gemini
    return env


def headroom_env(base: Path, home: Path, logs: Path) -> dict[str, str]:
    """A fresh ``HEADROOM_HOME`` whose config points every agent at the corpus (and only there)."""
    base.mkdir(parents=True, exist_ok=True)
    (base / "config.toml").write_text(
        f'[agents.claude]\nhomes = ["{logs / "claude"}"]\n'
        f'[agents.codex]\nhomes = ["{logs / "codex"}"]\n'
        f'[agents.gemini]\nhomes = ["{logs / "gemini" / "tmp"}"]\n',
        encoding="utf-8",
    )
    return {**clean_env(home), "HEADROOM_HOME": str(base)}


def ccusage_env(home: Path, logs: Path) -> dict[str, str]:
    return {
        **clean_env(home),
        "CLAUDE_CONFIG_DIR": str(logs / "claude"),
        "CODEX_HOME": str(logs / "codex"),
        "GEMINI_DATA_DIR": str(logs / "gemini"),
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: a p95 of 100 samples is the 95th smallest)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def db_bytes(base: Path) -> int:
    return sum(p.stat().st_size for p in base.glob("headroom.db*") if p.is_file())


# -- backfill, peer, stats, parity -----------------------------------------------------------------


def bench_backfill_and_peer(args: argparse.Namespace, logs: Path, work: Path, report: dict[str, Any]) -> Path | None:
    """Alternate cold backfills and ccusage runs; return the last backfilled HEADROOM_HOME."""
    headroom, ccusage = headroom_binary(), ccusage_binary(args.ccusage)
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    do_backfill, do_peer = "backfill" in args.parts, "ccusage" in args.parts and ccusage is not None
    if "ccusage" in args.parts and ccusage is None:
        report["ccusage"] = {"skipped": "ccusage not found (make tools, or --ccusage PATH)"}
    backfills: list[dict[str, Any]] = []
    peers: list[dict[str, Any]] = []
    last_base: Path | None = None
    for index in range(args.runs):
        if do_backfill:
            base = work / f"hr-backfill-{index}"
            shutil.rmtree(base, ignore_errors=True)
            if last_base is not None:
                shutil.rmtree(last_base, ignore_errors=True)  # keep one DB at a time on disk
            env = headroom_env(base, home, logs)
            result = checked(run([headroom, "ingest", "--json"], env, work), "headroom ingest")
            summary = json.loads(result.stdout)
            backfills.append(
                {
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
            )
            _say(f"backfill {index + 1}/{args.runs}: {backfills[-1]}")
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
            _say(f"ccusage {index + 1}/{args.runs}: {peers[-1]}")
    if backfills:
        report["backfill"] = {
            "runs": backfills,
            "median_mb_s_scan": round(median([r["mb_s_scan"] for r in backfills]), 2),
            "median_mb_s_wall": round(median([r["mb_s_wall"] for r in backfills]), 2),
            "median_wall_s": round(median([r["wall_s"] for r in backfills]), 3),
            "median_cpu_s": round(median([r["cpu_s"] for r in backfills]), 3),
            "median_max_rss_mb": round(median([r["max_rss_mb"] for r in backfills]), 1),
        }
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
        _say(f"stats {label}: {figures[label]}")
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


@dataclass
class Target:
    """A watched log we append to, and how its appended rows are found in the DB."""

    agent: str
    path: Path
    session_key: str
    session_id: int = 0


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _line(target: Target, marker: str, offset: int) -> tuple[bytes, str]:
    """One log line in the agent's own format that yields an event, and that event's key."""
    text = f"headroom bench marker {marker}"
    if target.agent == "claude":
        record: dict[str, Any] = {
            "parentUuid": None,
            "isSidechain": False,
            "type": "user",
            "message": {"role": "user", "content": text},
            "uuid": marker,
            "timestamp": _now_iso(),
            "sessionId": target.session_key,
            "version": "2.0.31",
            "cwd": "/bench",
        }
        key = marker
    elif target.agent == "codex":
        record = {
            "timestamp": _now_iso(),
            "type": "response_item",
            "payload": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
        }
        key = f"o{offset}"  # Codex events are keyed by the line's byte offset
    else:
        record = {"id": marker, "timestamp": _now_iso(), "type": "user", "content": [{"text": text}]}
        key = marker
    return (json.dumps(record, separators=(",", ":")) + "\n").encode(), key


def pick_targets(logs: Path) -> list[Target]:
    """One main-session JSONL log per agent in the live corpus (replica 0, first in path order)."""
    claude = sorted(p for p in (logs / "claude" / "projects").glob("*/*.jsonl") if not p.name.startswith("agent-"))
    codex = sorted((logs / "codex" / "sessions").rglob("rollout-*.jsonl"))
    gemini = sorted((logs / "gemini" / "tmp").glob("*/chats/session-*.jsonl"))
    if not (claude and codex and gemini):
        raise SystemExit(f"the live corpus under {logs} lacks a log for some agent")
    codex_id = re.findall(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}", codex[0].name)[-1]
    with gemini[0].open("rb") as handle:
        gemini_id = json.loads(handle.readline())["sessionId"]
    return [
        Target("claude", claude[0], claude[0].stem),
        Target("codex", codex[0], codex_id),
        Target("gemini", gemini[0], gemini_id),
    ]


def _proc_stat(pid: int) -> dict[str, float]:
    """CPU seconds (all threads), RSS, peak RSS, threads and context switches of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    switches = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    switches += int(line.split(":")[1])
    return {
        "cpu_s": (int(fields[11]) + int(fields[12])) / ticks,  # utime, stime (fields 14 and 15 of stat)
        "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
        "hwm_mb": int(status["VmHWM"].split()[0]) / 1024,
        "threads": int(status["Threads"]),
        "switches": switches,
    }


@contextlib.contextmanager
def daemon(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A daemon subprocess that is killed if the benchmark fails before stopping it itself."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def bench_live(args: argparse.Namespace, work: Path, report: dict[str, Any]) -> None:
    logs = work / "live-corpus"
    shutil.rmtree(logs, ignore_errors=True)  # appended to last time: always start from a fresh copy
    manifest = corpus.build(logs, args.live_mb, args.fixtures, quiet=True)
    base = work / "hr-live"
    shutil.rmtree(base, ignore_errors=True)
    env = headroom_env(base, work / "home", logs)
    log = work / "daemon.out"
    figures: dict[str, Any] = {"corpus_mb": round(manifest.log_bytes / corpus.MB, 1), "corpus_files": manifest.files}
    started = time.perf_counter()
    with daemon([headroom_binary(), "daemon", "run"], env, log) as proc:
        line = _wait_for(log, re.compile(r"started in ([\d.]+)s: backfilled .*"), proc, timeout=600)
        figures["backfill_log_line"] = line.split(": ", 1)[1] if ": " in line else line
        figures["ready_s"] = round(time.perf_counter() - started, 2)
        figures["after_backfill"] = {k: round(v, 1) for k, v in _proc_stat(proc.pid).items()}
        _say(f"daemon ready in {figures['ready_s']} s ({figures['backfill_log_line']})")
        targets = pick_targets(logs)
        db = sqlite3.connect(f"file:{base / 'headroom.db'}?mode=ro", uri=True, isolation_level=None)
        try:
            for target in targets:
                row = db.execute(
                    "SELECT id FROM sessions WHERE agent = ? AND key = ?", (target.agent, target.session_key)
                ).fetchone()
                if row is None:
                    raise SystemExit(f"{target.agent} session {target.session_key} is not in the DB after backfill")
                target.session_id = row[0]
            lags, lost = _append_and_poll(args, targets, db)
        finally:
            db.close()
        figures["lag"] = {
            agent: {
                "n": len(values),
                "lost": lost[agent],
                "p50_s": round(percentile(values, 50), 3),
                "p95_s": round(percentile(values, 95), 3),
                "max_s": round(max(values), 3) if values else None,
            }
            for agent, values in lags.items()
        }
        every = [v for values in lags.values() for v in values]
        figures["lag"]["all"] = {
            "n": len(every),
            "lost": sum(lost.values()),
            "p50_s": round(percentile(every, 50), 3),
            "p95_s": round(percentile(every, 95), 3),
            "max_s": round(max(every), 3) if every else None,
        }
        _say(f"live lag: {figures['lag']}")
        time.sleep(2.0)  # let the last debounce window and counter refresh pass before calling it idle
        first, t0 = _proc_stat(proc.pid), time.perf_counter()
        time.sleep(args.idle_seconds)
        last, t1 = _proc_stat(proc.pid), time.perf_counter()
        seconds = t1 - t0
        figures["idle"] = {
            "seconds": round(seconds, 1),
            "cpu_pct": round(100 * (last["cpu_s"] - first["cpu_s"]) / seconds, 3),
            "cpu_s": round(last["cpu_s"] - first["cpu_s"], 3),
            "rss_start_mb": round(first["rss_mb"], 1),
            "rss_end_mb": round(last["rss_mb"], 1),
            "peak_rss_mb": round(last["hwm_mb"], 1),
            "threads": last["threads"],
            "wakeups_per_s": round((last["switches"] - first["switches"]) / seconds, 1),
        }
        _say(f"idle: {figures['idle']}")
        stop = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            rc = None
        figures["shutdown"] = {
            "seconds": round(time.perf_counter() - stop, 3),
            "exit_code": rc,
            "logged_stopped": "stopped" in log.read_text(encoding="utf-8", errors="replace").splitlines()[-1],
        }
        _say(f"shutdown: {figures['shutdown']}")
    report["live"] = figures


def _append_and_poll(
    args: argparse.Namespace, targets: list[Target], db: sqlite3.Connection
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Append ``args.appends`` lines per agent round-robin at ``args.rate`` Hz; time each until visible."""
    lags: dict[str, list[float]] = {t.agent: [] for t in targets}
    lost = dict.fromkeys(lags, 0)
    pending: list[tuple[Target, str, float]] = []  # (target, event key, written at)
    query = "SELECT 1 FROM events WHERE session_id = ? AND key = ?"
    total = args.appends * len(targets)
    interval = 1.0 / args.rate
    begin = time.perf_counter()
    index = 0
    while index < total or pending:
        now = time.perf_counter()
        if index < total and now >= begin + index * interval:
            target = targets[index % len(targets)]
            fd = os.open(target.path, os.O_WRONLY | os.O_APPEND)
            try:
                offset = os.fstat(fd).st_size
                data, key = _line(target, str(uuid.uuid4()), offset)
                written = time.perf_counter()
                os.write(fd, data)  # one write: the watcher never sees half a line
            finally:
                os.close(fd)
            pending.append((target, key, written))
            index += 1
        still = []
        for target, key, written in pending:
            now = time.perf_counter()
            if db.execute(query, (target.session_id, key)).fetchone():
                lags[target.agent].append(now - written)
            elif now - written > MARKER_TIMEOUT_S:
                lost[target.agent] += 1
            else:
                still.append((target, key, written))
        pending = still
        time.sleep(POLL_S)
    return lags, lost


def _wait_for(log: Path, pattern: re.Pattern[str], proc: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited with {proc.returncode}:\n{log.read_text(errors='replace')[-2000:]}")
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            if pattern.search(line):
                return line
        time.sleep(0.1)
    raise SystemExit(f"the daemon did not finish its backfill within {timeout:.0f} s")


# -- the report ------------------------------------------------------------------------------------


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


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


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
        _say(f"corpus: {logs} ({args.mb:.0f} MB)")
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
        _say("warning: headroom's source changed during the run; its figures mix two versions")
    text = markdown(report)
    if args.no_save:
        print(text)
        return
    args.results.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.mb == DEFAULT_MB else f"-{int(args.mb)}mb"
    stem = args.results / f"{report['date']}-ingest{suffix}"
    stem.with_suffix(".md").write_text(text, encoding="utf-8")
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _say(f"wrote {stem}.md and {stem}.json")


if __name__ == "__main__":
    main()
