"""Opening the database: engine set-up, owner-only files, and schema upgrade on open.

Every process that opens a SQLite DB (one person's: the daemon, each CLI command) upgrades it to the newest
Alembic revision first, so users never run migrations by hand. A shared PostgreSQL database is upgraded only
by ``headroom db upgrade`` (whoever administers it): a client whose schema is behind stops with that advice, and
one whose schema is ahead (a newer headroom upgraded it) continues only inside the compatibility window the
upgrade recorded (:data:`~headroom.migrations.MIN_CLIENT_REVISION`). Upgrades are serialised between
processes with a file lock (PostgreSQL: an advisory lock), and a DB whose revision this code does not know is
refused rather than guessed at. SQLite runs in WAL mode with a busy timeout so the daemon's writes and the CLI's
reads do not block each other.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from filelock import FileLock
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from headroom.memory.dbguard import FileGuard, quick_check
from headroom.memory.errors import (
    DatabaseError,
    DatabaseFull,
    DatabaseLocked,
    DatabaseNeedsUpgrade,
    DatabaseTooNew,
    is_disk_full,
)
from headroom.memory.identity import current_user
from headroom.memory.nul import strip_nul_parameters
from headroom.memory.rls import member_user
from headroom.memory.upsert import is_retryable
from headroom.migrations import HEAD, MIN_CLIENT_REVISION

if TYPE_CHECKING:
    from alembic.config import Config

BUSY_TIMEOUT_MS = 30_000
#: What rebuilds the session mirror from the agents' logs when the DB file is damaged (daemon/cli/ingest_cmd.py).
REBUILD_COMMAND = "headroom ingest --rebuild"

_PG_MIGRATION_LOCK = 0x68656164  # "head": the advisory lock id that serialises upgrades on PostgreSQL
#: The ``state_values`` row (machine ``""``) where ``headroom db upgrade`` records the oldest client revision
#: that can still use the schema it left.
MIN_CLIENT_KEY = "schema.min_client_revision"
#: Connections per daemon or CLI process on PostgreSQL: ``POOL_SIZE`` kept open, ``MAX_OVERFLOW`` more at a
#: burst, so 30 daemons hold at most 30 x 5 = 150 (PostgreSQL's default ``max_connections`` is 100).
POOL_SIZE = 2
MAX_OVERFLOW = 3
#: Seconds after which a pooled connection is replaced (a server-side idle timeout or a failover drops it).
POOL_RECYCLE_S = 1800


@dataclass
class Database:
    """An open, upgraded database: the engine and a session factory."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    write_sessions: sessionmaker[Session]
    #: Watches the SQLite file for deletion or replacement (the daemon's databases; see memory/dbguard.py).
    guard: FileGuard | None = None
    #: The last ``PRAGMA quick_check``: {"ok", "problems", "checked_at"}; None before the first.
    integrity: dict[str, Any] | None = None
    #: Opened with ``mode=ro`` (see :func:`open_database`): nothing can be written through it.
    read_only: bool = False

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
                # A PostgreSQL deadlock ("... blocked by process ...") is not a locked file: it goes out as it is,
                # so ``retrying`` runs the transaction again (the team load test saw a memory feed round lost).
                if is_retryable(exc):
                    raise
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
        if self.quick_check():  # VACUUM over broken pages could spread the damage: report it instead
            raise DatabaseError(f"not compacted: {self.integrity_problem()}")
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

    def quick_check(self) -> list[str]:
        """Run ``PRAGMA quick_check`` (reads every page, not the indexes' contents); [] when sound.

        The result is kept in :attr:`integrity` for health reports. Other backends: always [].
        """
        if not self.is_sqlite:
            return []
        try:
            raw = self.engine.raw_connection()
        except OperationalError as exc:
            problems = [str(exc.orig)]
        else:
            try:
                problems = quick_check(raw.driver_connection)
            finally:
                raw.close()
        self.integrity = {
            "ok": not problems,
            "problems": problems,
            "checked_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        return problems

    def integrity_problem(self) -> str | None:
        """One line for logs and health when the last check found damage (with the way out), else None."""
        if not self.integrity or self.integrity["ok"]:
            return None
        found = "; ".join(self.integrity["problems"][:3])
        return (
            f"the database {_safe(self.url)} is damaged ({found}); the logs on disk can rebuild it: stop the "
            f"daemon and run `{REBUILD_COMMAND}` (the damaged file is kept beside it)"
        )

    def check_file(self) -> str | None:
        """None while the DB file is the one opened; else "deleted" or "replaced" (needs a guard; one stat)."""
        return self.guard.check() if self.guard is not None else None

    def recover_file(self) -> tuple[str, bool]:
        """Get the DB file back after :meth:`check_file` found it gone (see :class:`FileGuard`).

        Returns what was done and whether the process now writes to another database than before (then
        it was upgraded here, and the caller re-ingests the logs).
        """
        assert self.guard is not None
        message, switched = self.guard.recover()
        try:
            upgrade_database(self)
        except OperationalError as exc:
            raise DatabaseError(f"cannot open the database {_safe(self.url)}: {exc.orig}") from exc
        return message, switched

    def close(self) -> None:
        if self.guard is not None:
            self.guard.close()
        self.engine.dispose()


#: Tables the logs on disk cannot rebuild: a rebuild copies what it can still read of them from the old file.
SALVAGED_TABLES = ("proxy_requests", "lessons", "block_memo")


def move_aside(path: Path, label: str) -> Path:
    """Rename a SQLite file (and its WAL and shared-memory files) to ``<name>.<label>-<time>``; the new name."""
    target = path.with_name(f"{path.name}.{label}-{datetime.now().strftime('%Y%m%dT%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    return target


def salvage(db: Database, old: Path, tables: tuple[str, ...] = SALVAGED_TABLES) -> dict[str, int | str]:
    """Copy the rows of ``tables`` that can still be read from the SQLite file ``old`` into ``db``.

    Per table: the rows copied, or why none were (a damaged page, another schema). Rows whose key is taken
    already are left as they are.
    """
    result: dict[str, int | str] = {}
    source = sqlite3.connect(f"file:{quote(str(old.absolute()))}?mode=ro", uri=True)
    raw = db.engine.raw_connection()
    try:
        target = raw.driver_connection
        assert target is not None
        for table in tables:
            try:
                columns = [row[1] for row in source.execute(f'PRAGMA table_info("{table}")')]
                have = {row[1] for row in target.execute(f'PRAGMA table_info("{table}")')}
                if not columns or set(columns) - have:
                    result[table] = "not in the old file, or another schema"
                    continue
                names = ", ".join(f'"{c}"' for c in columns)
                rows = source.execute(f'SELECT {names} FROM "{table}"').fetchall()
                marks = ", ".join("?" * len(columns))
                target.execute("BEGIN")
                cursor = target.executemany(f'INSERT OR IGNORE INTO "{table}" ({names}) VALUES ({marks})', rows)
                target.execute("COMMIT")
                result[table] = cursor.rowcount
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    target.execute("ROLLBACK")
                result[table] = f"unreadable: {exc}"
    finally:
        raw.close()
        source.close()
    return result


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None (another backend, or an in-memory DB)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def alembic_config(url: str) -> Config:
    """An Alembic config for the migrations shipped inside the package (no alembic.ini needed)."""
    # lazy: alembic loads only to migrate or check a revision
    from alembic.config import Config

    # lazy: the migrations package loads with alembic
    from headroom import migrations

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def open_database(
    url: str, *, upgrade: bool = True, guard: bool = False, read_only: bool = False, shared_upgrade: bool = False
) -> Database:
    """Open (creating it if needed) and upgrade the database at ``url``.

    ``upgrade`` upgrades a SQLite file; a PostgreSQL database is shared, so there it only creates the schema in
    an empty database and otherwise checks the revision (:func:`check_shared_revision`), unless
    ``shared_upgrade`` (``headroom db upgrade``) says this process administers it.

    ``guard``: watch a SQLite file for deletion or replacement (the daemon, which holds it for days).
    ``read_only``: open an existing SQLite file without writing anything (no lock file, no upgrade, no WAL
    switch), for commands that only read, which then work on a read-only data dir; a schema that is not
    current raises :class:`DatabaseNeedsUpgrade` (upgrading needs write access).
    """
    path = sqlite_path(url)
    if read_only and path is not None:
        return _open_read_only(url, path)
    if path is not None:
        _create_private_file(path)
    engine = create_engine(url, **_engine_options(url))
    event.listen(engine, "before_cursor_execute", strip_nul_parameters, retval=True)
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
        if upgrade and (shared_upgrade or engine.dialect.name != "postgresql"):
            upgrade_database(db)
        elif upgrade:
            check_shared_revision(db)
        else:
            check_revision(db)
        if engine.dialect.name == "postgresql":
            _check_member(db)
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
        if guard:
            db.guard = FileGuard(path, engine)
    return db


def _open_read_only(url: str, path: Path) -> Database:
    """A SQLite file opened with ``mode=ro``: nothing is created, locked or migrated.

    In WAL mode a reader needs the ``-shm`` file; in a folder it cannot write, where that file is absent
    (the last writer removed it on close, so nobody writes the file now), the file is opened ``immutable``.
    """
    if not path.is_file():
        raise DatabaseError(f"no database at {path} yet (`headroom ingest` creates it, with write access there)")
    shm = path.with_name(path.name + "-shm")
    flags = "mode=ro" if shm.exists() or os.access(path.parent, os.W_OK) else "mode=ro&immutable=1"
    uri = f"file:{quote(str(path.absolute()))}?{flags}"

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        conn.isolation_level = None
        conn.execute("PRAGMA query_only=1")
        return conn

    engine = create_engine("sqlite://", creator=connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    db = Database(
        url=url,
        engine=engine,
        sessions=sessionmaker(engine, expire_on_commit=False),
        write_sessions=sessionmaker(engine, expire_on_commit=False),
        read_only=True,
    )
    try:
        current, head = check_revision(db)
        ahead = current != head and is_ahead(current)
    except OperationalError as exc:
        engine.dispose()
        raise DatabaseError(f"cannot read the database {path}: {exc.orig}") from exc
    except BaseException:
        engine.dispose()
        raise
    if current != head and not ahead:
        engine.dispose()
        raise DatabaseNeedsUpgrade(
            f"the database {path} is at schema revision {current or 'none'} and needs an upgrade to {head}, "
            f"which needs write access to {path.parent}: run any headroom command once where it can write there"
        )
    return db


def check_revision(db: Database) -> tuple[str | None, str]:
    """Return (current, head); raise :class:`DatabaseTooNew` when the DB is past what this code knows.

    A DB already at :data:`~headroom.migrations.HEAD` (every open but the first after an upgrade) is
    answered without importing Alembic, which would cost a CLI command a fifth of a second.
    """
    current = db.revision()
    if current == HEAD:
        return current, HEAD
    # lazy: alembic loads only to migrate or check a revision
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(db.url))
    head = script.get_current_head() or "base"
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        minimum = min_client_revision(db)
        if minimum is None or minimum not in known:  # the chain is linear: a known revision is <= our head
            raise DatabaseTooNew(_safe(db.url), current, head, minimum)
    return current, head


def known_revisions() -> set[str]:
    """Every schema revision this code ships (a linear chain ending at HEAD)."""
    # lazy: alembic loads only to migrate or check a revision
    from alembic.script import ScriptDirectory

    return {rev.revision for rev in ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions()}


def is_ahead(current: str | None) -> bool:
    """Whether ``current`` is a revision past this code's newest (a newer headroom upgraded the DB)."""
    return current is not None and current != HEAD and current not in known_revisions()


def min_client_revision(db: Database) -> str | None:
    """The oldest client revision the last ``headroom db upgrade`` said can use the schema; None if none said."""
    with db.engine.connect() as conn:
        if not inspect(conn).has_table("state_values"):
            return None
        value = conn.execute(
            text("SELECT value FROM state_values WHERE machine_id = '' AND name = :n"), {"n": MIN_CLIENT_KEY}
        ).scalar()
    return str(value) if value else None


def check_shared_revision(db: Database) -> None:
    """A client of a shared (PostgreSQL) database: never upgrade it, say what to do when it is behind.

    An empty database gets the schema (nothing to break; the first ``headroom db upgrade`` does the same). A
    schema ahead of this code passes :func:`check_revision` only inside the recorded compatibility window.
    """
    current, head = check_revision(db)
    if current is None:
        upgrade_database(db)
        return
    if current != head and not is_ahead(current):
        raise DatabaseNeedsUpgrade(
            f"the team database {_safe(db.url)} is at revision {current}, this headroom needs {head}: run "
            "`headroom db upgrade` (once, by whoever administers it)"
        )


def _check_member(db: Database) -> None:
    """A team member's role writes rows as its mapped user: this machine's identity must be that user, or row-level
    security refuses every write. Said once, here, instead of on the first write."""
    with db.engine.connect() as conn:
        mapped = member_user(conn)
    me = current_user()
    if mapped is not None and mapped != me:
        raise DatabaseError(
            f"the database role of {_safe(db.url)} belongs to team user {mapped!r}, but this machine's user is "
            f"{me!r}: set [team] user = {mapped!r} in config.toml (or HEADROOM_USER)"
        )


def upgrade_database(db: Database) -> None:
    """Bring the schema to the newest revision, one process at a time.

    On PostgreSQL it also records the compatibility window (:data:`MIN_CLIENT_KEY`), so clients older than
    this code know whether they may go on. A schema already past this code (inside the window) is left alone.
    """
    with _migration_lock(db):
        current, head = check_revision(db)
        if current != head and not is_ahead(current):
            # lazy: alembic loads only to migrate or check a revision
            from alembic import command

            cfg = alembic_config(db.url)
            with db.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
            current = head
        if db.engine.dialect.name == "postgresql" and current == head:
            with db.engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO state_values (machine_id, name, value) VALUES ('', :n, :v) "
                        "ON CONFLICT (machine_id, name) DO UPDATE SET value = excluded.value"
                    ),
                    {"n": MIN_CLIENT_KEY, "v": MIN_CLIENT_REVISION},
                )


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
    """SQLite: a busy timeout. PostgreSQL: a small pool (dozens of daemons share one server's connections),
    checked before use and recycled, so a restarted server or an idle-killed connection is not an error."""
    if make_url(url).get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}}
    return pool_settings()


def pool_settings() -> dict[str, Any]:
    """The connection pool a process uses on PostgreSQL (shown by ``headroom db status``)."""
    return {
        "pool_size": POOL_SIZE,
        "max_overflow": MAX_OVERFLOW,
        "pool_pre_ping": True,
        "pool_recycle": POOL_RECYCLE_S,
        "pool_timeout": 30,
    }


def password_in_url(url: str) -> bool:
    """Whether the URL carries a password (config.toml is a file others may read: ``.pgpass`` is the place)."""
    return bool(make_url(url).password)


def database_size(db: Database) -> int | None:
    """Bytes on disk: ``pg_database_size`` on PostgreSQL, the file and its WAL on SQLite."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as conn:
            return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
    return db.size_bytes()


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
