"""Incremental, exactly-once ingestion of agent log files into the session mirror.

Each file is read from its stored offset. The rows read from a chunk, the new offset and the reader's
resumable state are committed in one transaction, so a kill -9 at any moment either loses the whole chunk
(it is read again) or keeps it (its offset moved): nothing is lost, nothing is doubled. Rows are upserted
on natural keys, so even re-reading a file from the start (after a truncation, a replacement or an in-place
rewrite) converges to the same rows.

What a file is: identified by (device, inode). A renamed file keeps its offset (Codex moves rollouts to
``archived_sessions/``); a file whose first bytes changed, or that shrank below the offset, is read again
from the start; a JSON document rewritten in place (legacy Gemini and Codex) is re-parsed whole, and a torn
write that does not decode is simply retried on the next change. A file deleted by the agent's retention
keeps its rows: the mirror outlives the logs.

Bad input never stops ingestion: malformed or binary lines, non-UTF-8 bytes, oversized lines (skipped by
streaming past them, never loaded whole), unreadable files. Each problem is counted per file and kind in
``ingest_issues`` (``headroom doctor`` shows them) and logged the first time only.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Table, bindparam, select, union_all, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from headroom.daemon.ingest_pipeline import Moved, pipelined, use_helper
from headroom.daemon.ingest_read import (
    INGESTED,
    UNCHANGED,
    WAITING,
    Chunk,
    FileOutcome,
    FileProgress,
    Limits,
    LogFile,
    read_chunks,
)
from headroom.learn.counters import refresh_sessions
from headroom.learn.mirror import record_issue, resolve_hashed_projects, write_prepared
from headroom.learn.model import AGENTS, Agent, EventKind
from headroom.learn.readers import LogReader, reader_for
from headroom.memory.db import Database
from headroom.memory.identity import current_machine
from headroom.memory.models import EventRow, SessionRow, SourceFileRow

log = logging.getLogger("headroom.ingest")

_FILES: Table = SourceFileRow.__table__  # type: ignore[assignment]

# A file's stored progress: the row by its path, or a renamed file's by (device, inode). A union, as each half
# has its index (SQLite does not use both for an OR).
_SOURCE_ROW = union_all(
    select(_FILES).where(_FILES.c.machine_id == bindparam("machine"), _FILES.c.path == bindparam("path")),
    select(_FILES).where(
        _FILES.c.machine_id == bindparam("machine"),
        _FILES.c.device == bindparam("device"),
        _FILES.c.inode == bindparam("inode"),
    ),
).order_by("id")

_UPDATE_FILE = update(_FILES).where(_FILES.c.id == bindparam("file_id"))
# The same, only if no other process moved the file's progress since it was read (see ``store_chunks``).
_UPDATE_FILE_AT = _UPDATE_FILE.where(_FILES.c.offset == bindparam("stored_offset"))

Progress = Callable[[int, int, str], None]  # (bytes done, bytes total, current path)


@dataclass
class ScanReport:
    """The totals of a :meth:`Ingestor.scan`."""

    files: int = 0
    bytes_read: int = 0
    records: int = 0
    problems: int = 0
    missing: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


class Ingestor:
    """Reads every agent's log roots into the database. One ingestor per process; not thread-safe."""

    def __init__(
        self,
        db: Database,
        roots: dict[Agent, list[Path]],
        *,
        max_line_bytes: int = 64 << 20,
        chunk_bytes: int = 4 << 20,
        helper: bool = True,
    ) -> None:
        self.db = db
        # The files this ingestor knows are this machine's only (issue 17: a database shared by a team holds
        # every machine's source files; another machine's path is never "missing" here, nor a rename source).
        self.machine = current_machine()
        self.roots = {agent: [Path(os.path.abspath(r)) for r in rs] for agent, rs in roots.items()}
        self.readers: dict[Agent, LogReader] = {agent: reader_for(agent) for agent in AGENTS}
        self.max_line_bytes = max_line_bytes
        self.chunk_bytes = min(chunk_bytes, max_line_bytes)
        # A scan with much to read parses and redacts in a helper process beside the writer (see
        # ``daemon/ingest_pipeline.py``); False keeps it all in this process.
        self.helper = helper
        # The stored offset of every file this machine has read (loaded at each scan): how much a scan has to read.
        self._offsets: dict[str, int] = {}
        # (inode, size, mtime) of files fully read in this process: an unchanged file costs one stat().
        self._seen: dict[str, tuple[int, int, int]] = {}
        self.problem_counts: Counter[str] = Counter()
        # Record types the readers keep raw (format drift): those already stored, loaded on first need, and
        # those this process met first (``daemon status`` warns about these; the log names each once).
        self._record_types: set[tuple[str, str]] | None = None
        self.new_record_types: list[dict[str, str | None]] = []
        # Checked between files and chunks so a shutdown never waits for a whole backfill.
        self.should_stop: Callable[[], bool] = lambda: False

    @property
    def limits(self) -> Limits:
        return Limits(self.chunk_bytes, self.max_line_bytes)

    # -- discovery -------------------------------------------------------------------------------

    def discover(self) -> list[LogFile]:
        """Every log file under every root, oldest first (parents before their sub-agents, roughly)."""
        found: dict[str, tuple[float, LogFile]] = {}
        for agent, roots in self.roots.items():
            reader = self.readers[agent]
            for root in roots:
                for path in reader.discover(root):
                    try:
                        mtime = path.stat().st_mtime
                    except OSError:
                        continue
                    found.setdefault(str(path), (mtime, LogFile(agent, root, path)))
        return [item for _, item in sorted(found.values(), key=lambda pair: (pair[0], str(pair[1].path)))]

    def locate(self, path: Path) -> LogFile | None:
        """The agent and root a changed path belongs to, if it is a log we ingest."""
        path = Path(os.path.abspath(path))
        for agent, roots in self.roots.items():
            for root in roots:
                if path.is_relative_to(root) and self.readers[agent].accepts(path, root):
                    return LogFile(agent, root, path)
        return None

    # -- the main entry points -------------------------------------------------------------------

    def scan(self, progress: Progress | None = None) -> ScanReport:
        """Ingest everything new under all roots, mark vanished files, refresh session counters."""
        started = time.monotonic()
        report = ScanReport()
        self._preload_seen()
        files = self.discover()
        sizes = [_size(f.path) for f in files]
        total, done = sum(sizes), 0
        unread = sum(max(0, size - self._offsets.get(str(item.path), 0)) for item, size in zip(files, sizes))
        for item, size, outcome in zip(files, sizes, self._ingest_all(files, unread)):
            report.files += 1
            report.bytes_read += outcome.bytes_read
            report.records += outcome.records
            report.problems += outcome.problems
            report.statuses[outcome.status] += 1
            done += size
            if progress is not None:
                progress(done, total, str(item.path))
        report.missing = self.mark_missing({str(f.path) for f in files})
        self.refresh()
        report.seconds = time.monotonic() - started
        return report

    def _ingest_all(self, files: list[LogFile], unread: int) -> Iterator[FileOutcome]:
        """Each file's outcome, in order, until asked to stop; through the helper process when ``unread`` (about
        how many bytes are new) makes one worth starting."""
        if self.helper and use_helper(unread):
            yield from pipelined(self, files)
        else:
            yield from self.ingest_each(files)

    def ingest_each(self, files: Iterable[LogFile]) -> Iterator[FileOutcome]:
        """Each file read in this process, in order, until asked to stop."""
        for item in files:
            if self.should_stop():
                return
            yield self.ingest_file(item)

    def forget(self) -> None:
        """Drop what this process remembers of files read (the DB now in use is another one: read them again)."""
        self._seen.clear()

    def _preload_seen(self) -> None:
        """Trust the DB for files read to their end, so a fresh process re-checks them with one stat()."""
        sf = _FILES.c
        self._offsets.clear()
        with self.db.sessions() as dbs:
            rows = dbs.execute(
                select(sf.path, sf.inode, sf.size, sf.mtime_ns, sf.offset).where(
                    sf.missing.is_(False), sf.machine_id == self.machine
                )
            )
            for path, inode, size, mtime_ns, offset in rows:
                self._offsets[path] = offset
                if offset == size:
                    self._seen.setdefault(path, (inode, size, mtime_ns))

    def refresh(self) -> int:
        """Bring every stale session's counters up to date, and name projects known only by a hash."""
        with self.db.transaction() as dbs:
            resolve_hashed_projects(dbs)
        total = 0
        while True:
            with self.db.transaction() as dbs:
                count = refresh_sessions(dbs)
            total += count
            if count == 0:
                return total

    def ingest_path(self, path: Path) -> FileOutcome | None:
        """Ingest one changed path if it is an agent log (watcher entry point)."""
        item = self.locate(path)
        if item is None:
            return None
        return self.ingest_file(item)

    def ingest_file(self, item: LogFile) -> FileOutcome:
        """Read whatever is new in one file."""
        checked = self.check_file(item)
        if isinstance(checked, FileOutcome):
            return checked
        st = checked

        def read() -> FileOutcome:
            with open(item.path, "rb") as handle:
                row = self.stored_progress(item, st)
                reader = self.readers[item.agent]
                parts = read_chunks(reader, item, handle, st, row, self.limits, self.should_stop)
                return self.store_chunks(item, st, row, parts)

        return self.guarded(item, st, read)

    def check_file(self, item: LogFile) -> os.stat_result | FileOutcome:
        """The file's stat, or what ingesting it comes to without reading it (gone, not a file, unchanged)."""
        path, key = item.path, str(item.path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._seen.pop(key, None)
            self.mark_missing(keep=None, only={key})
            return FileOutcome(path, "missing")
        except OSError as exc:  # permission denied on a folder, a symlink loop, ...
            return self._unreadable(item, exc)
        if not stat.S_ISREG(st.st_mode):
            return FileOutcome(path, "skipped")
        if self._seen.get(key) == (st.st_ino, st.st_size, st.st_mtime_ns):
            return FileOutcome(path, "unchanged")
        return st

    def guarded(self, item: LogFile, st: os.stat_result, read: Callable[[], FileOutcome]) -> FileOutcome:
        """Run ``read`` for one file, its bad input a counted skip; remember a file read to its end."""
        key = str(item.path)
        signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        try:
            outcome = read()
        except FileNotFoundError:
            self.mark_missing(keep=None, only={key})
            return FileOutcome(item.path, "missing")
        except (PermissionError, IsADirectoryError) as exc:
            return self._unreadable(item, exc)
        except DBAPIError as exc:
            if isinstance(exc, OperationalError):  # the database itself (locked, full, gone): not this file's
                raise
            self._seen[key] = signature  # read again when the file changes, not on every pass
            return self._not_stored(item, exc)
        if outcome.status in (INGESTED, UNCHANGED):
            self._seen[key] = signature
        return outcome

    def store_chunks(
        self,
        item: LogFile,
        st: os.stat_result,
        row: FileProgress,
        parts: Iterable[Chunk | str],
        *,
        check: bool = False,
        outcome: FileOutcome | None = None,
    ) -> FileOutcome:
        """Commit a file's chunks as they come (each with its offset); the outcome, with the file's last status.

        ``check``: the progress ``row`` was read a while ago (the chunks come from the helper process), so the
        first commit checks that no other process moved it since (:class:`Moved`). ``outcome``: where to count
        what is committed, so that a caller still has the count when the parts fail half-way (the helper died).
        """
        outcome = outcome if outcome is not None else FileOutcome(item.path, UNCHANGED)
        for part in parts:
            if self.should_stop():  # the rest on the next scan (a shutdown never waits for a big file)
                outcome.status = WAITING  # not read to its end: not remembered as read
                break
            if isinstance(part, str):
                outcome.status = part
                break
            row = self._commit(item, row, st, part, check=check)
            check = False
            outcome.bytes_read += part.bytes_read
            outcome.records += part.records
            outcome.problems += len(part.problems)
            outcome.status = INGESTED
        return outcome

    def mark_missing(self, keep: set[str] | None, only: set[str] | None = None) -> int:
        """Flag known files that are gone (their rows stay). ``keep``: paths seen on disk."""
        sf = _FILES.c
        with self.db.transaction() as dbs:
            query = select(sf.id, sf.path).where(sf.missing.is_(False), sf.machine_id == self.machine)
            if only is not None:
                query = query.where(sf.path.in_(only))
            gone = [
                ident
                for ident, path in dbs.execute(query)
                if (keep is None or path not in keep) and not os.path.exists(path)
            ]
            if gone:
                dbs.execute(update(SourceFileRow).where(sf.id.in_(gone)).values(missing=True))
        return len(gone)

    # -- reading ---------------------------------------------------------------------------------

    def stored_progress(self, item: LogFile, st: os.stat_result) -> FileProgress:
        """The stored progress for this file: by path, else a renamed file by (device, inode)."""
        sf = _FILES.c
        # One query on a plain connection for both lookups (it runs once per file: a backfill's thousands of
        # small files paid more for two ORM selects than for reading some of them).
        with self.db.engine.connect() as conn:
            found = conn.execute(
                _SOURCE_ROW, {"machine": self.machine, "path": str(item.path), "device": st.st_dev, "inode": st.st_ino}
            ).mappings()
            candidates = [dict(r) for r in found]
        row: dict[str, Any] | None = next((r for r in candidates if r["path"] == str(item.path)), None)
        if row is None:
            for moved in candidates:  # in id order, as the index on (machine, device, inode) gave them
                if moved["device"] == st.st_dev and moved["inode"] == st.st_ino and not os.path.exists(moved["path"]):
                    row = moved
                    break
        if row is not None and row["path"] != str(item.path):
            log.info("%s was renamed to %s; resuming at byte %d", row["path"], item.path, row["offset"])
            with self.db.transaction() as dbs:
                dbs.execute(update(SourceFileRow).where(sf.id == row["id"]).values(path=str(item.path), missing=False))
            row = {**row, "path": str(item.path)}
        if row is None:
            return FileProgress(None, str(item.path))
        return FileProgress.of(row)

    def _commit(
        self, item: LogFile, row: FileProgress, st: os.stat_result, chunk: Chunk, *, check: bool = False
    ) -> FileProgress:
        """Write a chunk's rows, problems and the new offset in one transaction; the progress after it."""
        start, end, state = chunk.start, chunk.end, chunk.state
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        values: dict[str, Any] = {
            "agent": item.agent,
            "path": str(item.path),
            "device": st.st_dev,
            "inode": st.st_ino,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "offset": end,
            "fingerprint": chunk.fingerprint,
            "state": orjson.dumps(state).decode() if state is not None else row.state,
            "records": (row.records if start else 0) + chunk.records,
            "missing": False,
            "ingested_at": now,
        }
        new_types = self._new_record_types(item, chunk.record_types)
        with self.db.transaction() as dbs:
            first_time = self._write_chunk(dbs, item, row, chunk, values, now, check)
        self._announce(item, first_time, new_types)
        path, state_text, records = str(item.path), values["state"], values["records"]
        return FileProgress(row.id, path, end, state_text, chunk.fingerprint, st.st_size, st.st_mtime_ns, records)

    def _write_chunk(
        self,
        dbs: Session,
        item: LogFile,
        row: FileProgress,
        chunk: Chunk,
        values: dict[str, Any],
        now: datetime,
        check: bool,
    ) -> list[tuple[str, str]]:
        """Write a chunk's rows, problems and offset; the problems met the first time (logged after the commit)."""
        first_time: list[tuple[str, str]] = []
        # Core statements on the session's connection: the ORM's bulk-update machinery costs more than the
        # write, once per chunk.
        conn = dbs.connection()
        write_prepared(dbs, item.agent, chunk.rows)
        for kind, detail in chunk.problems:
            self.problem_counts[kind] += 1
            if record_issue(dbs, str(item.path), kind, detail, now):
                first_time.append((kind, detail))
        if row.id is None:
            try:
                inserted = conn.execute(_FILES.insert(), {"first_seen": now, "machine_id": self.machine, **values})
            except IntegrityError as exc:  # its (machine, path) row: another process stored the file meanwhile
                if check:
                    raise Moved(str(item.path)) from exc
                raise
            row.id = inserted.inserted_primary_key[0]  # type: ignore[index]
        elif check:
            moved = conn.execute(_UPDATE_FILE_AT, {"file_id": row.id, "stored_offset": row.offset, **values})
            if moved.rowcount != 1:
                raise Moved(str(item.path))
        else:
            conn.execute(_UPDATE_FILE, {"file_id": row.id, **values})
        return first_time

    def _announce(
        self, item: LogFile, first_time: list[tuple[str, str]], new_types: list[dict[str, str | None]]
    ) -> None:
        """Log, once stored, a file's first problems of each kind and the record types never seen before."""
        for kind, detail in first_time:
            log.warning("%s: %s (%s); counted, further ones in this file are not logged", item.path, kind, detail)
        for found in new_types:
            assert self._record_types is not None
            self._record_types.add((item.agent, found["type"] or ""))
            self.new_record_types.append(found)
            log.warning(
                "%s: a %s record type headroom does not read yet: %s (CLI %s); kept raw, `headroom doctor` counts them",
                item.path,
                item.agent,
                found["type"],
                found["cli_version"] or "version unknown",
            )

    def _new_record_types(self, item: LogFile, found: dict[str, str | None]) -> list[dict[str, str | None]]:
        """The record types kept raw in a chunk that were never stored before."""
        if not found:
            return []
        if self._record_types is None:
            self._record_types = known_record_types(self.db)
        return [
            {"agent": item.agent, "type": name, "cli_version": version}
            for name, version in found.items()
            if (item.agent, name) not in self._record_types
        ]

    def _not_stored(self, item: LogFile, exc: DBAPIError) -> FileOutcome:
        """A file whose rows the database refused (a value it cannot hold): a logged, counted skip.

        The message is the driver's first line only: SQLAlchemy's own text carries the statement and its
        parameters, which here are kilobytes of tool output. What was committed before stays (offsets
        advance per chunk); later files are read as usual.
        """
        kind = "not_stored"
        self.problem_counts[kind] += 1
        first_line = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0][:200]
        detail = f"{type(exc.orig).__name__}: {first_line}"
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        with self.db.transaction() as dbs:
            first = record_issue(dbs, str(item.path), kind, detail, now)
        if first:
            log.warning("%s: not stored (%s); skipped, later files are read", item.path, detail)
        return FileOutcome(item.path, "failed", problems=1)

    def _unreadable(self, item: LogFile, exc: OSError) -> FileOutcome:
        kind = "permission_denied" if isinstance(exc, PermissionError) else "unreadable"
        self.problem_counts[kind] += 1
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        with self.db.transaction() as dbs:
            first = record_issue(dbs, str(item.path), kind, f"{type(exc).__name__}: {exc.strerror or exc}", now)
        if first:
            log.warning("%s: %s (%s)", item.path, kind, exc.strerror or exc)
        try:
            st = os.stat(item.path)
            self._seen[str(item.path)] = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            pass
        return FileOutcome(item.path, "unreadable", problems=1)


def known_record_types(db: Database) -> set[tuple[str, str]]:
    """(agent, record type) of every record kept raw so far (UNKNOWN events are named by their type)."""
    query = (
        select(SessionRow.agent, EventRow.text)
        .join(SessionRow, SessionRow.id == EventRow.session_id)
        .where(EventRow.kind == EventKind.UNKNOWN.value)
        .distinct()
    )
    with db.sessions() as dbs:
        return {(agent, text or "") for agent, text in dbs.execute(query)}


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
