"""A backfill in two processes: a helper reads, parses and redacts the logs while this process writes.

A cold backfill is CPU-bound and about half of its time is reading (JSON decoding, the readers, redaction) and
half writing (SQLite); on one core they take turns. With much to read (:func:`use_helper`) a helper process
started for the scan runs :func:`headroom.daemon.ingest_read.read_chunks` over the files a few ahead of the
writer and sends each chunk over a pipe, its rows prepared and redacted; the writer commits them in file order,
each with its offset, exactly as it commits the chunks it reads itself. So what is stored, and the guarantees
(exactly once, a kill at any moment loses at most a chunk), are those of the one-process path.

What can differ is only *when* a file's progress was read: a few files before its turn. Another process
(``headroom ingest`` beside the daemon) may store part of that file meanwhile; the first commit checks the
stored progress and, if it moved, the file is read again here from where it now stands (:class:`Moved`).
A helper that fails on a file, or dies, costs nothing either: that file and every later one are read in this
process. The pipe holds one chunk at a time, so the helper is never more than a chunk ahead in memory.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import queue
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

from headroom.daemon.ingest_read import Chunk, FileProgress, Limits, LogFile, read_chunks
from headroom.learn.model import AGENTS
from headroom.learn.readers import reader_for

if TYPE_CHECKING:
    from headroom.daemon.ingest import FileOutcome, Ingestor

log = logging.getLogger("headroom.ingest")

#: A helper is started when a scan has at least this much to read (its start costs ~0.5 s of the other core).
HELPER_MIN_BYTES = 16 << 20
#: Files handed to the helper before their turn: enough that it never waits for the writer's next task.
AHEAD = 8
#: Chunks the helper may have read ahead of the writer (each a few MB pickled).
OUTBOX = 4
_POLL_S = 0.5
_READY = "ready"  # the helper's first message: it has started (its imports take a while)


def use_helper(unread: int) -> bool:
    """Whether a scan with about ``unread`` new bytes is worth a helper process (and there is a core for it)."""
    return unread >= HELPER_MIN_BYTES and (os.cpu_count() or 1) >= 2


class Moved(Exception):
    """Another process stored part of this file after its progress was read for the helper."""


class HelperFailed(Exception):
    """The helper could not read a file (or is gone): the file is read in this process instead."""


@dataclass(frozen=True)
class _Failed:
    detail: str


@dataclass
class _Entry:
    """One file of the scan: its outcome known without reading, or handed to the helper, or read here."""

    item: LogFile
    ident: int
    outcome: FileOutcome | None = None
    st: os.stat_result | None = None
    row: FileProgress | None = None  # None (with st set): read in this process


class Helper:
    """The helper process and the pipe to it. Tasks go in file order; chunks come back in the same order."""

    def __init__(self, limits: Limits) -> None:
        # spawn, not fork: the daemon has threads (watcher, proxy), and a forked copy of their locks may deadlock.
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=serve, args=(child, limits), name="headroom-ingest-helper", daemon=True)
        self._process.start()
        child.close()
        self.broken = False
        self._started = False

    def started(self) -> bool:
        """Whether the helper is up and reading (False while it starts, and for good once it is gone)."""
        if self._started or self.broken:
            return self._started and not self.broken
        try:
            if self._conn.poll(0):
                self._started = self._conn.recv() == _READY
            elif not self._process.is_alive():
                raise EOFError
        except (EOFError, OSError):
            self._gone(f"it exited while starting ({self._process.exitcode})")
        return self._started

    def submit(self, ident: int, item: LogFile, st: os.stat_result, row: FileProgress) -> None:
        try:
            self._conn.send((ident, item, st, row))
        except OSError as exc:
            self._gone(f"cannot hand it a file ({exc})")

    def parts(self, ident: int) -> Iterator[Chunk | str]:
        """The chunks of task ``ident``, then its status; :class:`HelperFailed` if the helper could not read it."""
        while True:
            if self.broken:
                raise HelperFailed("the helper is gone")
            try:
                while not self._conn.poll(_POLL_S):
                    if not self._process.is_alive():
                        raise EOFError
                got, part = self._conn.recv()
            except (EOFError, OSError) as exc:
                self._gone(f"it exited ({self._process.exitcode})" if isinstance(exc, EOFError) else str(exc))
                raise HelperFailed("the helper is gone") from exc
            if got != ident:  # never: tasks are answered in order; if it happens, stop trusting the helper
                self._gone(f"it answered task {got} for task {ident}")
                raise HelperFailed("out of order")
            if isinstance(part, _Failed):
                raise HelperFailed(part.detail)
            yield part
            if isinstance(part, str):
                return

    def _gone(self, why: str) -> None:
        if not self.broken:
            log.warning("ingest helper process stopped: %s; reading in this process", why)
        self.broken = True

    def close(self, finished: bool = True) -> None:
        """Stop the helper: let it exit when all it was handed is read (``finished``), else end it now."""
        if finished and not self.broken:
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._process.join(timeout=2)
        self._conn.close()
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=2)


def pipelined(ingestor: Ingestor, files: list[LogFile]) -> Iterator[FileOutcome]:
    """Each file's outcome in order, the reading done by a helper process (see the module doc)."""
    try:
        helper = Helper(ingestor.limits)
    except OSError as exc:  # no process to be had (limits, a sandbox): the one-process path
        log.warning("cannot start the ingest helper process (%s); reading in this process", exc)
        for item in files:
            if ingestor.should_stop():
                return
            yield ingestor.ingest_file(item)
        return
    finished = False
    try:
        queue_: deque[_Entry] = deque()
        todo = enumerate(files)
        handed = 0  # entries in the queue that the helper has

        def fill() -> None:
            nonlocal handed
            while handed < AHEAD and not helper.broken:
                following = next(todo, None)
                if following is None:
                    return
                ident, item = following
                queue_.append(entry := _Entry(item, ident))
                checked = ingestor.check_file(item)
                if not isinstance(checked, os.stat_result):
                    entry.outcome = checked
                    continue
                entry.st = checked
                try:
                    entry.row = ingestor.stored_progress(item, checked)
                except Exception:  # read here at its turn, where the error is handled as ever
                    continue
                helper.submit(ident, item, checked, entry.row)
                handed += 1

        while not helper.started() and not helper.broken:  # it takes a while to start: read here meanwhile
            following = next(todo, None)
            if following is None:
                break
            if ingestor.should_stop():
                return
            yield ingestor.ingest_file(following[1])
        fill()
        while queue_:
            if ingestor.should_stop():
                return
            entry = queue_.popleft()
            if entry.outcome is not None:
                yield entry.outcome
            elif entry.row is None or entry.st is None:
                yield ingestor.ingest_file(entry.item)
            else:
                handed -= 1
                yield _store(ingestor, helper, entry, entry.st, entry.row)
            fill()
        for _, item in todo:  # the helper broke: the rest here
            if ingestor.should_stop():
                return
            yield ingestor.ingest_file(item)
        finished = True
    finally:
        helper.close(finished)


def _store(ingestor: Ingestor, helper: Helper, entry: _Entry, st: os.stat_result, row: FileProgress) -> FileOutcome:
    """Commit the helper's chunks of one file; the file read in this process if the helper failed or it moved."""
    item = entry.item
    parts = helper.parts(entry.ident)
    try:
        return ingestor.guarded(item, st, lambda: ingestor.store_chunks(item, st, row, parts, check=True))
    except (Moved, HelperFailed) as exc:
        if isinstance(exc, HelperFailed):
            log.debug("%s: the helper could not read it (%s); reading it here", item.path, exc)
        return ingestor.ingest_file(item)
    finally:
        with contextlib.suppress(HelperFailed):
            for _ in parts:  # what is left of this file (after a refused row, a move): the next file's come next
                pass


def serve(conn: Connection, limits: Limits) -> None:
    """The helper process: read each file it is handed into chunks and send them, until told to stop.

    A thread sends what this one has pickled, up to :data:`OUTBOX` chunks behind: the reader goes on while
    the writer is busy with a transaction (a pipe alone would hold it at every chunk).
    """
    readers = {agent: reader_for(agent) for agent in AGENTS}
    outbox: queue.Queue[bytes | None] = queue.Queue(maxsize=OUTBOX)
    sender = threading.Thread(target=_send_all, args=(conn, outbox), name="send", daemon=True)
    sender.start()

    def put(message: object) -> None:
        outbox.put(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    put(_READY)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            break
        if task is None:
            break
        ident, item, st, row = task
        try:
            with open(item.path, "rb") as handle:
                for part in read_chunks(readers[item.agent], item, handle, st, row, limits):
                    put((ident, part))
        except Exception as exc:  # a file this process cannot read is read by the writer
            put((ident, _Failed(f"{type(exc).__name__}: {exc}")))
    outbox.put(None)
    sender.join()


def _send_all(conn: Connection, outbox: queue.Queue[bytes | None]) -> None:
    while (data := outbox.get()) is not None:
        try:
            conn.send_bytes(data)
        except OSError:  # the writer is gone; the process ends with it (it is a daemon process)
            return
