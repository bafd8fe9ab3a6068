"""Team on PostgreSQL (issue 17): a cold ingest of the real logs into PostgreSQL vs SQLite, same run, and the
union check of two identities on one PostgreSQL database.

A measurement, not a test: on a shared machine only same-run ratios mean anything, so the runs alternate
(SQLite, PostgreSQL, SQLite, ...) over the same logs, each into an empty database. PostgreSQL is the one the
tests use: ``pgserver`` (PostgreSQL 16 + pgvector, bundled binaries) over a Unix socket on this machine, so
the figures have no network in them. Then two identities (``ada``: Claude and Codex logs, ``bob``: Gemini's)
ingest into one fresh PostgreSQL database and into a SQLite file each; ``stats --by day`` of the shared
database must equal the union of the two files' rows, and each ``--user`` filter the user's own file.

Usage: ``python bench/team_bench.py [--runs 3] [--logs ../shared/fixtures/sessions]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from headroom.daemon.analytics import Filters, token_rows
from headroom.daemon.ingest import Ingestor
from headroom.learn.model import Agent
from headroom.memory import identity
from headroom.memory.db import Database, open_database


def roots_of(logs: Path) -> dict[Agent, list[Path]]:
    return {"claude": [logs / "claude"], "codex": [logs / "codex"], "gemini": [logs / "gemini" / "tmp"]}


def cold_ingest(url: str, roots: dict[Agent, list[Path]]) -> tuple[float, float, int]:
    """Seconds to open (create and upgrade) an empty database, then to ingest ``roots`` into it; records read."""
    started = time.perf_counter()
    db = open_database(url)
    opened = time.perf_counter()
    try:
        report = Ingestor(db, roots).scan()
    finally:
        db.close()
    return opened - started, time.perf_counter() - opened, report.records


def rows(db: Database, by: str, filters: Filters | None = None) -> list[dict[str, Any]]:
    with db.sessions() as s:
        return token_rows(s, by, filters or Filters())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--logs", type=Path, default=Path(__file__).resolve().parents[2] / "shared/fixtures/sessions")
    args = parser.parse_args()
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="xdg-"))
    import pgserver

    work = Path(tempfile.mkdtemp(prefix="team-bench-"))
    os.environ["HEADROOM_HOME"] = str(work / "home")
    server = pgserver.get_server(work / "pg", cleanup_mode="stop")
    socket_dir = dict(p.split("=", 1) for p in server.get_uri().split("?", 1)[1].split("&"))["host"]

    def pg_url() -> str:
        name = "b_" + uuid.uuid4().hex[:10]
        server.psql(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://postgres@/{name}?host={socket_dir}"

    try:
        roots = roots_of(args.logs)
        identity.configure("bench", "m-bench")
        times: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
        opens: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
        records = 0
        for run in range(args.runs):
            for backend in ("sqlite", "postgresql"):
                url = f"sqlite:///{work / f'run{run}.db'}" if backend == "sqlite" else pg_url()
                opened, seconds, records = cold_ingest(url, roots)
                times[backend].append(seconds)
                opens[backend].append(opened)
        sqlite_p50, pg_p50 = statistics.median(times["sqlite"]), statistics.median(times["postgresql"])
        print(f"cold ingest of {args.logs} ({records} records), {args.runs} alternating runs each:")
        for backend, values in times.items():
            print(
                f"  {backend:10s} scan median {statistics.median(values):.2f} s  runs {[round(v, 2) for v in values]}"
                f"  (create + upgrade median {statistics.median(opens[backend]):.2f} s)"
            )
        print(f"  scan PostgreSQL / SQLite = {pg_p50 / sqlite_p50:.2f}")

        people: dict[str, dict[Agent, list[Path]]] = {
            "ada": {"claude": roots["claude"], "codex": roots["codex"]},
            "bob": {"gemini": roots["gemini"]},
        }
        shared = open_database(pg_url())
        alone: dict[str, Database] = {}
        for user, their_roots in people.items():
            identity.configure(user, f"m-{user}")
            Ingestor(shared, their_roots).scan()
            alone[user] = open_database(f"sqlite:///{work / (user + '.db')}")
            Ingestor(alone[user], their_roots).scan()

        def key(r: dict[str, Any]) -> tuple[str, str]:
            return str(r["day"]), str(r["agent"])

        union = sorted(rows(alone["ada"], "day") + rows(alone["bob"], "day"), key=key)
        exact = sorted(rows(shared, "day"), key=key) == union
        per_user = all(rows(shared, "day", Filters(user=u)) == rows(alone[u], "day") for u in people)
        print(f"two identities on one PostgreSQL: {len(union)} (day, agent) rows; exact union: {exact}; ")
        print(f"  --user filters equal each user's own SQLite: {per_user}")
        for db in (shared, *alone.values()):
            db.close()
        return 0 if exact and per_user else 1
    finally:
        server.cleanup()


if __name__ == "__main__":
    sys.exit(main())
