"""The leak check itself (tests/leaks.py) must be able to fail: it names a thread, a socket and a database left
open, and says nothing once they are closed."""

from __future__ import annotations

import gc
import socket
import threading
from pathlib import Path

from headroom.memory.db import open_database
from tests.leaks import _open_fds, leaks_after


def _snapshot() -> tuple[set[threading.Thread], dict[int, str]]:
    gc.collect()
    return set(threading.enumerate()), _open_fds()


def test_a_running_thread_is_named_until_it_ends() -> None:
    threads, fds = _snapshot()
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="left-running", daemon=True)
    thread.start()
    assert leaks_after(threads, fds, grace=0.1) == ["thread 'left-running'"]
    stop.set()
    assert leaks_after(threads, fds, grace=2.0) == []  # a thread told to stop gets its grace period


def test_an_open_socket_is_named_until_it_is_closed() -> None:
    threads, fds = _snapshot()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        leaked = leaks_after(threads, fds, grace=0.1)
        assert len(leaked) == 1 and "socket:" in leaked[0]
    finally:
        sock.close()
    assert leaks_after(threads, fds, grace=0.1) == []


def test_a_database_left_open_is_named_until_it_is_closed(tmp_path: Path) -> None:
    threads, fds = _snapshot()
    db = open_database(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        leaked = leaks_after(threads, fds, grace=0.1)
        assert any(str(tmp_path / "x.db") in line for line in leaked)
    finally:
        db.close()
    assert leaks_after(threads, fds, grace=0.5) == []
