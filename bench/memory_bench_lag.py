"""The memory benchmark's ``lag`` part (``memory_bench.py``): ingest-to-searchable lag through a real daemon.

It starts ``headroom daemon run`` on a fresh home, appends Claude Code log records (a Read call and its result
carrying a unique token) and polls the daemon's database read-only until the text is in full-text search and the
item has a vector. The records come from ``tests.helpers``: the entry point puts the repository on ``sys.path``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from benchlib import clean_env
from memory_bench_corpus import Corpus
from memory_bench_measure import say

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
    from headroom.daemon import watcher

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
        "worker": "woken after every ingestion pass",
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
