"""``headroom stats --overview``: the dashboard's figures in the terminal, equal to ``dashboard_data``'s."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

from click.testing import CliRunner, Result

from headroom.daemon.cli import cli
from headroom.daemon.cli.stats_view import BLOCKS, EMPTY, buckets, sparkline, totals
from headroom.daemon.dashboard import dashboard_data
from headroom.learn.lessons import activate, sync
from headroom.learn.mining import Evidence, LessonDraft
from headroom.memory.db import Database
from tests.test_dashboard import seed


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli, ["stats", "--overview", "--no-refresh", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _mined_lesson(db: Database) -> str:
    """A lesson the way `headroom learn` makes one: synced from a draft, then activated."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    evidence = tuple(
        Evidence(agent, f"s{i}", now - timedelta(days=i), "make test", "error: no rule")
        for i, agent in enumerate(["claude", "codex"])
    )
    draft = LessonDraft(
        key="k-make",
        project="/p/b",
        scope="project",
        kind="tool_error",
        signature="cmd:make test",
        text="Run `make check`; there is no `make test` [target].",
        names=(),
        evidence=evidence,
        sessions=2,
        count=2,
        first_seen=now - timedelta(days=2),
        last_seen=now - timedelta(days=1),
        corrected_by_user=False,
    )
    assert sync(db, [draft], now=now).new == 1
    assert activate(db, [draft.key], now=now) == 1
    return draft.key


def test_an_empty_database_says_no_data_yet(db: Database) -> None:
    result = run()
    text = result.output
    assert "the last 30 days" in text and "no data yet" in text
    assert "Traceback" not in text
    assert all(len(line) <= 100 for line in text.splitlines())  # piped: 100 columns
    assert not any(block in text for block in BLOCKS)
    data = json.loads(run("--json", "--days", "7").stdout)
    assert data["days"] == 7 and data["savings"]["total"]["tokens_saved"] == 0 and data["projects"] == []


def test_the_numbers_are_the_dashboards(db: Database) -> None:
    seed(db)
    _mined_lesson(db)
    data = dashboard_data(db, 30)
    t = totals(data)
    text = run().output
    assert all(len(line) <= 100 for line in text.splitlines())
    # The totals panel.
    assert t["tokens_saved"] == 11500 and t["requests"] == 5  # (the seed's figures, spelled out in test_dashboard)
    assert f"{t['tokens_saved']:,} of {t['tokens_before']:,} sent ({100 * t['saved_ratio']:.1f}%)" in text
    assert f"{t['requests']:,} requests" in text
    assert f"~${data['savings']['total']['usd_estimate']:.4f}" in text and "estimate" in text
    sessions = sum(p["sessions"] for p in data["projects"])
    assert f"{sessions:,} in {len(data['projects'])} projects" in text
    calls = sum(p["tool_calls"] for p in data["projects"])
    failed = sum(p["failed_tool_calls"] for p in data["projects"])
    assert f"{failed} of {calls} ({100 * failed / calls:.1f}%)" in text
    by_status = data["lessons"]["by_status"]
    assert by_status == {"active": 2, "proposed": 1, "retired": 1}
    assert "2 active, 1 proposed, 1 retired" in text
    assert f"{data['memory']['items']} items (2 decision, 1 instruction)" in text
    # Savings per agent: one chart row each, with the agent's totals.
    for agent, figures in data["savings"]["by_agent"].items():
        row = next(line for line in text.splitlines() if line.startswith(agent + " "))
        chart = sparkline(
            [day["agents"].get(agent, {}).get("tokens_saved", 0) for day in data["savings"]["days"]],
            peak=max(a["tokens_saved"] for d in data["savings"]["days"] for a in d["agents"].values()),
        )
        assert chart in row and len(chart) == 30
        assert f"${figures['usd_estimate']:.4f}" in row
    # Oldest day first: 1500 two days ago is ▂ of the peak, 6000 today, which is █.
    assert re.search(r"^claude +·{27}▂·█ ", text, re.M)
    # The projects, worst first, with their figures.
    projects = next(part for part in text.split("\n\n") if part.startswith("top 5 projects"))
    rows = [line.split() for line in projects.splitlines()[2:]]
    assert [r[0] for r in rows] == ["b", "a", "(no"]
    for row, p in zip(rows, data["projects"][:5], strict=True):
        assert row[-5:] == [
            str(p["sessions"]),
            str(p["failed_sessions"]),
            str(p["tool_calls"]),
            str(p["failed_tool_calls"]),
            f"{100 * p['failure_rate']:.1f}" if p["tool_calls"] else "-",
        ]
    # The active lessons with before -> after; texts are shown as they are, brackets included.
    for item in data["lessons"]["items"]:
        if item["status"] == "active":
            assert item["text"] in text
            assert f"{item['before'] or '-'} → {item['after'] or '-'}" in text
    assert "4/10 → 1/5" in text and "[target]" in text
    assert "The API key is" not in text  # proposed lessons are counted, not listed
    # --json is the dashboard's document itself.
    printed = json.loads(run("--json").stdout)
    printed.pop("generated_at"), data.pop("generated_at")
    assert printed == data


def test_days_narrows_the_window(db: Database) -> None:
    seed(db)
    text = run("--days", "1").output
    assert "headroom: today" in text and "10,000 of 15,000 sent" in text  # today's requests only
    assert re.search(r"^claude +█ ", text, re.M) and re.search(r"^codex +▆ ", text, re.M)
    longer = run("--days", "60").output
    assert "19,500 of" in longer  # the request 40 days ago


def test_the_sparkline_is_deterministic() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7, 8]) == "·▁▂▃▄▅▆▇█"
    assert sparkline([0, 0]) == "··" and sparkline([]) == ""
    assert sparkline([1, 1000]) == "▁█"  # any positive figure shows
    assert sparkline([5], peak=10) == "▄" and sparkline([10, 3], peak=10) == "█▃"
    assert sparkline([3, 0, 7]) == sparkline([3, 0, 7])
    assert buckets(list(range(10)), 20) == (list(range(10)), 1)
    assert buckets(list(range(10)), 4) == ([3, 12, 21, 9], 3)
    assert EMPTY not in BLOCKS


def test_a_long_window_fits_100_columns(db: Database) -> None:
    seed(db)
    text = run("--days", "366").output
    assert all(len(line) <= 100 for line in text.splitlines())
    assert "1 column = " in text


def test_help_documents_the_overview() -> None:
    result = CliRunner().invoke(cli, ["stats", "--help"])
    assert result.exit_code == 0 and "--overview" in result.output and "--days" in result.output
    assert "dashboard" in result.output
