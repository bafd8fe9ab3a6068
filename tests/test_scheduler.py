"""The daemon's scheduler: jobs stored in the real DB, made up once after downtime, failures counted, and
the memory jobs (retention, prune on the worker's thread, compaction) run through it."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import text

from headroom.daemon.config import load_config
from headroom.daemon.memory_service import MemoryWorker, register_jobs
from headroom.daemon.scheduler import Scheduler
from headroom.memory.api import Memory
from headroom.memory.db import Database, open_database
from headroom.memory.models import SchedulerJobRow
from tests.helpers import move_next_run
from tests.test_service import wait_for

pytestmark = pytest.mark.both_backends  # each test runs on SQLite and on PostgreSQL (marked pg, slow)


def stored(db: Database) -> SQLAlchemyJobStore:
    """The job store as apscheduler reads it, to inspect and edit what a stopped daemon left."""
    return SQLAlchemyJobStore(engine=db.engine, tablename=SchedulerJobRow.__tablename__)


def counting_scheduler(db: Database, trigger: object, runs: list[int], *, grace_s: int = 300) -> Scheduler:
    scheduler = Scheduler(db)
    scheduler.add("count", lambda: runs.append(1), trigger, grace_s=grace_s)
    return scheduler


def test_jobs_live_in_the_database_and_keep_their_next_run_across_restarts(db: Database) -> None:
    runs: list[int] = []
    first = counting_scheduler(db, IntervalTrigger(hours=1), runs)
    first.start()
    planned = first.stats["count"].next_run
    first.stop()
    with db.engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(text("select id from scheduler_jobs"))] == [(f"{first.machine}/count",)]
    time.sleep(1.1)  # a fresh job would now be planned a second later
    second = counting_scheduler(db, IntervalTrigger(hours=1), runs)
    second.start()
    try:
        assert second.stats["count"].next_run == planned and second.made_up == []
    finally:
        second.stop()
    assert runs == []


def test_runs_missed_while_down_are_made_up_once_at_start(db: Database) -> None:
    runs: list[int] = []
    first = counting_scheduler(db, IntervalTrigger(hours=1), runs, grace_s=6 * 3600)
    first.start()
    first.stop()
    # Down for three and a half hours: three runs were missed; coalesced, they make one.
    move_next_run(db, "count", datetime.now().astimezone() - timedelta(hours=3, minutes=30))
    second = counting_scheduler(db, IntervalTrigger(hours=1), runs, grace_s=6 * 3600)
    second.start()
    try:
        wait_for(lambda: second.stats["count"].runs == 1)
        time.sleep(0.3)
        assert runs == [1] and second.made_up == ["count"]
        next_run = second.stats["count"].next_run
        assert next_run is not None and next_run > datetime.now().astimezone()
    finally:
        second.stop()


def test_a_run_missed_beyond_its_grace_waits_for_its_next_time(db: Database) -> None:
    runs: list[int] = []
    first = counting_scheduler(db, CronTrigger(hour=3, minute=30), runs, grace_s=3600)
    first.start()
    first.stop()
    move_next_run(db, "count", datetime.now().astimezone() - timedelta(hours=5))
    second = counting_scheduler(db, CronTrigger(hour=3, minute=30), runs, grace_s=3600)
    second.start()
    try:
        time.sleep(0.5)
        assert runs == [] and second.made_up == []
        next_run = second.stats["count"].next_run
        assert next_run is not None and (next_run.hour, next_run.minute) == (3, 30)
    finally:
        second.stop()


def test_a_changed_trigger_reschedules_and_an_unregistered_job_is_removed(db: Database) -> None:
    first = Scheduler(db)
    first.add("nightly", lambda: None, CronTrigger(hour=3, minute=30))
    first.add("gone", lambda: None, IntervalTrigger(hours=1))
    first.start()
    first.stop()
    second = Scheduler(db)
    second.add("nightly", lambda: None, CronTrigger(hour=22, minute=5))
    second.start()
    try:
        next_run = second.stats["nightly"].next_run
        assert next_run is not None and (next_run.hour, next_run.minute) == (22, 5)
        assert [job.id for job in stored(db).get_all_jobs()] == [second.job_id("nightly")]
        second.reschedule("nightly", CronTrigger(hour=1, minute=0))
        assert (second.stats["nightly"].next_run.hour, second.stats["nightly"].next_run.minute) == (1, 0)  # type: ignore[union-attr]
    finally:
        second.stop()


def test_a_failing_job_is_counted_and_keeps_its_schedule(db: Database) -> None:
    def boom() -> None:
        raise OSError("no space left on device")

    scheduler = Scheduler(db)
    scheduler.add("boom", boom, IntervalTrigger(seconds=1))
    scheduler.start()
    try:
        wait_for(lambda: scheduler.stats["boom"].failures >= 2, 10)
        health = scheduler.health()
        assert health["state"] == "running"
        assert health["jobs"]["boom"]["last_error"] == "OSError: no space left on device"
        assert "boom: OSError" in health["last_error"] and health["jobs"]["boom"]["next_run"] is not None
    finally:
        scheduler.stop()
    assert scheduler.health()["state"] == "stopped"


def test_stop_waits_for_the_running_job_which_sees_the_stop(db: Database) -> None:
    steps: list[int] = []
    started = threading.Event()
    scheduler = Scheduler(db)

    def long_job() -> None:
        started.set()
        for step in range(100):  # a learn run over many projects: one project at a time
            if scheduler.stopping.is_set():
                return
            time.sleep(0.05)
            steps.append(step)

    scheduler.add("long", long_job, IntervalTrigger(seconds=1))
    scheduler.start()
    assert started.wait(10)
    time.sleep(0.2)
    began = time.monotonic()
    scheduler.stop()
    assert time.monotonic() - began < 1.0
    assert 0 < len(steps) < 100 and not scheduler.stats["long"].running


def test_the_memory_jobs_run_through_the_scheduler(db: Database) -> None:
    config = load_config()
    config.paths.ensure()
    worker = MemoryWorker(config, Memory(db))
    worker.start()
    scheduler = Scheduler(db)
    register_jobs(scheduler, lambda: config, db, worker, None)
    scheduler.start()
    try:
        assert set(scheduler.specs) == {"memory-backlog", "memory-prune", "ccr-expiry", "db-compact"}
        prune_thread: list[str] = []
        real_prune = worker.prune
        worker.prune = lambda: prune_thread.append(threading.current_thread().name) or real_prune()  # type: ignore[method-assign]
        assert scheduler.execute("memory-prune") == 0
        assert prune_thread == ["headroom-memory"]  # the index is only ever changed on the worker's thread
        assert scheduler.execute("ccr-expiry") == {"ccr_expired": 0, "memo_expired": 0}
        compacted = scheduler.execute("db-compact")
        if db.is_sqlite:
            assert compacted["vacuumed"] is False and compacted["size_after"] > 0
        else:  # PostgreSQL's own autovacuum keeps it: the job does nothing there
            assert compacted == {"skipped": "not SQLite"}
        assert all(stats.failures == 0 for stats in scheduler.stats.values())
    finally:
        scheduler.stop()
        worker.stop()


@pytest.mark.sqlite_only
def test_compaction_vacuums_a_file_with_much_free_space(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.exec_driver_sql("create table filler (blob text)")
        conn.exec_driver_sql(
            "with recursive n(i) as (select 1 union all select i + 1 from n where i < 8000)"
            " insert into filler select hex(randomblob(2000)) from n"
        )
    with db.engine.begin() as conn:
        conn.exec_driver_sql("delete from filler")
    done = db.compact(min_free_bytes=1 << 20)
    assert done["vacuumed"] is True and done["free_bytes"] > 20e6
    assert done["size_after"] < done["size_before"] / 2
    assert db.compact(min_free_bytes=1 << 20)["vacuumed"] is False  # nothing left to give back


def test_a_database_locked_past_its_busy_timeout_does_not_end_the_scheduler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("headroom.memory.db.BUSY_TIMEOUT_MS", 200)
    database = open_database(f"sqlite:///{tmp_path / 'locked.db'}")
    runs: list[int] = []
    scheduler = Scheduler(database)
    scheduler.add("tick", lambda: runs.append(1), IntervalTrigger(seconds=1))
    scheduler.start()
    try:
        wait_for(lambda: len(runs) >= 1)
        other = sqlite3.connect(database.url.removeprefix("sqlite:///"), isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")  # another process holds the DB for seconds (a long VACUUM, say)
        time.sleep(3.5)
        other.execute("COMMIT")
        other.close()
        count = len(runs)
        wait_for(lambda: len(runs) >= count + 2)  # it goes on once the lock is gone
        assert scheduler.alive and scheduler.health()["state"] == "running"
    finally:
        scheduler.stop()
        database.close()
