"""The live part of the ingestion benchmark: a real daemon follows appends; lag, idle cost, shutdown."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import corpus
from benchlib import MARKER_TIMEOUT_S, POLL_S, headroom_binary, headroom_env, percentile, say


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
        say(f"daemon ready in {figures['ready_s']} s ({figures['backfill_log_line']})")
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
        say(f"live lag: {figures['lag']}")
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
        say(f"idle: {figures['idle']}")
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
        say(f"shutdown: {figures['shutdown']}")
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
