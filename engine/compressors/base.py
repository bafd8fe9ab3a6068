"""The contract between the router and the compressors.

A compressor gets one :class:`Block` (the text of a tool result or a section of one, plus what the tool
call said about it) and a :class:`Context` (the question, the config, and the CCR recorder) and returns the
compressed text. It must never drop content silently: every left-out span goes through
:meth:`Context.elide_lines` (a range of the block's lines) or :meth:`Context.stash` (any other text), which
record the original and return the marker to put in its place. A compressor that cannot handle a block
raises :class:`Skip` with the reason; the router then tries the next compressor in the chain, and passes the
block through unchanged when none fits.

Compressors are pure and deterministic: no clocks, no randomness, no iteration over unordered sets in
output order, no global state that a previous call could change.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from headroom.engine.ccr import CCREntry, content_id, entry_marker, line_marker
from headroom.engine.config import EngineConfig


class Skip(Exception):  # a control-flow signal, not an error the caller sees
    """The compressor does not fit this block; ``str(exc)`` is the reason recorded in the decision."""


@dataclass(frozen=True)
class Block:
    """One piece of content to compress.

    ``tool_name``/``tool_input`` come from the tool call whose result this is (``{}`` when unknown);
    ``path`` is the file the tool read or searched, when its input names one (language detection).
    """

    text: str
    tool_name: str | None = None
    tool_input: Mapping[str, Any] = field(default_factory=dict)
    path: str | None = None


_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*[A-Za-z0-9_]|[0-9]{3,}")
_BACKTICK_RE = re.compile(r"`([^`\n]{1,80})`")
_NEWLINE_RE = re.compile("\n")
_STOPWORD_TEXT = """
    a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each every few for from further had has have
    having he her here hers him his how i if in into is it its itself just me more most my no nor not now of
    off on once only or other our out over own same she should so some such than that the their them then there
    these they this those through to too under until up very was we were what when where which while who whom
    why will with would you your yours give tell show list find using use used exact exactly still one ones
    please next get got let make need want look
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@functools.lru_cache(maxsize=256)
def _words_cached(text: str) -> tuple[str, ...]:
    return tuple(words(text))


@functools.lru_cache(maxsize=256)
def _symbols_cached(text: str) -> tuple[str, ...]:
    return tuple(symbols_in(text))


def words(text: str) -> list[str]:
    """Identifier-like words of ``text``, lower-cased, stopwords and 1-2 letter words removed, in order."""
    out: list[str] = []
    for w in _WORD_RE.findall(text):
        lw = w.lower()
        if len(lw) > 2 and lw not in STOPWORDS:
            out.append(lw)
    return out


def symbols_in(text: str) -> list[str]:
    """Code-like names the text points at: backticked spans and identifiers with ``_``, ``.`` or camelCase."""
    out: list[str] = []
    for span in _BACKTICK_RE.findall(text):
        out.extend(s for s in re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", span) if len(s) > 1)
    for w in _WORD_RE.findall(text):
        if "_" in w or "." in w.strip(".") or re.search(r"[a-z][A-Z]", w):
            out.append(w)
    return list(dict.fromkeys(out))


#: Every byte but the control characters that text never holds (keeps tab, newlines, form feed, ESC).
_NOT_CONTROL = bytes(b for b in range(256) if not (b <= 0x08 or 0x0E <= b <= 0x1A or 0x1C <= b <= 0x1F))
_REPLACEMENT = "\ufffd".encode()


def looks_binary(text: str) -> bool:
    """Bytes that were never text: a NUL near the start, or control/replacement characters in more than 5 %
    of the first 64K characters (ANSI escapes and form feeds are text: terminals and logs use them)."""
    head = text[:65536]
    if not head:
        return False
    if "\x00" in head[:4096]:
        return True
    # Counted on the UTF-8 bytes, in C: the control characters are ASCII, so each is one byte there.
    raw = head.encode("utf-8", "surrogatepass")
    bad = len(raw.translate(None, _NOT_CONTROL)) + (0 if head.isascii() else raw.count(_REPLACEMENT))
    return bad * 20 > len(head)


def estimate_tokens(text: str) -> int:
    """A cheap token estimate (4 characters per token) for budgeting inside compressors."""
    return (len(text) + 3) // 4


class Context:
    """What a compressor may consult and the only way it may leave content out.

    ``original`` is the text the compressor sees; when the router splits a block, each section is an
    original of its own, so line numbers in markers are always lines of ``block.text``.
    """

    def __init__(
        self,
        original: str,
        *,
        question: str | None = None,
        hints: str = "",
        config: EngineConfig | None = None,
        kind: str = "text",
        original_id: str | None = None,
    ) -> None:
        self.original = original
        self.question = question
        self.config = config or EngineConfig()
        self.kind = kind
        #: Lower-cased significant words of the question and the tool input (pattern, path, command).
        #: The question's own significant words (a file it names by stem, without the tool input's words).
        self.terms_of_question: frozenset[str] = frozenset(_words_cached(question or ""))
        self.terms: frozenset[str] = self.terms_of_question | frozenset(_words_cached(hints))
        #: Code-like names the question or the tool input points at (a grep pattern, a backticked name).
        self.symbols: tuple[str, ...] = _symbols_cached(question or "") + _symbols_cached(hints)
        #: The symbols lower-cased, whole and as the ``.name`` endings a dotted one gives (see ``wants``).
        self.symbol_names = frozenset(sym.lower() for sym in self.symbols)
        #: Every lower-cased name :meth:`wants`: the terms, the symbols, and what follows each dot of a dotted
        #: symbol (``Foo.bar`` wants ``bar``; ``a.b.c`` wants ``b.c`` and ``c``).
        self.wanted_names = (
            self.terms
            | self.symbol_names
            | {sym[i + 1 :] for sym in self.symbol_names for i, ch in enumerate(sym) if ch == "."}
        )
        self.entries: list[CCREntry] = []
        #: What was left out, by unit (``{"lines": 120, "rows": 30}``), for the block's decision record.
        self.dropped: dict[str, int] = {}
        self._original_id: str | None = None
        #: ``content_id(original)`` when the caller has it already (the router keys its cache on it).
        self._known_id = original_id

    # -- recording what is left out -------------------------------------------------------------------

    def original_id(self) -> str:
        """The id of the whole original block (stored on first use)."""
        if self._original_id is None:
            self._original_id = self._known_id or content_id(self.original)
            self.entries.append(CCREntry(self._original_id, self.original, self.kind))
        return self._original_id

    def elide_lines(self, first: int, last: int, what: str = "lines") -> str:
        """Marker for lines ``first..last`` (1-based, inclusive) of the block; counts them as dropped."""
        if last < first:
            raise ValueError(f"empty line range {first}-{last}")
        self.count(what, last - first + 1)
        return line_marker(self.original_id(), first, last, what)

    def stash(self, text: str, what: str) -> str:
        """Store ``text`` as its own entry and return a marker for it (``what`` describes it for the model)."""
        entry_id = content_id(text)
        self.entries.append(CCREntry(entry_id, text, self.kind))
        return entry_marker(entry_id, what)

    def whole_marker(self, what: str) -> str:
        """Marker for the whole original block (e.g. after restructuring JSON into a table)."""
        return entry_marker(self.original_id(), what)

    def count(self, what: str, n: int = 1) -> None:
        self.dropped[what] = self.dropped.get(what, 0) + n

    # -- relevance ------------------------------------------------------------------------------------

    def wants(self, name: str) -> bool:
        """Does the question or the tool input point at this name (a term of it, or a code name ending in it)?"""
        return len(name) >= 3 and name.lower() in self.wanted_names

    def relevant_rows(self, lines: Sequence[str], minimum: int = 1) -> list[int]:
        """The rows of ``lines`` whose :meth:`relevance` is at least ``minimum``: found by searching the joined
        text for each term and symbol (only the rows it finds are scored one by one)."""
        needles = {*self.terms, *self.symbol_names}
        if not needles:
            return []
        joined = "\n".join(lines).lower()  # lower() never adds or removes a newline: rows stay aligned
        # str.find per needle (C speed) beats one regex alternation over the text by an order of magnitude.
        breaks: list[int] | None = None
        found: set[int] = set()
        for needle in needles:
            pos = joined.find(needle)
            while pos >= 0:
                if breaks is None:
                    breaks = [m.start() for m in _NEWLINE_RE.finditer(joined)]
                row = bisect.bisect_left(breaks, pos)
                found.add(row)
                if row >= len(breaks):
                    break
                pos = joined.find(needle, breaks[row] + 1)
        rows = sorted(found)
        if minimum > 1:
            return [row for row in rows if self.relevance(lines[row]) >= minimum]
        return rows

    def relevance(self, text: str) -> int:
        """How many distinct query terms and symbols ``text`` contains (0 when there is no question)."""
        if not self.terms and not self.symbols:
            return 0
        low = text.lower()
        hits = sum(1 for t in self.terms if t in low)
        return hits + sum(2 for s in self.symbols if s.lower() in low)


class Compressor(Protocol):
    """One content kind's compressor. Implementations are stateless singletons."""

    kind: ClassVar[str]

    def sniff(self, block: Block) -> bool:
        """Cheap check: does ``block`` look like this kind? (Called by the router in priority order.)"""
        ...

    def compress(self, block: Block, ctx: Context) -> str:
        """The compressed text; raise :class:`Skip` when the block does not fit."""
        ...
