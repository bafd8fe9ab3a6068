"""Stack traces: keep what names the failure, fold the plumbing between.

A trace is exception lines plus stacks of frames. The exception lines (``ValueError: ...``, ``Caused by:``,
``panic:``) and the first and last frame of every stack carry the diagnosis, and so do frames in the
user's own code; frames inside site-packages, node_modules, the standard library or ``java.*`` rarely do,
so runs of them become one retrieval marker, except the library frame right next to user code (the call
that crossed into the library). Recursion is folded first: a unit of up to four frames repeated three
times or more keeps one copy plus a count. Frames are recognised per language (Python and pytest
locations, Java/JS ``at``, Go function/file pairs, Rust backtraces); everything else passes through.

:func:`plan_frames` and :func:`render` are shared with the log and test-output compressors, which trim
the traces embedded in their blocks the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from headroom.engine.compressors.base import Block, Context, Skip, estimate_tokens

_PY_FRAME = re.compile(r'^(\s*)File "([^"]*)", line \d+(?:, in .*)?$')
_PYTEST_FRAME = re.compile(r"^()(\S+\.py):\d+: in \S+$")
_AT_FRAME = re.compile(r"^(\s+)at (\S.*)$")
_RUST_FRAME = re.compile(r"^(\s*)\d+: (\S.*)$")
_GO_FUNC = re.compile(r"^()((?:created by )?[\w$./*()\[\]-]+(?:\(.*\))?(?: in goroutine \d+)?)$")
_GO_FILE = re.compile(r"^\t\S+\.go:\d+")
_LIB = re.compile(
    r"site-packages|dist-packages|/lib/python\d|<frozen |node_modules|node:internal|\(node:|<anonymous>"
    r"|/usr/lib/|/usr/local/lib/|/rustc/|\.cargo/registry|/usr/local/go/|/go/src/|/pkg/mod/|\binternal/"
    r"|\bruntime[./]|__rustc|\b(?:core|std|alloc)::"
    r"|\bat (?:java|javax|jdk|sun|com\.sun|kotlin|kotlinx|scala|org\.junit|junit|org\.gradle"
    r"|org\.apache\.maven|org\.springframework)[./]"
)
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_SNIFF = re.compile(
    r"^Traceback \(most recent call last\):|^goroutine \d+ \[|^\s+at \S.*:\d+\)?$|panicked at |^stack backtrace:",
    re.M,
)
#: Fewer characters than a marker costs are shown rather than elided.
MARKER_CHARS = 90


@dataclass(frozen=True)
class _Frame:
    start: int
    end: int  # exclusive
    key: str
    lib: bool
    #: Python prints the outermost call first; Java, JS, Go and Rust print the innermost first.
    outer_first: bool


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _frame_at(lines: Sequence[str], i: int, hi: int, after_rust: bool) -> tuple[int, str] | None:
    """``(end, kind)`` when a frame starts at line ``i``; ``end`` is exclusive."""
    line = lines[i]
    kind = ""
    m = _PY_FRAME.match(line) or _PYTEST_FRAME.match(line)
    if m:
        kind = "py"
    elif _RUST_FRAME.match(line) and (after_rust or (i > 0 and lines[i - 1].strip() == "stack backtrace:")):
        kind = "rust"
    elif _AT_FRAME.match(line):
        kind = "at"
    elif i + 1 < hi and _GO_FILE.match(lines[i + 1]) and _GO_FUNC.match(line):
        return i + 2, "go"
    if not kind:
        return None
    end = i + 1
    if kind in ("py", "rust"):
        base = _indent(line)
        while end < hi and lines[end].strip() and _indent(lines[end]) > base:
            nxt = lines[end]
            if _PY_FRAME.match(nxt) or (kind == "rust" and _RUST_FRAME.match(nxt)):
                break
            end += 1
    return end, kind


def find_stacks(lines: Sequence[str], lo: int, hi: int) -> list[list[_Frame]]:
    """Maximal runs of adjacent frames in ``lines[lo:hi]``."""
    stacks: list[list[_Frame]] = []
    cur: list[_Frame] = []
    i = lo
    after_rust = False
    while i < hi:
        found = _frame_at(lines, i, hi, after_rust)
        if found is None:
            if cur:
                stacks.append(cur)
                cur = []
            after_rust = False
            i += 1
            continue
        end, kind = found
        after_rust = kind == "rust"
        text = "\n".join(lines[i:end])
        cur.append(_Frame(i, end, _HEX.sub("0x", text.strip()), bool(_LIB.search(text)), kind == "py"))
        i = end
    if cur:
        stacks.append(cur)
    return stacks


def _recursions(keys: Sequence[str]) -> list[tuple[int, int, int]]:
    """``(start, end, period)`` of runs where a unit of 1-4 frames repeats at least three times."""
    out: list[tuple[int, int, int]] = []
    m = len(keys)
    i = 0
    while i < m:
        best: tuple[int, int, int] | None = None
        for p in (1, 2, 3, 4):
            j = i + p
            while j < m and keys[j] == keys[j - p]:
                j += 1
            if (j - i) // p >= 3 and (best is None or j - i > best[1] - best[0]):
                best = (i, j, p)
        if best is None:
            i += 1
        else:
            out.append(best)
            i = best[1]
    return out


def plan_frames(
    lines: Sequence[str], lo: int, hi: int, keep: list[bool], notes: dict[int, list[str]], ctx: Context
) -> int:
    """Un-keep the uninformative frames of every stack in ``lines[lo:hi]``; returns how many frames were found.

    Only frame lines are touched: exception lines and other text keep whatever ``keep`` already says.
    """
    found = 0
    symbols = [s.lower() for s in ctx.symbols]
    for stack in find_stacks(lines, lo, hi):
        found += len(stack)
        m = len(stack)
        want = [False] * m
        for k, fr in enumerate(stack):
            text = "\n".join(lines[fr.start : fr.end]).lower()
            if not fr.lib or any(s in text for s in symbols):
                want[k] = True
        for k in range(m):
            # the call that crossed from user code into a library explains how the library got involved
            caller = k - 1 if stack[k].outer_first else k + 1
            if stack[k].lib and 0 <= caller < m and not stack[caller].lib:
                want[k] = True
        for s, e, p in _recursions([f.key for f in stack]):
            for k in range(s + p, e):
                want[k] = False
            dropped = e - s - p
            unit = "frame" if p == 1 else f"{p} frames"
            notes.setdefault(stack[s + p].start, []).append(
                f"[recursion: the {unit} above repeated {dropped // p} more time{'s' if dropped // p != 1 else ''}]"
            )
        kept = [k for k in range(1, m - 1) if want[k]]
        if len(kept) > 20:
            for k in kept[10:-10]:
                want[k] = False
        want[0] = want[-1] = True
        for k, fr in enumerate(stack):
            if not want[k]:
                for i in range(fr.start, fr.end):
                    keep[i] = False
    return found


def render(
    lines: Sequence[str],
    keep: Sequence[bool],
    ctx: Context,
    *,
    notes: dict[int, list[str]] | None = None,
    min_chars: int = 0,
    what: Callable[[int, int], str] | None = None,
) -> str:
    """Kept lines in order; each run of dropped lines becomes its notes plus one marker.

    A run shorter than ``min_chars`` is shown instead (the marker would cost more than the lines).
    ``what(i, j)`` names the unit of the run ``lines[i:j]`` in its marker.
    """
    out: list[str] = []
    n = len(lines)
    i = 0
    while i < n:
        if keep[i]:
            out.append(lines[i])
            i += 1
            continue
        j = i
        while j < n and not keep[j]:
            j += 1
        if min_chars and sum(len(lines[k]) + 1 for k in range(i, j)) < min_chars:
            out.extend(lines[i:j])
        else:
            if notes:
                for k in range(i, j):
                    out.extend(notes.get(k, ()))
            out.append(ctx.elide_lines(i + 1, j, what(i, j) if what else "lines"))
        i = j
    return "\n".join(out)


class TraceCompressor:
    """Stack traces from Python, Java, Go, JavaScript and Rust."""

    kind: ClassVar[str] = "trace"

    def sniff(self, block: Block) -> bool:
        head = block.text[:200_000]
        if "Traceback (most recent call last):" in head or ("goroutine " in head and "[running]:" in head):
            return True
        return len(_SNIFF.findall(head)) >= 3

    def compress(self, block: Block, ctx: Context) -> str:
        lines = block.text.splitlines()
        keep = [True] * len(lines)
        notes: dict[int, list[str]] = {}
        if plan_frames(lines, 0, len(lines), keep, notes, ctx) == 0:
            raise Skip("no stack frames found")
        if all(keep):
            raise Skip("every frame is informative")
        out = render(lines, keep, ctx, notes=notes, min_chars=MARKER_CHARS)
        if estimate_tokens(out) > 0.8 * estimate_tokens(block.text):
            raise Skip("trace has too little to fold")
        return out
