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

from headroom.engine.compressors._outline import DETAILED, MIN_ELIDE, OUTLINE, normalize
from headroom.engine.compressors.base import Block, Context, Skip
from headroom.engine.compressors.code import elided_share, is_listing, named_by_question, outline_ranges, render

_NUMBERED_RE = re.compile(r"^ *\d+(?:\t|→)(.*)$", re.DOTALL)
#: Lines that give a non-code file its shape: Markdown headings, INI/TOML sections, top-level YAML keys.
_STRUCTURE_RE = re.compile(r"^(?:#{1,6} \S|\[[^\]\n]+\]\s*$|[A-Za-z_][\w.-]*:(?:\s|$))")
_MAX_STRUCTURE = 40


def text_ranges(lines: Sequence[str], ctx: Context, named: bool) -> list[tuple[int, int]]:
    """Row ranges to elide from a non-code listing: all but head, tail, structure and relevant lines."""
    n = len(lines)
    head, tail = (40, 10) if named else (12, 5)
    keep = set(range(min(head, n))) | set(range(max(0, n - tail), n))
    structure = [i for i, line in enumerate(lines) if _STRUCTURE_RE.match(line)]
    keep.update(structure[:_MAX_STRUCTURE])
    for i, line in enumerate(lines):
        if line.strip() and ctx.relevance(line) > 0:
            keep.update(range(max(0, i - 1), min(n, i + 2)))
    ranges: list[tuple[int, int]] = []
    start: int | None = None
    for i in range(n + 1):
        if i < n and i not in keep:
            if start is None:
                start = i
        elif start is not None:
            if i - start >= MIN_ELIDE:
                ranges.append((start, i - 1))
            start = None
    return ranges


class ListingCompressor:
    """Numbered listings: the outline of the code, keeping each kept line exactly as numbered."""

    kind: ClassVar[str] = "listing"

    def sniff(self, block: Block) -> bool:
        return is_listing(block.text)

    def compress(self, block: Block, ctx: Context) -> str:
        if ctx.config.file_read_policy == "exact":
            raise Skip("file_read_policy=exact")
        lines = block.text.splitlines()
        code: list[str] = []
        last_numbered = -1
        for i, line in enumerate(lines):
            m = _NUMBERED_RE.match(line)
            code.append("" if m is None else m.group(1))
            if m is not None:
                last_numbered = i
        if last_numbered < 0:
            raise Skip("no numbered lines")
        named = ctx.config.keep_files_named_by_question and named_by_question(block, ctx)
        try:
            ranges = outline_ranges(block, code, ctx, DETAILED if named else OUTLINE, line_cost=4)
        except Skip:
            ranges = normalize(text_ranges(code, ctx, named), code)
        # A tool's unnumbered trailing note stays in view; a marker never swallows it.
        ranges = [(a, min(b, last_numbered)) for a, b in ranges if a <= last_numbered]
        if elided_share(lines, ranges) < 0.15:
            raise Skip("outline keeps almost everything")
        return render(lines, ranges, ctx, code, block.text.endswith(("\n", "\r")))
