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
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))  # tests.helpers: the Claude Code record envelope

from bench_report import machine, source_digest  # noqa: E402
from benchlib import clean_env, percentile  # noqa: E402
from proxy_bench import ANTHROPIC_HEADERS, start_fake  # noqa: E402

from tests.helpers import claude_envelope  # noqa: E402

TARGETS = {"rss_slope_mb_per_10min": 2.0, "fd_slope_per_10min": 1.0, "errors": 0, "idle_cpu_pct": 1.0}
CLK = os.sysconf("SC_CLK_TCK")
KINDS = ("prompt", "tool_use", "tool_result", "text")  # the records of one step, in order
MODEL = "claude-sonnet-4-5-20250929"
COMMANDS = ("pytest -q", "npm test", "git log --oneline -50", "ls -la src", "make build", "grep -rn TODO src")
WORDS = [
    "retry",
    "backoff",
    "payment",
    "worker",
    "invoice",
    "queue",
    "timeout",
    "cache",
    "session",
    "token",
    "schema",
    "migration",
    "index",
    "query",
    "latency",
    "deploy",
    "rollback",
    "config",
    "replica",
    "shard",
    "leader",
    "heartbeat",
    "lock",
    "thread",
    "pool",
    "parser",
    "compiler",
    "memory",
    "trace",
    "metric",
]


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


# -- the load ----------------------------------------------------------------------------------------------------


@dataclass
class Counters:
    records: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)  # prompt, tool_use, tool_result, text
    sessions: list[str] = field(default_factory=list)
    write_errors: list[str] = field(default_factory=list)
    requests: int = 0
    streams: int = 0
    failures: list[str] = field(default_factory=list)  # transport errors
    non_200: dict[str, int] = field(default_factory=dict)
    bad_bodies: int = 0
    latencies_ms: list[float] = field(default_factory=list)


def _ts() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _output(rng: random.Random) -> str:
    """A tool output of a few KB: log-ish or test-ish lines."""
    lines = []
    for i in range(rng.randint(30, 90)):
        lines.append(
            f"2026-11-21 10:{i % 60:02d}:{rng.randint(0, 59):02d} {rng.choice(('INFO', 'INFO', 'WARN', 'DEBUG'))} "
            f"[{rng.choice(WORDS)}] {rng.choice(WORDS)} {rng.choice(WORDS)} id={rng.randint(1, 10**6)} "
            f"took {rng.randint(1, 900)}ms"
        )
    return "\n".join(lines)


class Session:
    """One Claude Code session file being appended to: prompt, tool call, tool output, answer, again."""

    def __init__(self, folder: Path, rng: random.Random) -> None:
        self.id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        self.path = folder / f"{self.id}.jsonl"
        self.file = self.path.open("ab")
        self.n = 0
        self.rng = rng
        self.last_uuid: str | None = None

    def record(self) -> bytes:
        n, rng, step = self.n, self.rng, self.n % 4
        base = claude_envelope(n, _ts(), cwd="/home/dev/src/soakshop", session=self.id)
        rid = f"{self.id[:8]}-{n}"
        base.update(uuid=f"u-{rid}", parentUuid=self.last_uuid)
        usage = {
            "input_tokens": 10,
            "cache_creation_input_tokens": 50,
            "cache_read_input_tokens": 900,
            "output_tokens": 30,
        }
        message = {"id": f"msg_{rid}", "model": MODEL, "role": "assistant", "type": "message", "usage": usage}
        if step == 0:
            text = f"please check why {rng.choice(WORDS)} {rng.choice(WORDS)} fails in step {n}"
            base.update(type="user", message={"role": "user", "content": text})
        elif step == 1:
            call = {
                "type": "tool_use",
                "id": f"toolu_{rid}",
                "name": "Bash",
                "input": {"command": rng.choice(COMMANDS)},
            }
            base.update(type="assistant", requestId=f"req_{rid}", message={**message, "content": [call]})
        elif step == 2:
            block = {
                "type": "tool_result",
                "tool_use_id": f"toolu_{self.id[:8]}-{n - 1}",
                "content": _output(rng),
                "is_error": rng.random() < 0.1,
            }
            base.update(type="user", message={"role": "user", "content": [block]})
        else:
            answer = {"type": "text", "text": f"The {rng.choice(WORDS)} step failed because of {rng.choice(WORDS)}."}
            base.update(type="assistant", requestId=f"req_{rid}", message={**message, "content": [answer]})
        self.n += 1
        self.last_uuid = base["uuid"]
        # Compact, as Claude Code writes it (the usage reader looks for the compact marker ``"usage":{``).
        return json.dumps(base, separators=(",", ":")).encode() + b"\n"

    def close(self) -> None:
        self.file.close()


def writer(folder: Path, args: argparse.Namespace, counters: Counters, stop: threading.Event) -> None:
    rng = random.Random(args.seed)
    slots = [Session(folder, rng) for _ in range(args.sessions)]
    counters.sessions.extend(s.id for s in slots)
    started = rotated = time.monotonic()
    i = 0
    while not stop.is_set():
        now = time.monotonic()
        if now - rotated >= args.rotate_s:
            rotated = now
            for k, old in enumerate(slots):
                old.close()
                slots[k] = Session(folder, rng)
                counters.sessions.append(slots[k].id)
        session = slots[i % len(slots)]
        kind = KINDS[session.n % 4]
        try:
            session.file.write(session.record())  # one write per record, as the agents append
            session.file.flush()
            counters.records += 1
            counters.by_kind[kind] = counters.by_kind.get(kind, 0) + 1
        except OSError as exc:
            counters.write_errors.append(repr(exc))
        i += 1
        delay = started + i / args.rate - time.monotonic()
        if delay > 0:
            stop.wait(delay)
    for s in slots:
        s.close()


def request_body(rng: random.Random, n: int, stream: bool) -> dict[str, Any]:
    """A short agent-like conversation: a prompt, a tool call and a tool output of a few KB, then a question."""
    tool_id = f"toolu_req{n}"
    messages = [
        {"role": "user", "content": f"why does the {rng.choice(WORDS)} job fail? ({n})"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": tool_id, "name": "Bash", "input": {"command": rng.choice(COMMANDS)}}
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": _output(rng)}]},
    ]
    return {"model": MODEL, "max_tokens": 256, "messages": messages, "stream": stream}


def client(url: str, args: argparse.Namespace, counters: Counters, stop: threading.Event) -> None:
    rng = random.Random(args.seed + 1)
    started = time.monotonic()
    i = 0
    with httpx.Client(base_url=url, headers=ANTHROPIC_HEADERS, timeout=30, trust_env=False) as http:
        while not stop.is_set():
            stream = i % args.stream_every == 0
            body = request_body(rng, i, stream)
            t = time.perf_counter()
            try:
                if stream:
                    with http.stream("POST", "/v1/messages", json=body) as answer:
                        data = b"".join(answer.iter_bytes())
                    ok = b"message_stop" in data
                    counters.streams += 1
                else:
                    answer = http.post("/v1/messages", json=body)
                    data = answer.content
                    ok = answer.status_code != 200 or bool(answer.json().get("content"))
                counters.latencies_ms.append((time.perf_counter() - t) * 1000)
                if answer.status_code != 200:
                    key = str(answer.status_code)
                    counters.non_200[key] = counters.non_200.get(key, 0) + 1
                elif not ok:
                    counters.bad_bodies += 1
            except (httpx.HTTPError, ValueError) as exc:
                counters.failures.append(f"{time.strftime('%H:%M:%S')} {type(exc).__name__}: {exc}")
            counters.requests += 1
            i += 1
            delay = started + i / args.req_rate - time.monotonic()
            if delay > 0:
                stop.wait(delay)


# -- the run -----------------------------------------------------------------------------------------------------


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
    (home / "config.toml").write_text(f'[proxy]\nanthropic_upstream = "{fake.url}"\n', encoding="utf-8")
    env = {
        **clean_env(work / "user-home"),
        "HEADROOM_HOME": str(home),
        "HEADROOM_PROXY_PORT": "0",
        "HEADROOM_EMBEDDINGS": "off",
        "CLAUDE_CONFIG_DIR": str(claude),
        "CODEX_HOME": str(work / "no-codex"),
        "GEMINI_CLI_HOME": str(work / "no-gemini"),
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
    lines += ["Samples (every 10 s):", "", "| t s | RSS MB | FDs | threads | CPU % | records | requests | lag s |"]
    lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for smp in r["samples"]:
        lines.append(
            f"| {smp['t_s']} | {smp['rss_mb']} | {smp['fds']} | {smp['threads']} | {smp['cpu_pct']} | "
            f"{smp['records_written']} | {smp['requests']} | {smp['ingest_lag_s']} |"
        )
    return "\n".join(lines) + "\n"


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
