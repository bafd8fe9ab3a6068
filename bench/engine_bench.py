"""Run the shared compression benchmark on headroom and on the peer (headroom-ai) in one session.

    python bench/engine_bench.py --peer-python /path/to/peer-venv/bin/python [--rounds 2] [--extra] [--cold]

Each round runs ../shared/bench/run.py once with headroom's adapter and once with the peer (alternating, so
both see the same background load), each writing the harness's JSON. The report takes, per workload, the
savings and needles of the first round (both engines are deterministic) and the median over rounds of each
round's p50 latencies, and prints a markdown table with the latency ratio (headroom / peer).

``--extra`` adds the workloads of ``engine_workloads.py`` (a large ``git log -p``, two releases of a package
diffed, ``rg --json``), built from real material at run time. ``--cold`` adds a third run per round with the
outline cache emptied before every call (``headroom_adapter.py:compress_cold``): the harness's "fresh" input
changes only the blanks after each tool result, so the plain run's figure is that of a file read again.
``--cpu`` reports the median CPU time per call (``time.process_time`` in each engine's own interpreter)
instead of the harness's wall-clock p50: steadier when other work shares the cores.

The peer lives in its own virtualenv: ``python -m venv PEER && PEER/bin/pip install torch==2.13.0
headroom-ai==0.42.0 tiktoken`` (see ../shared/bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("HEADROOM_SHARED", REPO.parent / "shared"))
RUN = SHARED / "bench" / "run.py"
ADAPTER = REPO / "bench" / "headroom_adapter.py"


def _harness(python: str, adapter: str, out: Path, runs: int, workloads: list[Path | None]) -> dict[str, Any]:
    """One harness run per workload folder (the shared set is ``None``), the rows merged into one result."""
    rows: list[dict[str, Any]] = []
    for k, folder in enumerate(workloads):
        path = out.with_name(f"{out.stem}-{k}{out.suffix}") if k else out
        cmd = [python, str(RUN), "--adapter", adapter, "--runs", str(runs), "--json", str(path)]
        if folder is not None:
            cmd += ["--workloads", str(folder)]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        subprocess.run(cmd, cwd=RUN.parent, check=True, env=env, stdout=subprocess.DEVNULL)
        rows += json.loads(path.read_text())["workloads"]
    return {"workloads": rows}


#: Run in a child with each engine's interpreter: CPU seconds (``time.process_time``) per call on the
#: harness's "fresh" inputs. CPU time counts only this process's own work, so it stays steady when other
#: work shares the cores, where wall-clock p50s swing by 2x between rounds.
_CPU_CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import run
spec, runs, folders = sys.argv[2], int(sys.argv[3]), sys.argv[4:]
ad = run.make_adapter(spec, None, {})
out = {}
for folder in folders:
    for path in sorted(run.Path(folder).glob("*.json")):
        wl = json.loads(path.read_text())
        msgs, model = wl["messages"], wl.get("model", "gpt-4o")
        ad.fn(run.perturb(msgs, 1000), model)
        times = []
        for k in range(runs):
            arg = run.perturb(msgs, k)
            t = time.process_time()
            ad.fn(arg, model)
            times.append(time.process_time() - t)
        times.sort()
        out[wl["name"]] = 1000 * times[len(times) // 2]
print(json.dumps(out))
"""


def cpu_times(python: str, adapter: str, runs: int, workloads: list[Path | None]) -> dict[str, float]:
    """Median CPU milliseconds per call of each workload, in a fresh interpreter."""
    folders = [str(f) if f is not None else str(RUN.parent / "workloads") for f in workloads]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [python, "-c", _CPU_CHILD, str(RUN.parent), adapter, str(runs), *folders]
    proc = subprocess.run(cmd, cwd=RUN.parent, check=True, env=env, capture_output=True, text=True)
    got: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return got


def cpu_report(ours: list[dict[str, float]], peer: list[dict[str, float]], cold: list[dict[str, float]]) -> str:
    """Medians over rounds of each round's median CPU ms per call, and their ratios to the peer's."""
    head = "| workload | headroom CPU ms | peer CPU ms | ratio |" + (" cold CPU ms | cold ratio |" if cold else "")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name in sorted(ours[0]):
        mine = statistics.median(r[name] for r in ours)
        cells = [name, f"{mine:.1f}"]
        theirs = statistics.median(r[name] for r in peer) if peer else None
        cells += [f"{theirs:.1f}", f"{mine / theirs:.2f}"] if theirs else ["", ""]
        if cold:
            c = statistics.median(r[name] for r in cold)
            cells += [f"{c:.1f}", f"{c / theirs:.2f}" if theirs else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _rows(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in data["workloads"]}


def _needles(row: dict[str, Any]) -> str:
    n = row.get("needles", {})
    return f"{n.get('kept', '?')}/{n.get('total', '?')}"


def _with_retrieval(row: dict[str, Any]) -> str:
    n = row.get("needles", {})
    if not n.get("retrieve_available"):
        return "n/a"
    return f"{n['kept'] + n.get('via_retrieval', 0)}/{n['total']}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer-python", help="python of a virtualenv with headroom-ai (omit to measure headroom only)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5, help="timed calls per workload and round (the harness's --runs)")
    ap.add_argument("--workloads", type=Path, help="another folder of workload files (the harness's --workloads)")
    ap.add_argument("--extra", action="store_true", help="add the diff and rg --json workloads (engine_workloads.py)")
    ap.add_argument("--cold", action="store_true", help="also time headroom with the outline cache emptied per call")
    ap.add_argument("--cpu", action="store_true", help="measure CPU ms per call instead of the harness's wall p50")
    ap.add_argument("--out", type=Path, default=Path("/tmp/headroom-engine-bench"), help="folder for the JSON")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    folders: list[Path | None] = [args.workloads]
    if args.extra:
        sys.path.insert(0, str(REPO / "bench"))
        import engine_workloads

        extra = args.out / "extra-workloads"
        for note in engine_workloads.build(extra, Path(tempfile.gettempdir()) / "headroom-bench-pkgs"):
            print(note, flush=True)
        folders.append(extra)
    if args.cpu:
        mine: list[dict[str, float]] = []
        cold_cpu: list[dict[str, float]] = []
        theirs: list[dict[str, float]] = []
        for i in range(args.rounds):
            print(f"round {i + 1}: CPU time per call", flush=True)
            mine.append(cpu_times(sys.executable, f"{ADAPTER}:compress", args.runs, folders))
            if args.cold:
                cold_cpu.append(cpu_times(sys.executable, f"{ADAPTER}:compress_cold", args.runs, folders))
            if args.peer_python:
                theirs.append(cpu_times(args.peer_python, "upstream", args.runs, folders))
        (args.out / "cpu.json").write_text(json.dumps({"headroom": mine, "cold": cold_cpu, "peer": theirs}, indent=1))
        print(cpu_report(mine, theirs, cold_cpu))
        return
    ours: list[dict[str, dict[str, Any]]] = []
    cold: list[dict[str, dict[str, Any]]] = []
    peer: list[dict[str, dict[str, Any]]] = []
    for i in range(args.rounds):
        print(f"round {i + 1}: headroom", flush=True)
        ours.append(
            _rows(_harness(sys.executable, f"{ADAPTER}:compress", args.out / f"headroom-{i}.json", args.runs, folders))
        )
        if args.cold:
            print(f"round {i + 1}: headroom, outline cache emptied per call", flush=True)
            cold.append(
                _rows(
                    _harness(
                        sys.executable, f"{ADAPTER}:compress_cold", args.out / f"cold-{i}.json", args.runs, folders
                    )
                )
            )
        if args.peer_python:
            print(f"round {i + 1}: peer", flush=True)
            peer.append(_rows(_harness(args.peer_python, "upstream", args.out / f"peer-{i}.json", args.runs, folders)))
    print(report(ours, peer, cold))


def _p50(rounds: list[dict[str, dict[str, Any]]], name: str) -> float:
    return statistics.median(r[name]["latency_ms"]["fresh"]["p50"] for r in rounds)


def report(
    ours: list[dict[str, dict[str, Any]]],
    peer: list[dict[str, dict[str, Any]]],
    cold: list[dict[str, dict[str, Any]]] | None = None,
) -> str:
    head = (
        "| workload | headroom saved | needles | +retrieval | det | p50 ms | peer saved | peer needles | "
        "peer p50 ms | latency ratio |"
    )
    if cold:
        head += " cold p50 ms | cold ratio |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    tot_b = tot_a = ptot_a = 0
    for name, row in sorted(ours[0].items()):
        before, after = row["before"]["o200k_base"], row["after"]["o200k_base"]
        tot_b += before
        tot_a += after
        p50 = _p50(ours, name)
        cells = [
            name,
            f"{row['saved_pct']['o200k_base']:.1f} %",
            _needles(row),
            _with_retrieval(row),
            "yes" if row["deterministic"] and not row["mutates_input"] else "NO",
            f"{p50:.1f}",
        ]
        pp50 = None
        if peer and name in peer[0] and "after" in peer[0][name]:
            prow = peer[0][name]
            ptot_a += prow["after"]["o200k_base"]
            pp50 = _p50(peer, name)
            cells += [f"{prow['saved_pct']['o200k_base']:.1f} %", _needles(prow), f"{pp50:.1f}", f"{p50 / pp50:.2f}"]
        else:
            cells += ["", "", "", ""]
        if cold:
            c50 = _p50(cold, name)
            cells += [f"{c50:.1f}", f"{c50 / pp50:.2f}" if pp50 else ""]
        lines.append("| " + " | ".join(cells) + " |")
    total = f"| **total** | {100 * (1 - tot_a / tot_b):.1f} % | | | | |"
    total += f" {100 * (1 - ptot_a / tot_b):.1f} % | | | |" if peer else " | | | |"
    total += " | |" if cold else ""
    lines.append(total)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
