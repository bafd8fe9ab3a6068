"""A bounded cache of outlines, so the same source is parsed once however often it is read.

An agent reads the same module again and again (another turn, another question, a sub-agent), and the
tree-sitter parse of a large file is most of the code compressor's time. The outline walk depends on the
question only through its ``wanted`` answers (:attr:`._outline.Outliner.asked`), so an entry keeps, per
file, a few variants of (the names the walk asked about with their answers, the ranges it chose); a lookup
returns a variant only when the new context answers every one of those names the same way. The walk is
deterministic, so the ranges are exactly what a fresh parse would give: the cache changes speed, never
output. A key is everything else the outline depends on, the source text itself first (see
:func:`headroom.engine.compressors.code.source_key`): comparing keys is then exact, and costs one pass of
Python's string hash instead of a digest of the text on every read. The sources a key holds are bounded by
:data:`MAX_SOURCE_CHARS` as well as the count of files.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

from headroom.engine.compressors.base import Context

#: Files kept (least recently used first out); an entry is a few hundred small tuples and its key's source.
MAX_FILES = 128
#: Characters of source the keys may hold together (the least recently used files go first).
MAX_SOURCE_CHARS = 8_000_000

#: The source text first, then every setting the outline depends on (hashable values).
Key = tuple[object, ...]
#: Variants kept per file: one per distinct set of answers a question gave to the walk.
MAX_VARIANTS = 4

Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class _Variant:
    """One outline of a file, and the answers it rests on: ``wanted`` said yes to ``yes`` and no to ``no``."""

    yes: tuple[str, ...]
    #: The names answered no, lower-cased (those under 3 characters are never wanted and are left out), so
    #: "none of them is wanted" is one set test instead of a call per name.
    no_lower: frozenset[str]
    ranges: Ranges
    #: The indentation of each range's marker (that of the first line with text it hides).
    indents: tuple[str, ...]

    def holds(self, ctx: Context) -> bool:
        return all(ctx.wants(name) for name in self.yes) and ctx.wanted_names.isdisjoint(self.no_lower)


_entries: OrderedDict[Key, str | list[_Variant]] = OrderedDict()
_lock = threading.Lock()


class Outline(NamedTuple):
    """Row ranges to elide (0-based, inclusive, sorted, disjoint) and the indentation of each one's marker."""

    ranges: list[tuple[int, int]]
    indents: list[str]


def _chars(key: Key) -> int:
    return len(key[0]) if key and isinstance(key[0], str) else 0


def source_chars() -> int:
    """Characters of source the cached keys hold (summed when asked: a store is a parse's rare companion)."""
    with _lock:
        return sum(map(_chars, _entries))


def lookup(key: Key, ctx: Context) -> Outline | str | None:
    """The cached outline for ``key`` under ``ctx``, the reason a cached file did not parse, or ``None``."""
    with _lock:
        entry = _entries.get(key)
        if entry is None:
            return None
        _entries.move_to_end(key)
        variants = entry if isinstance(entry, str) else list(entry)
    if isinstance(variants, str):
        return variants
    for variant in variants:
        if variant.holds(ctx):
            return Outline(list(variant.ranges), list(variant.indents))
    return None


def store(key: Key, outline: Outline | str, asked: list[tuple[str, bool]] | None = None) -> None:
    """Keep ``outline`` (or a parse failure's reason) for ``key``, with the ``wanted`` answers it rests on."""
    with _lock:
        if isinstance(outline, str):
            _entries[key] = outline
        else:
            answers = dict(asked or ())  # one answer per name: it is the same each time it is asked
            variant = _Variant(
                tuple(name for name, answer in answers.items() if answer),
                frozenset(name.lower() for name, answer in answers.items() if not answer and len(name) >= 3),
                tuple(outline.ranges),
                tuple(outline.indents),
            )
            current = _entries.get(key)
            if not isinstance(current, list):
                _entries[key] = [variant]
            elif variant not in current:
                current.append(variant)
                del current[:-MAX_VARIANTS]
        _entries.move_to_end(key)
        while len(_entries) > MAX_FILES:
            _entries.popitem(last=False)
        held = sum(map(_chars, _entries))
        while held > MAX_SOURCE_CHARS and len(_entries) > 1:
            held -= _chars(_entries.popitem(last=False)[0])


def clear() -> None:
    """Forget every outline (tests and the benchmark's cold runs)."""
    with _lock:
        _entries.clear()
