"""One holdout run through the real agent CLIs: what compression measurably saved, with its interval.

    python bench/holdout_bench.py [--rounds 12] [--agents "claude codex"] [--scenarios big-output]
                                  [--holdout 0.5] [--json bench/results/holdout.json]

``../shared/agents-offline/run_all.sh`` runs the real Claude Code / Codex CLIs against the scripted fake
upstream ``--rounds`` times, each run through ``bench/via_headroom.sh`` with ``HEADROOM_VIA_HOME`` (one
headroom home, so one database, for every run) and ``HEADROOM_VIA_HOLDOUT`` (``[proxy] holdout``). Every run
is a new conversation with a new session id, so the deterministic draw puts about ``--holdout`` of them in
the held-out group, sent untouched. Then ``headroom stats --proxy --json`` gives the estimated savings and the
measured comparison (held-out against compressed cost per turn of the same agent and project, bootstrap 95 %
interval over conversations), printed here and saved with ``--json``.

The fake upstream bills the bytes it receives (about 4 bytes a token) and reports no cache reads, so the
measured figure is the saving on uncached input; with a real provider the cache share decides how much of
it reaches the bill (the estimated column prices that per request).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("HEADROOM_SHARED", REPO.parent / "shared"))
RUN_ALL = SHARED / "agents-offline" / "run_all.sh"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--agents", default="claude codex")
    parser.add_argument("--scenarios", default="big-output")
    parser.add_argument("--holdout", type=float, default=0.5)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    headroom = Path(sys.executable).with_name("headroom")
    work = args.work or Path(tempfile.mkdtemp(prefix="holdout-bench-"))
    home = work / "headroom-home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADROOM_", "VIA"))}
    env |= {
        "AGENTS": args.agents,
        "SCENARIOS": args.scenarios,
        "VIA": str(REPO / "bench" / "via_headroom.sh"),
        "VIA_DIR": str(work / "via"),
        "HEADROOM_BIN": str(headroom),
        "HEADROOM_VIA_HOME": str(home),
        "HEADROOM_VIA_HOLDOUT": str(args.holdout),
    }
    started = time.monotonic()
    failures = 0
    for n in range(args.rounds):
        run = env | {"RUN_ROOT": str(work / f"run-{n}"), "FIXTURES": str(work / f"fixtures-{n}")}
        command = ["bash", str(RUN_ALL)]
        proc = subprocess.run(
            command, check=False, cwd=RUN_ALL.parent, env=run, stdin=subprocess.DEVNULL, capture_output=True, text=True
        )
        ok = proc.returncode == 0
        failures += 0 if ok else 1
        print(f"round {n + 1}/{args.rounds}: {'ok' if ok else 'FAILED'} ({time.monotonic() - started:.0f} s)")
        if not ok:
            print(proc.stderr[-2000:], file=sys.stderr)
    stats = subprocess.run(
        [str(headroom), "stats", "--proxy", "--json"],
        env={**os.environ, "HEADROOM_HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
    )
    summary: dict[str, Any] = json.loads(stats.stdout)
    table = subprocess.run(
        [str(headroom), "stats", "--proxy"],
        env={**os.environ, "HEADROOM_HOME": str(home), "COLUMNS": "160"},
        capture_output=True,
        text=True,
        check=True,
    )
    print(table.stdout)
    result = {
        "rounds": args.rounds,
        "failed_rounds": failures,
        "agents": args.agents,
        "scenarios": args.scenarios,
        "holdout": args.holdout,
        "seconds": round(time.monotonic() - started, 1),
        "savings": summary["savings"],
        "requests": summary["total"]["requests"],
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    return 1 if failures == args.rounds else 0


if __name__ == "__main__":
    sys.exit(main())
