"""File-system watching: turns bursts of writes under the agents' log roots into debounced work items.

watchdog observers only *schedule* work here (as claude-code-viewer and splitrail do): an event marks a
path dirty, and the service's single ingest thread reads it once the writes have paused for
``debounce`` seconds (or at the latest ``max_delay`` after the first write, so a session that streams
without pause is still followed live). Native observers (inotify, FSEvents) are used where they work; a
root they cannot watch (e.g. the inotify watch limit) falls back to a polling observer. Roots that do not
exist yet (an agent installed later) are re-checked cheaply by :meth:`Watcher.check_roots`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

log = logging.getLogger("headroom.watcher")

_IGNORED_EVENTS = frozenset({"opened", "closed_no_write"})


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _IGNORED_EVENTS:
            return
        paths = [event.src_path]
        if event.event_type == "moved" and event.dest_path:
            paths.append(event.dest_path)
        for raw in paths:
            path = Path(os.fsdecode(raw))
            if event.is_directory:
                if event.event_type in ("created", "moved"):
                    self.watcher.mark_rescan()  # a folder moved in may already hold logs
            elif self.watcher.accept(path):
                self.watcher.mark(path)


def _close_leftover_inotify(observer: BaseObserver) -> None:
    """Close the inotify fd and wake-up pipe watchdog (7.1) can leave open after a clean stop.

    Its reader thread may end between ``close()`` and its next read, and only that read closes them: three fds
    lost per observer (the leak check in tests/leaks.py found it). Only once the reader has ended and only
    while its fd is still the inotify instance it opened, so nothing else's fd is ever closed."""
    reader = getattr(observer, "_inotify_fd", None)
    if reader is None or reader.is_alive() or not getattr(reader, "_closed", False):
        return
    fd = getattr(reader, "_inotify_fd", None)
    try:
        if not isinstance(fd, int) or os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify":
            return
    except OSError:  # closed already (or no /proc: not Linux, where this reader does not exist)
        return
    close = getattr(reader, "_close_resources", None)
    if callable(close):
        try:
            close()
        except OSError as exc:
            log.debug("closing watchdog's inotify fds: %s", exc)


class Watcher:
    """Watches roots recursively and hands out dirty paths in debounced batches."""

    def __init__(
        self,
        roots: list[Path],
        accept: Callable[[Path], bool],
        *,
        debounce: float = 0.2,
        max_delay: float = 0.5,
        polling: bool = False,
        poll_interval: float = 1.0,
    ) -> None:
        self.roots = roots
        self.accept = accept
        self.debounce = debounce
        self.max_delay = max_delay
        self.polling = polling
        self.poll_interval = poll_interval
        self._cond = threading.Condition()
        self._pending: dict[Path, float] = {}
        self._first_pending = 0.0
        self._last_event = 0.0
        self._rescan = False
        self._woken = False
        self._observer: BaseObserver | None = None
        self._fallback: BaseObserver | None = None
        self._watched: set[Path] = set()
        self.events_seen = 0

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> list[Path]:
        """Start observing every root that exists. Returns the roots now watched."""
        self._observer = PollingObserver(timeout=self.poll_interval) if self.polling else Observer()
        self._observer.daemon = True
        self._observer.start()
        return self.check_roots()

    def stop(self) -> None:
        for observer in (self._observer, self._fallback):
            if observer is not None:
                observer.stop()
        for observer in (self._observer, self._fallback):
            if observer is not None and observer.is_alive():
                observer.join(timeout=5)
            if observer is not None:
                _close_leftover_inotify(observer)
        self.wake()

    def check_roots(self) -> list[Path]:
        """Watch roots that have appeared since the last check. Returns the newly watched ones."""
        added = []
        for root in self.roots:
            if root in self._watched or not root.is_dir():
                continue
            if self._schedule(root):
                self._watched.add(root)
                added.append(root)
        return added

    def _schedule(self, root: Path) -> bool:
        assert self._observer is not None
        handler = _Handler(self)
        try:
            self._observer.schedule(handler, str(root), recursive=True)
            log.info("watching %s", root)
            return True
        except OSError as exc:  # inotify limits, or a root that vanished between check and schedule
            if self.polling or not root.is_dir():
                log.warning("cannot watch %s: %s", root, exc)
                return False
            log.warning("native watching of %s failed (%s); polling it instead", root, exc)
        if self._fallback is None:
            self._fallback = PollingObserver(timeout=self.poll_interval)
            self._fallback.daemon = True
            self._fallback.start()
        self._fallback.schedule(handler, str(root), recursive=True)
        return True

    # -- the queue -------------------------------------------------------------------------------

    def mark(self, path: Path) -> None:
        now = time.monotonic()
        with self._cond:
            self.events_seen += 1
            if not self._pending:
                self._first_pending = now
            self._pending[path] = now
            self._last_event = now
            self._cond.notify_all()

    def mark_rescan(self) -> None:
        with self._cond:
            self._rescan = True
            self._cond.notify_all()

    def wake(self) -> None:
        """Make a waiting :meth:`take` return now (shutdown)."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def backlog(self) -> tuple[int, float | None]:
        """Paths held for the next pass, and when the oldest was reported (monotonic time; None when none)."""
        with self._cond:
            return len(self._pending), (self._first_pending if self._pending else None)

    def take(self, timeout: float) -> tuple[set[Path], bool]:
        """Wait up to ``timeout`` for dirty paths whose writes have settled.

        Returns (paths, rescan): ``rescan`` is true when a folder appeared and the roots should be scanned.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                if self._woken:
                    self._woken = False
                    break
                if self._rescan and not self._pending:
                    break
                if self._pending:
                    settled = now - self._last_event >= self.debounce
                    overdue = now - self._first_pending >= self.max_delay
                    if settled or overdue:
                        break
                    wait = min(self._last_event + self.debounce, self._first_pending + self.max_delay) - now
                else:
                    wait = deadline - now
                if wait <= 0 and not self._pending:
                    break
                self._cond.wait(max(wait, 0.001))
            paths, self._pending = set(self._pending), {}
            rescan, self._rescan = self._rescan, False
            return paths, rescan

    def requeue(self, paths: set[Path]) -> None:
        """Put paths back (the DB was busy); they are handed out again after the debounce."""
        for path in paths:
            self.mark(path)
