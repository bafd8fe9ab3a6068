"""What pricing costs: warm ``stats --by day`` with and without it, and the statusline's warm latency.

1. **stats**: on a corpus (``bench/corpus.py``) ingested once into a fresh ``HEADROOM_HOME``, what
   ``stats --by day`` computes, :func:`token_rows` as it was before pricing (``daemon/analytics.py`` of
   ``--before``, loaded from git) against today's (usage summed per day, agent and model, long-context calls
   apart, each sum priced), in the same process on the same database, alternating, ``--runs`` times each;
   plus the whole ``headroom stats --by day --no-refresh --json`` command, wall time. The machine is shared,
   so the figure to read is the same-run ratio.
2. **statusline**: ``python -m headroom.daemon.statusline`` and ``headroom statusline`` (the console script)
   fed a Claude Code statusline document for a session of the corpus, after one warm-up run (which writes
   the rate card), ``--runs`` times each, next to ``python -c pass`` (the interpreter's own start) as the
   floor under the same load.

Usage: ``python bench/cost_bench.py [--mb 100] [--runs 30] [--work bench/.work/cost]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import checked, headroom_binary, headroom_env, median, percentile, run, say

REPO = Path(__file__).resolve().parent.parent


def build(work: Path, mb: int) -> tuple[Path, dict[str, str]]:
    corpus = work / "corpus"
    if not (corpus / "corpus.json").exists():
        say(f"building a {mb} MB corpus in {corpus}")
        subprocess.run([sys.executable, str(REPO / "bench" / "corpus.py"), str(corpus), "--mb", str(mb)], check=True)
    base = work / "home"
    env = headroom_env(base, work / "user-home", corpus) | {"HEADROOM_EMBEDDINGS": "off", "TZ": "UTC"}
    if not (base / "headroom.db").exists():
        say("ingesting it")
        took = checked(run([headroom_binary(), "ingest", "--json"], env, work, timeout=3600), "ingest")
        say(f"  {took.wall_s:.1f} s")
    return corpus, env


def load_before(rev: str) -> Any:
    """``daemon/analytics.py`` as it was at ``rev`` (before pricing), as a module of its own."""
    import importlib.util

    source = subprocess.run(
        ["git", "show", f"{rev}:daemon/analytics.py"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="analytics-before-")) / "analytics_before.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("analytics_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["analytics_before"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def stats_figures(env: dict[str, str], work: Path, runs: int, rev: str) -> dict[str, Any]:
    os.environ.update({k: v for k, v in env.items() if k.startswith("HEADROOM_")})
    from headroom.daemon import analytics
    from headroom.daemon.config import load_config
    from headroom.memory.db import open_database

    old = load_before(rev)

    def before_query(dbs: Any) -> list[Any]:
        return list(old.token_rows(dbs, "day", old.Filters()))

    def after_query(dbs: Any) -> list[Any]:
        return analytics.token_rows(dbs, "day", analytics.Filters())

    db = open_database(load_config().database_url)
    before: list[float] = []
    after: list[float] = []
    try:
        with db.sessions() as dbs:
            after_query(dbs)  # warm: the price table's import and the page cache
            before_query(dbs)
            for _ in range(runs):
                started = time.perf_counter()
                before_query(dbs)
                before.append(time.perf_counter() - started)
                started = time.perf_counter()
                groups = after_query(dbs)
                after.append(time.perf_counter() - started)
            rows = len(before_query(dbs))
            same = [(r["day"], r["agent"], r["total_tokens"]) for r in before_query(dbs)] == [
                (r["day"], r["agent"], r["total_tokens"]) for r in groups
            ]
    finally:
        db.close()
    command: list[float] = []
    for _ in range(max(3, runs // 5)):
        done = checked(run([headroom_binary(), "stats", "--by", "day", "--no-refresh", "--json"], env, work), "stats")
        command.append(done.wall_s)
    return {
        "before": rev,
        "day_rows": rows,
        "same_tokens": same,
        "before_ms": 1000 * median(before),
        "after_ms": 1000 * median(after),
        "ratio": median(after) / median(before),
        "command_s": median(command),
    }


def statusline_figures(env: dict[str, str], work: Path, runs: int) -> dict[str, Any]:
    from sqlite3 import connect

    db = Path(env["HEADROOM_HOME"]) / "headroom.db"
    with connect(db) as conn:
        key = conn.execute(
            "SELECT s.key FROM sessions s JOIN usage u ON u.session_id = s.id WHERE s.agent = 'claude' "
            "GROUP BY s.key ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()[0]
    sample = json.loads((REPO / "tests" / "fixtures" / "statusline" / "sonnet46_session.json").read_text())
    sample["session_id"] = key
    doc = work / "statusline.json"
    doc.write_text(json.dumps(sample))
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -m headroom.daemon.statusline": [sys.executable, "-m", "headroom.daemon.statusline"],
        "headroom statusline": [headroom_binary(), "statusline"],
    }
    card = Path(env["HEADROOM_HOME"]) / "state" / "rate-card.json"
    card.unlink(missing_ok=True)
    out: dict[str, Any] = {"session": key}
    first = _timed(commands["python -m headroom.daemon.statusline"], env, doc)
    out["cold_card_ms"] = 1000 * first[0]
    out["line"] = first[1]
    times: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):  # alternating, so that load on the machine hits every command alike
        for name, cmd in commands.items():
            wall, _line, used = _timed(cmd, env, doc)
            times[name].append(wall)
            cpu[name].append(used)
    for name, values in times.items():
        out[name] = {
            "p50_ms": 1000 * median(values),
            "p90_ms": 1000 * percentile(values, 90),
            "cpu_p50_ms": 1000 * median(cpu[name]),
        }
    floor = median(times["python -c pass"])
    out["over_interpreter_start_ms"] = 1000 * (median(times["headroom statusline"]) - floor)
    return out


def _timed(cmd: list[str], env: dict[str, str], doc: Path) -> tuple[float, str, float]:
    """(wall s, first line printed, CPU s of exactly that child: user + system, from wait4)."""
    with doc.open("rb") as stdin:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        out = proc.stdout.read() if proc.stdout else b""
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{cmd} failed ({proc.returncode})")
    return wall, out.decode().strip(), usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--work", type=Path, default=REPO / "bench" / ".work" / "cost")
    parser.add_argument("--only", choices=("stats", "statusline"))
    parser.add_argument("--before", default="55534a9", help="the commit whose analytics.py had no pricing")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    _corpus, env = build(args.work, args.mb)
    result: dict[str, Any] = {}
    if args.only != "statusline":
        result["stats"] = stats_figures(env, args.work, args.runs, args.before)
    if args.only != "stats":
        result["statusline"] = statusline_figures(env, args.work, args.runs)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
