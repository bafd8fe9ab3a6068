"""Redaction: recall and false positives on the labelled corpus, and throughput on real session logs.

* **recall**: the share of tests/redaction_corpus.py's positives whose secret is gone after :func:`redact`;
* **false positives**: the share of its negatives (look-alikes: versions, hashes, ids, placeholders, code) that
  come out changed;
* **throughput**: MB/s of :func:`redact` over real session logs (``../shared/fixtures/sessions``, or under
  ``$HEADROOM_SHARED``: prose, code, JSON, tool output), CPU time, median of ``--runs``: whole files at a time, and
  line by line as ingestion calls it (``redact_many`` on every JSONL line; one ``redact`` call per line where
  ``redact_many`` does not exist yet).

Run it against another tree by putting that tree's ``headroom`` first on ``PYTHONPATH`` (a before/after).

Usage: ``python bench/redact_bench.py [--logs DIR] [--runs 5] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from redaction_corpus import NEGATIVES, POSITIVES  # noqa: E402

import headroom.memory.redact as redaction  # noqa: E402


def quality() -> dict[str, object]:
    missed = [
        c
        for c in POSITIVES
        if "[REDACTED:" not in (out := redaction.redact_text(c.text)) or (c.secret and c.secret in out)
    ]
    changed = [c for c in NEGATIVES if redaction.redact_text(c.text) != c.text]
    return {
        "positives": len(POSITIVES),
        "recall": round(1 - len(missed) / len(POSITIVES), 4),
        "missed": [f"{c.syntax}: {c.text[:60]!r}" for c in missed],
        "negatives": len(NEGATIVES),
        "false_positive_rate": round(len(changed) / len(NEGATIVES), 4),
        "changed": [f"{c.syntax}: {c.text[:60]!r}" for c in changed],
    }


def throughput(logs: Path, runs: int) -> dict[str, object]:
    files = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(logs.rglob("*.json*")) if p.is_file()]
    lines = [line for text in files for line in text.splitlines()]
    size_mb = sum(len(t.encode("utf-8", "surrogatepass")) for t in files) / 1e6
    many = getattr(redaction, "redact_many", None)

    def whole() -> None:
        for text in files:
            redaction.redact(text)

    def by_line() -> None:
        if many is not None:
            many(lines)
        else:
            for line in lines:
                redaction.redact_text(line)

    out: dict[str, object] = {"logs": str(logs), "files": len(files), "lines": len(lines), "mb": round(size_mb, 2)}
    for name, fn in (("whole_files", whole), ("by_line", by_line)):
        times = []
        for _ in range(runs):
            start = time.process_time()
            fn()
            times.append(time.process_time() - start)
        out[f"{name}_mb_s"] = round(size_mb / statistics.median(times), 1)
    out["redact_many"] = many is not None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="headroom redaction: recall, false positives, throughput")
    shared = Path(os.environ.get("HEADROOM_SHARED") or REPO.parent / "shared")
    parser.add_argument("--logs", type=Path, default=shared / "fixtures" / "sessions")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    report = {"module": redaction.__file__, "quality": quality()}
    if args.logs.is_dir():
        report["throughput"] = throughput(args.logs, args.runs)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    q = report["quality"]
    assert isinstance(q, dict)
    print(f"module: {report['module']}")
    print(f"recall: {q['recall']:.1%} of {q['positives']} positives; missed: {len(q['missed'])}")
    for line in q["missed"]:
        print(f"  missed  {line}")
    print(f"false positives: {q['false_positive_rate']:.1%} of {q['negatives']} negatives")
    for line in q["changed"]:
        print(f"  changed {line}")
    t = report.get("throughput")
    if isinstance(t, dict):
        print(
            f"throughput on {t['mb']} MB of real logs ({t['files']} files, {t['lines']} lines), CPU time, "
            f"median of {args.runs}: whole files {t['whole_files_mb_s']} MB/s; line by line {t['by_line_mb_s']} MB/s"
            + ("" if t["redact_many"] else " (one redact call per line)")
        )


if __name__ == "__main__":
    main()
