"""The four measurements of the proxy benchmark (``proxy_bench.py``; its module doc says what each measures):
added latency, time to first byte, concurrent streams and memory over time, with their statistics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from benchlib import say
from proxy_bench_requests import (
    ANTHROPIC_HEADERS,
    MIXED,
    Call,
    anthropic,
    big_body,
    chat,
    gemini,
    responses,
    with_nonce,
)
from proxy_bench_services import Service


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
