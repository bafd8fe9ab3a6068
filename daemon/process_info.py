"""What the daemon process holds, for its health check: memory (and where it goes), open files, threads.

A long-running service has to show that it stays small, and when it does not, where the memory went. RSS
alone cannot tell Python objects from SQLite's page caches or allocator fragmentation, so two finer numbers
are added where they are available: SQLite's own heap (``sqlite3_memory_used`` from the same library the
``sqlite3`` module uses) and, when the daemon runs under ``PYTHONTRACEMALLOC=1``, the Python heap. Each is
cheap (a few system calls), so ``/healthz`` stays free to poll.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import resource
import sys
import threading
import tracemalloc
from typing import Any


@functools.cache
def _sqlite_memory_used() -> Any:
    """``sqlite3_memory_used`` of the SQLite the ``sqlite3`` module runs on, or None where it cannot be found.

    Looked up through the module's own extension (its handle also resolves the library it links, or the copy
    built into it), so it is that very SQLite, found without searching the system for a library.
    """
    try:
        # lazy: a private module a Python build may lack
        import _sqlite3

        func = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used
    except (ImportError, OSError, AttributeError, TypeError):
        return None
    func.restype = ctypes.c_int64
    return func


def _rss_bytes() -> int | None:
    """The current resident set size (Linux: /proc; elsewhere the peak, which is what the OS offers)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def _open_fds() -> int | None:
    for folder in ("/proc/self/fd", "/dev/fd"):
        with contextlib.suppress(OSError):
            return len(os.listdir(folder)) - 1  # the listing's own descriptor
    return None


def process_info() -> dict[str, Any]:
    """The process's RSS, open descriptors, threads, SQLite heap and (when tracing) Python heap."""
    sqlite_used = _sqlite_memory_used()
    return {
        "rss_bytes": _rss_bytes(),
        "open_fds": _open_fds(),
        "threads": threading.active_count(),
        "sqlite_heap_bytes": int(sqlite_used()) if sqlite_used is not None else None,
        "python_heap_bytes": tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None,
    }
