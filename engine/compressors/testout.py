"""Test-runner output (pytest, unittest, jest, go test, cargo test): failures in full, passes as counts.

What a developer acts on is which tests failed, why (assertion, ``E`` lines, panic message, the frames in
their code) and the summary line; a passing test's line only adds to a count. So lines that report a
pass (``PASSED``, ``... ok``, ``--- PASS:``, ``✓``, pytest progress rows of dots) and runner chatter
(``=== RUN``, ``Compiling``) fold into markers that say how many tests they held; stack traces are trimmed
with the trace logic; pytest's long-format failure sections lose the source listings around the ``>``
line; very long assertion diffs and captured output keep their head and tail. Everything else (failure
headers, errors, summaries, unknown lines) is kept verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from headroom.engine.compressors.base import Block, Context, Skip, estimate_tokens
from headroom.engine.compressors.traces import MARKER_CHARS, plan_frames, render

#: Searched in the text with a newline put before it, so each line start is a literal ``\n`` (the regex engine
#: jumps between newlines instead of trying ``(?m)^`` at every character).
_SNIFF = re.compile(
    r"\n(?:=+ test session starts =+$|\S+::\S+ (?:PASSED|FAILED|ERROR|SKIPPED)|(?:FAILED|ERROR) \S+::"
    r"|Ran \d+ tests? in |--- (?:FAIL|PASS): |=== RUN |ok  \t|FAIL\t"
    r"|running \d+ tests?$|test result: |(?:PASS|FAIL) \S|Tests: +\d)",
    re.M,
)
_PASS = re.compile(
    r"^\S+::\S.*? PASSED\b|^PASSED \S+::|^test \S+ \.\.\. ok$|^\w+ \([\w.]+\)(?: \.\.\.)? ok$"
    r"|^\s*--- PASS: |^\s*[✓√] |^ok\s+\S+\s+(?:\(cached\)|[\d.]+s)"
)
_SKIP = re.compile(
    r"^\S+::\S.*? (?:SKIPPED|XFAIL)\b|^test \S+ \.\.\. ignored$|^\w+ \([\w.]+\)(?: \.\.\.)? skipped\b"
    r"|^\s*--- SKIP: |^\s*○ "
)
_CHATTER = re.compile(
    r"^=== (?:RUN|PAUSE|CONT|NAME) |^\s+(?:Compiling|Downloaded|Downloading|Checking|Fresh|Blocking) "
    r"|^\?\s+\S+\s+\[no test files\]$|^PASS \S"
)
_DOTS = re.compile(r"^(\S+) ([.sx]+)\s*(?:\[\s*\d+%\])?$")
_SECTION = re.compile(r"^=+ (.*?) =+$")
_PYTEST_TEST = re.compile(r"^_{3,} .* _{3,}$")
_LOCATION = re.compile(r"^\S+:\d+: ")
_CAPTURED = re.compile(r"^-+ Captured .* -+$")
MAX_RUN = 24


def _tests_in(line: str) -> tuple[int, int]:
    """(passed, skipped) that one folded line reports."""
    if _PASS.search(line):
        return 1, 0
    if _SKIP.search(line):
        return 0, 1
    m = _DOTS.match(line)
    if m:
        return m.group(2).count("."), len(m.group(2)) - m.group(2).count(".")
    return 0, 0


def _foldable(line: str) -> bool:
    return bool(_PASS.search(line) or _SKIP.search(line) or _CHATTER.search(line) or _DOTS.match(line))


def _cap_runs(lines: Sequence[str], keep: list[bool], lo: int, hi: int, head: int, tail: int) -> None:
    """Keep only the head and tail of ``lines[lo:hi]`` when it is long."""
    if hi - lo > head + tail + 2:
        for i in range(lo + head, hi - tail):
            keep[i] = False


def _pytest_failures(lines: Sequence[str], keep: list[bool], lo: int, hi: int) -> None:
    """Inside a FAILURES/ERRORS section keep headers, ``>`` lines, ``E`` lines and locations."""
    i = lo
    while i < hi:
        line = lines[i]
        if _CAPTURED.match(line):
            j = i + 1
            while j < hi and not (_CAPTURED.match(lines[j]) or _PYTEST_TEST.match(lines[j])):
                j += 1
            _cap_runs(lines, keep, i + 1, j, 6, 3)
            i = j
            continue
        if line.startswith("E ") or line == "E":
            j = i
            while j < hi and (lines[j].startswith("E ") or lines[j] == "E"):
                j += 1
            _cap_runs(lines, keep, i, j, 20, 4)
            i = j
            continue
        informative = (
            _PYTEST_TEST.match(line)
            or line.startswith(">")
            or _LOCATION.match(line)
            or (i + 1 < hi and lines[i + 1].startswith(">"))
        )
        if not informative:
            keep[i] = False
        i += 1


class TestOutputCompressor:
    """Keeps failures and summaries of test runs; passing tests become counts behind markers."""

    kind: ClassVar[str] = "tests"

    def sniff(self, block: Block) -> bool:
        return bool(_SNIFF.search("\n" + block.text[:200_000]))

    def compress(self, block: Block, ctx: Context) -> str:
        text = block.text
        lines = text.splitlines()
        n = len(lines)
        keep = [True] * n
        folded = [False] * n
        for i, line in enumerate(lines):
            if _foldable(line) and "FAIL" not in line and "ERROR" not in line:
                keep[i] = False
                folded[i] = True

        notes: dict[int, list[str]] = {}
        section = ""
        start = 0
        for i, line in enumerate([*lines, "=== end ==="]):
            m = _SECTION.match(line)
            if m is None:
                continue
            if section in ("FAILURES", "ERRORS"):
                _pytest_failures(lines, keep, start, i)
            elif section == "warnings summary":
                _cap_runs(lines, keep, start, i, 6, 2)
            section, start = m.group(1).strip(), i + 1
        plan_frames(lines, 0, n, keep, notes, ctx)
        self._cap_other_runs(lines, keep, folded)
        if all(keep):
            raise Skip("no passing tests or long failures to fold")

        def what(i: int, j: int) -> str:
            return "passed tests" if all(_tests_in(lines[k]) == (1, 0) for k in range(i, j)) else "lines"

        self._count_notes(lines, keep, folded, notes)
        out = render(lines, keep, ctx, notes=notes, min_chars=MARKER_CHARS, what=what)
        if estimate_tokens(out) > 0.8 * estimate_tokens(text):
            raise Skip("test output has too little to fold")
        return out

    @staticmethod
    def _cap_other_runs(lines: Sequence[str], keep: list[bool], folded: Sequence[bool]) -> None:
        """Very long stretches of kept, unclassified lines (a log dumped by a test) keep head and tail."""
        i, n = 0, len(lines)
        while i < n:
            if not keep[i] or folded[i]:
                i += 1
                continue
            j = i
            while j < n and keep[j]:
                j += 1
            if j - i > 4 * MAX_RUN:
                _cap_runs(lines, keep, i, j, 2 * MAX_RUN, MAX_RUN)
            i = j

    @staticmethod
    def _count_notes(
        lines: Sequence[str], keep: Sequence[bool], folded: Sequence[bool], notes: dict[int, list[str]]
    ) -> None:
        """A ``[N passed, M skipped]`` line before each marker whose unit is not one test per line."""
        i, n = 0, len(lines)
        while i < n:
            if keep[i]:
                i += 1
                continue
            j = i
            while j < n and not keep[j]:
                j += 1
            counts = [_tests_in(lines[k]) if folded[k] else (0, 0) for k in range(i, j)]
            passed, skipped = sum(c[0] for c in counts), sum(c[1] for c in counts)
            if (passed or skipped) and not all(c == (1, 0) for c in counts):
                parts = [f"{passed} passed"] + ([f"{skipped} skipped"] if skipped else [])
                notes.setdefault(i, []).insert(0, f"[{', '.join(parts)}]")
            i = j
