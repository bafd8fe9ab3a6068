"""Token totals per (UTC day, agent) equal ccusage's on every shared fixture folder, every column; cost within 1 %.

The comparison is ``bench/ccusage_parity.py``'s (the figures in bench/README.md come from it): ``headroom
ingest`` + ``headroom stats --by day --json`` against ``ccusage daily --json --by-agent --offline -z UTC``
(20.0.24), both run as subprocesses on the same copy of the logs; input, output, cache read, cache write
and total tokens must be equal on every row.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from headroom.daemon.cli import cli
from tests.helpers import bench_module, ccusage_binary, copy_tree, point_agents_at

OWN = Path(__file__).resolve().parent / "fixtures"


@pytest.mark.ccusage
@pytest.mark.skipif(ccusage_binary() is None, reason="ccusage is not installed (make tools installs it)")
@pytest.mark.parametrize("folder", ["sessions", "sessions-more", "generated"])
def test_every_row_equals_ccusage(shared: Path, folder: str) -> None:
    headroom = Path(sys.executable).with_name("headroom")
    if not headroom.exists():
        pytest.skip(f"no headroom command beside {sys.executable} (make setup)")
    binary = ccusage_binary()
    assert binary is not None
    compared, equal, differences, costs = bench_module("ccusage_parity").parity_with_costs(
        shared, folder, binary, str(headroom)
    )
    assert compared > 0, "ccusage and headroom found no usage: the fixture layout changed"
    assert differences == [] and equal == compared
    # Cost: within 1 % of ccusage's on every (day, agent) row, over the models both price.
    assert costs["compared"] > 0 and costs["outside"] == [] and costs["within"] == costs["compared"]


def test_gemini_totals_count_thoughts_and_keep_them_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ccusage's Gemini total includes thought tokens; ours too, while reasoning stays its own column."""
    gemini = copy_tree(OWN / "gemini" / "gemini-home" / "tmp", tmp_path / "gemini-tmp")
    empty = tmp_path / "empty"
    (empty / "projects").mkdir(parents=True)
    point_agents_at(monkeypatch, tmp_path, empty, empty, gemini)
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest"], catch_exceptions=False).exit_code == 0

    def rows(*args: str) -> list[dict[str, int]]:
        result = runner.invoke(cli, ["stats", *args, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    days = [row for row in rows("--by", "day") if row["agent"] == "gemini" and row["model_calls"]]
    assert days and any(row["reasoning_tokens"] for row in days)
    parts = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens", "reasoning_tokens")
    for row in days:
        assert row["total_tokens"] == sum(row[name] for name in parts)
    everything = sum(row["total_tokens"] for row in days)
    assert sum(row["total_tokens"] for row in rows("--by", "agent")) == everything
    assert sum(row["total_tokens"] for row in rows("--by", "project")) == everything
    assert sum(row["total_tokens"] for row in rows("--by", "session")) == everything
