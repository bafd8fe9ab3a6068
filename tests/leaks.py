"""The leak check: a test that leaves a thread, a socket, a file or a database connection open behind it fails.

Before, an unclosed socket surfaced as a ``ResourceWarning`` in whichever later test the garbage collector happened
to run in (warnings are errors here), and a thread left running kept polling files other tests were writing. Now
the test that leaked is the one that fails, with the names of what it left behind.

How: the autouse fixture ``no_leaks`` (conftest.py) snapshots ``threading.enumerate()`` and ``/proc/self/fd`` before
the test, and after every other fixture of the test has been torn down it collects garbage (so an unclosed
resource's warning is raised in *this* test) and compares again, waiting up to ``GRACE_S`` for threads that were
told to stop and are finishing. An SQLAlchemy engine or connection left open holds a file (SQLite) or a socket
(PostgreSQL) and so shows as a leaked fd.

Allowed, because they belong to the interpreter or the test runner and outlive every test by design: threads named
in ``_LONG_LIVED``; the session-scoped PostgreSQL server (tests/pg.py), which is started *before* the first
snapshot of a test that uses it so that its own files never count against that test; and the pipe to
multiprocessing's resource tracker, which the first spawned process starts and the interpreter keeps for life.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

GRACE_S = 3.0
"""How long a test's threads may take to finish after its teardown asked them to (a loaded CI box is slow)."""

_LONG_LIVED = (
    # pytest-timeout's watchdog and faulthandler's dump thread, when those plugins run.
    "pytest_timeout",
    "faulthandler",
)

_FD_DIR = Path("/proc/self/fd")


def _open_fds() -> dict[int, str]:
    """Every open descriptor of this process and what it points at (empty where /proc is absent: not Linux)."""
    if not _FD_DIR.is_dir():
        return {}
    found: dict[int, str] = {}
    for entry in os.listdir(_FD_DIR):
        try:
            found[int(entry)] = os.readlink(_FD_DIR / entry)
        except OSError:  # the fd listing itself, closed while we looked
            continue
    return found


def _alive_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.name.startswith(_LONG_LIVED)]


def _interpreter_fds() -> set[int]:
    """The resource tracker's pipe, once a spawned process started the tracker (see the module docstring)."""
    tracker = sys.modules.get("multiprocessing.resource_tracker")
    fd = getattr(getattr(tracker, "_resource_tracker", None), "_fd", None)
    return {fd} if isinstance(fd, int) else set()


def _new_fds(before: dict[int, str]) -> dict[int, str]:
    mine = _interpreter_fds()
    return {fd: target for fd, target in _open_fds().items() if before.get(fd) != target and fd not in mine}


def leaks_after(before_threads: set[threading.Thread], before_fds: dict[int, str], grace: float = GRACE_S) -> list[str]:
    """What is still open compared with the snapshot, after waiting up to ``grace`` seconds for it to close."""
    deadline = time.monotonic() + grace
    while True:
        gc.collect()
        threads = _alive_threads(before_threads)
        fds = _new_fds(before_fds)
        if (not threads and not fds) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return [f"thread {t.name!r}" for t in threads] + [f"fd {fd} -> {target}" for fd, target in sorted(fds.items())]


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test when it leaves a thread or an open descriptor behind (see the module docstring)."""
    if "pg_server" in request.fixturenames:
        request.getfixturevalue("pg_server")  # the session's server is not this test's leak
    gc.collect()
    before_threads = set(threading.enumerate())
    before_fds = _open_fds()
    yield
    leaked = leaks_after(before_threads, before_fds)
    if leaked:
        pytest.fail(f"{request.node.nodeid} leaked: " + "; ".join(leaked), pytrace=False)
