"""Several machines on one real PostgreSQL (issue 17): per-machine files and jobs, one leader for team jobs."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

import pytest
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select, text

from headroom.daemon.analytics import Filters, token_rows
from headroom.daemon.config import load_config
from headroom.daemon.dashboard.data import team
from headroom.daemon.ingest import Ingestor
from headroom.daemon.scheduler import Scheduler
from headroom.memory import identity
from headroom.memory.db import Database, open_database
from headroom.memory.embed import FloatMatrix, HashEmbedder
from headroom.memory.models import SchedulerJobRow, SourceFileRow
from headroom.memory.records import Draft
from headroom.memory.store import MemoryStore
from headroom.memory.upsert import retrying
from headroom.memory.vectors import Vectors
from tests.helpers import SESSION, claude_session_lines

pytestmark = [pytest.mark.pg, pytest.mark.slow]


def wait_until(check: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def session_file(root: Path, name: str) -> Path:
    """A Claude session log of its own (a fresh session id) under ``root``."""
    sid = str(uuid.uuid4())
    folder = root / "-home-dev-src-shop"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    path.write_bytes(b"".join(claude_session_lines(4)).replace(SESSION.encode(), sid.encode()))
    return path


def as_machine(user: str, machine: str) -> None:
    identity.configure(user, machine)


def test_each_machine_runs_its_own_jobs_and_one_leader_runs_the_team_jobs(pg_db: Database) -> None:
    runs: dict[str, int] = {"a": 0, "b": 0, "team-a": 0, "team-b": 0}
    lock = threading.Lock()

    def bump(key: str) -> Callable[[], None]:
        def job() -> None:
            with lock:
                runs[key] += 1

        return job

    schedulers = {}
    for machine in ("a", "b"):
        scheduler = Scheduler(pg_db, machine=machine)
        scheduler.add("tick", bump(machine), IntervalTrigger(seconds=1))
        scheduler.add("prune", bump(f"team-{machine}"), IntervalTrigger(seconds=1), team=True)
        scheduler.start()
        schedulers[machine] = scheduler
    try:
        # A third daemon with learn off (no jobs at all) starts: it removes nothing of the others'.
        third = Scheduler(pg_db, machine="c")
        third.start()
        third.stop()
        with pg_db.engine.connect() as conn:
            ids = sorted(conn.execute(select(SchedulerJobRow.id)).scalars())
        assert ids == ["a/prune", "a/tick", "b/prune", "b/tick"]
        wait_until(lambda: runs["a"] >= 3 and runs["b"] >= 3)
        wait_until(lambda: runs["team-a"] + runs["team-b"] >= 3)
        assert (runs["team-a"] == 0) != (runs["team-b"] == 0)  # exactly one of them leads
        leader = "a" if runs["team-a"] else "b"
        other = "b" if leader == "a" else "a"
        assert schedulers[leader].health()["leader"] and not schedulers[other].health()["leader"]
        # The leader stops: its lock goes with its connection, and the other takes over the team job.
        schedulers.pop(leader).stop()
        wait_until(lambda: runs[f"team-{other}"] >= 2)
    finally:
        for scheduler in schedulers.values():
            scheduler.stop()


def test_a_machine_never_marks_another_machines_files_nor_takes_them_as_renames(
    pg_db: Database, tmp_path: Path
) -> None:
    root_a, root_b = tmp_path / "a" / "projects", tmp_path / "b" / "projects"
    first = session_file(root_a, "one")
    session_file(root_a, "two")
    as_machine("ada", "m-a")
    report = Ingestor(pg_db, {"claude": [root_a]}).scan()
    assert report.statuses["ingested"] == 2
    # Machine B sees another folder; A's file is renamed into it (the same device and inode, A's path gone).
    root_b.mkdir(parents=True)
    moved = root_b / first.parent.name / first.name
    moved.parent.mkdir(parents=True)
    os.rename(first, moved)
    as_machine("bob", "m-b")
    report = Ingestor(pg_db, {"claude": [root_b]}).scan()
    assert report.missing == 0 and report.statuses["ingested"] == 1  # read as B's own new file, from byte 0
    with pg_db.sessions() as s:
        rows = {(r.machine_id, r.path, r.missing) for r in s.execute(select(SourceFileRow)).scalars()}
    assert (("m-a", str(first), False)) in rows  # A's row untouched: neither missing nor taken
    assert (("m-b", str(moved), False)) in rows
    # Back on A: its own rename is still detected (it resumes; nothing read twice) and nothing else is missing.
    as_machine("ada", "m-a")
    again = Ingestor(pg_db, {"claude": [root_a, root_b]}).scan()
    assert again.missing == 0
    with pg_db.engine.connect() as conn:
        mine = conn.execute(text("SELECT path FROM source_files WHERE machine_id = 'm-a' ORDER BY path")).scalars()
        assert str(moved) in list(mine)
        assert conn.execute(text("SELECT count(*) FROM source_files WHERE missing")).scalar_one() == 0


class CountingEmbedder(HashEmbedder):
    """The hash embedder, counting how often each text was embedded (across threads)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        with self._lock:
            self.seen.update(texts)
        time.sleep(0.01)  # long enough for the other worker to reach the same rows
        return super().embed(texts)


def test_two_daemons_feeding_one_backlog_make_each_item_once_and_embed_it_once(pg_db: Database, tmp_path: Path) -> None:
    drafts = [
        Draft(
            f"def handler_{i}(event):\n    return route(event, {i})\n",
            "file_read",
            project="/repo",
            path=f"/repo/h{i}.py",
        )
        for i in range(300)
    ]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)
    embedder = CountingEmbedder()

    def daemon(n: int) -> None:
        try:
            store = MemoryStore(pg_db)
            barrier.wait()
            for start in range(0, len(drafts), 25):  # the same batches, at the same time, in both
                retrying(lambda s=start: store.put_many(drafts[s : s + 25]))  # type: ignore[misc]
            Vectors(store, embedder, tmp_path / f"index-{n}").embed_pending(batch=16)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=daemon, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    with pg_db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM memory_items")).scalar_one() == len(drafts)
        assert conn.execute(text("SELECT count(*) FROM memory_sightings")).scalar_one() == len(drafts)
        assert conn.execute(text("SELECT count(*) FROM memory_vectors")).scalar_one() == len(drafts)
        assert conn.execute(text("SELECT max(sightings) FROM memory_items")).scalar_one() == 1
    assert len(embedder.seen) == len(drafts) and set(embedder.seen.values()) == {1}  # each embedded once


@pytest.mark.parametrize("through", ["engine", "transaction"])
def test_a_deadlock_between_two_daemons_is_retried_whole(pg_db: Database, through: str) -> None:
    """Also through ``Database.transaction`` (what the feed and lesson sync use): it once turned PostgreSQL's
    "deadlock detected ... blocked by process" into DatabaseLocked, which ``retrying`` never retried."""
    with pg_db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL)"))
        conn.execute(text("INSERT INTO counters VALUES (1, 0), (2, 0)"))
    barrier = threading.Barrier(2)
    attempts: Counter[int] = Counter()
    errors: list[BaseException] = []

    def daemon(first: int, second: int) -> None:
        def work() -> None:
            attempts[first] += 1
            with pg_db.engine.begin() if through == "engine" else pg_db.transaction() as conn:
                conn.execute(text("UPDATE counters SET n = n + 1 WHERE id = :i"), {"i": first})
                if attempts[first] == 1:
                    barrier.wait(10)  # both hold their first row: each now waits for the other's
                conn.execute(text("UPDATE counters SET n = n + 1 WHERE id = :i"), {"i": second})

        try:
            retrying(work, what="test")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=daemon, args=pair) for pair in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sum(attempts.values()) == 3  # PostgreSQL broke the deadlock once; that side ran again
    with pg_db.engine.connect() as conn:
        assert conn.execute(text("SELECT sum(n) FROM counters")).scalar_one() == 4


def _rows(db: Database, by: str, filters: Filters | None = None) -> list[dict[str, object]]:
    with db.sessions() as s:
        return token_rows(s, by, filters or Filters())


def test_two_identities_on_one_postgres_give_the_exact_union_of_their_stats(
    pg_db: Database, real_logs: Path, tmp_path: Path
) -> None:
    roots = load_config().agent_roots()
    people = {"ada": {a: roots[a] for a in ("claude", "codex")}, "bob": {"gemini": roots["gemini"]}}
    alone: dict[str, Database] = {}
    try:
        for user, their_roots in people.items():
            as_machine(user, f"m-{user}")
            Ingestor(pg_db, their_roots).scan()
            alone[user] = open_database(f"sqlite:///{tmp_path / (user + '.db')}")
            Ingestor(alone[user], their_roots).scan()
        key = lambda r: (str(r["day"]), str(r["agent"]))  # noqa: E731
        union = sorted(_rows(alone["ada"], "day") + _rows(alone["bob"], "day"), key=key)
        assert union and sorted(_rows(pg_db, "day"), key=key) == union
        for user in people:
            assert _rows(pg_db, "day", Filters(user=user)) == _rows(alone[user], "day")
            assert _rows(pg_db, "day", Filters(machine=f"m-{user}")) == _rows(alone[user], "day")
        by_user = {r["user"]: r["sessions"] for r in _rows(pg_db, "user")}
        assert by_user == {u: sum(int(str(r["sessions"])) for r in _rows(alone[u], "agent")) for u in people}
        # The dashboard's team breakdown: there on the shared database, absent for one person's.
        window = (date(2000, 1, 1), date.today())
        shared = team(pg_db, *window)
        assert shared is not None and {r["name"] for r in shared["users"]} == {"ada", "bob"}
        assert {r["name"] for r in shared["machines"]} == {"m-ada", "m-bob"}
        assert team(alone["ada"], *window) is None
    finally:
        for db in alone.values():
            db.close()
