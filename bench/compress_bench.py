"""Throughput of each compressor on a large input, and how latency grows with size.

    python bench/compress_bench.py [--mb 4] [--runs 3] [--json bench/results/compressors.json]

Each input is built from real material: loghub logs and GitHub issue fixtures from ../shared/bench/data,
the running interpreter's standard library (source files, grep output over it, unified diffs of edited
copies, diffs that add whole modules, pydoc HTML, docstring prose), and pytest's verbose line format. Every
input is measured at 1/8, 1/4, 1/2 and 1x the target size through the router (``route``), the same call the
engine makes per block; the growth ratio (time per MB at 1x over time per MB at 1/8x) stays near 1 for
linear compressors.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import pydoc
import re
import statistics
import sys
import sysconfig
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from headroom.engine.compressors.base import Block
from headroom.engine.config import EngineConfig
from headroom.engine.router import detect, route

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("HEADROOM_SHARED", REPO.parent / "shared"))
STDLIB = Path(sysconfig.get_paths()["stdlib"])


def _fill(parts: Callable[[], list[str]], size: int) -> str:
    """Repeat ``parts`` (in order) until ``size`` characters."""
    chunks: list[str] = []
    total = 0
    items = parts()
    i = 0
    while total < size:
        piece = items[i % len(items)]
        chunks.append(piece)
        total += len(piece)
        i += 1
    return "".join(chunks)[:size].rsplit("\n", 1)[0] + "\n"


def _stdlib_files() -> list[Path]:
    return sorted(p for p in STDLIB.glob("*.py") if p.stat().st_size > 20_000)


def logs() -> list[str]:
    return [p.read_text(errors="replace") for p in sorted((SHARED / "bench/data/loghub").glob("*_2k.log"))]


def code() -> list[str]:
    return [p.read_text(errors="replace") for p in _stdlib_files()[:40]]


def listing() -> list[str]:
    out: list[str] = []
    n = 1
    for text in code():
        for line in text.splitlines(keepends=True):
            out.append(f"{n:6}\t{line}")
            n += 1
    return ["".join(out)]


def search() -> list[str]:
    out: list[str] = []
    for path in _stdlib_files()[:80]:
        lines = path.read_text(errors="replace").splitlines()
        for i, line in enumerate(lines):
            if re.search(r"\bparse\w*\(", line):
                for j in range(max(0, i - 2), min(len(lines), i + 3)):
                    sep = ":" if j == i else "-"
                    out.append(f"Lib/{path.name}{sep}{j + 1}{sep}{lines[j]}\n")
                out.append("--\n")
    return ["".join(out)]


def diff() -> list[str]:
    """Unified diffs (git layout, 3 lines of context) of stdlib modules with every 25th line edited."""
    out: list[str] = []
    for path in _stdlib_files()[:40]:
        old = path.read_text(errors="replace").splitlines(keepends=True)
        new = [line.replace("self", "this") if i % 25 == 0 else line for i, line in enumerate(old)]
        name = f"Lib/{path.name}"
        out.append(f"diff --git a/{name} b/{name}\n")
        out.extend(difflib.unified_diff(old, new, f"a/{name}", f"b/{name}", n=3))
    return ["".join(out)]


def diff_new() -> list[str]:
    """A ``git diff`` that adds stdlib modules whole (nearly every line ``+``): the shape of a new feature."""
    out: list[str] = []
    for path in _stdlib_files()[:40]:
        new = path.read_text(errors="replace").splitlines(keepends=True)
        name = f"Lib/{path.name}"
        out.append(f"diff --git a/{name} b/{name}\nnew file mode 100644\n")
        out.extend(difflib.unified_diff([], new, "/dev/null", f"b/{name}", n=3))
    return ["".join(out)]


def tests() -> list[str]:
    out = ["============================= test session starts ==============================\n"]
    for path in _stdlib_files()[:60]:
        for name in re.findall(r"^def (\w+)", path.read_text(errors="replace"), re.M):
            status = "FAILED" if zlib.crc32(name.encode()) % 53 == 0 else "PASSED"
            out.append(f"tests/test_{path.stem}.py::test_{name} {status}\n")
    out.append("=========================== 12 failed, 2400 passed in 31.20s ===========================\n")
    return ["".join(out)]


def json_records() -> list[str]:
    data = json.loads((SHARED / "bench/data/github/paginate-issues.normalized-fixture.json").read_text())
    return [json.dumps(data, indent=2)]


def html() -> list[str]:
    import configparser
    import email.message
    import http.client

    doc = pydoc.HTMLDoc()
    return [doc.page(m.__name__, doc.docmodule(m)) for m in (configparser, email.message, http.client)]


def prose() -> list[str]:
    docs: list[str] = []
    for path in _stdlib_files()[:60]:
        for m in re.finditer(r'"""(.{200,}?)"""', path.read_text(errors="replace"), re.S):
            docs.append(m.group(1).strip() + "\n\n")
    return docs


INPUTS: dict[str, Callable[[], list[str]]] = {
    "logs": logs,
    "code": code,
    "listing": listing,
    "search": search,
    "diff": diff,
    "diff-new": diff_new,
    "tests": tests,
    "json": json_records,
    "html": html,
    "text": prose,
}


def _build(kind: str, size: int) -> str:
    if kind == "json":  # stays one valid document: repeat the records, not the text
        records = json.loads(json_records()[0])
        items = records if isinstance(records, list) else [records]
        out: list[Any] = []
        while len(json.dumps(out)) < size:
            out.extend(items)
        return json.dumps(out, indent=2)
    if kind == "code":
        return _fill(code, size)
    return _fill(INPUTS[kind], size)


def measure(kind: str, size: int, runs: int, config: EngineConfig) -> dict[str, Any]:
    text = _build(kind, size)
    path = "bundle.py" if kind == "code" else None
    block = Block(text, "Read" if kind in ("code", "listing") else "Bash", {}, path)
    detected = detect(block, config)
    times: list[float] = []
    outcome = None
    for _ in range(runs):
        t0 = time.perf_counter()
        outcome = route(block, "where is parse_args handled and why does it fail?", "", config)
        times.append(time.perf_counter() - t0)
    assert outcome is not None
    med = statistics.median(times)
    return {
        "kind": kind,
        "detected": detected,
        "compressor": outcome.compressor,
        "bytes": len(text.encode()),
        "median_s": round(med, 4),
        "mb_per_s": round(len(text.encode()) / 1e6 / med, 2),
        "out_ratio": round(len(outcome.text) / len(text), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=4.0, help="largest input per compressor (MB)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", help="comma-separated kinds")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    config = EngineConfig(max_block_bytes=10**9)
    kinds = args.only.split(",") if args.only else list(INPUTS)
    rows: list[dict[str, Any]] = []
    print(f"{'kind':8} {'compressor':10} {'MB':>6} {'median s':>9} {'MB/s':>7} {'out/in':>7}  growth")
    for kind in kinds:
        series = [measure(kind, int(args.mb * 1e6 * f), args.runs, config) for f in (0.125, 0.25, 0.5, 1.0)]
        per_mb = [r["median_s"] / (r["bytes"] / 1e6) for r in series]
        growth = round(per_mb[-1] / per_mb[0], 2) if per_mb[0] else None
        for r in series:
            print(
                f"{kind:8} {r['compressor'] or '-':10} {r['bytes'] / 1e6:6.2f} {r['median_s']:9.3f} "
                f"{r['mb_per_s']:7.2f} {r['out_ratio']:7.3f}"
            )
        print(f"{'':8} time per MB, 1x over 1/8x: {growth}")
        rows.append({"kind": kind, "series": series, "growth": growth})
        sys.stdout.flush()
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
