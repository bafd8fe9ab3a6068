"""Connections one headroom process holds on PostgreSQL (issue 17: dozens of daemons on one server).

Opens the database as a daemon does, runs ``--threads`` concurrent queries of ``--sleep`` seconds each (more
than the pool allows at once) and samples ``pg_stat_activity`` from a separate, unpooled connection: the peak
number of server connections the process used, how long the burst took (threads past the cap wait for a free
connection, none fails), and how many stay open once it is idle.

    python bench/pg_pool_bench.py --threads 12 --sleep 0.3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from headroom.memory.db import open_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--threads", type=int, default=12)
    parser.add_argument("--sleep", type=float, default=0.3)
    args = parser.parse_args()
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="xdg-"))
    import pgserver

    server = pgserver.get_server(Path(tempfile.mkdtemp(prefix="headroom-pg-")), cleanup_mode="stop")
    try:
        query = dict(p.split("=", 1) for p in urlsplit(server.get_uri()).query.split("&") if "=" in p)
        name = "pool_" + uuid.uuid4().hex[:8]
        server.psql(f"CREATE DATABASE {name}")
        url = f"postgresql+psycopg://postgres@/{name}?host={query['host']}"
        db = open_database(url, shared_upgrade=True)
        watch = create_engine(url, poolclass=NullPool)
        count = text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()")
        errors: list[BaseException] = []

        def busy() -> None:
            try:
                with db.engine.connect() as conn:
                    conn.execute(text("SELECT pg_sleep(:s)"), {"s": args.sleep})
            except BaseException as exc:  # counted, reported below
                errors.append(exc)

        started = time.monotonic()
        threads = [threading.Thread(target=busy) for _ in range(args.threads)]
        for thread in threads:
            thread.start()
        peak = 0
        while any(thread.is_alive() for thread in threads):
            with watch.connect() as conn:
                peak = max(peak, int(conn.execute(count, {"d": name}).scalar_one()))
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        with watch.connect() as conn:
            idle = int(conn.execute(count, {"d": name}).scalar_one())
        print(
            f"{args.threads} threads x {args.sleep} s query: peak {peak} server connections, "
            f"{elapsed:.2f} s, {len(errors)} errors, {idle} kept open when idle"
        )
        db.close()
        watch.dispose()
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
