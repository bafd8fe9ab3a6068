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

# This file parses the command line, serves the fake upstream (``--serve-fake``), runs the parts and writes the
# report (the docstring above is the --help text); the rest lives beside it: proxy_bench_services.py (starting
# the proxies, RSS, CPU pinning), proxy_bench_requests.py (the requests), proxy_bench_parts.py (the measurements).

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from benchlib import say
from proxy_bench_parts import added_ms_from_stats, bench_concurrency, bench_latency, bench_rss, bench_ttfb
from proxy_bench_requests import ANTHROPIC_HEADERS  # noqa: F401  # soak_bench.py imports it from here
from proxy_bench_services import PIN, Service, _pinned, _wait_http, start_headroom, start_peer, start_proxy

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"added_p50_ms": 5.0, "added_p99_ms": 50.0, "rss_growth_mb": 5.0}


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
