"""Application and system logs: keep the anomalies, count the routine.

Log lines are mined into templates Drain-style: each line loses its leading timestamp, its tokens with
digits are masked to ``<*>`` (ids, IPs, counters, paths with numbers), and lines with the same token count
and leading tokens join the most similar template when half their fixed tokens agree. What an SRE needs
survives verbatim: the first and last lines; every ERROR/WARN-class line, except that a message repeated
many times keeps its first and last occurrence plus a count; the stack traces under kept lines (trimmed
like :mod:`traces`); lines whose template occurs only once or twice in the block (an injected root cause
usually looks like nothing else); and lines naming rare words of the question. Everything else runs
into retrieval markers, each preceded by one count line (``[xN] template  first .. last ..``, with the
multiplication sign) per template it hides.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from headroom.engine.compressors.base import Block, Context, Skip, estimate_tokens
from headroom.engine.compressors.traces import plan_frames, render

_MON = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TS = re.compile(
    r"^\s*[\[(]?(?:"
    r"\d{4}[-/.]\d\d[-/.]\d\d(?:[T ]|-)\d\d[:.]\d\d[:.]\d\d(?:[.,:]\d+)?(?:Z|[+-]\d\d:?\d\d)?"
    r"|(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),? " + _MON + r" +\d{1,2} \d\d:\d\d:\d\d(?:\.\d+)?(?: \d{4})?"
    r"|" + _MON + r" +\d{1,2} \d\d:\d\d:\d\d(?:\.\d+)?"
    r"|\d\d/" + _MON + r"/\d{4}:\d\d:\d\d:\d\d(?: [+-]\d{4})?"
    r"|\d\d-\d\d \d\d:\d\d:\d\d\.\d+"
    r"|\d{6} \d{6}"
    r"|\d\d:\d\d:\d\d(?:[.,]\d+)?"
    r"|\d{10}(?:\.\d+)?"
    r")[\])]?:?"
)
_LEVEL = re.compile(
    r"\b(FATAL|CRITICAL|CRIT|SEVERE|EMERG|EMERGENCY|ALERT|ERROR|ERR|WARNING|WARN|NOTICE|INFO|DEBUG|TRACE"
    r"|FINE|FINER|FINEST|VERBOSE)\b"
    r"|[\[<](fatal|critical|crit|severe|emerg|alert|error|err|warning|warn|notice|info|debug|trace)[\]>]"
    r"|\b(?:level|lvl|severity|loglevel)[\"']?\s*[=:]\s*[\"']?([A-Za-z]+)",
)
_GLOG = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d\d")
_ANDROID = re.compile(r"^\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+([VDIWEF])\s")
_BRACKET = re.compile(r"^\[[^\]\n]{1,64}\]")
_IP_START = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}\s")
_CONT = re.compile(
    r"^(?:\s|Caused by:|Traceback \(|During handling|The above exception|\.\.\. \d+ more"
    r"|[\w.$]+(?:Error|Exception|Throwable)\b)"
)
_DIGIT = re.compile(r"\d")
_KEYED = re.compile(r"^([A-Za-z_][\w.-]*[=:])(.+)$")
_TIME = re.compile(r"\d\d:\d\d:\d\d(?:[.,]\d+)?")
_ERRORS = frozenset(["FATAL", "CRITICAL", "CRIT", "SEVERE", "EMERG", "EMERGENCY", "ALERT", "ERROR", "ERR", "E", "F"])
_WARNS = frozenset(["WARNING", "WARN", "W"])

HEAD_LINES = 3
TAIL_LINES = 2
#: A warning/error message seen more often than this keeps only its first and last occurrence.
REPEAT_KEEP = 3
SIMILARITY = 0.5
#: Leaves of the template tree are scanned up to this many templates (bounds time on chaotic input).
LEAF_SCAN = 64
MAX_CONTINUATION = 40
MAX_RELEVANT = 15


def severity(line: str) -> int:
    """2 for error-class lines, 1 for warnings, 0 otherwise (including lines with no level at all)."""
    m = _GLOG.match(line) or _ANDROID.match(line)
    if m:
        level = m.group(1)
    else:
        lm = _LEVEL.search(line, 0, 200)
        if lm is None:
            return 0
        level = (lm.group(1) or lm.group(2) or lm.group(3) or "").upper()
    return 2 if level in _ERRORS else 1 if level in _WARNS else 0


def _is_head(line: str) -> bool:
    return bool(_TS.match(line) or _BRACKET.match(line) or _IP_START.match(line) or _LEVEL.search(line, 0, 128))


def _mask(tok: str) -> str:
    if not _DIGIT.search(tok):
        return tok
    m = _KEYED.match(tok)
    if m and not _DIGIT.search(m.group(1)):
        return m.group(1) + "<*>"
    return "<*>"


@dataclass
class _Template:
    tokens: list[str]
    members: list[int] = field(default_factory=list)


class _Miner:
    """Drain's fixed-depth tree, flattened: (token count, first three tokens) -> templates of that leaf."""

    def __init__(self) -> None:
        self.templates: list[_Template] = []
        self._leaves: dict[tuple[str, ...], list[int]] = {}
        self._exact: dict[tuple[str, ...], int] = {}

    def add(self, tokens: tuple[str, ...], line_no: int) -> int:
        tid = self._exact.get(tokens)
        if tid is None:
            tid = self._match(tokens)
            self._exact[tokens] = tid
        self.templates[tid].members.append(line_no)
        return tid

    def _match(self, tokens: tuple[str, ...]) -> int:
        leaf_key = (str(len(tokens)), *tokens[:3])
        leaf = self._leaves.setdefault(leaf_key, [])
        best, best_sim = -1, -1.0
        for tid in leaf[:LEAF_SCAN]:
            tpl = self.templates[tid].tokens
            fixed = [k for k, t in enumerate(tpl) if t != "<*>"]
            same = sum(1 for k in fixed if tpl[k] == tokens[k])
            sim = same / len(tokens) if tokens else 1.0
            if sim > best_sim:
                best, best_sim = tid, sim
        if best >= 0 and best_sim >= SIMILARITY:
            tpl = self.templates[best].tokens
            for k, t in enumerate(tokens):
                if tpl[k] != t:
                    tpl[k] = "<*>"
            return best
        self.templates.append(_Template(list(tokens)))
        leaf.append(len(self.templates) - 1)
        return len(self.templates) - 1


def _display(tokens: Sequence[str]) -> str:
    out: list[str] = []
    for t in tokens:
        if t == "<*>" and out and out[-1] == "<*>":
            continue
        out.append(t)
    text = " ".join(out)
    return text if len(text) <= 200 else text[:199] + "…"


def _span(first: str, last: str) -> str:
    if not first:
        return ""
    ta, tb = _TIME.search(first), _TIME.search(last)
    if ta and tb and first.replace(ta.group(), "") == last.replace(tb.group(), ""):
        first, last = ta.group(), tb.group()
    return f"  first {first} last {last}"


def sniff_lines(lines: Sequence[str]) -> bool:
    """At least half of the first 50 non-empty lines open like log records."""
    sample = [ln for ln in lines[:400] if ln.strip()][:50]
    if len(sample) < 3:
        return False
    return sum(1 for ln in sample if _is_head(ln)) * 2 >= len(sample)


class LogCompressor:
    """Template-mined log compression that keeps errors, anomalies and question hits verbatim."""

    kind: ClassVar[str] = "logs"

    def sniff(self, block: Block) -> bool:
        return sniff_lines(block.text[:100_000].splitlines())

    def compress(self, block: Block, ctx: Context) -> str:
        text = block.text
        lines = text.splitlines()
        n = len(lines)
        if n < 8:
            raise Skip("too few lines")
        # entries: a head line and the continuation lines (stack traces, wrapped text) under it
        heads: list[int] = []
        entry_end: dict[int, int] = {}
        for i, line in enumerate(lines):
            if heads and not _is_head(line) and _CONT.match(line) and line.strip():
                entry_end[heads[-1]] = i + 1
                continue
            heads.append(i)
            entry_end[i] = i + 1
        if sum(1 for h in heads if _is_head(lines[h])) * 10 < len(heads) * 3:
            raise Skip("too few lines look like log records")

        miner = _Miner()
        tid_of: dict[int, int] = {}
        stamp_of: dict[int, str] = {}
        masked_of: dict[int, tuple[str, ...]] = {}
        for h in heads:
            line = lines[h]
            m = _TS.match(line)
            msg = line[m.end() :] if m else line
            stamp_of[h] = m.group().strip(" []():") if m else ""
            tokens = tuple(_mask(t) for t in msg.split())
            masked_of[h] = tokens
            tid_of[h] = miner.add(tokens, h)

        keep_head: set[int] = set()
        notes: dict[int, list[str]] = {}

        def summarize(members: Sequence[int], tokens: Sequence[str]) -> None:
            dropped = [h for h in members if h not in keep_head]
            if len(members) < 3 or len(dropped) < 2 or not any(t != "<*>" for t in tokens):
                return
            span = _span(stamp_of[members[0]], stamp_of[members[-1]])
            notes.setdefault(dropped[0], []).append(f"[×{len(members)}] {_display(tokens)}{span}")

        # warnings and errors: every distinct message stays, repeats shrink to first + last
        groups: dict[tuple[int, tuple[str, ...]], list[int]] = {}
        for h in heads:
            if severity(lines[h]):
                groups.setdefault((tid_of[h], masked_of[h]), []).append(h)
        for members in groups.values():
            keep_head.update(members if len(members) <= REPEAT_KEEP else (members[0], members[-1]))

        budget = max(25, len(heads) // 25)
        rare = sorted(
            (len(t.members), h) for t in miner.templates if len(t.members) <= 2 for h in t.members if lines[h].strip()
        )
        keep_head.update(h for _, h in rare[:budget])
        keep_head.update(self._relevant(lines, heads, ctx))

        keep = [False] * n
        for h in keep_head:
            end = entry_end[h]
            for i in range(h, end):
                keep[i] = True
            if end - h > 1:
                plan_frames(lines, h + 1, end, keep, notes, ctx)
                shown = [i for i in range(h + 1, end) if keep[i]]
                for i in shown[MAX_CONTINUATION - 5 : -5]:
                    keep[i] = False
        for i in list(range(min(HEAD_LINES, n))) + list(range(max(0, n - TAIL_LINES), n)):
            keep[i] = True

        for members in groups.values():
            summarize(members, masked_of[members[0]])
        for tpl in miner.templates:
            if not severity(lines[tpl.members[0]]):
                summarize(tpl.members, tpl.tokens)
        if all(keep):
            raise Skip("nothing repetitive to fold")
        out = render(lines, keep, ctx, notes=notes)
        if estimate_tokens(out) * 2 > estimate_tokens(text):
            raise Skip("log is too varied to fold")
        return out

    @staticmethod
    def _relevant(lines: Sequence[str], heads: Sequence[int], ctx: Context) -> list[int]:
        """Heads naming question words that are rare in this block (words on every line say nothing)."""
        needles = sorted({t.lower() for t in ctx.terms} | {s.lower() for s in ctx.symbols})
        if not needles:
            return []
        lowered = {h: lines[h].lower() for h in heads}
        limit = max(3, len(heads) // 50)
        rare: list[str] = []
        for w in needles:
            df = 0
            for h in heads:
                if w in lowered[h]:
                    df += 1
                    if df > limit:
                        break
            if 0 < df <= limit:
                rare.append(w)
        if not rare:
            return []
        scored = sorted((-sum(1 for w in rare if w in lowered[h]), h) for h in heads)
        return [h for s, h in scored[:MAX_RELEVANT] if s < 0]
