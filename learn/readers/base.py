"""The interface every agent log reader implements.

A reader is pure translation: it never touches the database and never decides *when* to read. The
ingestion layer (``headroom.daemon.ingest``) owns files, offsets, torn lines and transactions; it hands a
reader one decoded JSON record at a time (JSONL logs) or a whole JSON document (legacy formats that are
rewritten in place), and the reader appends normalized items to a :class:`~headroom.learn.model.Batch`.

Whatever a reader must remember between records of one file (the session id from a header line, the
current model, Codex's previous cumulative token total) lives in ``state``: a JSON-serialisable dict that
ingestion stores next to the file's offset, in the same transaction as the rows. That is what makes an
incremental read resumable after a crash: the offset and the state always describe the same point.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import orjson

from headroom.learn.model import Agent, Batch

State = dict[str, Any]


class LogReader(ABC):
    """Turns one agent's session logs into the normalized model."""

    agent: ClassVar[Agent]

    def discover(self, root: Path) -> Iterator[Path]:
        """Every log file under ``root`` that this reader ingests (any order; unreadable dirs skipped)."""
        yield from iter_files(root, lambda path: self.accepts(path, root))

    @abstractmethod
    def accepts(self, path: Path, root: Path) -> bool:
        """Whether ``path`` (somewhere under ``root``) is a log this reader ingests.

        The watcher asks this for every file-system event, so it must be cheap and must not read the file.
        """

    def whole_file(self, path: Path) -> bool:
        """True for formats rewritten in place as one JSON document; False for append-only JSONL."""
        return False

    def begin(self, path: Path, root: Path) -> State:
        """The initial state for a file, from its path and sidecar files (e.g. a project-root marker)."""
        return {}

    @abstractmethod
    def feed(self, record: dict[str, Any], raw: bytes, offset: int, state: State, out: Batch) -> None:
        """Translate one JSONL record (``raw`` is its line, at byte ``offset``) into ``out``.

        Unknown record types and keys must be skipped or kept raw, never raise: formats change monthly.
        """

    def feed_document(self, doc: Any, state: State, out: Batch) -> None:
        """Translate a whole JSON document (only for files where :meth:`whole_file` is true)."""
        raise NotImplementedError(f"{type(self).__name__} has no whole-file format")


def iter_files(root: Path, accept: Callable[[Path], bool]) -> Iterator[Path]:
    """Regular files under ``root`` that ``accept`` takes, never failing on what cannot be listed.

    Symlinked directories are not followed (a symlink loop cannot trap the walk); unreadable folders are
    skipped. ``root`` itself may be a symlink.
    """
    if not root.is_dir():
        return
    for dirpath, _dirnames, filenames in os.walk(root, onerror=lambda _exc: None):
        base = Path(dirpath)
        for name in filenames:
            path = base / name
            if accept(path):
                try:
                    if path.is_file():
                        yield path
                except OSError:  # a symlink loop or a file that vanished
                    continue


def record_type(raw: str) -> str:
    """The type name of a record a reader kept raw (an UNKNOWN event), as ``doctor`` and drift warnings show it.

    ``type`` (Claude, Gemini messages), with a Codex envelope's payload type after a slash
    (``event_msg/foo``); a record without one is named by its first key (Gemini's ``$``-operations).
    """
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "(not JSON)"
    if not isinstance(record, dict):
        return "(not an object)"
    kind = record.get("type")
    payload = record.get("payload")
    inner = payload.get("type") if isinstance(payload, dict) else None
    if isinstance(kind, str) and kind:
        return f"{kind}/{inner}"[:_TYPE_CHARS] if isinstance(inner, str) and inner else kind[:_TYPE_CHARS]
    first = next(iter(record), None)
    return f"(no type: {first})"[:_TYPE_CHARS] if first is not None else "(empty)"


_TYPE_CHARS = 80
