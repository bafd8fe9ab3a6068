"""Added and removed blocks of a diff, read as the content they are.

A diff that adds a module (``git log -p`` of a feature, ``git diff --no-index`` of a new release) is mostly
``+`` lines: code a reviewer navigates by its outline, exactly as they would the file itself. So each long
run of added or removed lines is stripped of its one-character prefix (and of any indentation the whole run
shares, so a method added inside a class parses), outlined with the code compressor's machinery, and the
outline's elided ranges become line-range markers into the diff. What stays is every signature (private and
nested ones too: a changed signature is the point of a review), docstring first lines, short bodies, and
any body the question names. A run in no known language, or one that does not parse, keeps its head, its
tail, its structure lines (headings, ``def``-like lines) and the lines the question points at.

Every decision is a range of the diff's own lines, so each marker gives back the exact ``+``/``-`` lines.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from headroom.engine.compressors._outline import MIN_ELIDE, Detail, gaps, wanted
from headroom.engine.compressors.base import Block, Context, Skip
from headroom.engine.compressors.code import outline

#: A run of an added or deleted file shorter than this is read whole: a small change is the review itself.
MIN_RUN_LINES = 12
#: Inside a file that was only modified, a run is outlined from this many lines on (a large hunk): a new
#: helper of a few dozen lines is what the reviewer came to read.
LARGE_RUN_LINES = 60
#: Without an outline (prose, config, data, unparsable code) a run is thinned from this many lines on ...
GENERIC_MIN_RUN = 24
#: ... or from this many characters (a few JSON Lines records of a fixture are kilobytes each).
GENERIC_MIN_CHARS = 3000
#: A generic run keeps up to this many lines (and characters) at its head, and at its tail; one line at least.
GENERIC_HEAD, GENERIC_HEAD_CHARS = 4, 400
GENERIC_TAIL, GENERIC_TAIL_CHARS = 2, 200
#: A generic gap shorter than this many characters stays: the marker would cost as much.
GENERIC_GAP_CHARS = 160
#: An added or removed file outside the question: every signature (nested and private ones too), bodies go.
DIFF_OUTLINE = Detail(
    short_body=2, body_tokens=24, stmt_lines=3, comment_lines=1, type_lines=30, nested=True, hide_private=False
)
#: A file the question names by path keeps the code compressor's detailed outline.
DIFF_DETAILED = Detail(
    short_body=4, body_tokens=48, stmt_lines=4, comment_lines=3, type_lines=80, nested=True, hide_private=False
)
_STRUCTURE_RE = re.compile(
    r"^\s*(?:#{1,6} \S|\[[^\]\n]+\]\s*$|(?:(?:export|pub|async|static|public|private|protected|abstract|"
    r"default)\s+)*(?:def|class|function|func|fn|interface|struct|enum|trait|impl|type|module|namespace)\b)"
)
_HEADER_NAMES_RE = re.compile(r"[A-Za-z_$][\w$]*")


def hunk_is_targeted(header: str, ctx: Context) -> bool:
    """Does the question name the function or class git printed after a hunk's ``@@ … @@``?"""
    tail = header.split("@@", 2)[-1] if header.count("@@") >= 2 else ""
    return any(wanted(ctx, name) for name in _HEADER_NAMES_RE.findall(tail))


def _dedent(code: list[str]) -> list[str]:
    """``code`` less the leading whitespace every non-blank line shares (rows stay where they are)."""
    nonblank = [line for line in code if line.strip()]
    if not nonblank:
        return code
    prefix = nonblank[0][: len(nonblank[0]) - len(nonblank[0].lstrip())]
    for line in nonblank[1:]:
        while prefix and not line.startswith(prefix):
            prefix = prefix[:-1]
    if not prefix:
        return code
    return [line[len(prefix) :] if line.strip() else "" for line in code]


def _edge(rows: Sequence[int], code: Sequence[str], max_lines: int, max_chars: int) -> set[int]:
    """The first of ``rows`` (in order) up to ``max_lines`` lines and ``max_chars`` characters; one at least."""
    keep: set[int] = set()
    chars = 0
    for row in rows[:max_lines]:
        chars += len(code[row]) + 1
        if keep and chars > max_chars:
            break
        keep.add(row)
    return keep


def _generic_ranges(code: Sequence[str]) -> list[tuple[int, int]]:
    """Rows to elide from a run with no outline: all but its head, tail and structure lines."""
    n = len(code)
    if n < GENERIC_MIN_RUN and (n < MIN_ELIDE + 2 or sum(len(line) + 1 for line in code) < GENERIC_MIN_CHARS):
        return []
    keep = _edge(range(n), code, GENERIC_HEAD, GENERIC_HEAD_CHARS)
    keep |= _edge(range(n - 1, -1, -1), code, GENERIC_TAIL, GENERIC_TAIL_CHARS)
    keep.update(i for i, line in enumerate(code) if _STRUCTURE_RE.match(line))
    return gaps(code, keep, GENERIC_GAP_CHARS)


def _split_around(ranges: list[tuple[int, int]], code: Sequence[str], ctx: Context) -> list[tuple[int, int]]:
    """``ranges`` with the lines the question points at (a code name it mentions, or two of its words) taken
    out of them: they stay verbatim."""
    if not ranges or (not ctx.terms and not ctx.symbols):
        return ranges
    pointed = set(ctx.relevant_rows(code, minimum=2))
    if not pointed:
        return ranges
    out: list[tuple[int, int]] = []
    for first, last in ranges:
        start = first
        for row in range(first, last + 1):
            if row in pointed:
                if row - start >= MIN_ELIDE:
                    out.append((start, row - 1))
                start = row + 1
        if last + 1 - start >= MIN_ELIDE:
            out.append((start, last))
    return out


def run_ranges(path: str | None, code: list[str], ctx: Context, named: bool, whole: bool) -> list[tuple[int, int]]:
    """Rows (0-based, inclusive, sorted, disjoint) of one run's prefix-stripped lines to elide.

    ``whole`` says the hunk adds or deletes a whole file (one of its sides is empty).
    """
    wide = len(code) > MIN_ELIDE + 2 and sum(len(line) + 1 for line in code) >= GENERIC_MIN_CHARS
    if len(code) < (MIN_RUN_LINES if whole else LARGE_RUN_LINES) and not wide:
        return []
    code = _dedent(code)
    try:
        ranges = outline(Block("", path=path), code, ctx, DIFF_DETAILED if named else DIFF_OUTLINE).ranges
    except Skip:
        ranges = _generic_ranges(code)
    return _split_around(ranges, code, ctx)


def change_runs(body: Sequence[int], lines: Sequence[str]) -> list[tuple[str, list[int]]]:
    """Runs of consecutive ``+`` or ``-`` lines of a one-parent hunk body: (sign, line indices)."""
    runs: list[tuple[str, list[int]]] = []
    for i in body:
        sign = lines[i][:1]
        if sign not in ("+", "-"):
            continue
        if runs and runs[-1][0] == sign and runs[-1][1][-1] == i - 1:
            runs[-1][1].append(i)
        else:
            runs.append((sign, [i]))
    return runs
