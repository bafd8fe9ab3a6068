"""Source code: keep the outline an agent navigates by, elide the bodies it has not asked about.

An agent that reads a module mostly needs its shape: imports, signatures (decorators and multi-line
parameter lists verbatim, since the agent edits by exact text), class layouts, types, constants and the
first line of each docstring. Function bodies are most of the tokens and are elided one body per marker,
so a single retrieve call gives back exactly the lines an edit needs. Bodies the question points at (by
function or class name) and bodies too short to be worth a marker stay in full.

Parsing uses tree-sitter grammars; what differs between languages is only node-type names, kept in
:mod:`._languages`; the walk that picks the ranges is :mod:`._outline`. Every decision is a range of the
block's lines, so the same outline serves the numbered listings of :mod:`.listing`, which keep their
original numbered lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import ClassVar

from headroom.engine.compressors import _languages as langs
from headroom.engine.compressors import _outline_cache as outline_cache
from headroom.engine.compressors._outline import DETAILED, OUTLINE, Detail, error_rows, outline_tree
from headroom.engine.compressors.base import Block, Context, Skip

#: Share of lines inside parse errors above which the file is not outlined (the tree would mislead).
MAX_ERROR_SHARE = 0.2
#: Unlabelled text must parse almost cleanly: a wrong guess of language shows up as errors.
MAX_ERROR_SHARE_GUESSED = 0.05
_LISTING_RE = re.compile(r"^\s*\d+(?:\t|→)")
#: The same test on each line of a sample joined with a newline before every line. Anchored on the literal
#: ``\n`` rather than ``(?m)^``: the regex engine then jumps from newline to newline instead of trying every
#: character (twice as fast). ``[^\S\n]`` is a line's own leading blanks only.
_LISTING_LINE_RE = re.compile(r"\n[^\S\n]*\d+(?:\t|→)")
#: ``path:12:`` / ``path-12-`` prefixes of grep output: code inside, but not a file to outline.
_GREP_RE = re.compile(r"^[\w./\\-]+[:-]\d+[:-]")


def named_by_question(block: Block, ctx: Context) -> bool:
    """Does the question (not the tool input) name this file, by path, file name or stem?"""
    if not block.path or not ctx.question:
        return False
    path = block.path.replace("\\", "/")
    base = path.rsplit("/", 1)[-1]
    stem = base.split(".", 1)[0].lower()
    question = ctx.question.lower()
    if path.lower() in question or base.lower() in question:
        return True
    return len(stem) > 2 and stem in ctx.terms_of_question


def candidate_languages(block: Block, text: str) -> tuple[tuple[str, ...], bool]:
    """The languages to try, and whether they are a guess from the text rather than the file name."""
    by_path = langs.languages_for_path(block.path)
    if by_path:
        return by_path, False
    return langs.detect_languages(text), True


def source_key(source: str, *parts: object) -> outline_cache.Key:
    """The outline cache's key: the text and every setting the outline depends on (hashable values)."""
    return (source, *parts)


def outline(
    block: Block,
    code_lines: Sequence[str],
    ctx: Context,
    detail: Detail,
    line_cost: int = 1,
    key: outline_cache.Key | None = None,
) -> outline_cache.Outline:
    """Row ranges of ``code_lines`` to elide (0-based, inclusive, sorted, disjoint) and each marker's indentation;
    :class:`Skip` if unparsable.

    ``line_cost`` is the tokens a line costs beyond its text (a listing's line number). Outlines are cached
    (:mod:`._outline_cache`) under ``key``, which must determine ``code_lines``, the path, ``detail`` and
    ``line_cost``; by default it is a digest of them.
    """
    source = None
    if key is None:
        source = "\n".join(code_lines)
        key = source_key(source, "code", block.path, len(code_lines), detail, line_cost)
    cached = outline_cache.lookup(key, ctx)
    if isinstance(cached, str):
        raise Skip(cached)
    if cached is not None:
        return cached
    if source is None:
        source = "\n".join(code_lines)
    try:
        ranges, asked = _parse_and_outline(block, code_lines, source, ctx, detail, line_cost)
    except Skip as exc:
        outline_cache.store(key, str(exc))
        raise
    found = outline_cache.Outline(ranges, marker_indents(ranges, code_lines.__getitem__))
    outline_cache.store(key, found, asked)
    return found


def marker_indents(ranges: Sequence[tuple[int, int]], code_line: Callable[[int], str]) -> list[str]:
    """Each range's marker indentation: that of the first line with text it hides (``code_line(row)``)."""
    out: list[str] = []
    for first, last in ranges:
        text = next((code for code in map(code_line, range(first, last + 1)) if code.strip()), "")
        out.append(text[: len(text) - len(text.lstrip())])
    return out


def _parse_and_outline(
    block: Block, code_lines: Sequence[str], source: str, ctx: Context, detail: Detail, line_cost: int
) -> tuple[list[tuple[int, int]], list[tuple[str, bool]]]:
    candidates, guessed = candidate_languages(block, source)
    if not candidates:
        raise Skip("unknown language")
    limit = MAX_ERROR_SHARE_GUESSED if guessed else MAX_ERROR_SHARE
    reasons: list[str] = []
    for lang in candidates:
        tree = langs.parse(lang, source.encode("utf-8", "surrogatepass"))
        if tree is None:
            reasons.append(f"no {lang} grammar installed")
            continue
        root = tree.root_node
        if root.has_error and error_rows(root) > limit * max(1, len(code_lines)):
            reasons.append(f"{lang} parse errors")
            continue
        return outline_tree(lang, root, code_lines, ctx, detail, line_cost)
    raise Skip("; ".join(reasons))


def render(
    lines: Sequence[str],
    ranges: Sequence[tuple[int, int]],
    ctx: Context,
    indents: Sequence[str],
    trailing_newline: bool,
) -> str:
    """``lines`` with each range replaced by its marker, on a line of its own indented by ``indents`` (those of
    :func:`marker_indents`: like the code it hides)."""
    out: list[str] = []
    cur = 0
    for (first, last), indent in zip(ranges, indents, strict=True):
        out.extend(lines[cur:first])
        out.append(indent + ctx.elide_lines(first + 1, last + 1))
        cur = last + 1
    out.extend(lines[cur:])
    return "\n".join(out) + ("\n" if trailing_newline else "")


def elided_share(lines: Sequence[str], ranges: Sequence[tuple[int, int]]) -> float:
    """Share of characters the ranges cover (decides whether an outline is worth its markers)."""
    total = len("\n".join(lines)) + 1  # each line and its newline, counted in C
    covered = sum(len("\n".join(lines[first : last + 1])) + 1 for first, last in ranges)
    return covered / total


#: Lines :func:`is_listing` looks at. Every block is sniffed, so this bounds its cost: 64 lines take a third
#: of the time 200 did (26 against 79 µs on a 25 KB file read), and on the real sessions of ``../shared``
#: (1,042 tool results, 83 of them listings) and the benchmark's workloads both answer the same.
LISTING_SAMPLE = 64


def is_listing(text: str, sample: int = LISTING_SAMPLE) -> bool:
    """At least 80 % of the (first ``sample``) non-blank lines are numbered listing lines."""
    # Cut at the sample's last newline first: splitlines of all the characters it may span would be mostly wasted.
    head = "\n".join(text[: sample * 200].split("\n", sample)[:sample])
    lines = [line for line in head.splitlines()[:sample] if line.strip()]
    if len(lines) < 2:
        return False
    numbered = len(_LISTING_LINE_RE.findall("\n" + "\n".join(lines)))  # one C-level scan, not a match per line
    return numbered >= 0.8 * len(lines)


class CodeCompressor:
    """Outline of a source file: signatures and declarations stay, long bodies go behind markers."""

    kind: ClassVar[str] = "code"

    def sniff(self, block: Block) -> bool:
        if is_listing(block.text):
            return False  # numbered listings belong to the listing compressor
        sample = [line for line in block.text[:8192].splitlines()[:80] if line.strip()]
        if sample and sum(1 for line in sample if _GREP_RE.match(line)) >= 0.5 * len(sample):
            return False
        return bool(langs.languages_for_path(block.path) or langs.detect_languages(block.text))

    def compress(self, block: Block, ctx: Context) -> str:
        if ctx.config.file_read_policy == "exact":
            raise Skip("file_read_policy=exact")
        lines = block.text.splitlines()
        named = ctx.config.keep_files_named_by_question and named_by_question(block, ctx)
        found = outline(block, lines, ctx, DETAILED if named else OUTLINE)
        if elided_share(lines, found.ranges) < 0.15:
            raise Skip("outline keeps almost everything")
        return render(lines, found.ranges, ctx, found.indents, block.text.endswith(("\n", "\r")))
