"""The managed block: how lessons get into CLAUDE.local.md / AGENTS.md / GEMINI.md without touching anything else.

Each agent reads one instruction file at the project root (:func:`target_for`). headroom owns exactly one region
of that file, between the lines ``BEGIN`` and ``END``; every byte outside it is the user's and stays
byte-identical (DESIGN invariant 5). Writing is split in two so a dry run shows exactly what would happen:

* :func:`plan_write` reads the file and computes the new bytes (a :class:`Plan`); it touches nothing.
* :func:`apply` re-reads the file, refuses if it changed since the plan, records the old bytes in a
  :class:`Journal` (backup + JSONL entry) and only then replaces the file atomically (temp file + ``os.replace``,
  mode kept, symlinks written through so the link stays a link).

Design choices, and why:

* **Parsing never guesses.** A marker counts only as a whole line (surrounding whitespace allowed). Anything
  else that looks like one of our markers, a BEGIN without END, an END without BEGIN, nested markers, *and* two
  complete blocks (a doubled block, e.g. after a merge) are refused with a :class:`WriteError` naming the
  lines: keeping "the first" block could silently drop a user's hand edit in the second, so the user deletes
  one and runs learn again.
* **Appending is reversible.** With no block, the block goes at the end after one added blank line; if the file
  ended without a newline the block does too (the file's trailing-newline convention), otherwise it ends with
  one. Line endings follow the file (CRLF if most of its line breaks are CRLF), a UTF-8 BOM stays in front.
  Removing a block (no lessons left, or an undo after the user edited the file) strips exactly what an append
  added, so append + remove gives back the original bytes.
* **Lessons cannot escape the block.** A lesson comes from a transcript, so it is treated as hostile: line
  breaks become spaces (one bullet per lesson), ``<`` before a tag/comment start becomes ``&lt;``, comment
  ends become ``--&gt;``, the marker words are broken up, and a leading Markdown block character is
  backslash-escaped. After escaping, no lesson can contain or forge a marker.
* **Limits of the hosts.** Claude Code loads the first 200 lines of CLAUDE(.local).md, Codex reads at most
  32 KiB of the AGENTS.md chain; Gemini CLI has no documented limit, so it gets Claude's 200 lines. Lessons come
  most-important-first and are dropped from the end until the *whole file* fits; the counts are in the plan.
* **Undo respects later edits.** ``Journal.undo`` restores the old bytes only if the file still holds exactly
  what headroom wrote; if the user edited it since, only headroom's block is put back as it was (or removed),
  and the user's edits stay.

The journal assumes one writer at a time (the daemon holds its process lock; the CLI runs in the foreground).
The check "unchanged since the plan" and the rename are not atomic together: a write landing in between those
two instants would be lost to the user, the one race left; the journal's backup still holds the prior bytes.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from headroom.engine.errors import HeadroomError
from headroom.memory.files import write_atomic

if TYPE_CHECKING:
    from headroom.learn.journal import Journal

__all__ = [
    "BEGIN",
    "CLAUDE_MAX_LINES",
    "CODEX_MAX_BYTES",
    "DEFAULT_HEADER",
    "END",
    "GEMINI_MAX_LINES",
    "Plan",
    "Target",
    "WriteError",
    "apply",
    "plan_write",
    "render_block",
    "target_for",
    "user_target",
]

BEGIN = "<!-- headroom:lessons:begin -->"
END = "<!-- headroom:lessons:end -->"
DEFAULT_HEADER = "Lessons headroom learned from past sessions; edit outside this block, headroom rewrites it."

CLAUDE_MAX_LINES = 200  # Claude Code loads the first 200 lines of its memory files.
CODEX_MAX_BYTES = 32 * 1024  # Codex's project_doc_max_bytes default, for the whole AGENTS.md chain.
GEMINI_MAX_LINES = 200  # no documented limit; the same budget as Claude keeps the file readable.

_BOM = "\ufeff"
# Anything that names our markers, on its own line or not, in any case or spacing: a line that matches this but
# is not exactly BEGIN/END means someone edited a marker, and we refuse rather than guess.
_MARKER_WORDS = re.compile(r"headroom\s*:\s*lessons\s*:\s*(?:begin|end)", re.IGNORECASE)
_MARKER_STEM = re.compile(r"headroom\s*:\s*lessons", re.IGNORECASE)
# Line breaks of any kind (str.splitlines' set) and other control characters collapse to a space.
_BREAKS_AND_CONTROLS = re.compile(r"[\x00-\x1f\x7f\x80-\x9f\u2028\u2029]+")
_TAG_START = re.compile(r"<(?=[!/?A-Za-z])")
_COMMENT_END = re.compile(r"--(!?)>")
# A leading character Markdown would read as a block start. A single backtick opens inline code (fine); three
# open a fence.
_LEADING_BLOCK = re.compile(r"^(?:[#>+*=|\[:-]|`{3}|~{3}|\d+[.)])")
_TERMINATORS = ("\r\n", "\n")


class WriteError(HeadroomError):
    """headroom refused to write (or undo) an instruction file; the file is untouched."""


@dataclass(frozen=True)
class Target:
    """Where one agent's lessons go in one project, and the host's limits for that file."""

    agent: str
    path: Path
    max_lines: int | None
    max_bytes: int | None


USER_FILES = {"claude": "CLAUDE.md", "codex": "AGENTS.md", "gemini": "GEMINI.md"}


def user_target(agent: str, home: Path) -> Target:
    """The user-level instruction file of ``agent`` in its home folder (``~/.claude/CLAUDE.md``, ``~/.codex/AGENTS.md``,
    ``~/.gemini/GEMINI.md``): where machine facts go, with the same block and the same limits."""
    if agent not in USER_FILES:
        raise WriteError(f"unknown agent {agent!r} (expected claude, codex or gemini)")
    limits = target_for(agent, home)
    return Target(agent, home / USER_FILES[agent], limits.max_lines, limits.max_bytes)


def target_for(agent: str, project: Path, *, claude_file: str = "CLAUDE.local.md") -> Target:
    """The instruction file ``agent`` reads at the root of ``project`` (Claude's name is configurable)."""
    if agent == "claude":
        if not claude_file or Path(claude_file).name != claude_file or claude_file in (".", ".."):
            raise WriteError(f"claude_file must be a file name at the project root, not {claude_file!r}")
        return Target("claude", project / claude_file, CLAUDE_MAX_LINES, None)
    if agent == "codex":
        return Target("codex", project / "AGENTS.md", None, CODEX_MAX_BYTES)
    if agent == "gemini":
        return Target("gemini", project / "GEMINI.md", GEMINI_MAX_LINES, None)
    raise WriteError(f"unknown agent {agent!r} (expected claude, codex or gemini)")


@dataclass(frozen=True)
class Plan:
    """A planned write: the file's bytes now and after. Nothing has been touched yet."""

    target: Target
    before: bytes | None
    after: bytes | None
    lessons_written: int
    lessons_dropped: int
    note: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        """A unified diff of the planned change (empty when nothing changes), for ``headroom learn``'s dry run."""
        if not self.changed:
            return ""
        old = _decode_for_display(self.before)
        new = _decode_for_display(self.after)
        name = str(self.target.path)
        lines = difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=name if self.before is not None else "/dev/null",
            tofile=name if self.after is not None else "/dev/null",
        )
        out: list[str] = []
        for line in lines:
            out.append(line if line.endswith(("\n", "\r")) else line + "\n\\ No newline at end of file\n")
        return "".join(out)


# --- rendering ----------------------------------------------------------------------------------------------


def _escape(text: str) -> str:
    """One lesson (or the header) as inert single-line Markdown: no markers, no tags, no comment ends."""
    text = " ".join(_BREAKS_AND_CONTROLS.sub(" ", text).split())
    previous = None
    while previous != text:  # to a fixed point, so no replacement can assemble a new match from its neighbours
        previous = text
        text = _TAG_START.sub("&lt;", text)
        text = _COMMENT_END.sub(r"--\1&gt;", text)
        text = _MARKER_STEM.sub("headroom lessons", text)
    if _LEADING_BLOCK.match(text):
        text = "\\" + text
    return text


def render_block(lessons: Sequence[str], *, newline: str = "\n", header: str | None = None) -> str:
    """The managed block, markers included, without a line break after END.

    One ``- `` bullet per lesson, each escaped (see the module docstring); lessons that are blank after escaping
    are left out. ``header`` replaces the default note that opens the block.
    """
    lines = [BEGIN, f"<!-- {_escape(DEFAULT_HEADER if header is None else header)} -->"]
    for lesson in lessons:
        escaped = _escape(lesson)
        if escaped:
            lines.append(f"- {escaped}")
    lines.append(END)
    return newline.join(lines)


# --- parsing ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    start: int  # offset of the BEGIN line's first character
    end: int  # offset just past the END line's content (its line break is not part of the block)


def _lines(text: str) -> list[tuple[int, str]]:
    """(offset, content without its line break) for every line; only LF and CRLF end a line."""
    out: list[tuple[int, str]] = []
    offset = 0
    for raw in text.split("\n"):
        content = raw[:-1] if raw.endswith("\r") and offset + len(raw) < len(text) else raw
        out.append((offset, content))
        offset += len(raw) + 1
    if out and out[-1][1] == "" and text.endswith("\n"):
        out.pop()  # the empty "line" after a final line break
    return out


def _find_block(text: str, path: Path) -> _Block | None:
    """The one well-formed block in ``text`` (BOM already removed), None if there is none; WriteError otherwise."""
    blocks: list[tuple[int, _Block]] = []
    open_at: tuple[int, int] | None = None  # (line number, offset)
    for number, (offset, content) in enumerate(_lines(text), start=1):
        word = content.strip()
        if word == BEGIN:
            if open_at is not None:
                raise WriteError(
                    f"{path}: line {number} opens a headroom block inside the one opened on line {open_at[0]}; "
                    "fix the markers by hand (headroom will not guess)"
                )
            open_at = (number, offset)
        elif word == END:
            if open_at is None:
                raise WriteError(
                    f"{path}: line {number} closes a headroom block that was never opened; "
                    "remove the stray marker (headroom will not guess)"
                )
            blocks.append((open_at[0], _Block(open_at[1], offset + len(content))))
            open_at = None
        elif _MARKER_WORDS.search(content):
            raise WriteError(
                f"{path}: line {number} has a headroom marker that is not exactly {BEGIN!r} or {END!r} on its "
                "own line; fix it by hand (headroom will not guess)"
            )
    if open_at is not None:
        raise WriteError(f"{path}: line {open_at[0]} opens a headroom block that is never closed; fix it by hand")
    if len(blocks) > 1:
        where = ", ".join(f"line {number}" for number, _ in blocks)
        raise WriteError(
            f"{path}: {len(blocks)} headroom blocks (starting at {where}); delete all but one and run learn again"
        )
    return blocks[0][1] if blocks else None


def _newline_of(text: str) -> str:
    crlf = text.count("\r\n")
    return "\r\n" if crlf > text.count("\n") - crlf else "\n"


def _strip_terminator(text: str) -> str | None:
    for terminator in _TERMINATORS:
        if text.endswith(terminator):
            return text[: -len(terminator)]
    return None


def _ends_with_blank_line(text: str) -> bool:
    once = _strip_terminator(text)
    return once is not None and _strip_terminator(once) is not None


def _append(text: str, block: str) -> str:
    """``text`` with ``block`` added at its end, one blank line between, keeping the trailing-newline convention."""
    if text == "":
        return block + _newline_of(block)
    # Our newline must not fuse with a lone CR at the end of the file into one CRLF (that would be irreversible).
    newline = "\r\n" if text.endswith("\r") else _newline_of(text)
    if text.endswith("\n"):
        return text + newline + block + newline
    return text + newline + newline + block


def _remove(text: str, block: _Block) -> str:
    """``text`` without ``block``: the exact inverse of :func:`_append` for a block headroom appended."""
    prefix, rest = text[: block.start], text[block.end :]
    for terminator in _TERMINATORS:
        if rest.startswith(terminator):
            # The block ended with a line break: drop it, and the blank line an append put before the block.
            if _ends_with_blank_line(prefix):
                prefix = _strip_terminator(prefix) or ""
            return prefix + rest[len(terminator) :]
    # The block ended the file without a line break: the file had none; drop the separator an append added.
    for _ in range(2):
        stripped = _strip_terminator(prefix)
        if stripped is None:
            break
        prefix = stripped
    return prefix + rest


def _line_count(text: str) -> int:
    return text.count("\n") + (0 if text == "" or text.endswith("\n") else 1)


def _fits(target: Target, text: str) -> bool:
    if target.max_lines is not None and _line_count(text) > target.max_lines:
        return False
    return target.max_bytes is None or len(text.encode("utf-8")) <= target.max_bytes


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WriteError(
            f"{path} is not UTF-8 (byte {exc.start}); headroom will not rewrite it and risk mangling it"
        ) from None


def _decode_for_display(data: bytes | None) -> str:
    return "" if data is None else data.decode("utf-8", errors="replace")


def _read(path: Path) -> bytes | None:
    """The file's bytes (through symlinks), None if it does not exist; WriteError if it is not a regular file."""
    real = Path(os.path.realpath(path))
    try:
        st = real.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise WriteError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise WriteError(f"{path} is not a regular file")
    try:
        return real.read_bytes()
    except OSError as exc:
        raise WriteError(f"cannot read {path}: {exc.strerror or exc}") from None


# --- planning -----------------------------------------------------------------------------------------------


def plan_write(target: Target, lessons: Sequence[str], *, create: bool = True) -> Plan:
    """Plan putting ``lessons`` (most important first) into ``target``'s block. Reads the file, writes nothing.

    Raises :class:`WriteError` for a file headroom must not touch (not UTF-8, malformed or doubled markers, not
    a regular file, no parent folder). Empty ``lessons`` removes an existing block and never creates a file.
    """
    path = target.path
    before = _read(path)
    total = len(lessons)

    def plan(after: bytes | None, written: int, note: str) -> Plan:
        dropped = total - written
        if dropped and written:
            note += f"; {dropped} lesson(s) left out to fit {_limit_text(target)}"
        elif dropped:
            note += f"; no room for any of {dropped} lesson(s) within {_limit_text(target)}"
        return Plan(target, before, after, written, dropped, note)

    if before is None:
        if not total:
            return plan(None, 0, "no lessons, no file: nothing to write")
        if not create:
            return Plan(target, None, None, 0, total, "no file, not created")
        if not Path(os.path.realpath(path)).parent.is_dir():
            raise WriteError(f"{path.parent} does not exist; headroom does not create folders")
        kind = "created"
        text, bom, existing = "", "", None
    else:
        decoded = _decode(before, path)
        bom = _BOM if decoded.startswith(_BOM) else ""
        text = decoded[len(bom) :]
        existing = _find_block(text, path)
        kind = "block appended" if existing is None else "block replaced"
    newline = _newline_of(text) if text else "\n"

    def build(count: int) -> str:
        if count == 0:  # nothing to put in a block: the file without one
            return bom + (text if existing is None else _remove(text, existing))
        block = render_block(lessons[:count], newline=newline)
        if existing is not None:
            return bom + text[: existing.start] + block + text[existing.end :]
        return bom + _append(text, block)

    # Lessons only ever add lines and bytes, so the largest prefix that fits is found by bisection.
    low, high = 0, total
    while low < high:
        middle = (low + high + 1) // 2
        if _fits(target, build(middle)):
            low = middle
        else:
            high = middle - 1
    written = low

    if written == 0:
        if before is None:
            return plan(None, 0, "not created")
        if existing is None:
            return plan(before, 0, "unchanged")
        return plan(build(0).encode("utf-8"), 0, "block removed")
    after = build(written).encode("utf-8")
    if after == before:
        return plan(after, written, "unchanged")
    return plan(after, written, kind)


def _limit_text(target: Target) -> str:
    if target.max_lines is not None:
        return f"{target.max_lines} lines"
    if target.max_bytes is not None:
        return f"{target.max_bytes} bytes"
    return "the file's limit"


# --- writing ------------------------------------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path``'s real file with ``data`` (through a symlink, keeping the file's mode), fsynced."""
    try:
        write_atomic(path, data, mode=None, through_symlink=True)
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from None


def _check_writable(path: Path) -> None:
    real = Path(os.path.realpath(path))
    try:
        st = real.stat()
    except FileNotFoundError:
        return
    # os.access says yes to root for any file; the owner's write bit is what says "the user protected this".
    if not st.st_mode & stat.S_IWUSR or not os.access(real, os.W_OK):
        raise WriteError(f"{path} is read-only; headroom leaves it alone (make it writable to let learn update it)")


def apply(plan: Plan, journal: Journal, *, run: str | None = None, lessons: Sequence[str] = ()) -> None:
    """Carry out ``plan``: check the file is as planned, journal + back up the old bytes, then write atomically."""
    if not plan.changed:
        return
    path = plan.target.path
    current = _read(path)
    if current != plan.before:
        raise WriteError(f"{path} changed since the plan was made; nothing written (run learn again)")
    if plan.before is not None:
        _decode(plan.before, path)
        _check_writable(path)
    if plan.after is None:  # plans never delete files; a hand-made one must not either
        raise WriteError(f"{path}: refusing a plan that deletes the file")
    entry = journal.record(plan, run=run, lessons=lessons)
    try:
        _write_atomic(path, plan.after)
    except BaseException as exc:
        journal._mark(entry, "failed", error=str(exc))
        raise
