"""The agents' hooks: latency per agent and event (warm, cold, daemon down), tokens added, and the calibration
of prompt memory's relevance threshold.

    .venv/bin/python bench/hooks_bench.py [--runs 30] [--json results/hooks.json]

A real ``headroom daemon run`` (subprocess, its own HEADROOM_HOME, embeddings off: the hooks never load the
model) over a store seeded with this repository's source files as ``file_read`` items, plus a few decisions
and a lesson. Every hook is the command ``headroom hooks install`` writes into each agent's settings, run
through a shell with the host's stdin shape, exactly as the agent runs it; times are wall-clock per call,
Python start-up included. "cold" is each event's first call after the daemon answers; "down" is the same
commands with no daemon. The calibration runs labelled prompts through :meth:`HookAnswers.relevant` on the
same store and reports, per threshold, what would have been shown against what should have been.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

#: (prompt, the file of this repo that answers it, or None when nothing in the store does)
LABELLED: list[tuple[str, str | None]] = [
    ("How does the briefing share its byte budget between sections?", "memory/briefing.py"),
    ("Where are secrets redacted before anything is stored or embedded?", "memory/redact.py"),
    ("When is a lesson retired because it did not help?", "learn/lessons.py"),
    ("How does ingestion stay exactly-once when the daemon is killed mid-batch?", "daemon/ingest.py"),
    ("How are full-text and vector results fused in memory search?", "memory/search.py"),
    ("How does the watcher debounce bursts of writes to the same log file?", "daemon/watcher.py"),
    ("Which config keys does SIGHUP apply without a restart?", "daemon/service.py"),
    ("How does the JSON editor keep comments in gemini settings.json?", "daemon/mcp/jsontext.py"),
    (
        "How do we add the mcp_servers table to codex config.toml without touching other bytes?",
        "daemon/mcp/tomltext.py",
    ),
    ("How does mining group failures by signature into lessons?", "learn/mining.py"),
    ("Where do we detect 'command not found' failures and their fix?", "learn/error_classes.py"),
    ("Why does the embedding model use one torch thread in the daemon?", "daemon/memory_service.py"),
    ("Write a haiku about autumn leaves falling slowly", None),
    ("What is the capital of Australia?", None),
    ("Translate good morning into Japanese", None),
    ("Explain how castling works in chess", None),
    ("Plan a birthday party for ten kids with a small budget", None),
    ("Summarize the plot of Hamlet in three sentences", None),
    ("Give me a recipe for banana bread", None),
    ("How do I center a div in CSS?", None),
    ("Fix the flaky login test in the web frontend", None),
    ("Refactor the payment controller to use dependency injection", None),
]
THRESHOLDS = [0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8]
SOURCES = ("engine", "memory", "learn", "daemon")


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADROOM_")}
    env |= {
        "HEADROOM_HOME": str(home / "hr"),
        "HEADROOM_EMBEDDINGS": "off",
        "HEADROOM_PROXY_PORT": "0",
        "HOME": str(home / "user"),
        "CLAUDE_CONFIG_DIR": str(home / "claude"),
        "CODEX_HOME": str(home / "codex"),
        "GEMINI_CLI_HOME": str(home / "gemini"),
    }
    return env


def seed(project: Path) -> None:
    """This repo's source files as memory items of ``project`` (read by alternating agents), and a lesson."""
    from datetime import timedelta

    from headroom.daemon.config import load_config
    from headroom.learn.lessons import sync
    from headroom.learn.mining import Evidence, LessonDraft, lesson_key
    from headroom.memory.api import Memory
    from headroom.memory.db import open_database
    from headroom.memory.store import utcnow

    config = load_config()
    config.paths.ensure()
    db = open_database(config.database_url)
    memory = Memory(db)
    agents = ("claude", "codex", "gemini")
    files = sorted(p for d in SOURCES for p in (REPO / d).rglob("*.py"))
    for i, path in enumerate(files):
        rel = path.relative_to(REPO)
        memory.put(
            path.read_text(encoding="utf-8")[:20_000],
            "file_read",
            project=str(project),
            path=str(project / rel),
            title=str(project / rel),
            agent=agents[i % 3],
            session_key=f"seed-{i % 7}",
        )
    for text in (
        "Run the tests with make test-fast; the full suite takes ten minutes on this machine.",
        "Never edit CHANGELOG.md on a branch: the lead merges the changelog lines.",
    ):
        memory.put(text, "decision", project=str(project), agent="claude", session_key="seed-d")
    now = utcnow()
    sync(
        db,
        [
            LessonDraft(
                key=lesson_key("", "not-found:python"),
                project="",
                scope="environment",
                kind="tool_error",
                signature="not-found:python",
                text="Use `python3`, not `python`: `python` is not installed here.",
                names=("python3",),
                evidence=tuple(
                    Evidence(a, f"s{i}", now - timedelta(days=i), "python -m pytest", None)
                    for i, a in enumerate(("claude", "codex", "gemini"))
                ),
                sessions=3,
                count=3,
                first_seen=now - timedelta(days=3),
                last_seen=now,
                corrected_by_user=False,
            )
        ],
    )
    db.close()
    print(f"seeded {len(files)} files, 2 decisions, 1 lesson", file=sys.stderr)


def calibrate(project: Path) -> dict[str, Any]:
    from headroom.daemon.config import load_config
    from headroom.daemon.hooks.answers import MAX_ITEMS, TIE, HookAnswers
    from headroom.memory.api import Memory
    from headroom.memory.db import open_database

    config = load_config()
    db = open_database(config.database_url)
    answers = HookAnswers(lambda: config, db, Memory(db))
    rows = []
    for prompt, expected in LABELLED:
        scored = answers.relevant(prompt, str(project))
        rows.append(
            {
                "prompt": prompt,
                "expected": expected,
                "scores": [
                    (
                        str(Path(i.title or "").relative_to(project))
                        if i.title and i.title.startswith(str(project))
                        else f"#{i.id}",
                        round(r, 3),
                    )
                    for i, r in scored[:5]
                ],
            }
        )
    db.close()
    table = []
    positives = sum(1 for _, e in LABELLED if e)
    for t in THRESHOLDS:
        tp = fp = 0
        for row in rows:
            scores = row["scores"]
            best = scores[0][1] if scores else 0.0
            shown = [name for name, r in scores if r >= t and r >= TIE * best][:MAX_ITEMS]
            hit = row["expected"] in shown
            tp += hit
            fp += len(shown) - hit
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / positives
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        table.append(
            {
                "threshold": t,
                "tp": tp,
                "fp": fp,
                "precision": round(precision, 3),
                "recall": round(recall, 3),
                "f1": round(f1, 3),
            }
        )
    return {"rows": rows, "table": table}


def _payload(agent: str, event: str, project: Path, session: str) -> dict[str, Any]:
    base: dict[str, Any] = {
        "session_id": session,
        "transcript_path": "/tmp/t.jsonl",
        "cwd": str(project),
        "hook_event_name": event,
    }
    if agent == "codex":
        base |= {"model": "gpt-5.5", "permission_mode": "default", "turn_id": "t"}
    purpose = {"SessionStart": "start", "UserPromptSubmit": "prompt", "BeforeAgent": "prompt"}.get(event, "tool")
    if purpose == "start":
        return base | {"source": "startup"}
    if purpose == "prompt":
        return base | {"prompt": LABELLED[0][0]}
    err = "/bin/bash: line 1: python: command not found"
    if agent == "claude" and event == "PostToolUseFailure":
        return base | {
            "tool_name": "Bash",
            "tool_input": {"command": "python -m pytest"},
            "error": f"Exit code 127\n{err}",
        }
    if agent == "claude":
        return base | {"tool_name": "Bash", "tool_input": {"command": "ls"}, "tool_response": {"stdout": "a\nb"}}
    if agent == "codex":
        return base | {
            "tool_name": "Bash",
            "tool_input": {"command": "python -m pytest"},
            "tool_use_id": "c",
            "tool_response": f"{err}\n",
        }
    return base | {
        "tool_name": "run_shell_command",
        "tool_input": {"command": "python -m pytest"},
        "tool_response": {"llmContent": f"Output: {err}\nExit Code: 127\n"},
    }


def time_hooks(env: dict[str, str], project: Path, runs: int, label: str) -> list[dict[str, Any]]:
    from headroom.daemon.hooks import install as hooks_install
    from headroom.daemon.hooks.client import EVENTS
    from headroom.engine.tokens import count_tokens

    out = []
    for agent, event in EVENTS:
        command = hooks_install.hook_command(agent, event)  # type: ignore[arg-type]
        times, tokens = [], []
        for i in range(runs):
            payload = _payload(agent, event, project, f"{label}-{agent}-{i}")  # a new session each time
            started = time.perf_counter()
            done = subprocess.run(
                command, shell=True, input=json.dumps(payload), capture_output=True, text=True, env=env, check=True
            )
            times.append((time.perf_counter() - started) * 1000)
            text = (
                json.loads(done.stdout)["hookSpecificOutput"]["additionalContext"]
                if done.stdout.strip() not in ("", "{}")
                else ""
            )
            tokens.append(count_tokens(text))
        out.append(
            {
                "agent": agent,
                "event": event,
                "mode": label,
                "first_ms": round(times[0], 1),
                "p50_ms": round(statistics.median(times[1:] or times), 1),
                "p95_ms": round(_pct(times[1:] or times, 0.95), 1),
                "tokens": max(tokens),
            }
        )
    return out


def time_floor(env: dict[str, str], runs: int) -> dict[str, float]:
    """The same shell starting ``python -S -c pass``: what any Python hook costs on this machine right now."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(f"{sys.executable} -S -c pass", shell=True, env=env, check=True)
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(_pct(times, 0.95), 1)}


def time_socket(project: Path, runs: int) -> dict[str, dict[str, float]]:
    """The daemon's part alone: one request over the socket, in-process (no Python start-up), per purpose."""
    from headroom.daemon.hooks.client import ask
    from headroom.daemon.hooks.install import socket_path

    out = {}
    for event, purpose in (("SessionStart", "start"), ("UserPromptSubmit", "prompt"), ("PostToolUseFailure", "tool")):
        times = []
        for i in range(runs):
            request = {
                "purpose": purpose,
                "agent": "claude",
                "event": event,
                "payload": _payload("claude", event, project, f"sock-{i}"),
            }
            started = time.perf_counter()
            ask(str(socket_path()), request, 5.0)
            times.append((time.perf_counter() - started) * 1000)
        out[purpose] = {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(_pct(times, 0.95), 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="hb-"))
    env = _env(home)
    os.environ.update(env)
    for sub in ("claude", "codex", "gemini/.gemini", "user"):
        (home / sub).mkdir(parents=True)
    project = home / "proj"
    (project / ".git").mkdir(parents=True)
    seed(project)
    result: dict[str, Any] = {"calibration": calibrate(project)}
    headroom = [sys.executable, "-m", "headroom.daemon.cli"]
    result["floor"] = time_floor(env, args.runs)
    result["down"] = time_hooks(env, project, args.runs, "down")
    daemon = subprocess.Popen(
        [*headroom, "daemon", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        from headroom.daemon.hooks.client import ask
        from headroom.daemon.hooks.install import socket_path

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                ask(str(socket_path()), {"purpose": "ping"}, 0.5)
                break
            except (OSError, ValueError):
                time.sleep(0.2)
        time.sleep(3)  # the token counter's tables load on a thread at start
        result["warm"] = time_hooks(env, project, args.runs, "warm")
        result["socket"] = time_socket(project, args.runs)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(30)
    shutil.rmtree(home, ignore_errors=True)
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
