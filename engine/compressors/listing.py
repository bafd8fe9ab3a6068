"""Numbered file listings (an agent's Read tool, ``cat -n``): the code outline, numbers and all.

Claude Code's Read tool and ``cat -n`` prefix every line with its number (``     1→import os``,
``     1\\timport os``). The numbers matter: the agent cites and edits by them. So the outline is computed on
the code with the prefixes stripped, and every kept line is the original numbered line, byte for byte. The
listing's lines map 1:1 to the block's lines, so an elided range of code lines is the same range of the
block, and retrieving it gives back the numbered lines.

A file the question names keeps every signature (nested ones too) and only loses long bodies; any other
file is cut to its top-level and class-level outline. A listing that is not code in a known language
(prose, config) keeps its head, tail, section headers and the lines the question's words appear on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from headroom.engine.compressors import _outline_cache as outline_cache
from headroom.engine.compressors._outline import DETAILED, OUTLINE, gaps, normalize
from headroom.engine.compressors._outline_cache import Outline
from headroom.engine.compressors.base import Block, Context, Skip
from headroom.engine.compressors.code import (
    elided_share,
    is_listing,
    marker_indents,
    named_by_question,
    outline,
    render,
    source_key,
)

_PREFIX_RE = re.compile(r"^ *\d+(?:\t|→)")
#: The same over a text with a newline before every line: a literal ``\n`` first lets the regex engine jump
#: from line to line instead of trying ``(?m)^`` at every character.
_NL_PREFIX_RE = re.compile(r"\n *\d+(?:\t|→)")
_NL_UNNUMBERED_RE = re.compile(r"\n(?! *\d+(?:\t|→))")
#: Lines that give a non-code file its shape: Markdown headings, INI/TOML sections, top-level YAML keys.
_STRUCTURE_RE = re.compile(r"^(?:#{1,6} \S|\[[^\]\n]+\]\s*$|[A-Za-z_][\w.-]*:(?:\s|$))")
_MAX_STRUCTURE = 40


def strip_numbers(lines: list[str]) -> tuple[list[str], int]:
    """Each line's code without its number (``""`` for an unnumbered line), and the last numbered row.

    One substitution over the joined text does the work in C; a regex for the unnumbered lines (a tool's
    trailing note, blank lines) blanks those, so the result is what matching each line would give.
    """
    if not lines:
        return [], -1
    joined = "\n" + "\n".join(lines)  # a newline before every line, the first one included
    stripped, count = _NL_PREFIX_RE.subn("\n", joined)
    code = stripped[1:].split("\n")
    if count == len(lines):
        return code, len(lines) - 1
    unnumbered: set[int] = set()
    row, pos = 0, 0
    for m in _NL_UNNUMBERED_RE.finditer(joined):
        row += joined.count("\n", pos, m.start())  # the newlines before this line's own: its row
        pos = m.start()
        unnumbered.add(row)
        code[row] = ""
    last_numbered = len(lines) - 1
    while last_numbered >= 0 and last_numbered in unnumbered:
        last_numbered -= 1
    return code, last_numbered


#: What ``str.splitlines`` ends a line at, besides ``\r\n``.
_LINE_ENDS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def numbered_part(text: str, lines: list[str], last: int) -> str:
    """A text that determines ``lines[: last + 1]`` (``text.splitlines()`` up to the last numbered row): the
    slice of ``text`` before the rows after ``last`` when they are joined by plain newlines (so no copy of each
    line is joined again), else those rows joined."""
    end = len(text)
    if text.endswith("\r\n"):
        end -= 2
    elif text and text[-1] in _LINE_ENDS:
        end -= 1
    after = "".join("\n" + line for line in lines[last + 1 :])
    cut = end - len(after)
    if cut >= 0 and text.startswith(after, cut, end):
        return text[:cut]
    return "\n".join(lines[: last + 1])


def text_ranges(lines: Sequence[str], ctx: Context, named: bool) -> list[tuple[int, int]]:
    """Row ranges to elide from a non-code listing: all but head, tail, structure and relevant lines."""
    n = len(lines)
    head, tail = (40, 10) if named else (12, 5)
    keep = set(range(min(head, n))) | set(range(max(0, n - tail), n))
    structure = [i for i, line in enumerate(lines) if _STRUCTURE_RE.match(line)]
    keep.update(structure[:_MAX_STRUCTURE])
    for i in ctx.relevant_rows(lines):
        keep.update(range(max(0, i - 1), min(n, i + 2)))
    return gaps(lines, keep)


class ListingCompressor:
    """Numbered listings: the outline of the code, keeping each kept line exactly as numbered."""

    kind: ClassVar[str] = "listing"

    def sniff(self, block: Block) -> bool:
        return is_listing(block.text)

    def compress(self, block: Block, ctx: Context) -> str:
        if ctx.config.file_read_policy == "exact":
            raise Skip("file_read_policy=exact")
        lines = block.text.splitlines()
        last_numbered = len(lines) - 1
        while last_numbered >= 0 and _PREFIX_RE.match(lines[last_numbered]) is None:
            last_numbered -= 1
        if last_numbered < 0:
            raise Skip("no numbered lines")
        named = ctx.config.keep_files_named_by_question and named_by_question(block, ctx)
        detail = DETAILED if named else OUTLINE
        # The numbered lines and the count of unnumbered ones after them determine the code exactly (an
        # unnumbered line's code is ""), so a cached outline needs no stripping of numbers: a tool's trailing
        # note may change from one read of the file to the next.
        key = source_key(numbered_part(block.text, lines, last_numbered), "listing", block.path, len(lines), detail)
        try:
            found = outline_cache.lookup(key, ctx)
            if isinstance(found, str):
                raise Skip(found)
            if found is None:
                found = outline(block, strip_numbers(lines)[0], ctx, detail, line_cost=4, key=key)
        except Skip:
            code = strip_numbers(lines)[0]
            ranges = normalize(text_ranges(code, ctx, named), code)
            found = Outline(ranges, marker_indents(ranges, code.__getitem__))
        # A tool's unnumbered trailing note stays in view; a marker never swallows it. (Its rows are blank as
        # code, so clipping a range there never changes the line its marker's indentation comes from.)
        kept = [((a, min(b, last_numbered)), ind) for (a, b), ind in zip(*found, strict=True) if a <= last_numbered]
        ranges = [r for r, _ in kept]
        if elided_share(lines, ranges) < 0.15:
            raise Skip("outline keeps almost everything")
        return render(lines, ranges, ctx, [ind for _, ind in kept], block.text.endswith(("\n", "\r")))
