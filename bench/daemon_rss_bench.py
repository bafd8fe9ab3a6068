"""The daemon's memory footprint with the embedding model loaded, and ``headroom memory search`` from the CLI.

For each backend (``--backends``, default ``numpy torch``: HEADROOM_EMBED_BACKEND) a real ``headroom daemon run``
starts in a fresh HEADROOM_HOME (proxy off, embeddings on) over ``--items`` saved notes that still need vectors.
Its RSS is read idle, then a real ``headroom memory search`` (a CLI process, as a user runs it) makes the daemon
load the model; once the backlog is embedded the RSS is read again (VmRSS now, VmHWM the peak), and
``--searches`` more CLI searches are timed (wall, process start included). Then the daemon is stopped and the
same search is timed without it (the CLI loads the model itself). Nothing is downloaded: the model is the
packaged folder. Figures go to ``--json`` (and stdout).

    .venv/bin/python bench/daemon_rss_bench.py --json bench/results/DATE-daemon-rss.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "headroom.daemon.cli"]


def _status(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def _wait(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def _search(env: dict[str, str], project: Path, query: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    out = subprocess.run(
        [*CLI, "memory", "search", "-p", str(project), query, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return time.perf_counter() - started, json.loads(out.stdout)


def run_backend(backend: str, items: int, searches: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="hr-rss-"))
    project = home / "proj"
    (project / ".git").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADROOM_")}
    env |= {"HEADROOM_HOME": str(home / "hr"), "HOME": str(home / "user"), "HEADROOM_EMBED_BACKEND": backend}
    (home / "hr").mkdir()
    (home / "hr" / "config.toml").write_text("[proxy]\nenabled = false\n")
    code = (
        "import sys; from headroom.daemon.config import load_config; from headroom.memory.api import Memory;"
        "from headroom.memory.db import open_database; c = load_config(); c.paths.ensure();"
        "db = open_database(c.database_url); m = Memory(db)\n"
        f"for i in range({items}): m.put(f'note {{i}}: deploy service {{i % 17}} with make deploy-{{i % 5}} '"
        f"f'after the tests of module {{i % 23}} pass; the cache lives in /var/cache/app{{i}}', 'decision', "
        f"project={str(project)!r}, source='cli')\n"
        "db.close()"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=600)
    log = (home / "daemon.out").open("wb")
    proc = subprocess.Popen([*CLI, "daemon", "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    result: dict[str, Any] = {"backend": backend, "items": items}
    try:
        socket_path = home / "hr"
        _wait(lambda: any(socket_path.rglob("*.sock")), 120, "the daemon's socket")
        time.sleep(2)
        result["started"] = _status(proc.pid)  # the backlog makes it load the model at start
        first_s, answer = _search(env, project, "how do we deploy the service")
        assert answer["searched_by"] == "daemon", answer
        result["first_search_s"] = round(first_s, 2)
        result["first_mode"] = answer["mode"]
        _wait(lambda: "embedded" in _health(env), 900, "the backlog")
        times, mode = [], ""
        for i in range(searches):
            elapsed, answer = _search(env, project, f"where is the cache of module {i}")
            times.append(elapsed)
            mode = answer["mode"]
        result["loaded"] = _status(proc.pid)
        result["search_via_daemon_s"] = {"median": round(statistics.median(times), 3), "max": round(max(times), 3)}
        result["mode"] = mode
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()
    alone, answer = _search(env, project, "where is the cache of module 3")
    result["search_without_daemon_s"] = round(alone, 2)
    result["without_daemon_by"] = answer["searched_by"]
    return result


def _health(env: dict[str, str]) -> str:
    """'embedded' once the daemon reports no embedding backlog (``headroom memory stats``)."""
    out = subprocess.run(
        [*CLI, "memory", "stats", "--json", "--all-projects"], env=env, capture_output=True, text=True, check=False
    )
    try:
        stats = json.loads(out.stdout)
    except ValueError:
        return ""
    emb = stats.get("embeddings") or {}
    return "embedded" if isinstance(emb, dict) and emb.get("pending") == 0 else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=["numpy", "torch"])
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--searches", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = [run_backend(b, args.items, args.searches) for b in args.backends]
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
