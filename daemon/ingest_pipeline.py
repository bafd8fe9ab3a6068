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
process. The helper is at most :data:`OUTBOX` chunks ahead of the writer, so memory stays bounded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import select
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from headroom.daemon.ingest_read import UNCHANGED, Chunk, FileOutcome, FileProgress, Limits, LogFile, read_chunks
from headroom.learn.model import AGENTS
from headroom.learn.readers import reader_for

if TYPE_CHECKING:
    from headroom.daemon.ingest import Ingestor

log = logging.getLogger("headroom.ingest")

#: A helper is started when a scan has at least this much to read (its start costs ~0.1 s of the other core).
HELPER_MIN_BYTES = 16 << 20
#: Files handed to the helper before their turn: enough that it never waits for the writer's next task.
AHEAD = 8
#: Chunks the helper may have read ahead of the writer (each a few MB pickled).
OUTBOX = 4
_POLL_S = 0.5
_READY = "ready"  # the helper's first message: it has started (its imports take a while)


def use_helper(unread: int) -> bool:
    """Whether a scan with about ``unread`` new bytes is worth a helper process (and there is a core for it)."""
    return unread >= HELPER_MIN_BYTES and (os.cpu_count() or 1) >= 2 and os.name == "posix"  # select() on pipes


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
    """The helper process and the pipes to it. Tasks go in file order; chunks come back in the same order.

    A plain ``python -c`` child, not ``multiprocessing``: its spawn would run the parent's main module again in
    the child (the CLI, or whatever script embeds the ingestor), and fork would copy the daemon's threads' locks.
    Messages are pickles with a length before each (:func:`_write`); both ends are this package's own code.
    """

    def __init__(self, limits: Limits) -> None:
        code = f"from {__name__} import serve; serve({limits.chunk_bytes}, {limits.max_line_bytes})"
        command = [sys.executable, "-c", code]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        assert self._process.stdin is not None and self._process.stdout is not None
        self._tasks: IO[bytes] = self._process.stdin
        self._chunks: IO[bytes] = self._process.stdout
        _widen(self._chunks)
        self.pid = self._process.pid
        self.broken = False
        self._started = False

    def started(self) -> bool:
        """Whether the helper is up and reading (False while it starts, and for good once it is gone)."""
        if not self._started and not self.broken:
            try:
                if self._ready(0):
                    self._started = _read(self._chunks) == _READY
            except (EOFError, OSError):
                self._gone(f"it exited while starting ({self._process.poll()})")
        return self._started and not self.broken

    def submit(self, ident: int, item: LogFile, st: os.stat_result, row: FileProgress) -> None:
        try:
            _write(self._tasks, (ident, item, st, row))
        except OSError as exc:
            self._gone(f"cannot hand it a file ({exc})")

    def parts(self, ident: int) -> Iterator[Chunk | str]:
        """The chunks of task ``ident``, then its status; :class:`HelperFailed` if the helper could not read it."""
        while True:
            if self.broken:
                raise HelperFailed("the helper is gone")
            try:
                while not self._ready(_POLL_S):
                    pass
                got, part = _read(self._chunks)
            except (EOFError, OSError, pickle.UnpicklingError) as exc:
                self._gone(f"it exited ({self._process.poll()})" if isinstance(exc, EOFError) else repr(exc))
                raise HelperFailed("the helper is gone") from exc
            if got != ident:  # never: tasks are answered in order; if it happens, stop trusting the helper
                self._gone(f"it answered task {got} for task {ident}")
                raise HelperFailed("out of order")
            if isinstance(part, _Failed):
                raise HelperFailed(part.detail)
            yield part
            if isinstance(part, str):
                return

    def _ready(self, timeout: float) -> bool:
        """Whether a message (or the end of the pipe) is there to read; EOFError when the helper died silent."""
        if select.select([self._chunks], [], [], timeout)[0]:
            return True
        if self._process.poll() is not None:
            raise EOFError
        return False

    def _gone(self, why: str) -> None:
        if not self.broken:
            log.warning("ingest helper process stopped: %s; reading in this process", why)
        self.broken = True

    def close(self, finished: bool = True) -> None:
        """Stop the helper: let it exit when all it was handed is read (``finished``), else end it now."""
        with contextlib.suppress(OSError):
            self._tasks.close()  # its end of the task pipe: it exits once it has sent what it read
        if not finished or self.broken:
            self._process.kill()
        try:
            self._process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._chunks.close()


def pipelined(ingestor: Ingestor, files: list[LogFile]) -> Iterator[FileOutcome]:
    """Each file's outcome in order, the reading done by a helper process (see the module doc)."""
    try:
        helper = Helper(ingestor.limits)
    except OSError as exc:  # no process to be had (limits, a sandbox): the one-process path
        log.warning("cannot start the ingest helper process (%s); reading in this process", exc)
        yield from ingestor.ingest_each(files)
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
        yield from ingestor.ingest_each(item for _, item in todo)  # the helper broke: the rest here
        finished = True
    finally:
        helper.close(finished)


def _store(ingestor: Ingestor, helper: Helper, entry: _Entry, st: os.stat_result, row: FileProgress) -> FileOutcome:
    """Commit the helper's chunks of one file; the file read in this process if the helper failed or it moved."""
    item = entry.item
    parts = helper.parts(entry.ident)
    done = FileOutcome(item.path, UNCHANGED)  # what is committed before a failure half-way still counts
    try:
        return ingestor.guarded(item, st, lambda: ingestor.store_chunks(item, st, row, parts, check=True, outcome=done))
    except (Moved, HelperFailed) as exc:
        if isinstance(exc, HelperFailed):
            log.debug("%s: the helper could not read it (%s); reading it here", item.path, exc)
        return ingestor.ingest_file(item).add(done)
    finally:
        if not ingestor.should_stop():  # on a stop the helper is ended, not waited for
            with contextlib.suppress(HelperFailed):
                for _ in parts:  # what is left of this file (after a refused row, a move): the next file's come next
                    pass


def serve(chunk_bytes: int, max_line_bytes: int) -> None:
    """The helper process: read each file it is handed into chunks and send them, until its input ends.

    Three threads: one takes tasks as they come (so the writer never blocks handing one over), this one reads
    files, one sends what this one has pickled, up to :data:`OUTBOX` chunks behind: the reader goes on while the
    writer is busy with a transaction. The pipe to the writer is a copy of stdout, and stdout itself goes to
    stderr, so nothing a library prints can corrupt it.
    """
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    tasks_in = os.fdopen(0, "rb", buffering=0)
    limits = Limits(chunk_bytes, max_line_bytes)
    readers = {agent: reader_for(agent) for agent in AGENTS}
    tasks: queue.Queue[tuple[int, LogFile, os.stat_result, FileProgress] | None] = queue.Queue()
    outbox: queue.Queue[bytes | None] = queue.Queue(maxsize=OUTBOX)
    threading.Thread(target=_take_all, args=(tasks_in, tasks), name="tasks", daemon=True).start()
    sender = threading.Thread(target=_send_all, args=(out, outbox), name="send", daemon=True)
    sender.start()

    def put(message: object) -> None:
        outbox.put(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    put(_READY)
    while (task := tasks.get()) is not None:
        ident, item, st, row = task
        try:
            with open(item.path, "rb") as handle:
                for part in read_chunks(readers[item.agent], item, handle, st, row, limits):
                    put((ident, part))
        except Exception as exc:  # a file this process cannot read is read by the writer
            put((ident, _Failed(f"{type(exc).__name__}: {exc}")))
    outbox.put(None)
    sender.join()


def _take_all(stream: IO[bytes], tasks: queue.Queue[Any]) -> None:
    try:
        while True:
            tasks.put(_read(stream))
    except (EOFError, OSError, pickle.UnpicklingError):
        tasks.put(None)  # the writer closed its end (done, or gone)


def _send_all(stream: IO[bytes], outbox: queue.Queue[bytes | None]) -> None:
    while (data := outbox.get()) is not None:
        try:
            stream.write(len(data).to_bytes(8, "little"))
            stream.write(data)
        except OSError:  # the writer is gone: stop reading too
            os._exit(0)


def _widen(pipe: IO[bytes]) -> None:
    """A 1 MB pipe instead of 64 KB where Linux allows it: a chunk crosses in a few writes, not a hundred turns."""
    with contextlib.suppress(ImportError, AttributeError, OSError):
        # lazy: fcntl is POSIX only (so is the helper)
        import fcntl

        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)


def _write(stream: IO[bytes], message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(8, "little"))
    stream.write(data)


def _read(stream: IO[bytes]) -> Any:
    size = int.from_bytes(_exactly(stream, 8), "little")
    return pickle.loads(_exactly(stream, size))


def _exactly(stream: IO[bytes], size: int) -> bytes:
    """``size`` bytes from an unbuffered pipe (a read may return fewer); EOFError at its end."""
    parts, left = [], size
    while left:
        data = stream.read(min(left, 1 << 20))
        if not data:
            raise EOFError
        parts.append(data)
        left -= len(data)
    return b"".join(parts)
