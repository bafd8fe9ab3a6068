"""Opening the database: engine set-up, owner-only files, and schema upgrade on open.

Every process that opens the DB (the daemon, each CLI command) upgrades it to the newest Alembic revision
first, so users never run migrations by hand. Upgrades are serialised between processes with a file lock
(PostgreSQL: an advisory lock), and a DB whose revision this code does not know is refused rather than
guessed at. SQLite runs in WAL mode with a busy timeout so the daemon's writes and the CLI's reads do not
block each other.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from headroom.memory.errors import DatabaseError, DatabaseFull, DatabaseLocked, DatabaseTooNew, is_disk_full
from headroom.migrations import HEAD

if TYPE_CHECKING:
    from alembic.config import Config

BUSY_TIMEOUT_MS = 30_000
_PG_MIGRATION_LOCK = 0x68656164  # "head": the advisory lock id that serialises upgrades on PostgreSQL


@dataclass
class Database:
    """An open, upgraded database: the engine and a session factory."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    write_sessions: sessionmaker[Session]

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction, committed on success and rolled back on error.

        On SQLite the transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock up front, so a
        read-modify-write cannot be overtaken by another process between its read and its write.
        """
        with self.write_sessions() as session:  # BEGIN IMMEDIATE on SQLite (see _sqlite_on_begin)
            try:
                yield session
                session.commit()
            except OperationalError as exc:
                session.rollback()
                if is_disk_full(exc):
                    raise DatabaseFull(f"the database cannot grow, the disk is full: {exc.orig}") from exc
                if "locked" in str(exc).lower() or "busy" in str(exc).lower():
                    raise DatabaseLocked(f"the database is locked by another process: {exc.orig}") from exc
                raise
            except BaseException:
                session.rollback()
                raise

    def revision(self) -> str | None:
        """The schema revision the DB is at (None for an empty DB)."""
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def size_bytes(self) -> int | None:
        """The size of the DB on disk (SQLite file plus its WAL); None where it is not a local file."""
        path = sqlite_path(self.url)
        if path is None:
            return None
        return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())

    def compact(self, *, min_free_fraction: float = 0.2, min_free_bytes: int = 16 << 20) -> dict[str, Any]:
        """Give space back (the daemon's nightly job): checkpoint and truncate the WAL, VACUUM when at least
        ``min_free_fraction`` of the file (and ``min_free_bytes``) is free pages, refresh the planner's stats.

        VACUUM rewrites the whole file and holds the write lock meanwhile, so it runs only when it returns a
        worthwhile amount; deletes (pruning, forgetting, expiry) leave free pages that new rows reuse anyway.
        PostgreSQL's autovacuum does this job there: nothing to do.
        """
        if not self.is_sqlite:
            return {"skipped": "not SQLite"}
        raw = self.engine.raw_connection()  # autocommit at the driver level (see _sqlite_on_connect): VACUUM
        try:  # cannot run inside the transaction a SQLAlchemy connection would begin
            conn = raw.driver_connection
            assert conn is not None
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            free_bytes = free * page_size
            vacuumed = pages > 0 and free / pages >= min_free_fraction and free_bytes >= min_free_bytes
            if vacuumed:
                conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA optimize")
            after = conn.execute("PRAGMA page_count").fetchone()[0] * page_size
        finally:
            raw.close()
        return {"vacuumed": vacuumed, "free_bytes": free_bytes, "size_before": pages * page_size, "size_after": after}

    def close(self) -> None:
        self.engine.dispose()


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None (another backend, or an in-memory DB)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def alembic_config(url: str) -> Config:
    """An Alembic config for the migrations shipped inside the package (no alembic.ini needed)."""
    from alembic.config import Config

    from headroom import migrations

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def open_database(url: str, *, upgrade: bool = True) -> Database:
    """Open (creating it if needed) and upgrade the database at ``url``."""
    path = sqlite_path(url)
    if path is not None:
        _create_private_file(path)
    engine = create_engine(url, **_engine_options(url))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    db = Database(
        url=url,
        engine=engine,
        sessions=sessionmaker(engine, expire_on_commit=False),
        write_sessions=sessionmaker(engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False),
    )
    try:
        if upgrade:
            upgrade_database(db)
        else:
            check_revision(db)
    except OperationalError as exc:
        engine.dispose()
        raise DatabaseError(f"cannot open the database {_safe(url)}: {exc.orig}") from exc
    except BaseException:
        engine.dispose()
        raise
    if path is not None:
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                side.chmod(0o600)
    return db


def check_revision(db: Database) -> tuple[str | None, str]:
    """Return (current, head); raise :class:`DatabaseTooNew` when the DB is past what this code knows.

    A DB already at :data:`~headroom.migrations.HEAD` (every open but the first after an upgrade) is
    answered without importing Alembic, which would cost a CLI command a fifth of a second.
    """
    current = db.revision()
    if current == HEAD:
        return current, HEAD
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(db.url))
    head = script.get_current_head() or "base"
    if current is not None and current not in {rev.revision for rev in script.walk_revisions()}:
        raise DatabaseTooNew(_safe(db.url), current, head)
    return current, head


def upgrade_database(db: Database) -> None:
    """Bring the schema to the newest revision, one process at a time."""
    with _migration_lock(db):
        current, head = check_revision(db)
        if current == head:
            return
        from alembic import command

        cfg = alembic_config(db.url)
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")


@contextlib.contextmanager
def _migration_lock(db: Database) -> Iterator[None]:
    path = sqlite_path(db.url)
    if path is not None:
        with FileLock(str(path.with_name(path.name + ".migrate.lock")), timeout=120, mode=0o600):
            yield
    elif db.engine.dialect.name == "postgresql":
        with db.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                conn.commit()
    else:
        yield


def _engine_options(url: str) -> dict[str, Any]:
    if make_url(url).get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}}
    return {"pool_pre_ping": True}


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # pysqlite would otherwise BEGIN (deferred) behind SQLAlchemy's back; with the driver in autocommit
    # mode, _sqlite_on_begin decides how transactions start, so write transactions can BEGIN IMMEDIATE.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "")
    conn.exec_driver_sql(f"BEGIN {mode}".strip())


def _create_private_file(path: Path) -> None:
    """Create the DB file (and its folder) readable by the owner only, before SQLite creates it 0644."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    elif stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o600)


def _safe(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)
