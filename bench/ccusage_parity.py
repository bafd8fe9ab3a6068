"""Token and cost parity with ccusage on the shared fixture folders: every (day, agent) row.

``ccusage daily --json --by-agent --offline -z UTC`` and ``headroom ingest`` + ``headroom stats --by day
-z UTC --json`` run as subprocesses on the same logs (each with its own empty HOME), and each row's input,
output, cache-read, cache-creation and total tokens are compared (equal), and its cost: the sum over the
models both sides price (ccusage's per-model ``modelBreakdowns`` with a cost above 0, headroom's
``model_costs`` not null) must agree within 1 %. Models only one side prices are listed with their calls'
share, as are rows outside 1 % (ccusage prices from its own LiteLLM snapshot, headroom from genai-prices).
The tests (tests/test_ccusage_parity.py) run the same comparison; this script prints the figures recorded
in bench/README.md.

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
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FOLDERS = ("sessions", "sessions-more", "generated")
COLUMNS = ("input", "output", "cache_read", "cache_creation", "total")
Row = tuple[int, int, int, int, int]
Costs = dict[tuple[str, str], dict[str, float | None]]  # (day, agent) -> model -> USD (None: unpriced)
TOLERANCE = 0.01


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
    return ccusage_both(binary, logs, work)[0]


def ccusage_both(binary: str, logs: Path, work: Path) -> tuple[dict[tuple[str, str], Row], Costs]:
    env = _env(work / "ccusage-home")
    env |= {
        "CLAUDE_CONFIG_DIR": str(logs / "claude"),
        "CODEX_HOME": str(logs / "codex"),
        "GEMINI_DATA_DIR": str(logs / "gemini"),
    }
    out = _run([binary, "daily", "--json", "--by-agent", "--offline", "-z", "UTC"], env, 600)
    rows: dict[tuple[str, str], Row] = {}
    costs: Costs = {}
    for day in json.loads(out)["daily"]:
        for agent in day["agents"]:
            key = (day["period"], agent["agent"])
            rows[key] = (
                agent["inputTokens"],
                agent["outputTokens"],
                agent["cacheReadTokens"],
                agent["cacheCreationTokens"],
                agent["totalTokens"],
            )
            costs[key] = {
                m["modelName"]: (float(m["cost"]) if m.get("cost") else None) for m in agent.get("modelBreakdowns", [])
            }
    return rows, costs


def headroom_rows(headroom: str, logs: Path, work: Path) -> dict[tuple[str, str], Row]:
    return headroom_both(headroom, logs, work)[0]


def headroom_both(headroom: str, logs: Path, work: Path) -> tuple[dict[tuple[str, str], Row], Costs]:
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
    out = _run([headroom, "stats", "--by", "day", "-z", "UTC", "--json"], env, 300)
    rows = [row for row in json.loads(out) if row["model_calls"]]
    tokens = {
        (row["day"], row["agent"]): (
            row["input_tokens"],
            row["output_tokens"],
            row["cache_read_tokens"],
            row["cache_creation_tokens"],
            row["total_tokens"],
        )
        for row in rows
    }
    return tokens, {(row["day"], row["agent"]): dict(row.get("model_costs", {})) for row in rows}


def _name(model: str) -> str:
    """A model name as both sides may spell it (ccusage drops Claude Code's ``[1m]`` tag and prefixes)."""
    return model.rsplit("/", maxsplit=1)[-1].split("[", maxsplit=1)[0]


def compare_costs(ours: Costs, theirs: Costs) -> dict[str, Any]:
    """Cost per (day, agent) over the models both price; the rows outside 1 %; models only one side prices."""
    compared = within = 0
    worst = 0.0
    outside: list[str] = []
    only: dict[str, set[str]] = {"headroom": set(), "ccusage": set(), "neither": set()}
    total_ours = total_theirs = 0.0
    for key in sorted(ours.keys() & theirs.keys()):
        a = {_name(m): v for m, v in ours[key].items()}
        b = {_name(m): v for m, v in theirs[key].items()}
        both = [m for m in a.keys() & b.keys() if a[m] is not None and b[m] is not None]
        only["headroom"] |= {f"{m} ({key[1]})" for m, v in a.items() if v is not None and b.get(m) is None}
        only["ccusage"] |= {f"{m} ({key[1]})" for m, v in b.items() if v is not None and a.get(m) is None}
        only["neither"] |= {f"{m} ({key[1]})" for m in a.keys() & b.keys() if a[m] is None and b[m] is None}
        if not both:
            continue
        x = sum(a[m] or 0.0 for m in both)
        y = sum(b[m] or 0.0 for m in both)
        total_ours, total_theirs = total_ours + x, total_theirs + y
        compared += 1
        diff = abs(x - y) / y if y else (0.0 if x == 0 else 1.0)
        worst = max(worst, diff)
        if diff <= TOLERANCE:
            within += 1
        else:
            detail = ", ".join(f"{m} ${a[m]:.4f} vs ${b[m]:.4f}" for m in sorted(both) if a[m] != b[m])
            outside.append(f"{key[0]} {key[1]}: ${x:.4f} vs ${y:.4f} ({100 * diff:.2f} %; {detail})")
    return {
        "compared": compared,
        "within": within,
        "worst": worst,
        "outside": outside,
        "only_headroom": sorted(only["headroom"]),
        "only_ccusage": sorted(only["ccusage"]),
        "unpriced_by_both": sorted(only["neither"]),
        "total_headroom": total_ours,
        "total_ccusage": total_theirs,
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
    compared, equal, diffs, _costs = parity_with_costs(shared, folder, ccusage, headroom)
    return compared, equal, diffs


def parity_with_costs(
    shared: Path, folder: str, ccusage: str, headroom: str
) -> tuple[int, int, list[str], dict[str, Any]]:
    """Token parity as :func:`parity`, and the cost comparison of :func:`compare_costs`, from one run each."""
    with tempfile.TemporaryDirectory(prefix="parity-") as tmp:
        work = Path(tmp)
        logs = layout(shared, folder, work)
        theirs, their_costs = ccusage_both(ccusage, logs, work)
        ours, our_costs = headroom_both(headroom, logs, work)
    keys = ours.keys() | theirs.keys()
    equal = sum(1 for key in keys if ours.get(key) == theirs.get(key))
    return len(keys), equal, compare(ours, theirs), compare_costs(our_costs, their_costs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", default=list(FOLDERS))
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("HEADROOM_SHARED", REPO.parent / "shared")))
    parser.add_argument("--ccusage", default=str(REPO / ".tools" / "node_modules" / ".bin" / "ccusage"))
    parser.add_argument("--headroom", default=str(Path(sys.executable).with_name("headroom")))
    args = parser.parse_args()
    failed = False
    for folder in args.folders:
        compared, equal, diffs, costs = parity_with_costs(args.shared, folder, args.ccusage, args.headroom)
        print(f"{folder}: {equal} of {compared} (day, agent) rows equal on input, output, cache read/write and total")
        for line in diffs:
            print("  " + line)
        print(
            f"{folder}: cost within 1 % on {costs['within']} of {costs['compared']} (day, agent) rows priced by both "
            f"(worst {100 * costs['worst']:.3f} %; "
            f"total ${costs['total_headroom']:.2f} vs ${costs['total_ccusage']:.2f})"
        )
        for line in costs["outside"]:
            print("  outside 1 %: " + line)
        for side in ("headroom", "ccusage"):
            if costs[f"only_{side}"]:
                print(f"  priced by {side} only: " + ", ".join(costs[f"only_{side}"]))
        if costs["unpriced_by_both"]:
            print("  priced by neither: " + ", ".join(costs["unpriced_by_both"]))
        failed |= bool(diffs) or bool(costs["outside"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
