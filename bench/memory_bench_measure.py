"""Small measuring helpers of the memory benchmark (``memory_bench.py``): progress lines, percentiles, timing,
this process's RSS and the database's sizes on disk (files, and bytes per table from dbstat)."""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import percentile


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def pcts(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 2),
        "p95": round(percentile(values, 95), 2),
        "p99": round(percentile(values, 99), 2),
        "max": round(max(values), 2) if values else float("nan"),
    }


def rss_mb() -> float:
    """VmRSS of this process (psutil is not a dependency; /proc is enough on Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def file_sizes(db_file: Path, index_dir: Path) -> dict[str, int]:
    wal = db_file.with_name(db_file.name + "-wal")
    return {
        "db_bytes": db_file.stat().st_size,
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
        "index_bytes": sum(p.stat().st_size for p in index_dir.glob("*") if p.is_file()) if index_dir.exists() else 0,
    }


def table_sizes(db_file: Path) -> dict[str, int]:
    """Bytes per table and index (dbstat), so the per-item cost can be split between content, FTS and vectors."""
    conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
    except sqlite3.OperationalError:
        return {}
    finally:
        conn.close()
    return {str(name): int(size) for name, size in rows}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t) * 1000, out
