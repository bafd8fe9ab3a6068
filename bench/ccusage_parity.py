"""Token parity with ccusage on the shared fixture folders: every (day, agent) row, every column.

``ccusage daily --json --by-agent --offline -z UTC`` and ``headroom ingest`` + ``headroom stats --by day
--json`` run as subprocesses on the same logs (each with its own empty HOME), and each row's input, output,
cache-read, cache-creation and total tokens are compared. The tests (tests/test_ccusage_parity.py) run the
same comparison; this script prints the figures recorded in bench/README.md.

Usage: ``python bench/ccusage_parity.py [--shared ../shared] [sessions sessions-more generated]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FOLDERS = ("sessions", "sessions-more", "generated")
COLUMNS = ("input", "output", "cache_read", "cache_creation", "total")
Row = tuple[int, int, int, int, int]


def layout(shared: Path, folder: str, work: Path) -> Path:
    """``work/logs`` with ``claude/`` (holding ``projects/``), ``codex/`` and ``gemini/tmp`` for ``folder``."""
    source = shared / "fixtures" / folder
    logs = work / "logs"
    if folder == "generated":  # one tree per scenario: merge each agent's scenarios into one root
        for agent, sub in (("claude", "claude/projects"), ("codex", "codex/sessions"), ("gemini", "gemini/tmp")):
            for scenario in sorted((source / agent).iterdir()):
                shutil.copytree(scenario, logs / sub, dirs_exist_ok=True)
        return logs
    names = {"claude": ".claude", "codex": ".codex", "gemini": ".gemini"} if folder == "sessions-more" else {}
    for agent in ("claude", "codex", "gemini"):  # copied: ccusage does not follow a symlinked root
        shutil.copytree(source / names.get(agent, agent), logs / agent)
    return logs


def _run(cmd: list[str], env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADROOM_", "CLAUDE_", "CODEX_", "GEMINI_"))}
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    return env


def ccusage_rows(binary: str, logs: Path, work: Path) -> dict[tuple[str, str], Row]:
    env = _env(work / "ccusage-home")
    env |= {
        "CLAUDE_CONFIG_DIR": str(logs / "claude"),
        "CODEX_HOME": str(logs / "codex"),
        "GEMINI_DATA_DIR": str(logs / "gemini"),
    }
    out = _run([binary, "daily", "--json", "--by-agent", "--offline", "-z", "UTC"], env, 600)
    rows: dict[tuple[str, str], Row] = {}
    for day in json.loads(out)["daily"]:
        for agent in day["agents"]:
            rows[(day["period"], agent["agent"])] = (
                agent["inputTokens"],
                agent["outputTokens"],
                agent["cacheReadTokens"],
                agent["cacheCreationTokens"],
                agent["totalTokens"],
            )
    return rows


def headroom_rows(headroom: str, logs: Path, work: Path) -> dict[tuple[str, str], Row]:
    base = work / "headroom-home"
    base.mkdir(parents=True, exist_ok=True)
    (base / "config.toml").write_text(
        f'[agents.claude]\nhomes = ["{logs / "claude"}"]\n'
        f'[agents.codex]\nhomes = ["{logs / "codex"}"]\n'
        f'[agents.gemini]\nhomes = ["{logs / "gemini" / "tmp"}"]\n',
        encoding="utf-8",
    )
    env = _env(work / "user-home") | {"HEADROOM_HOME": str(base), "HEADROOM_EMBEDDINGS": "off"}
    _run([headroom, "ingest", "--json"], env, 900)
    out = _run([headroom, "stats", "--by", "day", "--json"], env, 300)
    return {
        (row["day"], row["agent"]): (
            row["input_tokens"],
            row["output_tokens"],
            row["cache_read_tokens"],
            row["cache_creation_tokens"],
            row["total_tokens"],
        )
        for row in json.loads(out)
        if row["model_calls"]
    }


def compare(ours: dict[tuple[str, str], Row], theirs: dict[tuple[str, str], Row]) -> list[str]:
    """One line per (day, agent) row that differs, naming the columns."""
    lines = []
    for key in sorted(ours.keys() | theirs.keys()):
        a, b = ours.get(key), theirs.get(key)
        if a == b:
            continue
        if a is None or b is None:
            lines.append(f"{key[0]} {key[1]}: only in {'ccusage' if a is None else 'headroom'}")
            continue
        diffs = [f"{name} {x} vs {y}" for name, x, y in zip(COLUMNS, a, b) if x != y]
        lines.append(f"{key[0]} {key[1]}: " + ", ".join(diffs) + " (headroom vs ccusage)")
    return lines


def parity(shared: Path, folder: str, ccusage: str, headroom: str) -> tuple[int, int, list[str]]:
    """(rows compared, rows equal, differences) for one fixture folder."""
    with tempfile.TemporaryDirectory(prefix="parity-") as tmp:
        work = Path(tmp)
        logs = layout(shared, folder, work)
        theirs = ccusage_rows(ccusage, logs, work)
        ours = headroom_rows(headroom, logs, work)
    keys = ours.keys() | theirs.keys()
    equal = sum(1 for key in keys if ours.get(key) == theirs.get(key))
    return len(keys), equal, compare(ours, theirs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", default=list(FOLDERS))
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("HEADROOM_SHARED", REPO.parent / "shared")))
    parser.add_argument("--ccusage", default=str(REPO / ".tools" / "node_modules" / ".bin" / "ccusage"))
    parser.add_argument("--headroom", default=str(Path(sys.executable).with_name("headroom")))
    args = parser.parse_args()
    failed = False
    for folder in args.folders:
        compared, equal, diffs = parity(args.shared, folder, args.ccusage, args.headroom)
        print(f"{folder}: {equal} of {compared} (day, agent) rows equal on input, output, cache read/write and total")
        for line in diffs:
            print("  " + line)
        failed |= bool(diffs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
