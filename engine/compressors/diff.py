"""Unified diffs (``git diff``, ``git show``, ``git log -p``, ``diff -u``): changes kept, context and bulk thinned.

A reviewer reads the ``+``/``-`` lines; the three context lines git prints on each side of a change are
mostly there for ``patch`` to find its place, so each run of context keeps one line next to a change and the
rest goes behind a line-range marker (the hunk headers still give the exact positions). Commit headers, file
headers, hunk headers, ``\\ No newline`` and ``Binary files … differ`` lines stay verbatim.

A diff that adds or deletes whole files (``git log -p`` of a new feature, two releases diffed) is mostly
``+`` or ``-`` lines, and trimming context alone leaves it as it was. Each long run of added or removed
lines is therefore read as the content it is (:mod:`._diff_runs`): outlined like source code, or thinned to
head, tail and headings when it is not code. Small changes, and hunks in the function the question names,
stay exact: that is where an agent applies or reviews a diff.

A lock file or generated file (``package-lock.json``, ``*.lock``, ``*.min.js``, snapshots) can be most of a
dependency bump's diff and says nothing a model can use line by line: past a size, its hunks become one
count line and one marker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from headroom.engine.compressors._diff_runs import change_runs, hunk_is_targeted, run_ranges
from headroom.engine.compressors.base import Block, Context, Skip
from headroom.engine.compressors.code import named_by_question

_FILE_START_RE = re.compile(r"^diff --(?:git|cc|combined) |^diff (?:-\S+ )*\S+ \S+$")
_HUNK_RE = re.compile(r"^(@{2,}) (?:-(\d+)(?:,(\d+))? )+\+(\d+)(?:,(\d+))? @{2,}")
_PLUS_PATH_RE = re.compile(r"^\+\+\+ (?:[bw]/)?(.*?)(?:\t.*)?$")
_MINUS_PATH_RE = re.compile(r"^--- (?:[ac]/)?(.*?)(?:\t.*)?$")
_GIT_PATH_RE = re.compile(r"^diff --git a/(.*) b/(.*)$")
_GENERATED_RE = re.compile(
    r"(?:^|/)(?:package-lock\.json|npm-shrinkwrap\.json|yarn\.lock|pnpm-lock\.yaml|go\.sum|"
    r"[^/]*\.lock|[^/]*\.min\.(?:js|css)|[^/]*\.map|[^/]*\.snap|[^/]*_pb2\.py|[^/]*\.pb\.go|"
    r"[^/]*\.generated\.[^/]*)$|(?:^|/)__snapshots__/"
)
#: What ``sniff`` looks for at the start of a line, each written after a literal ``\n`` rather than ``(?m)^``:
#: the regex engine then jumps from newline to newline instead of trying every character.
_SNIFF_GIT_RE = re.compile(r"\ndiff --(?:git|cc) ")
_SNIFF_GIT_BODY_RE = re.compile(r"\n(?:@@+ -\d|Binary files |(?:new|deleted) file mode|rename from )")
_SNIFF_UNIFIED = tuple(re.compile(p) for p in (r"\n--- \S", r"\n\+\+\+ \S", r"\n@@ -\d+(?:,\d+)? \+\d"))
#: A generated file's hunks are collapsed only past this many lines: a one-line version bump stays readable.
GENERATED_MIN_LINES = 30
#: Context lines kept on each side of a change.
KEEP_CONTEXT = 1
#: Context shorter than this many characters stays: the marker would cost as much as the lines.
MARKER_CHARS = 90


@dataclass
class _Hunk:
    header: int  # index of the @@ line
    body: list[int]  # indices of the hunk's lines
    width: int  # number of prefix columns (1, or the parents of a combined diff)


@dataclass
class _FileDiff:
    start: int
    path: str
    hunks: list[_Hunk]


def _hunk_lengths(m: re.Match[str]) -> tuple[int, int]:
    """(old, new) line counts of a hunk header; combined diffs count the first parent's side."""
    old = int(m.group(3)) if m.group(3) is not None else 1
    new = int(m.group(5)) if m.group(5) is not None else 1
    return old, new


def _parse(lines: list[str]) -> list[_FileDiff]:
    """File sections and their hunks; lines outside any hunk (commit headers, file headers) are left alone."""
    files: list[_FileDiff] = []
    current: _FileDiff | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if _FILE_START_RE.match(line) or (
            line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")
        ):
            if current is None or line.startswith("diff ") or current.hunks:
                git = _GIT_PATH_RE.match(line)
                current = _FileDiff(i, git.group(2) if git else "", [])
                files.append(current)
            if line.startswith("--- "):
                m = _PLUS_PATH_RE.match(lines[i + 1]) if i + 1 < len(lines) else None
                if m and m.group(1) != "/dev/null":
                    current.path = m.group(1)
                elif not current.path:
                    minus = _MINUS_PATH_RE.match(line)
                    current.path = minus.group(1) if minus else ""
                i += 2
                continue
            i += 1
            continue
        m = _HUNK_RE.match(line)
        if m is not None and current is not None:
            width = len(m.group(1)) - 1
            old, new = _hunk_lengths(m)
            hunk = _Hunk(i, [], width)
            i += 1
            while i < len(lines) and (old > 0 or new > 0 or lines[i].startswith("\\")):
                body = lines[i]
                prefix = body[:width]
                if body.startswith("\\"):
                    pass
                elif body == "" or (prefix.strip(" +-") == "" and len(prefix) == width):
                    if "-" in prefix:
                        old -= 1
                    elif "+" in prefix:
                        new -= 1
                    else:
                        old, new = old - 1, new - 1
                else:
                    break  # a truncated or hand-edited hunk: stop where the shape ends
                hunk.body.append(i)
                i += 1
            current.hunks.append(hunk)
            continue
        i += 1
    return files


def _is_context(line: str, width: int) -> bool:
    return line == "" or (line[:width].strip() == "" and not line.startswith("\\"))


class DiffCompressor:
    """Unified diffs: headers and small changes verbatim, context trimmed, long added/removed runs outlined."""

    kind: ClassVar[str] = "diff"

    def sniff(self, block: Block) -> bool:
        text = "\n" + block.text  # a newline before every line: the patterns start with a literal, which is fast
        if _SNIFF_GIT_RE.search(text):
            return bool(_SNIFF_GIT_BODY_RE.search(text))
        return all(p.search(text) for p in _SNIFF_UNIFIED)

    def compress(self, block: Block, ctx: Context) -> str:
        try:
            return self._compress(block, ctx)
        except Skip:
            raise
        except Exception as exc:  # a malformed corner of a diff falls back to the next compressor, never crashes
            raise Skip(f"unparsable diff ({type(exc).__name__})") from exc

    def _compress(self, block: Block, ctx: Context) -> str:
        raws = block.text.splitlines(keepends=True)
        lines = [r.rstrip("\r\n") for r in raws]
        files = _parse(lines)
        if not any(f.hunks for f in files):
            raise Skip("no hunks")
        # Every span is decided before the first marker is made, so a Skip leaves the context untouched.
        spans: list[tuple[int, int, str]] = []  # (first, last) 0-based inclusive, what
        notes: dict[int, str] = {}
        for f in files:
            body_lines = sum(len(h.body) for h in f.hunks)
            if _GENERATED_RE.search(f.path) and body_lines >= GENERATED_MIN_LINES:
                added = sum(1 for h in f.hunks for i in h.body if "+" in lines[i][: h.width])
                removed = sum(1 for h in f.hunks for i in h.body if "-" in lines[i][: h.width])
                first = f.hunks[0].header
                last = f.hunks[-1].body[-1] if f.hunks[-1].body else f.hunks[-1].header
                notes[first] = f"[generated/lock file {f.path}: {len(f.hunks)} hunks, +{added} -{removed} lines]"
                spans.append((first, last, "lines"))
                continue
            named = ctx.config.keep_files_named_by_question and named_by_question(Block("", path=f.path), ctx)
            for h in f.hunks:
                spans += _context_spans(h, lines)
                if h.width == 1 and not hunk_is_targeted(lines[h.header], ctx):
                    spans += _change_spans(f.path, h, lines, ctx, named)
        spans += _binary_patches(lines)
        if not spans:
            raise Skip("no context worth eliding")
        out: list[str] = []
        starts = {first: (last, what) for first, last, what in spans}
        i = 0
        while i < len(lines):
            if i in starts:
                last, what = starts[i]
                if i in notes:
                    out.append(notes[i])
                out.append(ctx.elide_lines(i + 1, last + 1, what))
                i = last + 1
                continue
            out.append(lines[i])
            i += 1
        return "\n".join(out) + ("\n" if block.text.endswith(("\n", "\r")) else "")


def _context_spans(h: _Hunk, lines: list[str]) -> list[tuple[int, int, str]]:
    """Runs of context inside a hunk, less one line next to each change, when long enough to pay a marker."""
    spans: list[tuple[int, int, str]] = []
    body = h.body
    k = 0
    while k < len(body):
        if not _is_context(lines[body[k]], h.width):
            k += 1
            continue
        start = k
        while k < len(body) and _is_context(lines[body[k]], h.width):
            k += 1
        lo = start + (KEEP_CONTEXT if start > 0 else 0)
        hi = k - 1 - (KEEP_CONTEXT if k < len(body) else 0)
        # A marker costs about 25 tokens: shorter runs are cheaper to keep than to point at.
        if hi > lo and sum(len(lines[i]) + 1 for i in body[lo : hi + 1]) > MARKER_CHARS:
            spans.append((body[lo], body[hi], "context lines"))
    return spans


def _change_spans(path: str, h: _Hunk, lines: list[str], ctx: Context, named: bool) -> list[tuple[int, int, str]]:
    """The parts of each long run of added or removed lines that its outline leaves out."""
    spans: list[tuple[int, int, str]] = []
    m = _HUNK_RE.match(lines[h.header])
    whole = m is not None and 0 in _hunk_lengths(m)
    for sign, run in change_runs(h.body, lines):
        what = "added lines" if sign == "+" else "removed lines"
        for first, last in run_ranges(path or None, [lines[i][1:] for i in run], ctx, named, whole):
            spans.append((run[first], run[last], what))
    return spans


def _binary_patches(lines: list[str]) -> list[tuple[int, int, str]]:
    """The base85 payload of ``GIT binary patch`` sections (the ``literal``/``delta`` lines stay)."""
    spans: list[tuple[int, int, str]] = []
    for i, line in enumerate(lines):
        if line.startswith(("literal ", "delta ")) and i > 0 and lines[i - 1] in ("GIT binary patch", ""):
            j = i + 1
            while j < len(lines) and lines[j] != "":
                j += 1
            if j - i - 1 >= 2:
                spans.append((i + 1, j - 1, "binary patch lines"))
    return spans
