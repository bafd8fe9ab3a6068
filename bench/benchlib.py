"""Shared pieces of the ingestion benchmarks: running commands, environments, statistics."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARTS = ("backfill", "ccusage", "stats", "live")
DEFAULT_MB = 200.0
TARGETS = {
    "backfill_mb_s": 20.0,  # >= 20 MB/s of session logs
    "live_p95_s": 1.0,  # append -> row visible, p95 <= 1 s
    "idle_cpu_pct": 1.0,  # "~0 %": we call anything under 1 % of one core idle
    "idle_rss_mb": 150.0,  # RSS <= 150 MB
    "stats_s": 1.0,  # `headroom stats` on >= 1 GB of logs <= 1 s
}
TOKEN_FIELDS = ("input", "output", "cache_read", "cache_creation")
POLL_S = 0.005
MARKER_TIMEOUT_S = 10.0


# -- running commands ------------------------------------------------------------------------------


@dataclass
class Run:
    """One finished subprocess: wall time, its own CPU time and peak RSS (from wait4)."""

    wall_s: float
    cpu_s: float
    max_rss_mb: float
    rc: int
    stdout: str
    stderr: str


def run(cmd: list[str], env: dict[str, str], work: Path, timeout: float = 1800) -> Run:
    """Run ``cmd`` and account for exactly that child (wait4), not for anything else running here."""
    out_path, err_path = work / "cmd.stdout", work / "cmd.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not reap it again
    return Run(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,
        rc=proc.returncode,
        stdout=out_path.read_text(encoding="utf-8", errors="replace"),
        stderr=err_path.read_text(encoding="utf-8", errors="replace"),
    )


def checked(result: Run, what: str) -> Run:
    if result.rc != 0:
        raise SystemExit(f"{what} failed with exit code {result.rc}:\n{result.stderr[-2000:]}")
    return result


def headroom_binary() -> str:
    beside = Path(sys.executable).with_name("headroom")
    found = str(beside) if beside.exists() else shutil.which("headroom")
    if not found:
        raise SystemExit("the headroom command is not installed (make setup)")
    return found


def ccusage_binary(given: str | None) -> str | None:
    local = REPO / ".tools" / "node_modules" / ".bin" / "ccusage"
    return given or os.environ.get("HEADROOM_CCUSAGE") or (str(local) if local.exists() else shutil.which("ccusage"))


def clean_env(home: Path) -> dict[str, str]:
    """The caller's environment without anything that points at real agent logs or a real headroom."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADROOM_", "CLAUDE_", "CODEX_", "GEMINI_"))}
    env["HOME"] = str(home)  # so nothing falls back to the user's own ~/.claude, ~/.codex, ~/.gemini
    return env


def headroom_env(base: Path, home: Path, logs: Path) -> dict[str, str]:
    """A fresh ``HEADROOM_HOME`` whose config points every agent at the corpus (and only there)."""
    base.mkdir(parents=True, exist_ok=True)
    (base / "config.toml").write_text(
        f'[agents.claude]\nhomes = ["{logs / "claude"}"]\n'
        f'[agents.codex]\nhomes = ["{logs / "codex"}"]\n'
        f'[agents.gemini]\nhomes = ["{logs / "gemini" / "tmp"}"]\n',
        encoding="utf-8",
    )
    return {**clean_env(home), "HEADROOM_HOME": str(base)}


def ccusage_env(home: Path, logs: Path) -> dict[str, str]:
    return {
        **clean_env(home),
        "CLAUDE_CONFIG_DIR": str(logs / "claude"),
        "CODEX_HOME": str(logs / "codex"),
        "GEMINI_DATA_DIR": str(logs / "gemini"),
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: a p95 of 100 samples is the 95th smallest)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def db_bytes(base: Path) -> int:
    return sum(p.stat().st_size for p in base.glob("headroom.db*") if p.is_file())


# -- backfill, peer, stats, parity -----------------------------------------------------------------


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
