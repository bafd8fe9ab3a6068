"""Compare two backfilled SQLite databases table by table: the check that a faster ingest stores the same rows.

A change to ingestion that is only meant to be faster must leave the mirror byte-identical. This reads every
table of both databases (the schema too), in primary-key order, and reports per table the row count, a digest of
its rows and the first rows that differ. Only the columns that record *when* ingestion ran are left out
(``source_files.first_seen``/``ingested_at``, ``ingest_issues.first_seen``/``last_seen``): they differ between
any two runs. Row ids are compared like any other column, so a change in write order shows up too.

    python bench/mirror_compare.py BEFORE.db AFTER.db        # exit 0: identical; 1: the differences are listed
    python bench/mirror_compare.py --digest DB               # the per-table digests of one database

The usual use: two cold backfills of the same corpus, one with the code before the change and one after
with the same ``HEADROOM_MACHINE``, as the rows carry the machine id; see bench/README.md).
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

# When ingestion ran, not what it stored.
VOLATILE = {
    "source_files": {"first_seen", "ingested_at"},
    "ingest_issues": {"first_seen", "last_seen"},
}


def tables(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(name, CREATE statement) of every table, SQLite's own and FTS5's shadow tables included (they are data)."""
    query = "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    return [(name, sql or "") for name, sql in conn.execute(query)]


def schema(conn: sqlite3.Connection) -> list[tuple[str, str, tuple[str, ...]]]:
    """Every table, index, view and trigger with its SQL: a schema change shows up as a difference too.

    The SQL's comma-separated parts are sorted: alembic's batch migrations write a table's constraints in an
    order that varies from run to run (a set), which is no difference in the schema.
    """
    query = "SELECT type, name, COALESCE(sql, '') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
    return [(kind, name, _parts(sql)) for kind, name, sql in conn.execute(query)]


def _parts(sql: str) -> tuple[str, ...]:
    return tuple(sorted(part.strip() for part in sql.strip().removesuffix(")").split(",")))


def rows(conn: sqlite3.Connection, table: str) -> Iterator[tuple[object, ...]]:
    """The table's rows in primary-key order (rowid, else every column), volatile columns left out."""
    columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]
    keep = [c for c in columns if c not in VOLATILE.get(table, set())]
    pk = [row[1] for row in sorted(conn.execute(f'PRAGMA table_info("{table}")'), key=lambda r: r[5]) if row[5]]
    without_rowid = conn.execute("SELECT 1 FROM pragma_table_list WHERE name = ? AND wr = 1", (table,)).fetchone()
    order = ", ".join(f'"{c}"' for c in pk) if pk else ("1" if without_rowid else "rowid")
    select = ", ".join(f'"{c}"' for c in keep)
    yield tuple(keep)
    yield from conn.execute(f'SELECT {select} FROM "{table}" ORDER BY {order}')


def digest(conn: sqlite3.Connection, table: str) -> tuple[int, str]:
    """(row count, blake2b of the rows' repr, header included)."""
    h = hashlib.blake2b(digest_size=16)
    count = -1
    for row in rows(conn, table):
        h.update(repr(row).encode("utf-8", "surrogatepass"))
        h.update(b"\n")
        count += 1
    return count, h.hexdigest()


def compare(before: Path, after: Path, show: int = 3) -> list[str]:
    """Every difference between the two databases, as lines; empty when they hold the same."""
    a, b = _open(before), _open(after)
    problems: list[str] = []
    if schema(a) != schema(b):
        only = set(schema(a)) ^ set(schema(b))
        problems.append(f"schema differs: {sorted(only)[:show]}")
    names = sorted({n for n, _ in tables(a)} | {n for n, _ in tables(b)})
    for name in names:
        try:
            left, right = rows(a, name), rows(b, name)
            shown = 0
            for count, (x, y) in enumerate(_zip_longest(left, right)):
                if x != y:
                    if shown < show:
                        problems.append(f"{name} row {count}: {_short(x)} != {_short(y)}")
                    shown += 1
            if shown > show:
                problems.append(f"{name}: {shown - show} more rows differ")
        except sqlite3.OperationalError as exc:
            problems.append(f"{name}: {exc}")
    return problems


def _zip_longest(x: Iterator[tuple[object, ...]], y: Iterator[tuple[object, ...]]) -> Iterator[tuple[object, object]]:
    missing = object()
    while True:
        p, q = next(x, missing), next(y, missing)
        if p is missing and q is missing:
            return
        yield (None if p is missing else p), (None if q is missing else q)


def _short(row: object) -> str:
    text = repr(row)
    return text if len(text) < 300 else text[:300] + "…"


def _open(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise SystemExit(f"no database at {path}")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="compare two backfilled headroom databases, table by table")
    parser.add_argument("databases", nargs="+", type=Path, help="BEFORE.db AFTER.db, or one DB with --digest")
    parser.add_argument("--digest", action="store_true", help="print each table's row count and digest")
    args = parser.parse_args(argv)
    if args.digest:
        for path in args.databases:
            conn = _open(path)
            for name, _ in tables(conn):
                count, hexdigest = digest(conn, name)
                print(f"{path}\t{name}\t{count}\t{hexdigest}")
        return 0
    if len(args.databases) != 2:
        parser.error("give two databases to compare (or --digest)")
    before, after = args.databases
    problems = compare(before, after)
    conn = _open(after)
    counts = {name: digest(conn, name)[0] for name, _ in tables(conn)}
    summary = ", ".join(f"{name} {count}" for name, count in counts.items() if count)
    if problems:
        print(f"DIFFERENT: {before} vs {after}", *problems, sep="\n")
        return 1
    print(f"identical (every table, volatile time columns aside): {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
