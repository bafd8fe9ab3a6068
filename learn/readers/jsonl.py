"""Tolerant JSONL decoding shared by incremental ingestion and one-shot reads.

Agent logs are appended while we read them and are full of surprises: a torn last line, a line of binary
junk after a crash, non-UTF-8 bytes, a 100 MB tool output on one line. ``parse_chunk`` decodes what it can,
reports every problem by kind (never raises for bad input), and says how many bytes it fully consumed so
the caller can resume exactly there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from headroom.learn.model import Batch
from headroom.learn.readers.base import LogReader, State

# Problem kinds, as counted per file in the ingest_issues table and shown by ``headroom doctor``.
MALFORMED = "malformed_json"
NOT_UTF8 = "not_utf8"
BINARY = "binary_junk"
NOT_OBJECT = "not_an_object"
READER_ERROR = "reader_error"
OVERSIZED = "oversized_line"


@dataclass
class ChunkResult:
    """What :func:`parse_chunk` did with a buffer."""

    consumed: int = 0  # bytes from the start of the buffer that are fully handled
    records: int = 0  # records handed to the reader
    problems: list[tuple[str, str]] = field(default_factory=list)  # (kind, detail) per bad line


def parse_chunk(
    reader: LogReader, data: bytes, base_offset: int, state: State, out: Batch, *, at_eof: bool = False
) -> ChunkResult:
    """Feed every complete line of ``data`` (which starts at byte ``base_offset`` of the file) to ``reader``.

    A last line without its newline is left unconsumed (the agent is still writing it) unless it already
    decodes as a JSON object: a torn object can never be valid JSON, since its closing brace comes last.
    With ``at_eof`` a torn tail that does not decode is reported instead of being waited for.
    """
    result = ChunkResult()
    start = 0
    length = len(data)
    while start < length:
        end = data.find(b"\n", start)
        if end == -1:
            tail = data[start:]
            record = _loads(tail)
            if isinstance(record, dict):
                _feed(reader, record, tail, base_offset + start, state, out, result)
                result.consumed = length
            elif at_eof and tail.strip():
                result.problems.append((_classify(tail), f"torn last line at byte {base_offset + start}"))
                result.consumed = length
            break
        line = data[start:end]
        if line.strip():
            record = _loads(line)
            if isinstance(record, dict):
                _feed(reader, record, line, base_offset + start, state, out, result)
            elif record is _INVALID:
                result.problems.append((_classify(line), f"line at byte {base_offset + start}"))
            else:
                result.problems.append((NOT_OBJECT, f"line at byte {base_offset + start}"))
        start = end + 1
        result.consumed = start
    return result


_INVALID = object()


def _loads(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return _INVALID


def _feed(
    reader: LogReader, record: dict[str, Any], raw: bytes, offset: int, state: State, out: Batch, result: ChunkResult
) -> None:
    try:
        reader.feed(record, raw, offset, state, out)
    except Exception as exc:  # a reader bug on one odd record must not stop the file
        result.problems.append((READER_ERROR, f"line at byte {offset}: {type(exc).__name__}: {exc}"))
    else:
        result.records += 1


def _classify(line: bytes) -> str:
    """Name what is wrong with a line that is not JSON, for the per-kind counts."""
    sample = line[:4096]
    if b"\x00" in sample:
        return BINARY
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A cut in the middle of a multi-byte character at the sample's end is not an encoding error.
        if exc.start < len(sample) - 4:
            return NOT_UTF8
    return MALFORMED


def read_file(reader: LogReader, path: Path, root: Path) -> tuple[Batch, State, ChunkResult]:
    """Read a whole log file in one go (tests, one-shot tools); ingestion reads incrementally instead."""
    state = reader.begin(path, root)
    out = Batch()
    data = path.read_bytes()
    if reader.whole_file(path):
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            return out, state, ChunkResult(problems=[(MALFORMED, "whole-file JSON does not decode")])
        reader.feed_document(doc, state, out)
        return out, state, ChunkResult(consumed=len(data), records=1)
    return out, state, parse_chunk(reader, data, 0, state, out, at_eof=True)
