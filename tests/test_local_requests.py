"""``headroom stats`` answered by a real running daemon over its local socket, and that request's bad inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from headroom.daemon.config import load_config
from headroom.daemon.hooks.client import ask
from headroom.daemon.stats_request import stats_request
from headroom.memory.db import Database
from tests.test_service import _daemon, scalar, wait_for

STATS = [
    sys.executable,
    "-c",
    (
        "import sys; from headroom.daemon.cli import main\n"
        "try:\n    main()\nfinally:\n"
        "    print('analytics imported:', 'headroom.daemon.analytics' in sys.modules, file=sys.stderr)\n"
        "    print('price data read:', 'genai_prices.data' in sys.modules, file=sys.stderr)"
    ),
]


def _stats(*args: str, fast: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ) | {"HEADROOM_STATS_FAST": "1" if fast else "0"}  # 0: the SQLAlchemy path
    return subprocess.run([*STATS, "stats", *args], env=env, capture_output=True, text=True, timeout=120)


def _settled(db_file: Path) -> Callable[[], bool]:
    """True once the daemon has ingested everything: usage rows, none stale, the count steady for a second."""
    seen: list[int] = []

    def check() -> bool:
        count = scalar(db_file, "select count(*) from usage")
        seen.append(count)
        steady = len(seen) > 20 and count > 0 and seen[-20] == count
        return steady and scalar(db_file, "select count(*) from sessions where stale") == 0

    return check


def test_stats_from_a_running_daemon_equal_the_local_query(
    generated_logs: Path, isolated_home: Path, tmp_path: Path
) -> None:
    config = load_config()
    config.paths.ensure()
    config.paths.config_file.write_text("[proxy]\nenabled = false\n", encoding="utf-8")
    proc = _daemon(dict(os.environ), tmp_path / "daemon.out")
    try:
        wait_for(_settled(isolated_home / "headroom.db"), 120)
        wait_for(config.paths.hooks_socket.exists, 60)
        via_daemon = _stats("--by", "day", "--json", "--no-refresh")
        assert via_daemon.returncode == 0, via_daemon.stderr
        # every filter and the zone travel to the daemon: the same rows as this process computes
        zoned_args = ("--by", "model", "-z", "Asia/Tokyo", "--since", "2000-01-01", "--format", "csv", "--no-refresh")
        zoned = _stats(*zoned_args)
        assert zoned.returncode == 0 and "analytics imported: False" in zoned.stderr
        assert "analytics imported: False" in via_daemon.stderr  # the CLI did not query the DB itself
        table = _stats("--by", "agent", "--since", "2000-01-01")
        assert table.returncode == 0 and "tokens by agent" in table.stdout and "claude" in table.stdout
        assert "analytics imported: False" in table.stderr
        assert "price data read: False" in table.stderr and "prices: genai-prices" in table.stdout  # the daemon's
        bad = _stats("--since", "not-a-date")
        assert bad.returncode != 0 and "not-a-date" in bad.stderr  # the user's error, daemon or not
    finally:
        proc.terminate()
        proc.wait(30)
    local = _stats("--by", "day", "--json", "--no-refresh", fast=False)
    assert "analytics imported: True" in local.stderr
    rows = json.loads(via_daemon.stdout)
    assert rows and rows == json.loads(local.stdout)
    fast = _stats("--by", "day", "--json", "--no-refresh")  # no daemon, SQLite: daemon/stats_fast.py
    assert "analytics imported: False" in fast.stderr and fast.stdout == local.stdout
    zoned_local = _stats(*zoned_args)
    assert "analytics imported: True" in zoned_local.stderr
    assert zoned.stdout.count("\n") > 1 and zoned.stdout == zoned_local.stdout


def test_bad_stats_requests_get_an_error(db: Database) -> None:
    handle = stats_request(db)
    bad_requests = (
        {"by": "year"},
        {"since": "yesterday"},
        {"since": 20260101},
        {"agent": 3},
        {"project": ["x"]},
        {"tz": "Mars/Olympus_Mons"},
        {"model": 5},
    )
    for bad in bad_requests:
        with pytest.raises(ValueError):
            handle(bad)
    assert handle({"by": "day"}) == {"rows": []}
    table = handle({"by": "agent", "proxy": True})
    assert "proxy" in table and table["prices"]["package"] == "genai-prices"


def test_a_failing_request_is_answered_with_an_error_on_the_socket(db: Database, isolated_home: Path) -> None:
    from headroom.daemon.hooks.answers import HookAnswers
    from headroom.daemon.hooks.server import HookServer

    config = load_config()
    config.paths.ensure()

    def broken(request: dict[str, object]) -> dict[str, object]:
        raise RuntimeError("the database went away")

    server = HookServer(HookAnswers(lambda: config, db, None), config.paths.hooks_socket, {"stats_rows": broken})
    server.start()
    try:
        answer = ask(str(config.paths.hooks_socket), {"purpose": "stats_rows"}, 10.0)
        assert answer == {"error": "RuntimeError: the database went away"}
        assert ask(str(config.paths.hooks_socket), {"purpose": "stats_rows", "by": "year"}, 10.0)["error"]
    finally:
        server.stop()
