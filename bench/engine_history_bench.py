"""Compression of a long conversation whose history the provider has cached: what a proxy pays per request.

    python bench/engine_history_bench.py                          # this checkout
    python bench/engine_history_bench.py --code /tmp/headroom-base # another commit's engine (bench/baseline.py)

The shared workloads are short requests compressed whole. An agent's request re-sends the whole session, most of
it frozen (the prompt cache's prefix, returned untouched), and a proxy parses each request afresh, so every
text is a new string object. The conversation here is ``--reads`` numbered reads of standard-library modules
(as Claude Code's Read tool returns them), all but the last ``--new`` frozen; each timed call gets a fresh JSON
parse of it. Prints the median CPU milliseconds per request over ``--runs`` calls.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

from baseline import use_export


def conversation(reads: int) -> list[dict[str, Any]]:
    """A user's request, then ``reads`` Read calls with their numbered results (5 to 60 KB modules, by name)."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in lib.glob("*.py") if 5_000 < p.stat().st_size < 60_000)[:reads]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "read these modules and explain the parsers"}]
    for i, path in enumerate(files):
        lines = path.read_text(errors="replace").splitlines()
        text = "".join(f"{n:6d}→{line}\n" for n, line in enumerate(lines, 1))
        call = {"type": "tool_use", "id": f"t{i}", "name": "Read", "input": {"file_path": str(path)}}
        messages.append({"role": "assistant", "content": [call]})
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": text}]})
    return messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=Path, help="a folder holding another commit's headroom/ (bench/baseline.py)")
    parser.add_argument("--reads", type=int, default=126)
    parser.add_argument("--new", type=int, default=6, help="reads after the frozen prefix")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    if args.code is not None:
        use_export(args.code)
    from headroom.engine import MemoryCCRStore, compress

    messages = conversation(args.reads)
    raw = json.dumps(messages)
    frozen = len(messages) - 2 * args.new
    store = MemoryCCRStore()
    compress(json.loads(raw), "claude-sonnet-4-5", frozen=frozen, store=store)  # the earlier turns' compressions
    times = []
    for _ in range(args.runs):
        request = json.loads(raw)  # fresh strings, as a proxy parses each request
        start = time.process_time()
        compress(request, "claude-sonnet-4-5", frozen=frozen, store=store)
        times.append(time.process_time() - start)
    chars = sum(len(m["content"][0]["content"]) for m in messages[2::2])
    print(
        json.dumps(
            {
                "engine": str(sys.modules["headroom.engine"].__file__),
                "reads": len(messages) // 2,
                "frozen_messages": frozen,
                "tool_result_chars": chars,
                "cpu_ms_median": round(statistics.median(times) * 1000, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
