"""Compress-cache-retrieve: what a compressor leaves out stays one call away, byte-exact.

An elided span becomes a marker such as ``[41 lines elided; retrieve hr:3f9a1c2b7d10:120-160]``. The id is
the first 12 hex digits of the SHA-256 of the original text (deterministic: the same original always gives
the same id, so markers never break a provider's prompt cache), and the optional ``:a-b`` is a 1-based,
inclusive line range of that original. A block's original is stored once; every span elided from it points
into it by line range, so one entry serves any number of markers and ``retrieve`` can also hand back any
other range (an agent about to edit lines 120-160 of a file asks for exactly those).

The engine never owns storage: ``compress`` is given a :class:`CCRStore` (this module's in-memory one, or
the persistent one from ``headroom.memory``) and also returns the entries it created.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from headroom.engine.errors import HeadroomError

ID_HEX = 12
#: A reference inside a marker: ``hr:<id>`` or ``hr:<id>:<first>-<last>``, at a word boundary. The literal
#: comes first and the boundary is a lookbehind (``\b`` first would make the regex engine try every position
#: instead of jumping to each ``hr:``: 40 times slower over a text without a reference).
REF_RE = re.compile(r"hr:(?<!\whr:)([0-9a-f]{12})(?::(\d+)-(\d+))?(?![0-9a-f])")


class RetrievalError(HeadroomError):
    """The id is unknown to the store, or the range or query does not fit the original."""


class CCRCollision(HeadroomError):
    """Two different originals share one id (its 48 bits collide): the second is refused, never served as the first.

    A store that returned the first text for the second's markers would hand a model a wrong original without a
    sign; refusing makes the compression fail, and the caller falls back to the uncompressed text.
    """

    def __init__(self, entry_id: str) -> None:
        super().__init__(
            f"two different originals have the id hr:{entry_id} (a 48-bit collision); the second is not stored"
        )
        self.entry_id = entry_id


@dataclass(frozen=True)
class CCREntry:
    """An original kept for retrieval. ``kind`` is the content kind of the block it came from."""

    id: str
    text: str
    kind: str = "text"


@dataclass(frozen=True)
class Ref:
    """A parsed marker reference: an entry id and an optional 1-based inclusive line range."""

    id: str
    first: int | None = None
    last: int | None = None

    def __str__(self) -> str:
        if self.first is None:
            return f"hr:{self.id}"
        return f"hr:{self.id}:{self.first}-{self.last}"


@runtime_checkable
class CCRStore(Protocol):
    """Where originals live. ``put`` must be idempotent: the same entry may be put many times; a different text
    under an id already held raises :class:`CCRCollision`."""

    def put(self, entry: CCREntry) -> None: ...

    def get(self, entry_id: str) -> str | None: ...


class MemoryCCRStore:
    """A dict-backed store for one process (tests, the CLI, the benchmark adapter).

    ``max_entries`` bounds memory: the least recently used entry is dropped first.
    """

    def __init__(self, max_entries: int | None = None) -> None:
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._max = max_entries

    def put(self, entry: CCREntry) -> None:
        if self._entries.get(entry.id, entry.text) != entry.text:
            raise CCRCollision(entry.id)
        self._entries[entry.id] = entry.text
        self._entries.move_to_end(entry.id)
        if self._max is not None:
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def get(self, entry_id: str) -> str | None:
        text = self._entries.get(entry_id)
        if text is not None:
            self._entries.move_to_end(entry_id)
        return text

    def __len__(self) -> int:
        return len(self._entries)


def text_digest(text: str) -> str:
    """SHA-256 (hex) of ``text``; lone surrogates from JSON are hashed, not rejected. Its first
    :data:`ID_HEX` digits are the text's :func:`content_id`."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def content_id(text: str) -> str:
    """The deterministic id of an original."""
    return text_digest(text)[:ID_HEX]


def parse_ref(ref: str) -> Ref:
    """Parse ``hr:<id>[:a-b]``, ``<id>`` or ``<id>:a-b`` (what a model copies out of a marker)."""
    text = ref.strip()
    if not text.startswith("hr:"):
        text = "hr:" + text
    m = REF_RE.fullmatch(text)
    if m is None:
        raise RetrievalError(f"not a retrieval id: {ref!r} (expected hr:<12 hex digits>[:first-last])")
    if m.group(2) is None:
        return Ref(m.group(1))
    return Ref(m.group(1), int(m.group(2)), int(m.group(3)))


def find_refs(text: str) -> list[Ref]:
    """Every reference in ``text``, in order of first appearance, without repeats."""
    seen: dict[Ref, None] = {}
    for m in REF_RE.finditer(text):
        ref = Ref(m.group(1)) if m.group(2) is None else Ref(m.group(1), int(m.group(2)), int(m.group(3)))
        seen.setdefault(ref, None)
    return list(seen)


def line_marker(entry_id: str, first: int, last: int, what: str = "lines") -> str:
    """The standard marker for original lines ``first..last`` (1-based, inclusive)."""
    count = last - first + 1
    noun = what if count != 1 else what.rstrip("s")
    return f"[{count} {noun} elided; retrieve hr:{entry_id}:{first}-{last}]"


def entry_marker(entry_id: str, what: str) -> str:
    """The standard marker for a whole entry (``what`` says what it holds, e.g. ``"original JSON"``)."""
    return f"[{what}; retrieve hr:{entry_id}]"


def parse_line_range(value: str | None) -> tuple[int, int] | None:
    """``"120-160"`` -> ``(120, 160)``, ``"7"`` -> ``(7, 7)``, ``None``/``""`` -> ``None``; ``ValueError`` otherwise.

    The ``lines`` argument of a retrieval as a person or a model types it (the CLI's ``--lines``, the MCP tools).
    """
    if value is None:
        return None
    first, sep, last = value.strip().partition("-")
    try:
        return (int(first), int(last or first)) if sep or first else None
    except ValueError:
        raise ValueError(f"expected FIRST-LAST, got {value!r}") from None


def slice_lines(text: str, first: int, last: int) -> str:
    """Lines ``first..last`` of ``text`` with their own line endings: joining adjacent slices is lossless."""
    lines = text.splitlines(keepends=True)
    if first < 1 or last < first or last > len(lines):
        raise RetrievalError(f"line range {first}-{last} is outside the original's {len(lines)} lines")
    return "".join(lines[first - 1 : last])


def _query_terms(query: str) -> list[str]:
    return [t for t in re.split(r"\s+", query.strip().lower()) if t]


def grep_lines(text: str, query: str, context: int = 1) -> str:
    """The lines of ``text`` that contain any word of ``query`` (case-insensitive), numbered, with context.

    Numbers are 1-based lines of the original, so a follow-up ``retrieve(id, lines=...)`` can widen a hit.
    """
    terms = _query_terms(query)
    if not terms:
        raise RetrievalError("empty query")
    lines = text.splitlines()
    hits = [i for i, line in enumerate(lines) if any(t in line.lower() for t in terms)]
    keep: set[int] = set()
    for i in hits:
        keep.update(range(max(0, i - context), min(len(lines), i + context + 1)))
    out: list[str] = []
    prev = -2
    for i in sorted(keep):
        if i != prev + 1 and out:
            out.append("...")
        out.append(f"{i + 1}: {lines[i]}")
        prev = i
    if not out:
        return f"(no line matches {query!r})"
    return "\n".join(out)


def retrieve(
    store: CCRStore,
    ref: str,
    *,
    query: str | None = None,
    lines: tuple[int, int] | None = None,
) -> str:
    """The original behind ``ref``: whole, a line range (from the ref or ``lines``), or the lines matching ``query``.

    Whole originals and line ranges are byte-exact; a query answer is a numbered excerpt for the model.
    """
    parsed = parse_ref(ref)
    text = store.get(parsed.id)
    if text is None:
        raise RetrievalError(f"hr:{parsed.id} is not in the store (expired, or from another machine)")
    first, last = lines if lines is not None else (parsed.first, parsed.last)
    if first is not None and last is not None:
        text = slice_lines(text, first, last)
    if query is not None:
        return grep_lines(text, query)
    return text


def expand(store: CCRStore, text: str) -> str:
    """The originals of every reference in ``text``, joined by blank lines (lossless mode, the benchmark)."""
    parts: list[str] = []
    for ref in find_refs(text):
        original = store.get(ref.id)
        if original is None:
            continue
        parts.append(original if ref.first is None else _safe_slice(original, ref))
    return "\n\n".join(parts)


def _safe_slice(original: str, ref: Ref) -> str:
    assert ref.first is not None and ref.last is not None
    try:
        return slice_lines(original, ref.first, ref.last)
    except RetrievalError:
        return original


def put_all(store: CCRStore, entries: Iterable[CCREntry]) -> None:
    """Store every entry (the store's ``put`` is idempotent)."""
    for entry in entries:
        store.put(entry)


def join_entries(entries: Sequence[CCREntry]) -> dict[str, CCREntry]:
    """Entries by id, first occurrence wins (ids are content hashes, so duplicates are equal)."""
    out: dict[str, CCREntry] = {}
    for entry in entries:
        out.setdefault(entry.id, entry)
    return out
