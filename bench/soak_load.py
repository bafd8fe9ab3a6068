"""The soak's load: Claude Code session records appended to session files, and Anthropic requests to the proxy.

Split from bench/soak_bench.py (the runner); the records use the same envelope as the tests' fixtures.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
from proxy_bench import ANTHROPIC_HEADERS

from tests.helpers import claude_envelope

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
