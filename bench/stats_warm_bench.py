"""Warm ``headroom stats --by day --json --no-refresh``: with a running daemon, without one, and ccusage.

Without a daemon it is run three ways: as the ``headroom`` console script runs it (``headroom.daemon.entry``:
the JSON answered before the CLI is imported, daemon/stats_fast.py ``quick_main``), through the click CLI (its
sqlite3 fast path) and through the SQLAlchemy path both replace (``HEADROOM_STATS_FAST=0``); the outputs must be
the same bytes. With a daemon, the click CLI asks it. Each command is run once
before the timed runs (a DB from an older release is upgraded, the fast path's rate cache is filled). CPU
time (user + system of the child) is recorded beside wall time: under a shared machine's load it moves less.

Takes a HEADROOM_HOME that ``bench/ingest_bench.py`` backfilled (``--home``) and its corpus (``--corpus``). The
home is copied twice: one copy gets a running ``headroom daemon run`` (proxy and embeddings off, so it only
keeps the DB current and answers the CLI over its socket), the other none (the CLI queries the DB itself).
Then, ``--runs`` times in turn so all three see the same background load: the CLI against the daemon's copy,
the CLI against the other, and ``ccusage daily --json --by-agent --offline -z UTC`` over the corpus. Wall
times of whole processes, medians, and the ratios to ccusage of the same run.

    .venv/bin/python bench/stats_warm_bench.py --home /tmp/headroom-bench/hr-backfill-2 \\
        --corpus /tmp/headroom-bench/corpus-200mb --json bench/results/DATE-stats-warm.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "headroom.daemon.cli"]
ENTRY = [sys.executable, "-m", "headroom.daemon.entry"]  # what the `headroom` console script runs
CCUSAGE = REPO / ".tools" / "node_modules" / ".bin" / "ccusage"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hr-stats-"))
    homes = {}
    for name in ("daemon", "local"):
        homes[name] = work / name
        shutil.copytree(args.home, homes[name], ignore=shutil.ignore_patterns("*.sock", "*.pid", "*.lock"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HEADROOM_", "CLAUDE_", "CODEX_", "GEMINI_"))}
    base["HOME"] = str(work / "user")
    env = {name: base | {"HEADROOM_HOME": str(home), "HEADROOM_EMBEDDINGS": "off"} for name, home in homes.items()}
    (homes["daemon"] / "config.toml").write_text(
        (homes["daemon"] / "config.toml").read_text() + "\n[proxy]\nenabled = false\n"
    )
    c = args.corpus
    cc_env = base | {"CLAUDE_CONFIG_DIR": f"{c}/claude", "CODEX_HOME": f"{c}/codex", "GEMINI_DATA_DIR": f"{c}/gemini"}
    stats = [*CLI, "stats", "--by", "day", "--json", "--no-refresh"]
    with (work / "daemon.out").open("wb") as log:
        proc = subprocess.Popen([*CLI, "daemon", "run"], env=env["daemon"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not any(homes["daemon"].rglob("*.sock")):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"the daemon did not start: {(work / 'daemon.out').read_text()[-2000:]}")
            time.sleep(0.2)
        time.sleep(3)  # its first catch-up scan (nothing new) done
        commands = (
            ("with_daemon", stats, env["daemon"]),
            ("without_daemon", [*ENTRY, *stats[len(CLI) :]], env["local"]),
            ("without_daemon_cli", stats, env["local"]),
            ("without_daemon_orm", stats, env["local"] | {"HEADROOM_STATS_FAST": "0"}),
            ("ccusage", [str(CCUSAGE), "daily", "--json", "--by-agent", "--offline", "-z", "UTC"], cc_env),
        )
        for _name, cmd, e in commands:  # warm-up: upgrades, the rate cache, the page cache
            subprocess.run(cmd, env=e, capture_output=True, text=True, check=True, timeout=600)
        runs: dict[str, list[float]] = {name: [] for name, _, _ in commands}
        cpu: dict[str, list[float]] = {name: [] for name, _, _ in commands}
        outputs: dict[str, str] = {}
        for _ in range(args.runs):
            for name, cmd, e in commands:
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                t = time.perf_counter()
                out = subprocess.run(cmd, env=e, capture_output=True, text=True, check=True, timeout=600)
                runs[name].append(round(time.perf_counter() - t, 3))
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                cpu[name].append(round(used, 3))
                outputs[name] = out.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    medians = {k: round(statistics.median(v), 3) for k, v in runs.items()}
    cpu_medians = {k: round(statistics.median(v), 3) for k, v in cpu.items()}
    mine = ("with_daemon", "without_daemon", "without_daemon_cli", "without_daemon_orm")
    result = {
        "corpus": str(args.corpus),
        "corpus_mb": round(sum(f.stat().st_size for f in args.corpus.rglob("*") if f.is_file()) / 1e6, 1),
        "runs_s": runs,
        "median_s": medians,
        "cpu_s": cpu,
        "median_cpu_s": cpu_medians,
        "ratio_to_ccusage": {k: round(medians[k] / medians["ccusage"], 2) for k in mine},
        "cpu_ratio_to_ccusage": {k: round(cpu_medians[k] / cpu_medians["ccusage"], 2) for k in mine},
        "same_rows": json.loads(outputs["with_daemon"]) == json.loads(outputs["without_daemon"]),
        "fast_path_same_bytes": outputs["without_daemon"]
        == outputs["without_daemon_cli"]
        == outputs["without_daemon_orm"],
        "load_average": os.getloadavg(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
