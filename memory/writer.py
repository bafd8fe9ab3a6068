"""One background thread that writes queued records in batches, so a request never waits on the database.

Used by the proxy's statistics and by the block memo. The queue is bounded: when it is full, records are
dropped and counted rather than slowing the caller down (both users prefer latency to completeness: a lost
statistic is a missing row, a lost memo entry is one more compression later). ``flush`` waits until
everything submitted before it is written; ``close`` drains the queue and stops the thread.

The thread starts with the first record (or ``start()``), never in the constructor: building a writer that is
never used (a proxy whose stats are off, a memo nobody compresses with) leaves nothing running to stop, and a
record submitted after ``close`` is counted as dropped instead of waiting in a queue nobody reads.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger("headroom.memory")

T = TypeVar("T")

QUEUE_MAX = 10_000
BATCH = 200


class BatchWriter(Generic[T]):
    """Calls ``write(batch)`` on its own thread with up to ``batch`` queued records at a time."""

    def __init__(self, write: Callable[[list[T]], None], name: str, *, batch: int = BATCH) -> None:
        self._write_batch = write
        self._batch = batch
        self.dropped = 0
        self.written = 0
        self.failed = 0
        # None stops the thread; an Event is a flush marker, set once everything before it is written.
        self._queue: queue.Queue[T | threading.Event | None] = queue.Queue(QUEUE_MAX)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._state_lock = threading.Lock()
        self._started = False
        self._closed = False

    def start(self) -> bool:
        """Start the writer's thread (once; the first ``submit`` does it too). False once it is closed."""
        with self._state_lock:
            if self._closed:
                return False
            if not self._started:
                self._started = True
                self._thread.start()
            return True

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def queued(self) -> int:
        """Records waiting to be written (approximate: the queue moves while it is read)."""
        return self._queue.qsize()

    def submit(self, record: T) -> None:
        if self._closed or (not self._started and not self.start()):
            self.dropped += 1
            return
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every record submitted so far is written (tests, shutdown)."""
        if not self._started or self._closed:
            return  # nothing was ever queued, or close() already drained it
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread (idempotent; a writer never started has nothing to do)."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
            started = self._started
        if started:
            self._queue.put(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        stop = False
        while not stop:
            batch: list[T] = []
            markers: list[threading.Event] = []
            item = self._queue.get()
            while True:
                if item is None:
                    stop = True
                    break
                if isinstance(item, threading.Event):
                    markers.append(item)
                else:
                    batch.append(item)
                if len(batch) >= self._batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    self._write_batch(batch)
                    self.written += len(batch)
                except Exception as exc:  # a full disk or a locked DB loses these records, never the caller's work
                    self.failed += len(batch)
                    log.error(
                        "%s: writing %d records failed: %s: %s", self._thread.name, len(batch), type(exc).__name__, exc
                    )
            for marker in markers:
                marker.set()
