"""Extractive prose compression: keep the lines and sentences that carry the most, elide the rest.

Tool results no structured compressor claims (READMEs, docs, issue bodies, fetched pages, plain listings)
are cut by choosing units, never by rewriting them: what stays is byte-exact, so a name, number or quote the
model repeats back is real. A unit is a line, a sentence of a long line, or a whole code fence (code is
kept or elided as one piece, never half a function). Scores use cheap signals only, because the router
sends multi-MB blocks here and everything must stay one pass plus one sort: position in the paragraph and
the document, the question's terms, numbers, identifiers, error words, in-document rarity (an IDF over
units) and repetition. The best units are kept in their original order up to ``text_keep_ratio`` of the
characters.

Listings (paths, ``ls -la``, an unparsable blob) take the same path with a heavier head/tail weight;
consecutive near-identical lines (digits masked) collapse into one kept line and a "similar lines" marker
that carries the count. Runs of dropped whole lines point into the original by line range; sentences cut
out of a kept line are stashed as entries of their own. :func:`compress_prose` also serves converted text
(HTML) whose lines are not the block's: there every dropped run is stashed.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

from headroom.engine.compressors.base import Block, Context, Skip, looks_binary, words

#: Below this many characters a marker costs about what it saves.
MIN_CHARS = 400
#: Lines longer than this are split into sentences so one paragraph-per-line document can be cut inside.
LONG_LINE = 240
#: A sentence-less stretch (minified JSON, a wall of paths) is cut near this size at a comma or space.
PIECE_MAX = 400
#: A marker is ~50 characters: shorter dropped runs stay in, it would cost more than it saves.
MIN_ELIDE_CHARS = 120
MIN_STASH_CHARS = 150
#: However large the block, the kept part stays readable; the rest is one retrieve away.
MAX_KEEP_CHARS = 60_000

FENCE_RE = re.compile(r"^\s{0,3}(```|~~~)")
_HEADING_RE = re.compile(r"^\s{0,3}#{1,6}\s+\S")
_UNDERLINE_RE = re.compile(r"^\s*([=\-~^*#])\1{2,}\s*$")
_SENT_END_RE = re.compile(r"[.!?][\"')\]]*\s+(?=[\"'(\[`*_A-Z0-9])")
_ERROR_RE = re.compile(
    r"\b(errors?|exception|fail(?:ed|ure|s)?|fatal|panic|warn(?:ing)?|traceback|denied|invalid|refused|timeout|"
    r"not found|deprecated|must|never|important|breaking|cannot|unable|required)\b",
    re.IGNORECASE,
)
_IDENT_RE = re.compile(r"`[^`\n]+`|\b[A-Za-z]+_\w+|\b[a-z]+[A-Z]\w*|\w\.\w+\(|/[\w.-]+/|--?[a-z][\w-]+")
_DIGIT_RE = re.compile(r"\d")
_MASK_RE = re.compile(r"0x[0-9a-fA-F]+|[0-9a-f]{7,}|\d+")
_WS_RE = re.compile(r"\s+")
_LIST_ITEM_RE = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s")
_PROSE_WORD_RE = re.compile(r"(?:^|\s)[a-z]{2,}[,;:.]?(?=\s|$)")


@dataclass(slots=True)
class _Unit:
    first: int  # 0-based first line
    last: int  # 0-based last line (a fence spans several)
    start: int  # span inside the line for sentences; the whole line otherwise
    end: int
    text: str
    kind: str  # "line", "sentence" or "fence"
    score: float = 0.0
    forced: bool = False
    dup: bool = False
    keep: bool = False


class TextCompressor:
    """Extractive compressor for prose and generic text; the router's last resort."""

    kind: ClassVar[str] = "text"

    def sniff(self, block: Block) -> bool:
        return len(block.text) >= MIN_CHARS and not looks_binary(block.text)

    def compress(self, block: Block, ctx: Context) -> str:
        if len(block.text) < MIN_CHARS:
            raise Skip(f"too short for prose compression ({len(block.text)} chars)")
        if looks_binary(block.text):
            raise Skip("looks binary")
        return compress_prose(block.text, ctx, addressable=True)


def compress_prose(text: str, ctx: Context, *, addressable: bool) -> str:
    """Keep the best units of ``text`` and elide the rest.

    ``addressable`` says whether the lines of ``text`` are the block's lines (markers by line range);
    otherwise every dropped run is stashed. Raises :class:`Skip` when there is too little to gain.
    """
    lines = text.splitlines()
    units = _segment(lines)
    if len(units) < 4:
        raise Skip(f"only {len(units)} units of text")
    _score(units, lines, ctx)
    _select(units, ctx.config.text_keep_ratio)
    out = _assemble(text, lines, units, ctx, addressable)
    if len(out) >= len(text) * 0.95:
        raise Skip("nothing worth eliding")
    return out


# -- units ---------------------------------------------------------------------------------------------


def _segment(lines: list[str]) -> list[_Unit]:
    units: list[_Unit] = []
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        fence = FENCE_RE.match(line)
        if fence:
            close = fence.group(1)
            j = i + 1
            while j < n and not lines[j].lstrip().startswith(close):
                j += 1
            if j < n:  # an unclosed fence is not code we could keep whole; read it as lines
                units.append(_Unit(i, j, 0, 0, "\n".join(lines[i : j + 1]), "fence"))
                i = j + 1
                continue
        spans = _sentences(line) if len(line) > LONG_LINE else [(0, len(line))]
        kind = "sentence" if len(spans) > 1 else "line"
        units.extend(_Unit(i, i, a, b, line[a:b], kind) for a, b in spans)
        i += 1
    return units


def _sentences(line: str) -> list[tuple[int, int]]:
    """Spans covering ``line`` exactly: sentences, each carrying the whitespace after it."""
    bounds = [0, *(m.end() for m in _SENT_END_RE.finditer(line)), len(line)]
    out: list[tuple[int, int]] = []
    for a, b in itertools.pairwise(bounds):
        pos = a
        while b - pos > 2 * PIECE_MAX:
            cut = _soft_cut(line, pos + PIECE_MAX // 2, pos + PIECE_MAX)
            out.append((pos, cut))
            pos = cut
        if b > pos:
            out.append((pos, b))
    return out


def _soft_cut(line: str, lo: int, hi: int) -> int:
    for sep in (". ", ", ", ",", "; ", " ", "/"):
        pos = line.rfind(sep, lo, hi)
        if pos >= 0:
            return pos + len(sep)
    return hi


def _is_heading(lines: list[str], i: int) -> bool:
    line = lines[i]
    if _HEADING_RE.match(line):
        return True
    if _UNDERLINE_RE.match(line):
        return i > 0 and bool(lines[i - 1].strip())
    return i + 1 < len(lines) and bool(line.strip()) and bool(_UNDERLINE_RE.match(lines[i + 1]))


def _signature(text: str) -> str:
    return _MASK_RE.sub("0", _WS_RE.sub(" ", text.strip().lower()))


# -- scoring and selection -----------------------------------------------------------------------------


def _score(units: list[_Unit], lines: list[str], ctx: Context) -> None:
    n = len(units)
    # dicts, not sets: float sums must not depend on hash order, or ties could break differently per run
    bags = [list(dict.fromkeys(words(u.text))) for u in units]
    df: Counter[str] = Counter()
    for bag in bags:
        df.update(bag)
    idf = {w: math.log((n + 1) / (c + 0.5)) for w, c in df.items()}
    raw = [sum(idf[w] for w in bag) / math.sqrt(len(bag) + 1) for bag in bags]
    top = max(raw) or 1.0
    prose = sum(1 for u in units if len(_PROSE_WORD_RE.findall(u.text)) >= 5)
    listing = prose * 10 < n * 3
    seen: set[str] = set()
    exact: set[str] = set()
    prev_sig = ""
    run = 0
    for k, u in enumerate(units):
        text = u.text
        rel = ctx.relevance(text)
        sig = _signature(text) if u.kind != "fence" else text
        s = raw[k] / top * (0.5 if listing else 1.0)
        s += 0.4 * bool(_DIGIT_RE.search(text)) + 0.4 * bool(_IDENT_RE.search(text))
        s += 0.8 * bool(_ERROR_RE.search(text)) + 1.6 * min(rel, 3)
        para_first = (
            u.first == 0
            or not lines[u.first - 1].strip()
            or _is_heading(lines, u.first - 1)
            or bool(_LIST_ITEM_RE.match(lines[u.first]))
        )
        para_last = u.last + 1 >= len(lines) or not lines[u.last + 1].strip()
        if para_first and u.start == 0:
            s += 0.6
        if para_last and u.end == len(lines[u.last]) and u.kind != "fence":
            s += 0.2
        if u.kind != "fence" and _is_heading(lines, u.first):
            s += 3.0
        elif u.kind == "fence":
            s += 1.5  # examples in docs are what an agent copies; a long fence is still worth its length
        if listing:
            # records look alike: a smooth head/tail prior keeps contiguous stretches instead of a sieve
            s += 2.0 * max(0.0, 1 - k / (0.25 * n)) + 1.5 * max(0.0, 1 - (n - 1 - k) / (0.1 * n))
        elif k < 3:
            s += 1.0
        elif k >= n - 2:
            s += 0.5
        if len(text.strip()) < 25 and u.kind != "fence":
            s *= 0.6
        if sig == prev_sig and u.kind == "line" and rel == 0:
            u.dup = True
            s = -1.0
        elif sig in seen:
            # a verbatim repeat tells nothing new; one that differs only in numbers might
            s = 0.0 if rel == 0 and text.strip() in exact else s * 0.3
        seen.add(sig)
        exact.add(text.strip())
        if u.dup:
            run += 1
        else:
            _end_run(units, k - 1, run)
            run = 0
        prev_sig = sig if u.kind == "line" else ""
        u.score = s
    _end_run(units, n - 1, run)
    units[0].forced = True
    units[-1].forced = True


def _end_run(units: list[_Unit], last: int, run: int) -> None:
    """A long run of similar lines keeps its last line too, so the reader sees where the range ends."""
    if run >= 4:
        units[last].dup = False
        units[last].forced = True


def _select(units: list[_Unit], ratio: float) -> None:
    ratio = min(max(ratio, 0.05), 0.95)
    total = sum(len(u.text) for u in units)
    budget = min(total * ratio, MAX_KEEP_CHARS)
    used = 0
    for u in units:
        if u.forced:
            u.keep = True
            used += len(u.text)
    order = sorted(range(len(units)), key=lambda k: (-units[k].score / math.sqrt(len(units[k].text) + 40), k))
    for k in order:
        u = units[k]
        if u.keep:
            continue
        if u.score <= 0 or used >= budget:
            break
        if used + len(u.text) <= budget:
            u.keep = True
            used += len(u.text)


# -- output --------------------------------------------------------------------------------------------

_BLANK, _KEPT, _DROPPED, _PARTIAL = 0, 1, 2, 3


def _assemble(text: str, lines: list[str], units: list[_Unit], ctx: Context, addressable: bool) -> str:
    raw = text.splitlines(keepends=True)
    status = bytearray(len(lines))
    dup_line = bytearray(len(lines))
    code_line = bytearray(len(lines))
    pieces: dict[int, list[_Unit]] = {}
    for u in units:
        if u.kind == "sentence":
            pieces.setdefault(u.first, []).append(u)
            continue
        for i in range(u.first, u.last + 1):
            status[i] = _KEPT if u.keep else _DROPPED
            dup_line[i] = u.dup
            code_line[i] = u.kind == "fence"
    for i, group in pieces.items():
        kept = sum(u.keep for u in group)
        status[i] = _DROPPED if kept == 0 else _KEPT if kept == len(group) else _PARTIAL

    out: list[str] = []
    i, n = 0, len(lines)
    while i < n:
        if status[i] != _DROPPED:
            out.append(_render_partial(raw[i], pieces[i], ctx) if status[i] == _PARTIAL else raw[i])
            i += 1
            continue
        j = i
        while j + 1 < n and status[j + 1] in (_DROPPED, _BLANK):
            j += 1
        while status[j] == _BLANK:
            j -= 1
        if sum(len(raw[k]) for k in range(i, j + 1)) < MIN_ELIDE_CHARS:
            out.extend(raw[i : j + 1])
        else:
            out.append(_run_marker(raw, i, j, ctx, addressable, dup_line, code_line))
        i = j + 1
    return "".join(out)


def _run_marker(
    raw: list[str], i: int, j: int, ctx: Context, addressable: bool, dup_line: bytearray, code_line: bytearray
) -> str:
    content = [k for k in range(i, j + 1) if raw[k].strip()]
    if all(dup_line[k] for k in content):
        what = "similar lines"
    elif all(code_line[k] for k in content):
        what = "code lines"
    else:
        what = "lines"
    if addressable:
        marker = ctx.elide_lines(i + 1, j + 1, what)
    else:
        count = j - i + 1
        ctx.count(what, count)
        noun = what if count != 1 else what[:-1]
        marker = ctx.stash("".join(raw[i : j + 1]), f"{count} {noun} elided")
    first = raw[i]
    indent = first[: len(first) - len(first.lstrip(" \t"))]
    ending = raw[j][len(raw[j].rstrip("\r\n")) :]
    return f"{indent}{marker}{ending}"


def _render_partial(raw_line: str, group: list[_Unit], ctx: Context) -> str:
    """A long line with some sentences kept: each dropped run worth a marker is stashed."""
    body = raw_line.rstrip("\r\n")
    ending = raw_line[len(body) :]
    out: list[str] = []
    k = 0
    while k < len(group):
        if group[k].keep:
            out.append(body[group[k].start : group[k].end])
            k += 1
            continue
        m = k
        while m + 1 < len(group) and not group[m + 1].keep:
            m += 1
        run = body[group[k].start : group[m].end]
        core = run.rstrip()
        if len(core) < MIN_STASH_CHARS:
            out.append(run)
        else:
            count = m - k + 1
            ctx.count("sentences", count)
            noun = "sentences" if count != 1 else "sentence"
            out.append(ctx.stash(core, f"{count} {noun} elided") + run[len(core) :])
        k = m + 1
    return "".join(out) + ending
