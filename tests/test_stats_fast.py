"""The ``sqlite3`` fast path of ``headroom stats --by day|week|month --no-refresh`` (daemon/stats_fast.py): the same
rows and the same bytes as the SQLAlchemy path on real session logs (long-context calls included), and the cases
where it must step aside."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from headroom.daemon import analytics
from headroom.daemon.cli import cli
from headroom.daemon.config import load_config
from headroom.daemon.stats_fast import CACHE_NAME, fast_rows, sqlite_file
from headroom.memory.db import open_database
from headroom.memory.models import ProxyRequestRow
from tests.helpers import copy_tree, point_agents_at

ARGS = [
    ("--by", "day", "--json"),
    ("--by", "week", "--json"),
    ("--by", "month", "--format", "csv"),
    ("--by", "day"),
    ("--by", "day", "--format", "md", "--agent", "claude", "--since", "2025-01-01"),
    ("--by", "week", "--json", "--until", "2025-12-31"),
    ("--by", "day", "--json", "--agent", "gemini"),
    ("--by", "day", "--json", "-z", "Asia/Tokyo"),  # local days: hours in SQL, folded here
    ("--by", "week", "--json", "-z", "America/New_York", "--since", "2025-09-01", "--until", "2025-12-31"),
    ("--by", "month", "-z", "Europe/Berlin", "--agent", "claude"),
]


@pytest.fixture
def ingested(shared: Path, isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real session fixtures ingested, with some calls made long-context (priced at the higher tier)."""
    logs = copy_tree(shared / "fixtures" / "sessions", tmp_path / "logs")
    point_agents_at(monkeypatch, tmp_path, logs / "claude", logs / "codex", logs / "gemini" / "tmp")
    assert CliRunner().invoke(cli, ["ingest"], catch_exceptions=False).exit_code == 0
    db_file = isolated_home / "headroom.db"
    with sqlite3.connect(db_file) as conn:
        # A 250k-token prompt is billed at the long-context rate for every token (Sonnet 4.x, Gemini 2.5 Pro):
        # the fast path must split those calls out exactly as costs.grouped does.
        changed = conn.execute(
            "UPDATE usage SET input_tokens = input_tokens + 250000 WHERE id IN "
            "(SELECT id FROM usage WHERE model LIKE 'claude-sonnet-4%' OR model LIKE 'gemini-2.5-pro%' "
            "ORDER BY id LIMIT 40) AND id % 3 = 0"
        ).rowcount
    assert changed > 0
    return db_file


def _run(*args: str, fast: bool) -> str:
    env = {"HEADROOM_STATS_FAST": "1" if fast else "0", "COLUMNS": "200"}
    result = CliRunner().invoke(cli, ["stats", *args, "--no-refresh"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_same_bytes_as_the_sqlalchemy_path(ingested: Path) -> None:
    for args in ARGS:
        assert _run(*args, fast=True) == _run(*args, fast=False), args
    day = json.loads(_run("--by", "day", "--json", fast=True))
    assert any(row["agent"] == "gemini" for row in day) and any(row["tool_calls"] for row in day)


def test_the_rows_equal_analytics_and_the_long_calls_are_priced_apart(ingested: Path) -> None:
    config = load_config()
    db = open_database(config.database_url, read_only=True)
    try:
        zones = (UTC, ZoneInfo("Asia/Tokyo"), ZoneInfo("America/Los_Angeles"))
        for by, tz in ((by, tz) for by in ("day", "week", "month") for tz in zones):
            for agent, since in ((None, None), ("claude", None), (None, date(2025, 9, 1))):
                fast = fast_rows(
                    config.database_url,
                    config.paths.state_dir,
                    by,
                    agent=agent,
                    since=since,
                    until=None,
                    table=False,
                    tz=tz,
                )
                assert fast is not None
                with db.sessions() as dbs:
                    slow = analytics.token_rows(dbs, by, analytics.Filters(agent=agent, since=since, tz=tz))
                assert fast.rows == slow and slow, (by, tz, agent, since)
    finally:
        db.close()
    # The long calls changed the price: the same tokens at base rates would cost less.
    with sqlite3.connect(ingested) as conn:
        long_days = {d for (d,) in conn.execute("SELECT day FROM usage WHERE input_tokens > 250000")}
    assert long_days
    cache = json.loads((config.paths.state_dir / CACHE_NAME).read_text())
    assert cache["rates"] and any(r and r["tiers"] for r in cache["rates"].values())


def test_a_second_run_reads_neither_the_orm_nor_the_price_table(ingested: Path) -> None:
    code = (
        "import sys; from headroom.daemon.cli import main\n"
        "try:\n    main()\nfinally:\n"
        "    print('orm:', 'sqlalchemy' in sys.modules, 'prices:', 'genai_prices.data' in sys.modules, file=sys.stderr)"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code, "stats", "--by", "day", "--no-refresh"],
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        for _ in range(2)
    ]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    assert "orm: False" in runs[0].stderr and "prices: True" in runs[0].stderr  # first: the rates are looked up
    assert "orm: False prices: False" in runs[1].stderr  # then they come from state/stats-rates.json
    assert "prices: genai-prices" in runs[1].stdout and runs[1].stdout == runs[0].stdout


def test_a_stale_or_broken_rate_cache_is_rebuilt(ingested: Path) -> None:
    expected = _run("--by", "day", "--json", fast=False)
    cache = load_config().paths.state_dir / CACHE_NAME
    assert _run("--by", "day", "--json", fast=True) == expected
    document = json.loads(cache.read_text())
    # Another price table (a package upgrade changes the data file): every stored rate is wrong, here all $0.
    document["stamp"]["table"][1] += 1
    for rates in document["rates"].values():
        if rates:
            rates["rates"] = [0.0] * 5
    cache.write_text(json.dumps(document))
    assert _run("--by", "day", "--json", fast=True) == expected
    cache.write_text("{not json")
    assert _run("--by", "day", "--json", fast=True) == expected
    assert json.loads(cache.read_text())["format"] == 1


def test_where_the_fast_path_steps_aside(ingested: Path, tmp_path: Path) -> None:
    config = load_config()
    url, state = config.database_url, config.paths.state_dir

    def fast(by: str = "day", *, table: bool = False, db_url: str = url) -> object:
        return fast_rows(db_url, state, by, agent=None, since=None, until=None, table=table)

    assert fast() is not None and fast(table=True) is not None
    assert fast("session") is None and fast("model") is None  # only the per-period table
    assert fast(db_url="postgresql+psycopg://me@db/headroom") is None
    assert fast(db_url=f"sqlite:///{tmp_path / 'absent.db'}") is None
    assert sqlite_file(url + "?timeout=5") is None
    db = open_database(url)
    try:
        with db.transaction() as s:
            s.add(
                ProxyRequestRow(
                    ts=datetime(2025, 10, 1, 10),
                    day=date(2025, 10, 1),
                    agent="claude",
                    provider="anthropic",
                    endpoint="messages",
                    model="claude-sonnet-4-5",
                    status=200,
                    tokens_before=100,
                    tokens_after=50,
                )
            )
    finally:
        db.close()
    assert fast(table=True) is None  # the table would show the proxy's figures: the normal path computes them
    assert fast() is not None
    assert _run("--by", "day", fast=True) == _run("--by", "day", fast=False)
    with sqlite3.connect(ingested) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    assert fast() is None  # another schema: the normal path upgrades or explains
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    assert fast(db_url=f"sqlite:///{garbage}") is None


def test_the_console_script_answers_the_json_before_importing_the_cli(ingested: Path) -> None:
    code = (
        "import sys; from headroom.daemon.entry import main\n"
        "try:\n    main()\nfinally:\n    print('cli:', 'click' in sys.modules, file=sys.stderr)"
    )

    def entry(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-c", code, "stats", *args]
        return subprocess.run(argv, env=dict(os.environ), capture_output=True, text=True, timeout=120)

    for args in (
        ("--by", "day", "--json", "--no-refresh"),
        ("--no-refresh", "--json", "--by", "month", "-z", "Asia/Tokyo", "--agent", "claude"),
        ("--by", "week", "--since", "2025-09-01", "--until", "2025-12-31", "--json", "--no-refresh"),
    ):
        quick = entry(*args)
        assert quick.returncode == 0 and "cli: False" in quick.stderr, (args, quick.stderr)
        assert quick.stdout == _run(*[a for a in args if a != "--no-refresh"], fast=False), args
    # What it does not answer goes to the CLI: a relative date, a zone it does not know, another option.
    for args, ok in (
        (("--by", "day", "--json", "--no-refresh", "--since", "30d"), True),
        (("--by", "session", "--json", "--no-refresh"), True),
        (("--json", "--no-refresh", "-z", "Mars/Olympus"), False),
    ):
        handed = entry(*args)
        assert "cli: True" in handed.stderr and (handed.returncode == 0) == ok, (args, handed.stderr)
    assert "Mars/Olympus" in entry("--json", "--no-refresh", "-z", "Mars/Olympus").stderr
    config = load_config().paths.config_file
    config.write_text("this is = = not toml\n")
    broken = entry("--by", "day", "--json", "--no-refresh")
    assert broken.returncode != 0 and "cli: True" in broken.stderr  # the CLI explains the broken file
