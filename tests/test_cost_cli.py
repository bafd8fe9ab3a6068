"""Cost in ``stats`` and ``sessions`` on the real fixtures: every grouping, --model, -z, --format, blocks.

The checks are independent of the grouped SQL: each usage row is priced on its own with
:func:`headroom.daemon.pricing.price` and summed in Python, and that must equal what the CLI shows.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from headroom.daemon import analytics, pricing
from headroom.daemon.cli import cli
from headroom.learn.model import REASONING_OUTSIDE_OUTPUT
from headroom.memory.models import UsageRow
from tests.helpers import copy_tree, point_agents_at


def run(*args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def as_json(*args: str) -> Any:
    return json.loads(run(*args, "--format", "json").stdout)


def usage_rows() -> list[UsageRow]:
    from headroom.daemon.config import load_config
    from headroom.memory.db import open_database

    db = open_database(load_config().database_url)
    try:
        with db.sessions() as s:
            rows = list(s.execute(select(UsageRow)).scalars())
            s.expunge_all()
        return rows
    finally:
        db.close()


def row_cost(u: UsageRow) -> float | None:
    """One usage row priced on its own (its own tier), as a bill would."""
    output = u.output_tokens + (u.reasoning_tokens if u.agent in REASONING_OUTSIDE_OUTPUT else 0)
    cost = pricing.price(
        u.model,
        input_tokens=u.input_tokens,
        output_tokens=output,
        cache_read_tokens=u.cache_read_tokens,
        cache_write_tokens=u.cache_creation_tokens,
        cache_write_1h_tokens=u.cache_write_1h_tokens,
        provider=u.agent,
        when=u.day,
    )
    return None if cost is None else cost.usd


@pytest.fixture
def ingested(real_logs: Path) -> Path:
    run("ingest")
    return real_logs


def test_cost_per_day_and_agent_equals_each_call_priced_alone(ingested: Path) -> None:
    expected: dict[tuple[str, str], float] = defaultdict(float)
    for u in usage_rows():
        usd = row_cost(u)
        assert usd is not None or not (u.input_tokens or u.output_tokens or u.cache_read_tokens), u.model
        if u.day and usd is not None:
            expected[(u.day.isoformat(), u.agent)] += usd
    rows = as_json("stats", "--by", "day", "-z", "UTC", "--no-refresh")
    assert {(r["day"], r["agent"]) for r in rows if r["model_calls"]} == set(expected)
    for row in rows:
        if row["model_calls"]:
            assert row["cost_usd"] == pytest.approx(expected[(row["day"], row["agent"])], rel=1e-6, abs=1e-8)
            assert row["cost_usd"] == pytest.approx(
                sum(v for v in row["model_costs"].values() if v), rel=1e-6, abs=1e-8
            )
    assert any(u.cache_write_1h_tokens for u in usage_rows()), "the fixtures hold 1-hour cache writes"


@pytest.mark.parametrize("by", [b for b in analytics.GROUPINGS if b not in ("session",)])
def test_every_grouping_shows_the_same_total_cost(ingested: Path, by: str) -> None:
    total = sum(r["cost_usd"] or 0 for r in as_json("stats", "--by", "day", "-z", "UTC", "--no-refresh"))
    rows = as_json("stats", "--by", by, "-z", "UTC", "--no-refresh")
    assert rows and all("cost_usd" in r and "unpriced_calls" in r for r in rows)
    assert sum(r["cost_usd"] or 0 for r in rows) == pytest.approx(total, rel=1e-6, abs=1e-8)
    table = run("stats", "--by", by, "-z", "UTC", "--no-refresh").output
    assert "cost" in table and "genai-prices" in table


def test_sessions_show_cost_and_session_rows_add_up(ingested: Path) -> None:
    total = sum(r["cost_usd"] or 0 for r in as_json("stats", "--by", "day", "-z", "UTC", "--no-refresh"))
    sessions = as_json("sessions", "-n", "0", "--no-refresh")
    assert sum(r["cost_usd"] or 0 for r in sessions) == pytest.approx(total, rel=1e-6, abs=1e-8)
    by_session = as_json("stats", "--by", "session", "--no-refresh")
    assert sum(r["cost_usd"] or 0 for r in by_session) == pytest.approx(total, rel=1e-6, abs=1e-8)
    priced = max(sessions, key=lambda r: r["cost_usd"] or 0)
    shown = run("sessions", "show", priced["session"]).output
    assert re.search(r"cost: \$[0-9,.]+", shown)
    header = json.loads(run("sessions", "show", priced["session"], "--json").stdout)["session"]
    assert header["cost_usd"] == pytest.approx(priced["cost_usd"])


def test_session_title_is_the_first_prompt_when_the_log_has_none(ingested: Path) -> None:
    rows = as_json("stats", "--by", "session", "--no-refresh")
    untitled = [r for r in rows if r["first_prompt"] and r["title"] == r["first_prompt"]]
    assert untitled
    row = untitled[0]
    timeline = json.loads(run("sessions", "show", row["session"], "--json").stdout)["timeline"]
    first = next(e["text"] for e in timeline if e["kind"] == "user_prompt" and e["text"])
    assert " ".join(first.split()).startswith(row["title"].rstrip("…"))


def test_model_filter_and_by_model(ingested: Path) -> None:
    models = as_json("stats", "--by", "model", "--no-refresh")
    codex = next(r for r in models if r["model"] == "gpt-5.2-codex")
    only = as_json("stats", "--by", "day", "--model", "gpt-5.2", "-z", "UTC", "--no-refresh")
    assert only and all(r["models"] == ["gpt-5.2-codex"] for r in only)
    assert sum(r["total_tokens"] for r in only) == codex["total_tokens"]
    assert sum(r["cost_usd"] for r in only) == pytest.approx(codex["cost_usd"])
    agents = as_json("stats", "--by", "agent", "--model", "gpt-5.2", "--no-refresh")
    assert [r["agent"] for r in agents] == ["codex"] and agents[0]["total_tokens"] == codex["total_tokens"]
    sessions = as_json("sessions", "--model", "gpt-5.2", "-n", "0", "--no-refresh")
    assert sessions and all(r["agent"] == "codex" for r in sessions)
    assert sum(r["total_tokens"] for r in sessions) == codex["total_tokens"]
    mixed = [r for r in as_json("stats", "--by", "day", "-z", "UTC", "--no-refresh") if len(r["models"]) > 1]
    assert mixed, "a day that mixes models lists them all"


def test_reasoning_is_a_column_where_logs_have_it(ingested: Path) -> None:
    table = run("stats", "--by", "agent", "--no-refresh").output
    assert "reasoning" in table
    rows = as_json("stats", "--by", "agent", "--no-refresh")
    assert {r["agent"] for r in rows if r["reasoning_tokens"]} == {"codex", "gemini"}


def test_timezone_moves_days_not_totals(ingested: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    utc = as_json("stats", "--by", "day", "-z", "UTC", "--no-refresh")
    tokyo = as_json("stats", "--by", "day", "-z", "Asia/Tokyo", "--no-refresh")
    assert sum(r["total_tokens"] for r in tokyo) == sum(r["total_tokens"] for r in utc)
    assert sum(r["cost_usd"] or 0 for r in tokyo) == pytest.approx(
        sum(r["cost_usd"] or 0 for r in utc), rel=1e-6, abs=1e-8
    )
    zone = ZoneInfo("Asia/Tokyo")
    expected: dict[tuple[str, str], int] = defaultdict(int)
    for u in usage_rows():
        if u.ts:
            day = u.ts.replace(tzinfo=UTC).astimezone(zone).date().isoformat()
            expected[(day, u.agent)] += u.input_tokens + u.output_tokens
    got = {(r["day"], r["agent"]): r["input_tokens"] + r["output_tokens"] for r in tokyo if r["model_calls"]}
    assert got == dict(expected)
    assert {r["day"] for r in tokyo} != {r["day"] for r in utc}
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # the default is the local zone
    assert as_json("stats", "--by", "day", "--no-refresh") == tokyo


def test_a_bad_timezone_is_a_clear_error(ingested: Path) -> None:
    result = run("stats", "-z", "Mars/Olympus", "--no-refresh", ok=False)
    assert result.exit_code == 2 and "unknown time zone 'Mars/Olympus'" in result.output
    assert "Traceback" not in result.output


def test_formats_csv_md_json(ingested: Path) -> None:
    rows = as_json("stats", "--by", "day", "-z", "UTC", "--no-refresh")
    assert json.loads(run("stats", "--by", "day", "-z", "UTC", "--no-refresh", "--json").stdout) == rows
    text = run("stats", "--by", "day", "-z", "UTC", "--no-refresh", "--format", "csv").stdout
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["total_tokens"]) for r in parsed] == [r["total_tokens"] for r in rows]
    assert [float(r["cost_usd"]) for r in parsed] == pytest.approx([r["cost_usd"] for r in rows])
    assert "cost_input" in parsed[0]
    md = run("stats", "--by", "day", "-z", "UTC", "--no-refresh", "--format", "md").stdout.splitlines()
    assert md[0].startswith("| day | agent |") and set(md[1]) <= set("|-: ")
    assert len(md) == 2 + len(rows) + 1  # header, rule, rows, the total
    sessions_csv = run("sessions", "-n", "3", "--no-refresh", "--format", "csv").stdout
    assert len(list(csv.DictReader(io.StringIO(sessions_csv)))) == 3
    assert run("sessions", "-n", "3", "--no-refresh", "--format", "md").stdout.startswith("| session |")
    clash = run("stats", "--json", "--format", "csv", "--no-refresh", ok=False)
    assert clash.exit_code == 2 and "contradict" in clash.output


def test_blocks_follow_ccusages_rules(ingested: Path) -> None:
    blocks = as_json("stats", "--by", "block", "-z", "UTC", "--no-refresh")
    calls = sorted((u.agent, u.ts) for u in usage_rows() if u.ts)
    assert sum(b["model_calls"] for b in blocks) == len(calls)
    five = timedelta(hours=5)
    by_agent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for block in blocks:
        by_agent[block["agent"]].append(block)
    for agent, mine in by_agent.items():
        times = [ts for who, ts in calls if who == agent]
        position = 0
        for block in mine:
            start = datetime.fromisoformat(block["started_at"].rstrip("Z"))
            assert start.minute == start.second == 0
            inside = times[position : position + block["model_calls"]]
            assert inside[0].replace(minute=0, second=0, microsecond=0) == start
            assert all(start <= ts <= start + five for ts in inside)
            assert all(b - a <= five for a, b in itertools.pairwise(inside))
            position += block["model_calls"]
            if position < len(times):  # the next call had to open a new block
                nxt = times[position]
                assert nxt - start > five or nxt - inside[-1] > five
            assert not block["active"]  # the fixtures are old


def test_unpriced_model_is_never_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared: Path) -> None:
    source = shared / "fixtures" / "sessions" / "claude"
    claude = copy_tree(source, tmp_path / "claude")
    renamed = 0
    for path in claude.rglob("*.jsonl"):
        text = path.read_text(encoding="utf-8")
        if "claude-sonnet-4-20250514" in text:
            path.write_text(text.replace("claude-sonnet-4-20250514", "acme-mystery-7"), encoding="utf-8")
            renamed += 1
    assert renamed
    empty = tmp_path / "empty"
    (empty / "sessions").mkdir(parents=True)
    (empty / "tmp").mkdir()
    point_agents_at(monkeypatch, tmp_path, claude, empty, empty / "tmp")
    run("ingest")
    rows = as_json("stats", "--by", "model", "--no-refresh")
    mystery = next(r for r in rows if r["model"] == "acme-mystery-7")
    assert mystery["cost_usd"] is None and mystery["unpriced_calls"] == mystery["model_calls"] > 0
    assert mystery["unpriced_models"] == ["acme-mystery-7"]
    table = run("stats", "--by", "model", "--no-refresh").output
    line = next(ln for ln in table.splitlines() if "acme-mystery-7" in ln)
    assert "—" in line and "unpriced" in line and "$0" not in line
    days = as_json("stats", "--by", "day", "-z", "UTC", "--no-refresh")
    day = next(r for r in days if "acme-mystery-7" in r["models"])
    assert day["cost_usd"] is None and day["model_costs"] == {"acme-mystery-7": None}


def test_long_context_calls_are_priced_at_their_tier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared: Path
) -> None:
    """Calls past a model's threshold cost more per token, all of their tokens; summing them apart is exact."""
    claude = copy_tree(shared / "fixtures" / "sessions" / "claude", tmp_path / "claude")
    grown = 0
    for path in claude.rglob("*.jsonl"):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        for n, line in enumerate(lines):
            if '"claude-sonnet-4-5-20250929"' in line and '"usage":' in line and n % 3 == 0:
                record = json.loads(line)
                usage = record["message"]["usage"]
                usage["cache_read_input_tokens"] = usage.get("cache_read_input_tokens", 0) + 250_000
                lines[n] = json.dumps(record, separators=(",", ":")) + "\n"
                grown += 1
        path.write_text("".join(lines), encoding="utf-8")
    assert grown
    empty = tmp_path / "empty"
    (empty / "sessions").mkdir(parents=True)
    (empty / "tmp").mkdir()
    point_agents_at(monkeypatch, tmp_path, claude, empty, empty / "tmp")
    run("ingest")
    rows = usage_rows()
    long_calls = [u for u in rows if u.input_tokens + u.cache_read_tokens + u.cache_creation_tokens > 200_000]
    assert long_calls
    expected: dict[str, float] = defaultdict(float)
    flat: dict[str, float] = defaultdict(float)
    for u in rows:
        usd = row_cost(u)
        if u.day and usd is not None:
            expected[u.day.isoformat()] += usd
    for u in long_calls:
        assert u.day is not None
        cost = pricing.price(
            u.model,
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cache_read_tokens=u.cache_read_tokens,
            cache_write_tokens=u.cache_creation_tokens,
            cache_write_1h_tokens=u.cache_write_1h_tokens,
            when=u.day,
            prompt_tokens=0,  # as if it were short
        )
        assert cost is not None
        flat[u.day.isoformat()] += cost.usd
    days = as_json("stats", "--by", "day", "-z", "UTC", "--no-refresh")
    for row in days:
        assert row["cost_usd"] == pytest.approx(expected[row["day"]], rel=1e-6, abs=1e-8)
    assert sum(expected.values()) > sum(flat.values())  # the tier was applied, not the base rate
    total = sum(expected.values())
    for by in ("session", "block", "model", "project"):
        got = sum(r["cost_usd"] or 0 for r in as_json("stats", "--by", by, "-z", "UTC", "--no-refresh"))
        assert got == pytest.approx(total, rel=1e-6), by
    tokyo = as_json("stats", "--by", "day", "-z", "Asia/Tokyo", "--no-refresh")
    assert sum(r["cost_usd"] or 0 for r in tokyo) == pytest.approx(total, rel=1e-6)
