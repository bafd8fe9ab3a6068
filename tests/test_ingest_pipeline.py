"""A backfill through the helper process stores exactly what the one-process path stores, whatever happens to it.

The corpus is the real logs of ``fixtures/sessions-more`` (193 files of the three agents, 68 MB: Windows and Linux
paths, replayed sub-agent histories, legacy Gemini documents) plus a file of bad input (binary junk, NUL bytes,
malformed and oversized lines, a torn last line). Each test backfills it twice into real SQLite files, once with
the helper and once without, and compares the two databases row for row with ``bench/mirror_compare.py`` (every
table in key order, row ids included; only the columns saying when ingestion ran are left out).
"""

from __future__ import annotations

import copy
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import headroom.daemon.ingest_pipeline as pipeline
from headroom.daemon.ingest import Ingestor, ScanReport
from headroom.daemon.ingest_read import Chunk, FileProgress, Limits, LogFile
from headroom.learn.mirror import write_prepared
from headroom.learn.model import Agent
from headroom.learn.prepare import prepare_batch
from headroom.learn.readers import reader_for
from headroom.memory.db import Database, open_database
from headroom.memory.models import EventRow, SessionRow
from tests.conftest import _shared_dir
from tests.helpers import bench_module, claude_session_lines, claude_tree, copy_tree, read_whole


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[Agent, list[Path]]:
    """A copy of the real logs, with one Claude file of bad input added."""
    shared = _shared_dir()
    if shared is None:
        pytest.skip("../shared/fixtures is absent (set HEADROOM_SHARED); CI always has it")
    base = copy_tree(shared / "fixtures" / "sessions-more", tmp_path_factory.mktemp("logs"))
    projects = base / ".claude" / "projects"
    bad = projects / "-home-dev-bad" / "bad-input.jsonl"
    bad.parent.mkdir(parents=True)
    lines = claude_session_lines(30)
    junk = [b"\x00\x01\x02binary\xff\xfe\n", b'{"type": "user", "broken\n', b"[1, 2, 3]\n"]
    nul = lines[3].replace(b'"text": "', b'"text": "with a \\u0000 NUL ', 1)
    oversized = b'{"type": "user", "pad": "' + b"x" * (3 << 20) + b'"}\n'
    bad.write_bytes(b"".join(lines[:3] + junk + [nul, oversized] + lines[4:]) + lines[0][:50])
    return {"claude": [projects], "codex": [base / ".codex" / "sessions"], "gemini": [base / ".gemini" / "tmp"]}


def backfill(
    path: Path, roots: dict[Agent, list[Path]], *, helper: bool, progress: Callable[[Ingestor], None] | None = None
) -> tuple[Database, Ingestor, ScanReport]:
    db = open_database(f"sqlite:///{path}")
    ingestor = Ingestor(db, roots, helper=helper, max_line_bytes=2 << 20, chunk_bytes=1 << 20)
    report = ingestor.scan(progress=(lambda *_: progress(ingestor)) if progress else None)
    return db, ingestor, report


MACHINE = "pipeline-test"  # rows carry the machine id; the databases are compared row for row


@pytest.fixture(scope="module", autouse=True)
def _one_machine_here() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HEADROOM_MACHINE", MACHINE)
        yield


@pytest.fixture(autouse=True)
def _one_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADROOM_MACHINE", MACHINE)  # conftest gives each test its own environment


@pytest.fixture(scope="module")
def serial(corpus: dict[Agent, list[Path]], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ScanReport]:
    """The one-process backfill every helper run is compared with."""
    path = tmp_path_factory.mktemp("serial") / "headroom.db"
    db, _, report = backfill(path, corpus, helper=False)
    db.close()
    return path, report


@pytest.fixture
def helpers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The pids of the helper processes started; none outlives its scan (each is waited for, not left a zombie)."""
    pids: list[int] = []
    start = pipeline.Helper.__init__

    def record(self: pipeline.Helper, limits: Limits) -> None:
        start(self, limits)
        pids.append(self.pid)

    monkeypatch.setattr(pipeline.Helper, "__init__", record)
    yield pids
    left = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    assert left == [], f"helper processes left: {left}"


def same_rows(serial: tuple[Path, ScanReport], path: Path, report: ScanReport) -> None:
    assert bench_module("mirror_compare").compare(serial[0], path) == []
    expected = serial[1]
    assert (report.files, report.bytes_read, report.records) == (expected.files, expected.bytes_read, expected.records)
    assert report.problems == expected.problems and report.statuses == expected.statuses


def test_the_helper_stores_what_one_process_stores(
    corpus: dict[Agent, list[Path]], serial: tuple[Path, ScanReport], tmp_path: Path, helpers: list[int]
) -> None:
    assert pipeline.use_helper(sum(os.path.getsize(p) for r in corpus.values() for p in r[0].rglob("*") if p.is_file()))
    stored = Ingestor.store_chunks
    from_helper: list[Path] = []

    def store_chunks(self: Ingestor, item: Any, *args: Any, check: bool = False, **more: Any) -> Any:
        if check:  # what the helper read (the writer reads some files itself while the helper starts)
            from_helper.append(item.path)
        return stored(self, item, *args, check=check, **more)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Ingestor, "store_chunks", store_chunks)
        db, _, report = backfill(tmp_path / "h.db", corpus, helper=True)
    db.close()
    # Most files (~150 of 194 here), the bad one, read last, among them.
    assert len(helpers) == 1 and from_helper and from_helper[-1].name == "bad-input.jsonl"
    same_rows(serial, tmp_path / "h.db", report)
    # The bad file (read last, by the helper): junk, malformed, not an object, oversized; its torn tail waits.
    assert report.problems == 4 and report.statuses["waiting"] == 1


def test_a_helper_killed_mid_scan_costs_nothing(
    corpus: dict[Agent, list[Path]],
    serial: tuple[Path, ScanReport],
    tmp_path: Path,
    helpers: list[int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    done = 0

    def kill_after_some(_: Ingestor) -> None:
        nonlocal done
        done += 1
        if done == 40:
            os.kill(helpers[0], signal.SIGKILL)

    with caplog.at_level(logging.WARNING, logger="headroom.ingest"):
        db, _, report = backfill(tmp_path / "k.db", corpus, helper=True, progress=kill_after_some)
    db.close()
    assert any("ingest helper process stopped" in r.getMessage() for r in caplog.records)
    same_rows(serial, tmp_path / "k.db", report)


def test_a_file_the_helper_fails_half_way_is_finished_here_and_counted_once(
    corpus: dict[Agent, list[Path]],
    serial: tuple[Path, ScanReport],
    tmp_path: Path,
    helpers: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The helper fails after the first chunk of a file of several (1 MB chunks): the writer reads the rest."""
    biggest = max((p for root in corpus.values() for p in root[0].rglob("*.jsonl")), key=lambda p: p.stat().st_size)
    assert biggest.stat().st_size > 1 << 20  # more than one chunk
    parts = pipeline.Helper.parts
    failed: list[Path] = []

    def fail_half_way(self: pipeline.Helper, ident: int) -> Iterator[Chunk | str]:
        real = parts(self, ident)
        first = next(real)
        yield first
        if isinstance(first, Chunk) and first.end < biggest.stat().st_size and first.end == _end_of_first(biggest):
            for _ in real:  # the helper's rest of this file, left unread by the writer
                pass
            failed.append(biggest)
            raise pipeline.HelperFailed("failed half-way (test)")
        yield from real

    monkeypatch.setattr(pipeline.Helper, "parts", fail_half_way)
    db, _, report = backfill(tmp_path / "f.db", corpus, helper=True)
    db.close()
    assert failed == [biggest]
    same_rows(serial, tmp_path / "f.db", report)


def _end_of_first(path: Path) -> int:
    """Where the first 1 MB chunk of ``path`` ends (its last newline within the first MB)."""
    with path.open("rb") as handle:
        return handle.read(1 << 20).rfind(b"\n") + 1


def test_files_another_process_stored_meanwhile_are_read_again_not_refused(
    corpus: dict[Agent, list[Path]], serial: tuple[Path, ScanReport], tmp_path: Path, helpers: list[int]
) -> None:
    """``headroom ingest`` beside the daemon: the other one stores the files this one has handed to its helper."""
    path = tmp_path / "m.db"
    db = open_database(f"sqlite:///{path}")
    ingestor = Ingestor(db, corpus, helper=True, max_line_bytes=2 << 20, chunk_bytes=1 << 20)
    store, read_here = ingestor.store_chunks, ingestor.ingest_file
    other: list[ScanReport] = []
    fallbacks: list[Path] = []

    def store_chunks(*args: Any, check: bool = False, **more: Any) -> Any:
        if check and not other:  # the first file from the helper: its progress was read before the other's scan
            other_db = open_database(f"sqlite:///{path}")
            other.append(Ingestor(other_db, corpus, helper=False, max_line_bytes=2 << 20, chunk_bytes=1 << 20).scan())
            other_db.close()
        return store(*args, check=check, **more)

    def ingest_file(item: Any) -> Any:
        if other:
            fallbacks.append(item.path)
        return read_here(item)

    ingestor.store_chunks = store_chunks  # type: ignore[method-assign]
    ingestor.ingest_file = ingest_file  # type: ignore[method-assign]
    report = ingestor.scan()
    db.close()
    assert other and other[0].files == serial[1].files
    assert fallbacks, "no file was found moved"
    assert ingestor.problem_counts["not_stored"] == 0 and "not_stored" not in report.statuses
    # Every file was read once between the two (the files handed over are found read and read no further).
    assert report.bytes_read + other[0].bytes_read == serial[1].bytes_read
    assert bench_module("mirror_compare").compare(serial[0], path) == []


def test_the_helper_answers_a_file_it_cannot_open_with_a_failure(tmp_path: Path, helpers: list[int]) -> None:
    """What makes the writer read a file itself: the helper's answer for a file it could not open."""
    helper = pipeline.Helper(Limits(1 << 20, 2 << 20))
    try:
        while not helper.started():
            assert not helper.broken
            time.sleep(0.01)
        gone = LogFile("claude", tmp_path, tmp_path / "gone.jsonl")
        helper.submit(7, gone, os.stat(tmp_path), FileProgress(None, str(gone.path)))
        with pytest.raises(pipeline.HelperFailed, match="FileNotFoundError"):
            next(helper.parts(7))
        live = tmp_path / "live.jsonl"
        live.write_bytes(b"".join(claude_session_lines(2)))
        helper.submit(8, LogFile("claude", tmp_path, live), os.stat(live), FileProgress(None, str(live)))
        chunk, status = list(helper.parts(8))
        assert isinstance(chunk, Chunk) and chunk.end == live.stat().st_size and chunk.records > 0
        assert status == "ingested" and not helper.broken
    finally:
        helper.close()


def test_a_stop_request_ends_the_scan_and_the_helper(
    corpus: dict[Agent, list[Path]], tmp_path: Path, helpers: list[int]
) -> None:
    db = open_database(f"sqlite:///{tmp_path / 's.db'}")
    ingestor = Ingestor(db, corpus, helper=True)
    seen = 0

    def stop_after_some() -> bool:
        return seen >= 30

    def count(*_: object) -> None:
        nonlocal seen
        seen += 1

    ingestor.should_stop = stop_after_some
    report = ingestor.scan(progress=count)
    db.close()
    assert 30 <= report.files < 194


def test_small_scans_and_one_core_stay_in_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not pipeline.use_helper(pipeline.HELPER_MIN_BYTES - 1)
    assert pipeline.use_helper(pipeline.HELPER_MIN_BYTES)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert not pipeline.use_helper(1 << 30)


@pytest.mark.both_backends
def test_prepared_rows_are_not_changed_by_their_write(db: Database, tmp_path: Path) -> None:
    """A transaction run again (after a rollback) writes the same prepared rows once more, with its own ids."""
    root = tmp_path / "projects"
    path = claude_tree(root)
    path.write_bytes(b"".join(claude_session_lines(6)))
    batch = read_whole(reader_for("claude"), path, root)
    prepared = prepare_batch("claude", batch)
    before = copy.deepcopy(prepared)
    with pytest.raises(RuntimeError), db.transaction() as dbs:
        write_prepared(dbs, "claude", prepared)
        raise RuntimeError("rolled back")
    assert prepared == before
    with db.transaction() as dbs:
        assert write_prepared(dbs, "claude", prepared) > 0
    assert prepared == before
    with db.sessions() as dbs:
        session_ids = set(dbs.execute(select(EventRow.session_id)).scalars())
        assert session_ids and session_ids <= set(dbs.execute(select(SessionRow.id)).scalars())
