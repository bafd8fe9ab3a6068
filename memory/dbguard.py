"""Keeping a long-running process on the SQLite file it opened, and getting it back when the file goes.

SQLite goes on writing to a file that was deleted (or replaced) under it: the open descriptors still point at
the old inode. A daemon whose database was removed would report healthy while everything it wrote from then
on vanished at its next restart. :class:`FileGuard` prevents that:

- it remembers the file's (device, inode) at open; :meth:`FileGuard.check` is one ``stat`` (the daemon calls
  it every second or so, between its write rounds) and says "deleted" or "replaced";
- it keeps one read-only connection on the file, so the old contents stay readable however the engine's
  pool recycles its connections;
- it gates the engine's connection checkouts: :meth:`FileGuard.recover` holds new checkouts and waits for the
  ones in flight, so the file is swapped with no transaction half-way; connections opened on the old file
  are then refused at their next checkout and the pool reconnects to the path.

Recovery copies the old contents out through the kept connection (SQLite's online backup API, which sees
every committed transaction, WAL included) and puts them back at the path when the file was deleted (an empty
file a new connection created there meanwhile is discarded), or beside it when another database was put in
its place (then that one is used, and the copy is named in the log): nothing committed is lost either way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError

log = logging.getLogger("headroom.memory.db")

#: How long :meth:`FileGuard.recover` waits for transactions in flight before it swaps anyway.
DRAIN_TIMEOUT_S = 30.0


class FileGuard:
    """Watches the SQLite file at ``path`` for ``engine`` (see the module docstring)."""

    def __init__(self, path: Path, engine: Engine) -> None:
        self.path = path
        self.engine = engine
        self.generation = 0
        self._cond = threading.Condition()
        self._swapping = False
        self._out = 0  # connections checked out of the pool now
        self._anchor: sqlite3.Connection | None = None
        self.identity = self._open_anchor()
        event.listen(engine, "connect", self._on_connect)
        event.listen(engine, "checkout", self._on_checkout)
        event.listen(engine, "checkin", self._on_checkin)

    # -- detection ---------------------------------------------------------------------------------

    def check(self) -> str | None:
        """None while the path still is the file that was opened; else "deleted" or "replaced"."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return "deleted"
        except OSError:  # an unreadable folder: nothing can be concluded, the writes will say more
            return None
        return None if (st.st_dev, st.st_ino) == self.identity else "replaced"

    # -- recovery ----------------------------------------------------------------------------------

    def recover(self) -> tuple[str, bool]:
        """Put the file back (or keep a copy beside its replacement); returns (what was done, switched).

        ``switched`` is True when the process now uses a database it did not write (the replacement, or a
        fresh one when the old contents could not be copied): the caller upgrades it and re-ingests.
        """
        with self._held():
            self.engine.dispose()  # close every pooled connection: none is checked out now
            what = self.check()
            if what is None:
                return "the database file is in place again", False
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if what == "deleted" or _holds_nothing(self.path):
                for stray in (self.path.with_name(self.path.name + s) for s in ("-wal", "-shm", "")):
                    with contextlib.suppress(FileNotFoundError):
                        stray.unlink()  # an empty database a new connection created after the deletion
                restoring = self.path.with_name(self.path.name + ".restoring")
                try:
                    self._copy_to(restoring)
                except (sqlite3.Error, OSError) as exc:
                    with contextlib.suppress(OSError):
                        restoring.unlink()
                    message = (
                        f"the database file {self.path} was {what}, and its contents could not be copied back "
                        f"({exc}): a fresh database is created and the logs on disk are ingested again; proxy "
                        "statistics, lessons and memory items recorded before are lost"
                    )
                    self._reset()
                    return message, True
                os.replace(restoring, self.path)
                self._reset()
                return (
                    f"the database file {self.path} was deleted while the daemon ran: restored it with everything "
                    "written so far (copied from the file still open)",
                    False,
                )
            aside = self.path.with_name(f"{self.path.name}.orphaned-{time.strftime('%Y%m%dT%H%M%S')}")
            try:
                self._copy_to(aside)
                kept = f"what the old file held is saved in {aside}"
            except (sqlite3.Error, OSError) as exc:
                kept = f"the old file's contents could not be saved ({exc})"
            self._reset()
            return f"the database file {self.path} was replaced by another file: using that one now; {kept}", True

    def close(self) -> None:
        if self._anchor is not None:
            self._anchor.close()
            self._anchor = None

    # -- internals ---------------------------------------------------------------------------------

    def _open_anchor(self) -> tuple[int, int]:
        self.close()
        anchor = sqlite3.connect(
            f"file:{quote(str(self.path.absolute()))}?mode=ro", uri=True, check_same_thread=False, timeout=30
        )
        anchor.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the file (and its WAL) now
        self._anchor = anchor
        st = self.path.stat()
        return st.st_dev, st.st_ino

    def _copy_to(self, target: Path) -> None:
        assert self._anchor is not None
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        dest = sqlite3.connect(str(target))
        try:
            self._anchor.backup(dest)
            dest.execute("PRAGMA journal_mode=WAL")
        finally:
            dest.close()
        for suffix in ("-wal", "-shm"):
            side = target.with_name(target.name + suffix)
            if side.exists():
                side.chmod(0o600)

    def _reset(self) -> None:
        """Point the guard at what is at the path now (creating an empty, owner-only file if nothing is)."""
        if not self.path.exists():
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
        self.path.chmod(0o600)
        self.generation += 1
        self.identity = self._open_anchor()

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        with self._cond:
            self._swapping = True
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            while self._out > 0 and time.monotonic() < deadline:
                self._cond.wait(0.5)
            if self._out > 0:
                log.warning("database recovery: %d transactions still running after %.0fs", self._out, DRAIN_TIMEOUT_S)
        try:
            yield
        finally:
            with self._cond:
                self._swapping = False
                self._cond.notify_all()

    def _on_connect(self, _dbapi: Any, record: Any) -> None:
        record.info["headroom_generation"] = self.generation

    def _on_checkout(self, _dbapi: Any, record: Any, _proxy: Any) -> None:
        with self._cond:
            while self._swapping:
                self._cond.wait()
            if record.info.get("headroom_generation") != self.generation:
                # Opened on the file as it was before a recovery: the pool drops it and connects again.
                raise DisconnectionError("the database file was swapped")
            self._out += 1

    def _on_checkin(self, _dbapi: Any, _record: Any) -> None:
        with self._cond:
            self._out = max(0, self._out - 1)
            self._cond.notify_all()


def _holds_nothing(path: Path) -> bool:
    """Whether the file at ``path`` is empty or a database without a single table (made by a connection)."""
    try:
        if path.stat().st_size == 0:
            return True
        conn = sqlite3.connect(f"file:{quote(str(path.absolute()))}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]) == 0
        finally:
            conn.close()
    except (OSError, sqlite3.Error):
        return False


def quick_check(conn: Any, max_errors: int = 20) -> list[str]:
    """``PRAGMA quick_check`` on a DB-API connection: [] when the file is sound, else SQLite's findings."""
    try:
        rows = [str(r[0]) for r in conn.execute(f"PRAGMA quick_check({int(max_errors)})").fetchall()]
    except sqlite3.DatabaseError as exc:  # a header or schema page too broken to even start the check
        return [str(exc)]
    return [] if rows == ["ok"] else rows
