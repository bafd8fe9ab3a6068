"""Reading one log file into the chunks ingestion commits: everything of ingestion that needs no database.

:func:`read_chunks` reads a file from its stored progress and yields one :class:`Chunk` per transaction to come,
its rows already prepared and redacted (:func:`headroom.learn.prepare.prepare_batch`), then the file's status.
The ingestor commits each chunk as it comes (``daemon/ingest.py``); in a backfill a helper process runs this
beside the writer and sends the chunks over (``daemon/ingest_pipeline.py``). Both see the same chunks, so both
store the same rows. (Split from ``daemon/ingest.py``, which decides what is stored and when.)
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from headroom.learn.model import Agent, Batch, EventKind
from headroom.learn.prepare import Prepared, prepare_batch
from headroom.learn.readers import LogReader, State, parse_chunk
from headroom.learn.readers.base import record_type
from headroom.learn.readers.jsonl import MALFORMED, OVERSIZED, READER_ERROR

log = logging.getLogger("headroom.ingest")

FINGERPRINT_BYTES = 1024
TORN_DOCUMENT_GRACE_S = 5.0  # a whole-file JSON that does not decode is a torn write until this old

# What a file's read ends with, after its chunks: nothing new, something read, or a last line still being written.
UNCHANGED, INGESTED, WAITING = "unchanged", "ingested", "waiting"


@dataclass(frozen=True)
class LogFile:
    agent: Agent
    root: Path
    path: Path


@dataclass
class FileOutcome:
    """What ingesting one file did (:meth:`headroom.daemon.ingest.Ingestor.ingest_file`)."""

    path: Path
    status: str  # ingested | unchanged | waiting | missing | unreadable | skipped | failed
    bytes_read: int = 0
    records: int = 0
    problems: int = 0

    def add(self, earlier: FileOutcome) -> FileOutcome:
        """This outcome with what an earlier, interrupted read of the same file committed counted in."""
        self.bytes_read += earlier.bytes_read
        self.records += earlier.records
        self.problems += earlier.problems
        if earlier.status == INGESTED and self.status == UNCHANGED:
            self.status = INGESTED
        return self


@dataclass
class FileProgress:
    """Where ingestion stands in one log file (its ``source_files`` row): resumable at ``offset`` with ``state``.

    ``id`` is None until the first chunk of a new file is stored; ``state`` is the reader's state as stored
    (JSON text), ``fingerprint`` the hash of the bytes before ``offset`` that proves the file was not rewritten.
    """

    id: int | None
    path: str
    offset: int = 0
    state: str | None = None
    fingerprint: str | None = None
    size: int = 0
    mtime_ns: int = 0
    records: int = 0

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> FileProgress:
        """From a ``source_files`` row (a mapping of its columns)."""
        return cls(*(row[name] for name in _PROGRESS_FIELDS))


_PROGRESS_FIELDS = ("id", "path", "offset", "state", "fingerprint", "size", "mtime_ns", "records")


@dataclass
class Chunk:
    """What one transaction stores for a file: the rows read from bytes ``[start, end)``, the problems found
    there, and the reader's state at ``end`` (None: keep the stored one). ``fingerprint`` proves ``end``;
    ``record_types`` are the record types kept raw, with the CLI version that wrote them."""

    rows: Prepared
    start: int
    end: int
    state: State | None
    records: int = 0
    bytes_read: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    fingerprint: str | None = None
    record_types: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Limits:
    """How much is read at once (``ingest.chunk_mb``), and the longest line kept (``ingest.max_line_mb``)."""

    chunk_bytes: int
    max_line_bytes: int


def read_chunks(
    reader: LogReader,
    item: LogFile,
    handle: BinaryIO,
    st: os.stat_result,
    row: FileProgress,
    limits: Limits,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[Chunk | str]:
    """The chunks of ``item`` after ``row``'s progress, then its status (one of UNCHANGED, INGESTED, WAITING)."""
    if reader.whole_file(item.path):
        return _document_chunks(reader, item, handle, st, row)
    return _line_chunks(reader, item, handle, st, row, limits, should_stop)


def _start(
    reader: LogReader, item: LogFile, handle: BinaryIO, st: os.stat_result, row: FileProgress
) -> tuple[int, State]:
    """Where to resume, and with what reader state: from the stored offset, or from scratch."""
    offset = row.offset
    if offset and st.st_size >= offset and fingerprint(handle, offset) == row.fingerprint:
        return offset, orjson.loads(row.state) if row.state else {}
    if offset:
        log.info("re-reading %s from the start (truncated, replaced or rewritten)", item.path)
    return 0, reader.begin(item.path, item.root)


def _line_chunks(
    reader: LogReader,
    item: LogFile,
    handle: BinaryIO,
    st: os.stat_result,
    row: FileProgress,
    limits: Limits,
    should_stop: Callable[[], bool],
) -> Iterator[Chunk | str]:
    offset, state = _start(reader, item, handle, st, row)
    size, longest = limits.chunk_bytes, limits.max_line_bytes
    status = UNCHANGED
    handle.seek(offset)
    while not should_stop():
        data = handle.read(size)
        if not data:
            break
        at_eof = len(data) < size
        while b"\n" not in data and not at_eof and len(data) < longest:
            more = handle.read(size)
            at_eof = len(more) < size
            data += more
        cut = data.rfind(b"\n")
        if cut == -1 and len(data) >= longest:
            skipped = _skip_line(handle, offset + len(data), size)
            if skipped is None:  # still being written: wait for its newline
                status = WAITING
                break
            problem = (OVERSIZED, f"line of {skipped - offset} bytes at byte {offset} skipped")
            mark = fingerprint(handle, skipped)
            yield Chunk(Prepared(), offset, skipped, state, problems=[problem], fingerprint=mark)
            offset = skipped
            handle.seek(offset)
            continue
        batch = Batch()
        chunk = data if at_eof else data[: cut + 1]
        result = parse_chunk(reader, chunk, offset, state, batch, at_eof=False)
        if result.consumed == 0:
            status = WAITING  # a torn last line: the agent has not finished writing it
            break
        end = offset + result.consumed
        types = name_record_types(item.agent, batch)
        yield Chunk(
            prepare_batch(item.agent, batch),
            offset,
            end,
            state,
            result.records,
            result.consumed,
            result.problems,
            fingerprint(handle, end),
            types,
        )
        status = INGESTED
        offset = end
        handle.seek(offset)
        if at_eof and result.consumed < len(chunk):
            status = WAITING  # the last line is still being written
            break
    yield status


def _document_chunks(
    reader: LogReader, item: LogFile, handle: BinaryIO, st: os.stat_result, row: FileProgress
) -> Iterator[Chunk | str]:
    """A whole-file JSON document (legacy Gemini, old Codex): parsed whole each time it changes."""
    if row.id is not None and row.size == st.st_size and row.mtime_ns == st.st_mtime_ns:
        yield UNCHANGED
        return
    data = handle.read()
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        if time.time() - st.st_mtime < TORN_DOCUMENT_GRACE_S:
            yield WAITING  # a rewrite in progress; the next event retries
            return
        yield Chunk(Prepared(), 0, row.offset, None, problems=[(MALFORMED, "the JSON document does not decode")])
        yield INGESTED
        return
    state = reader.begin(item.path, item.root)
    batch = Batch()
    try:
        reader.feed_document(doc, state, batch)
    except Exception as exc:
        problem = (READER_ERROR, f"{type(exc).__name__}: {exc}")
        yield Chunk(Prepared(), 0, len(data), state, problems=[problem])
        yield INGESTED
        return
    types = name_record_types(item.agent, batch)
    yield Chunk(prepare_batch(item.agent, batch), 0, len(data), state, 1, len(data), record_types=types)
    yield INGESTED


def name_record_types(agent: Agent, batch: Batch) -> dict[str, str | None]:
    """Name the batch's UNKNOWN events by their record type (stored as their text); each type with its CLI version."""
    found: dict[str, str | None] = {}
    for event in batch.events:
        if event.kind is not EventKind.UNKNOWN:
            continue
        if event.text is None:
            event.text = record_type(event.raw or "")
        if event.text not in found:
            session = batch.sessions.get(event.session_key)
            found[event.text] = session.cli_version if session is not None else None
    return found


def fingerprint(handle: BinaryIO | None, offset: int) -> str | None:
    """A hash of the file's first bytes (up to ``offset``): tells an appended file from a rewritten one."""
    if handle is None or offset <= 0:
        return None
    position = handle.tell()
    handle.seek(0)
    head = handle.read(min(offset, FINGERPRINT_BYTES))
    handle.seek(position)
    return hashlib.blake2b(head, digest_size=16).hexdigest()


def _skip_line(handle: BinaryIO, position: int, chunk: int) -> int | None:
    """Stream past an oversized line without holding it; the offset after its newline, or None at EOF."""
    handle.seek(position)
    while True:
        data = handle.read(chunk)
        if not data:
            return None
        cut = data.find(b"\n")
        if cut != -1:
            return position + cut + 1
        position += len(data)
