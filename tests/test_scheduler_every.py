"""``[scheduler] every``: a job's own schedule replaced by a short interval (load tests, trying a job out)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger

from headroom.daemon.config import load_config
from headroom.daemon.errors import ConfigError
from headroom.daemon.scheduler import Scheduler


def test_every_replaces_a_nightly_trigger_and_the_job_runs() -> None:
    runs: list[float] = []
    scheduler = Scheduler(None, every={"nightly": 0.2, "no-such-job": 5})
    scheduler.add("nightly", lambda: runs.append(time.monotonic()), CronTrigger(hour=3, minute=30))
    scheduler.add("hourly", lambda: None, CronTrigger(minute=0))
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while len(runs) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        scheduler.stop()
    assert len(runs) >= 2
    assert "interval" in str(scheduler.specs["nightly"].trigger)
    assert "cron" in str(scheduler.specs["hourly"].trigger)  # not named: its own schedule


def test_every_is_read_from_the_config_and_checked(tmp_path: Path) -> None:
    file = tmp_path / "config.toml"
    file.write_text('[scheduler]\nevery = { "memory-prune" = 30, learn-idle = 2.5 }\n', encoding="utf-8")
    assert load_config(file).scheduler.every == {"memory-prune": 30, "learn-idle": 2.5}
    file.write_text('[scheduler]\nevery = { "memory-prune" = 0 }\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"scheduler\.every"):
        load_config(file)
    file.write_text('[scheduler]\nevery = { "memory-prune" = "soon" }\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"scheduler\.every"):
        load_config(file)
