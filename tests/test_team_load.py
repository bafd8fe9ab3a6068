"""The team load test (bench/team_load.py) in small: three real daemons, one per developer, on one PostgreSQL.

Each has its own HOME, user, machine and role, and real Claude, Codex and Gemini logs dropped in over the run;
the jobs run every few seconds. The harness exits non-zero when a row is lost or doubled against three
single-user SQLite runs of the same logs, a job ran where it should not (or not where it should), or a role
reads another user's private rows; the report must also show that there was something to check.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.pg, pytest.mark.slow]

HARNESS = Path(__file__).resolve().parent.parent / "bench" / "team_load.py"


def test_three_developers_lose_nothing_run_jobs_once_and_read_only_their_own(shared: Path, tmp_path: Path) -> None:
    report_file = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, str(HARNESS), "--developers", "3", "--minutes", "0.4", "--every", "4",
         "--sources", "generated", "--shared", str(shared), "--work", str(tmp_path / "work"),
         "--json", str(report_file)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(report_file.read_text(encoding="utf-8"))
    assert report["failures"] == []
    assert all(min(hand.values()) >= 1 for hand in report["logs"]["units_per_developer"])  # all three agents each
    rows = report["rows"]
    assert rows["sessions"] >= 9 and rows["tool_calls"] > 0 and rows["usage"] > 0 and rows["private_items"] > 0
    jobs = report["jobs"]
    assert len(jobs["leader"]) == 1 and all(n >= 1 for n in jobs["machine_runs_min"].values())
    assert all(n >= 1 for n in jobs["team_runs"].values())
    assert report["privacy"]["foreign_rows_readable"] == 0 and report["privacy"]["own_rows_checked"] > 0
