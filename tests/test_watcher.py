"""The watcher on real files with real watchdog observers: debounced, polling fallback, late roots."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from headroom.daemon.watcher import Watcher


def _jsonl(path: Path) -> bool:
    return path.suffix == ".jsonl"


def _take_until(watcher: Watcher, want: set[Path], seconds: float = 5.0) -> set[Path]:
    got: set[Path] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not want <= got:
        paths, _ = watcher.take(timeout=0.2)
        got |= paths
    return got


@pytest.mark.parametrize("polling", [False, True], ids=["native", "polling"])
def test_appends_are_reported(tmp_path: Path, polling: bool) -> None:
    root = tmp_path / "root"
    (root / "project").mkdir(parents=True)
    watcher = Watcher([root], _jsonl, debounce=0.05, polling=polling, poll_interval=0.2)
    assert watcher.start() == [root]
    try:
        log = root / "project" / "s.jsonl"
        log.write_text("{}\n")
        (root / "project" / "ignored.txt").write_text("x")
        assert _take_until(watcher, {log}) == {log}
        with log.open("a") as handle:
            handle.write("{}\n")
        assert _take_until(watcher, {log}) == {log}
    finally:
        watcher.stop()


def test_a_burst_of_writes_is_one_batch(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    log = root / "s.jsonl"
    log.write_text("")
    watcher = Watcher([root], _jsonl, debounce=0.3, max_delay=5.0)
    watcher.start()
    try:
        time.sleep(0.2)
        for _ in range(30):
            with log.open("a") as handle:
                handle.write("{}\n")
            time.sleep(0.005)
        paths, _ = watcher.take(timeout=3.0)
        assert paths == {log}
        later, _ = watcher.take(timeout=0.5)
        assert later == set()  # all thirty writes were delivered as that one item
        assert watcher.events_seen >= 2
    finally:
        watcher.stop()


def test_a_root_that_appears_later_is_picked_up(tmp_path: Path) -> None:
    root = tmp_path / "not-yet"
    watcher = Watcher([root], _jsonl, debounce=0.05)
    assert watcher.start() == []
    try:
        (root / "p").mkdir(parents=True)
        assert watcher.check_roots() == [root]
        log = root / "p" / "s.jsonl"
        log.write_text("{}\n")
        assert _take_until(watcher, {log}) == {log}
    finally:
        watcher.stop()


def test_a_folder_moved_in_asks_for_a_rescan(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "s.jsonl").write_text("{}\n")
    watcher = Watcher([root], _jsonl, debounce=0.05)
    watcher.start()
    try:
        time.sleep(0.1)
        outside.rename(root / "moved")
        deadline = time.monotonic() + 5
        rescan = False
        while time.monotonic() < deadline and not rescan:
            _, rescan = watcher.take(timeout=0.2)
        assert rescan
    finally:
        watcher.stop()


def test_stop_wakes_a_waiting_take(tmp_path: Path) -> None:
    watcher = Watcher([tmp_path], _jsonl)
    watcher.start()
    watcher.wake()
    started = time.monotonic()
    watcher.take(timeout=10)
    assert time.monotonic() - started < 1
    watcher.stop()
