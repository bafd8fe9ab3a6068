"""The proxy's own cost: added latency, time to first byte, a concurrent streaming load, memory over time.

    python bench/proxy_bench.py [--peer-bin /work/peer-venv/bin] [--quick] [--json bench/results/X.json]

Three kinds of process, each its own OS process: the fake upstream (``tests/fake_provider.py``'s
``FakeProvider`` under uvicorn), the proxies (``headroom proxy``, and the peer's ``headroom proxy`` from
headroom-ai when ``--peer-bin`` is given), and this script, the load generator. Every phase sends the same
requests directly to the fake upstream and through each proxy, interleaved, so all of them see the same
background load. Parts:

1. **added latency** of a small request that needs no compression (Anthropic Messages and OpenAI Chat, not
   streaming): ``--requests`` sequential requests per case and target over one persistent httpx client,
   after a warm-up; each request's text is new (a counter), so no cache answers for the proxy. Added =
   percentile through the proxy - the same percentile direct.
2. **time to first byte** of a streaming answer: (a) a small request to a slow upstream (``slow-50``: 50 ms
   before every SSE event); (b) a large Claude Code request that needs compression (the largest body of
   ``../shared/fixtures/requests/claude/big-output``), sent cold (every tool output and the first message
   carry a new nonce, so neither the prefix cache nor the engine's result cache can help) and then again
   unchanged (the whole prefix is frozen, as for re-sent history). The time headroom's proxy spent before
   calling upstream (parse, compress, re-encode) is its ``added_ms``, read from its stats database.
3. **concurrent streams**: ``--concurrency`` asyncio workers stream (Anthropic, OpenAI Chat, Responses,
   Gemini; ``slow-20``) through one proxy for ``--duration`` seconds; every answer is compared byte for
   byte with the answer the fake upstream gave to the same request sent directly (it is deterministic).
4. **memory**: RSS of a fresh proxy process (and its children) over ``--rss-requests`` mixed small
   requests (all four APIs, streaming and not, count_tokens), sampled from ``/proc/<pid>/status`` every
   ``--rss-every`` requests after a warm-up.

The peer runs with ``--no-rate-limit`` (its default of 60 requests a minute would throttle every part),
``--no-cache`` (its semantic cache could answer without calling upstream) and
``--no-subscription-tracking`` (it polls Anthropic's quota API), with ``HEADROOM_OFFLINE=1``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("HEADROOM_SHARED", REPO.parent / "shared"))
BIG_REQUESTS = SHARED / "fixtures" / "requests" / "claude" / "big-output"
TARGETS = {"added_p50_ms": 5.0, "added_p99_ms": 50.0, "rss_growth_mb": 5.0}
ANTHROPIC_HEADERS = {"x-api-key": "dummy", "anthropic-version": "2023-06-01", "user-agent": "proxy-bench/1"}
OPENAI_HEADERS = {"authorization": "Bearer dummy", "user-agent": "proxy-bench/1"}
GEMINI_HEADERS = {"x-goog-api-key": "dummy", "user-agent": "proxy-bench/1"}


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- processes -------------------------------------------------------------------------------------------


def serve_fake(port_file: Path) -> None:
    """The fake upstream, in this process, until SIGTERM (``--serve-fake``)."""
    import uvicorn

    sys.path.insert(0, str(REPO / "tests"))
    from fake_provider import FakeProvider

    class Provider(FakeProvider):  # type: ignore[misc]  # tests/ is not a typed package
        def _usage(self, body: bytes) -> int:
            # The usage it reports depends on the request's content, not on its JSON spacing: a proxy that
            # re-encodes a body it did not change must not make the answer differ (the peer compacts JSON).
            try:
                canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
            except ValueError:
                canonical = body
            return max(1, len(canonical) // 4)

    provider = Provider(reply="The request failed because the item id was not found in the records file.")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await provider(scope, receive, send)
        if len(provider.received) > 1000:  # it records every request; a long benchmark must not grow it
            provider.received.clear()
            provider.ws_frames.clear()

    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY on accepted connections only when the listening
    # socket says it is TCP, and without it every answer written in two parts waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    config = uvicorn.Config(app, log_level="error", access_log=False, lifespan="on", ws_per_message_deflate=False)
    server = uvicorn.Server(config)
    port_file.write_text(str(sock.getsockname()[1]))
    asyncio.run(server.serve(sockets=[sock]))


@dataclass
class Service:
    """A server process started by the benchmark."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    home: Path | None = None  # headroom's HEADROOM_HOME (its stats database)

    def rss_mb(self) -> float:
        """Resident memory of the process and its descendants."""
        return sum(_rss_kb(pid) for pid in [self.proc.pid, *_descendants(self.proc.pid)]) / 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


#: CPUs for the proxies and for the rest (fake upstream, load generator); empty: no pinning.
PIN: dict[str, set[int]] = {}


def _pinned(role: str, cmd: list[str]) -> list[str]:
    """``cmd`` confined, with every thread it starts, to its role's CPUs (``taskset``)."""
    cpus = PIN.get(role)
    return ["taskset", "-c", ",".join(map(str, sorted(cpus))), *cmd] if cpus else cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url} exited with {proc.returncode} at start:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def start_fake(work: Path) -> Service:
    port_file = work / "fake.port"
    port_file.unlink(missing_ok=True)
    log = work / "fake.log"
    proc = subprocess.Popen(
        _pinned("rest", [sys.executable, __file__, "--serve-fake", str(port_file)]),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port_file.read_text()}"
    _wait_http(url + "/v1/models", proc, log)
    return Service("direct", url, proc)


def start_headroom(work: Path, name: str, binary: str, upstream: str, *, stats: bool = True) -> Service:
    home = work / f"home-{name}"
    with contextlib.suppress(FileNotFoundError):
        for p in sorted(home.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
    home.mkdir(parents=True, exist_ok=True)
    log = work / f"{name}.log"
    cmd = [binary, "proxy", "--host", "127.0.0.1", "--port", "0"]
    cmd += ["--anthropic-upstream", upstream, "--openai-upstream", upstream, "--gemini-upstream", upstream]
    if not stats:
        cmd.append("--no-stats")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADROOM_")} | {"HEADROOM_HOME": str(home)}
    proc = subprocess.Popen(
        _pinned("proxy", cmd),
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    state = home / "state" / "proxy.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            url = str(json.loads(state.read_text())["url"])
            _wait_http(url + "/healthz", proc, log)
            return Service(name, url, proc, home)
        time.sleep(0.05)
    raise SystemExit(f"headroom proxy did not start:\n{log.read_text()[-3000:]}")


def start_proxy(name: str, work: Path, tag: str, headroom_bin: str, peer_bin: Path | None, upstream: str) -> Service:
    """A fresh ``headroom`` or ``peer`` proxy in front of ``upstream``."""
    if name == "headroom":
        return start_headroom(work, f"headroom-{tag}", headroom_bin, upstream)
    if peer_bin is None:
        raise ValueError("the peer needs --peer-bin")
    return start_peer(work, peer_bin, upstream)


def start_peer(work: Path, peer_bin: Path, upstream: str) -> Service:
    home = work / "home-peer"
    home.mkdir(parents=True, exist_ok=True)
    log = work / "peer.log"
    port = _free_port()
    cmd = [str(peer_bin / "headroom"), "proxy", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--anthropic-api-url", upstream, "--openai-api-url", upstream + "/v1", "--gemini-api-url", upstream]
    cmd += ["--no-rate-limit", "--no-cache", "--no-subscription-tracking"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADROOM_")}
    env |= {"HOME": str(home), "HEADROOM_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(
        _pinned("proxy", cmd),
        env=env,
        cwd=home,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    _wait_http(url + "/livez", proc, log, timeout=180)
    return Service("peer", url, proc, None)


# -- requests --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request: method path, headers and JSON body."""

    kind: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    def content(self) -> bytes:
        return json.dumps(self.body).encode()


def anthropic(i: int, *, stream: bool = False, model: str = "claude-sonnet-4-5") -> Call:
    body = {
        "model": model,
        "max_tokens": 512,
        "stream": stream,
        "system": "You are a careful assistant for a small web service.",
        "messages": [{"role": "user", "content": f"Request {i}: what does an HTTP 404 from /items/{i} mean?"}],
    }
    return Call("anthropic" + ("-stream" if stream else ""), "/v1/messages", ANTHROPIC_HEADERS, body)


def chat(i: int, *, stream: bool = False, model: str = "gpt-5.5") -> Call:
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": f"Question {i}: which status code means 'not found'?"},
        ],
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return Call("chat" + ("-stream" if stream else ""), "/v1/chat/completions", OPENAI_HEADERS, body)


def responses(i: int, *, stream: bool = False, model: str = "gpt-5.5") -> Call:
    body = {
        "model": model,
        "stream": stream,
        "instructions": "You are terse.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": f"Task {i}: list three HTTP verbs."}]}],
    }
    return Call("responses" + ("-stream" if stream else ""), "/v1/responses", OPENAI_HEADERS, body)


def gemini(i: int, *, stream: bool = False, model: str = "gemini-3.8-flash") -> Call:
    verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": f"Prompt {i}: name a prime above {i}."}]}]}
    return Call("gemini" + ("-stream" if stream else ""), f"/v1beta/models/{model}:{verb}", GEMINI_HEADERS, body)


def count_tokens(i: int) -> Call:
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": f"Count {i} tokens, please."}]}
    return Call("count_tokens", "/v1/messages/count_tokens", ANTHROPIC_HEADERS, body)


MIXED: list[Callable[[int], Call]] = [
    anthropic,
    lambda i: anthropic(i, stream=True),
    chat,
    lambda i: chat(i, stream=True),
    responses,
    lambda i: responses(i, stream=True),
    gemini,
    lambda i: gemini(i, stream=True),
    count_tokens,
]


def big_body() -> dict[str, Any]:
    """The largest request Claude Code sent in the big-output scenario (a 35 KB JSON read among others)."""
    paths = list(BIG_REQUESTS.glob("*-anthropic-main.json"))
    if not paths:
        raise SystemExit(f"no request fixtures under {BIG_REQUESTS} (set HEADROOM_SHARED)")
    body: dict[str, Any] = json.loads(max(paths, key=lambda p: p.stat().st_size).read_bytes())
    body["stream"] = True
    return body


def with_nonce(body: dict[str, Any], nonce: str) -> dict[str, Any]:
    """``body`` with ``nonce`` in the first user message and at the end of every tool output: a request that
    no cache has seen and that compresses like the original."""
    out = copy.deepcopy(body)
    for n, message in enumerate(out["messages"]):
        content = message.get("content")
        if n == 0 and isinstance(content, list):
            content.insert(0, {"type": "text", "text": f"[bench run {nonce}]"})
        if not isinstance(content, list):
            continue
        for block in content:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            inner = block.get("content")
            if isinstance(inner, str):
                block["content"] = f"{inner}\n[run {nonce}]"
            elif isinstance(inner, list) and inner and isinstance(inner[-1], dict) and "text" in inner[-1]:
                inner[-1]["text"] = f"{inner[-1]['text']}\n[run {nonce}]"
    return out


# -- statistics ------------------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (the p99 of 2,000 samples is the 1,980th smallest)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil without floats
    return ordered[int(rank) - 1]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(pct(values, 50), 3),
        "p90": round(pct(values, 90), 3),
        "p99": round(pct(values, 99), 3),
        "mean": round(statistics.fmean(values), 3) if values else float("nan"),
        "max": round(max(values), 3) if values else float("nan"),
    }


# -- 1. added latency ------------------------------------------------------------------------------------


def _rotations(targets: list[Service], i: int) -> Iterator[Service]:
    """Round ``i`` visits the targets starting one further along, so none always goes first."""
    k = i % len(targets)
    yield from targets[k:] + targets[:k]


def bench_latency(targets: list[Service], n: int, warmup: int) -> dict[str, Any]:
    cases: dict[str, Callable[[int], Call]] = {"anthropic": anthropic, "openai_chat": chat}
    clients = {t.name: httpx.Client(base_url=t.url, timeout=30) for t in targets}
    out: dict[str, Any] = {}
    try:
        for case, make in cases.items():
            times: dict[str, list[float]] = {t.name: [] for t in targets}
            for i in range(-warmup, n):
                call = make(i + 10_000_000 * (case == "openai_chat"))
                for target in _rotations(targets, i):
                    client = clients[target.name]
                    started = time.perf_counter()
                    response = client.post(call.path, content=call.content(), headers=call.headers)
                    response.read()
                    elapsed = (time.perf_counter() - started) * 1000
                    if response.status_code != 200:
                        raise SystemExit(f"{target.name} {case}: HTTP {response.status_code}: {response.text[:300]}")
                    if i >= 0:
                        times[target.name].append(elapsed)
            direct = times["direct"]
            rows: dict[str, Any] = {"direct": summary(direct)}
            for target in targets:
                if target.name == "direct":
                    continue
                own = times[target.name]
                paired = [a - b for a, b in zip(own, direct)]
                rows[target.name] = summary(own) | {
                    "added_p50": round(pct(own, 50) - pct(direct, 50), 3),
                    "added_p99": round(pct(own, 99) - pct(direct, 99), 3),
                    "paired_diff": summary(paired),
                }
            out[case] = rows
            say(
                f"  latency {case}: " + ", ".join(f"{k} p50 {v['p50']:.2f} p99 {v['p99']:.2f}" for k, v in rows.items())
            )
    finally:
        for client in clients.values():
            client.close()
    return out


# -- 2. time to first byte -------------------------------------------------------------------------------


def _ttfb(client: httpx.Client, call_path: str, headers: dict[str, str], content: bytes) -> tuple[float, float, float]:
    """(ms to the response head, ms to the first body byte, ms to the end) of one streamed answer."""
    started = time.perf_counter()
    with client.stream("POST", call_path, content=content, headers=headers) as response:
        head = time.perf_counter()
        first = None
        for chunk in response.iter_raw():
            if chunk and first is None:
                first = time.perf_counter()
        end = time.perf_counter()
        if response.status_code != 200:
            raise SystemExit(f"HTTP {response.status_code} on {call_path}")
    first = first or end
    return ((head - started) * 1000, (first - started) * 1000, (end - started) * 1000)


def bench_ttfb(targets: list[Service], n_slow: int, n_big: int) -> dict[str, Any]:
    clients = {t.name: httpx.Client(base_url=t.url, timeout=120) for t in targets}
    out: dict[str, Any] = {}
    try:
        slow: dict[str, list[float]] = {t.name: [] for t in targets}
        for i in range(-3, n_slow):
            call = anthropic(20_000_000 + i, stream=True, model="claude-slow-50")
            for target in _rotations(targets, i):
                _, first, _ = _ttfb(clients[target.name], call.path, call.headers, call.content())
                if i >= 0:
                    slow[target.name].append(first)
        out["slow_upstream"] = _vs_direct(slow)
        say("  ttfb slow-50: " + ", ".join(f"{k} p50 {v['p50']:.1f}" for k, v in out["slow_upstream"].items()))

        base = big_body()
        size = len(json.dumps(base).encode())
        cold: dict[str, list[float]] = {t.name: [] for t in targets}
        warm: dict[str, list[float]] = {t.name: [] for t in targets}
        for i in range(-1, n_big):
            content = json.dumps(with_nonce(base, f"{os.getpid()}-{i}")).encode()
            for target in _rotations(targets, i):
                for bucket in (cold, warm):  # the same body twice: first seen, then re-sent
                    _, first, _ = _ttfb(clients[target.name], "/v1/messages?beta=true", ANTHROPIC_HEADERS, content)
                    if i >= 0:
                        bucket[target.name].append(first)
        out["big_request"] = {"bytes": size, "cold": _vs_direct(cold), "resent": _vs_direct(warm)}
        say("  ttfb big cold: " + ", ".join(f"{k} p50 {v['p50']:.1f}" for k, v in out["big_request"]["cold"].items()))
    finally:
        for client in clients.values():
            client.close()
    return out


def _vs_direct(times: dict[str, list[float]]) -> dict[str, Any]:
    rows: dict[str, Any] = {"direct": summary(times["direct"])}
    for name, values in times.items():
        if name != "direct":
            rows[name] = summary(values) | {"added_p50": round(pct(values, 50) - pct(times["direct"], 50), 3)}
    return rows


def added_ms_from_stats(service: Service, min_bytes: int) -> dict[str, Any]:
    """headroom's own ``added_ms`` (time before the upstream call) of the big requests, first-seen and
    re-sent, from its stats database (after ``GET /stats`` flushed the writer)."""
    httpx.get(service.url + "/stats", timeout=30)
    db = (service.home or Path()) / "headroom.db"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        rows = con.execute(
            "select added_ms, bytes_before, bytes_after, frozen_messages, blocks_compressed "
            "from proxy_requests where bytes_before >= ? order by id",
            (min_bytes,),
        ).fetchall()
    rows = rows[2:]  # the warm-up pair
    cold, warm = rows[0::2], rows[1::2]
    return {
        "cold_added_ms": summary([r[0] for r in cold]),
        "resent_added_ms": summary([r[0] for r in warm]),
        "bytes_before": cold[0][1] if cold else None,
        "bytes_after": cold[0][2] if cold else None,
        "blocks_compressed": cold[0][4] if cold else None,
        "resent_frozen_messages": warm[0][3] if warm else None,
    }


# -- 3. concurrent streams -------------------------------------------------------------------------------


STREAMING: list[Callable[[int], Call]] = [
    lambda i: anthropic(i, stream=True, model="claude-slow-20"),
    lambda i: chat(i, stream=True, model="gpt-slow-20"),
    lambda i: responses(i, stream=True, model="gpt-slow-20"),
    lambda i: gemini(i, stream=True, model="gemini-slow-20"),
]


@dataclass
class LoadResult:
    completed: int = 0
    errors: int = 0
    mismatches: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    mismatch_examples: list[dict[str, Any]] = field(default_factory=list)
    error_examples: list[str] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)


async def _references(url: str, calls: list[Call]) -> list[bytes]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        out = []
        for call in calls:
            response = await client.post(call.path, content=call.content(), headers=call.headers)
            out.append(response.content)
        return out


async def _load(url: str, calls: list[Call], refs: list[bytes], concurrency: int, duration: float) -> LoadResult:
    result = LoadResult()
    deadline = time.monotonic() + duration

    async def worker(w: int) -> None:
        # One client (one keep-alive connection) per worker: a single pool shared by hundreds of concurrent
        # streams makes httpx itself the bottleneck (tens of streams a second with the CPU idle).
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            i = w
            while time.monotonic() < deadline:
                k = i % len(calls)
                call = calls[k]
                i += concurrency
                started = time.perf_counter()
                try:
                    async with client.stream("POST", call.path, content=call.content(), headers=call.headers) as r:
                        data = b"".join([chunk async for chunk in r.aiter_raw()])
                        status = r.status_code
                except Exception as exc:
                    name = type(exc).__name__
                    result.errors += 1
                    result.error_kinds[name] = result.error_kinds.get(name, 0) + 1
                    if len(result.error_examples) < 5:
                        when = time.strftime("%H:%M:%S")
                        result.error_examples.append(
                            f"{when} {call.kind} after {time.perf_counter() - started:.1f} s: {name}: {exc!r}"
                        )
                    continue
                if status != 200:
                    result.errors += 1
                    result.error_kinds[f"HTTP {status}"] = result.error_kinds.get(f"HTTP {status}", 0) + 1
                    continue
                result.durations.append((time.perf_counter() - started) * 1000)
                result.completed += 1
                if data != refs[k]:
                    result.mismatches += 1
                    if len(result.mismatch_examples) < 3:
                        result.mismatch_examples.append(
                            {
                                "kind": call.kind,
                                "got": data[:400].decode("utf-8", "replace"),
                                "expected": refs[k][:400].decode("utf-8", "replace"),
                            }
                        )

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return result


def bench_concurrency(direct: Service, proxy: Service, concurrency: int, duration: float) -> dict[str, Any]:
    calls = [make(30_000_000 + i) for i in range(25) for make in STREAMING]
    refs = asyncio.run(_references(direct.url, calls))
    started = time.perf_counter()
    res = asyncio.run(_load(proxy.url, calls, refs, concurrency, duration))
    wall = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "duration_s": round(wall, 1),
        "distinct_requests": len(calls),
        "completed": res.completed,
        "errors": res.errors,
        "error_kinds": res.error_kinds,
        "mismatches": res.mismatches,
        "mismatch_examples": res.mismatch_examples,
        "error_examples": res.error_examples,
        "streams_per_s": round(res.completed / wall, 1),
        "stream_ms": summary(res.durations),
    }


# -- 4. memory -------------------------------------------------------------------------------------------


def bench_rss(service: Service, total: int, every: int, warmup: int) -> dict[str, Any]:
    samples: list[tuple[int, float]] = []
    with httpx.Client(base_url=service.url, timeout=30) as client:
        for i in range(-warmup, total + 1):
            if i >= 0 and i % every == 0:
                samples.append((i, round(service.rss_mb(), 1)))
            if i == total:
                break
            call = MIXED[i % len(MIXED)](40_000_000 + i)
            response = client.post(call.path, content=call.content(), headers=call.headers)
            response.read()
            if response.status_code != 200:
                raise SystemExit(f"{service.name} {call.kind}: HTTP {response.status_code}: {response.text[:300]}")
    xs = [float(n) for n, _ in samples]
    ys = [mb for _, mb in samples]
    slope = statistics.linear_regression(xs, ys).slope * 1000 if len(samples) > 2 else float("nan")
    return {
        "requests": total,
        "warmup": warmup,
        "samples": [{"after": n, "rss_mb": mb} for n, mb in samples],
        "growth_mb": round(ys[-1] - ys[0], 1),
        "slope_mb_per_1000": round(slope, 3),
    }


# -- the run ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve-fake", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="a short smoke run (small counts, 10 s of load)")
    ap.add_argument("--peer-bin", type=Path, help="bin folder of a virtualenv with headroom-ai[proxy]")
    ap.add_argument("--peer-python", type=Path, help="the peer virtualenv's python (its folder is --peer-bin)")
    ap.add_argument("--headroom-bin", help="the headroom command (default: the one beside this python)")
    ap.add_argument("--requests", type=int, help="sequential requests per latency case and target (2000)")
    ap.add_argument("--concurrency", type=int, help="concurrent streams (200)")
    ap.add_argument("--duration", type=float, help="seconds of concurrent load (60)")
    ap.add_argument("--rss-requests", type=int, help="requests of the memory part (10000)")
    ap.add_argument("--rss-every", type=int, help="sample RSS every N requests (1000)")
    ap.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the proxies to the last CPU and the fake upstream and load generator to the others",
    )
    ap.add_argument("--parts", default="latency,ttfb,concurrency,rss", help="which parts to run")
    ap.add_argument("--json", type=Path, help="write the report here (and a .md beside it)")
    ap.add_argument("--work", type=Path, help="keep the servers' homes and logs here (default: a temporary folder)")
    args = ap.parse_args(argv)
    if args.serve_fake:
        serve_fake(args.serve_fake)
        return
    quick = args.quick
    n = args.requests or (200 if quick else 2000)
    concurrency = args.concurrency or (50 if quick else 200)
    duration = args.duration or (10.0 if quick else 60.0)
    rss_total = args.rss_requests or (2000 if quick else 10_000)
    rss_every = args.rss_every or (500 if quick else 1000)
    parts = set(args.parts.split(","))
    cpus = sorted(os.sched_getaffinity(0))
    if not args.no_pin and len(cpus) >= 2 and shutil.which("taskset"):
        PIN.update(proxy={cpus[-1]}, rest=set(cpus[:-1]))
        os.sched_setaffinity(0, PIN["rest"])
    peer_bin = args.peer_bin or (args.peer_python.parent if args.peer_python else None)
    headroom_bin = args.headroom_bin or str(Path(sys.executable).with_name("headroom"))
    sys.path.insert(0, str(REPO / "bench"))
    from bench_report import machine

    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": " ".join(["python", "bench/proxy_bench.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(),
        "settings": {
            "requests": n,
            "concurrency": concurrency,
            "duration_s": duration,
            "rss_requests": rss_total,
            "rss_every": rss_every,
            "quick": quick,
            "pinning": {k: sorted(v) for k, v in PIN.items()} or None,
        },
        "targets": TARGETS,
    }
    services: list[Service] = []
    with tempfile.TemporaryDirectory(prefix="headroom-proxy-bench-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        try:
            fake = start_fake(work)
            services.append(fake)
            say(f"fake upstream {fake.url} (pid {fake.proc.pid})")
            ours = start_headroom(work, "headroom", headroom_bin, fake.url)
            services.append(ours)
            say(f"headroom proxy {ours.url} (pid {ours.proc.pid})")
            peer = start_peer(work, peer_bin, fake.url) if peer_bin else None
            if peer:
                services.append(peer)
                say(f"peer proxy {peer.url} (pid {peer.proc.pid})")
            targets = [fake, ours] + ([peer] if peer else [])
            if "latency" in parts:
                say("1. added latency")
                report["latency"] = bench_latency(targets, n, warmup=50 if quick else 200)
            if "ttfb" in parts:
                say("2. time to first byte")
                report["ttfb"] = bench_ttfb(targets, 10 if quick else 100, 3 if quick else 20)
                report["ttfb"]["headroom_added_ms"] = added_ms_from_stats(ours, 100_000)
            for s in services[1:]:
                s.stop()
            services = services[:1]
            if "concurrency" in parts:
                say(f"3. {concurrency} concurrent streams for {duration:.0f} s")
                report["concurrency"] = {}
                for name in ["direct", "headroom"] + (["peer"] if peer_bin else []):
                    if name == "direct":  # the load generator and the fake upstream alone: the ceiling here
                        report["concurrency"][name] = bench_concurrency(fake, fake, concurrency, duration)
                    else:
                        proxy = start_proxy(name, work, "c", headroom_bin, peer_bin, fake.url)
                        services.append(proxy)
                        report["concurrency"][name] = bench_concurrency(fake, proxy, concurrency, duration)
                        report["concurrency"][name]["proxy_rss_mb_after"] = round(proxy.rss_mb(), 1)
                        if name == "headroom":
                            health = httpx.get(proxy.url + "/healthz", timeout=10).json()
                            report["concurrency"][name]["proxy_health"] = health
                        proxy.stop()
                        services.remove(proxy)
                    c = report["concurrency"][name]
                    say(
                        f"  {name}: {c['completed']} streams ({c['streams_per_s']}/s), {c['errors']} errors "
                        f"{c['error_kinds']}, {c['mismatches']} mismatches"
                    )
            if "rss" in parts:
                say(f"4. RSS over {rss_total} requests")
                report["rss"] = {}
                for name in ["headroom"] + (["peer"] if peer_bin else []):
                    proxy = start_proxy(name, work, "m", headroom_bin, peer_bin, fake.url)
                    services.append(proxy)
                    report["rss"][name] = bench_rss(proxy, rss_total, rss_every, warmup=200)
                    r = report["rss"][name]
                    say(
                        f"  {name}: "
                        + " ".join(str(s["rss_mb"]) for s in r["samples"])
                        + f" MB (growth {r['growth_mb']})"
                    )
                    proxy.stop()
                    services.remove(proxy)
        finally:
            for s in reversed(services):
                s.stop()
    report["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report["verdicts"] = verdicts(report)
    text = markdown(report)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        args.json.with_suffix(".md").write_text(text + "\n", encoding="utf-8")


def verdicts(report: dict[str, Any]) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for case, rows in report.get("latency", {}).items():
        out[f"latency_{case}_p50"] = rows["headroom"]["added_p50"] <= TARGETS["added_p50_ms"]
        out[f"latency_{case}_p99"] = rows["headroom"]["added_p99"] <= TARGETS["added_p99_ms"]
    if "concurrency" in report:
        c = report["concurrency"]["headroom"]
        out["concurrency_clean"] = c["errors"] == 0 and c["mismatches"] == 0
    if "rss" in report:
        out["rss_flat"] = report["rss"]["headroom"]["growth_mb"] <= TARGETS["rss_growth_mb"]
    return out


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# Proxy benchmark, {report['date']}",
        "",
        f"`{report['command']}` on {m['nproc']} cores ({m['cpu']}), {m['memory']}, Python {m['python']}, "
        f"headroom {m['headroom_commit']} (source {m['source_digest']}); load average {m['loadavg_start']} → "
        f"{m.get('loadavg_end')}. Fake upstream, proxies and load generator are separate processes sharing "
        "these cores.",
    ]
    names = [n for n in ("headroom", "peer") if n in report.get("latency", {}).get("anthropic", {})]
    if "latency" in report:
        lines += [
            "",
            "## Added latency, small request, no compression (ms)",
            "",
            "| case | direct p50 / p99 | " + " | ".join(f"{n} p50 / p99 | {n} added p50 / p99" for n in names) + " |",
            "|---|---|" + "---|---|" * len(names),
        ]
        for case, rows in report["latency"].items():
            cells = [case, f"{rows['direct']['p50']:.2f} / {rows['direct']['p99']:.2f}"]
            for n in names:
                r = rows[n]
                cells += [f"{r['p50']:.2f} / {r['p99']:.2f}", f"**{r['added_p50']:.2f} / {r['added_p99']:.2f}**"]
            lines.append("| " + " | ".join(cells) + " |")
    if "ttfb" in report:
        t = report["ttfb"]
        lines += [
            "",
            "## Time to first streamed byte (p50 ms; added = via proxy − direct)",
            "",
            "| request | direct | " + " | ".join(f"{n} | {n} added" for n in names) + " |",
            "|---|---|" + "---|---|" * len(names),
        ]
        for label, rows in (
            ("small, slow-50 upstream", t["slow_upstream"]),
            (f"big ({t['big_request']['bytes']:,} B), first seen", t["big_request"]["cold"]),
            ("big, re-sent unchanged", t["big_request"]["resent"]),
        ):
            cells = [label, f"{rows['direct']['p50']:.1f}"]
            for n in names:
                cells += [f"{rows[n]['p50']:.1f}", f"{rows[n]['added_p50']:.1f}"]
            lines.append("| " + " | ".join(cells) + " |")
        a = t.get("headroom_added_ms", {})
        if a:
            lines += [
                "",
                f"headroom's time before the upstream call (`added_ms`, p50): first seen "
                f"{a['cold_added_ms']['p50']:.1f} ms ({a['bytes_before']:,} → {a['bytes_after']:,} B, "
                f"{a['blocks_compressed']} blocks compressed), re-sent {a['resent_added_ms']['p50']:.1f} ms "
                f"({a['resent_frozen_messages']} messages frozen).",
            ]
    if "concurrency" in report:
        lines += [
            "",
            "## Concurrent streams",
            "",
            "| proxy | concurrency | seconds | completed | streams/s | errors | mismatches | stream p50 / p99 ms |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for n, c in report["concurrency"].items():
            lines.append(
                f"| {n} | {c['concurrency']} | {c['duration_s']} | {c['completed']:,} | {c['streams_per_s']} | "
                f"{c['errors']} | {c['mismatches']} | {c['stream_ms']['p50']:.0f} / {c['stream_ms']['p99']:.0f} |"
            )
    if "rss" in report:
        lines += ["", "## RSS over mixed small requests (MB)", ""]
        for n, r in report["rss"].items():
            lines.append(
                f"- {n}: "
                + ", ".join(f"{s['rss_mb']}" for s in r["samples"])
                + f" (every {report['settings']['rss_every']:,}; growth {r['growth_mb']} MB, "
                f"slope {r['slope_mb_per_1000']} MB per 1,000)"
            )
    lines += ["", "Verdicts: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in report["verdicts"].items())]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
