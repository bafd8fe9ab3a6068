"""The diff compressor: headers and changed lines verbatim, context trimmed, lock files collapsed."""

from __future__ import annotations

import difflib
import json
import re
import shutil
from pathlib import Path

import pytest
from compress_helpers import engine_workloads, run

from headroom.engine.ccr import MemoryCCRStore, put_all, retrieve
from headroom.engine.compressors.base import Block, Skip
from headroom.engine.compressors.diff import DiffCompressor
from headroom.engine.config import EngineConfig
from headroom.engine.messages import ToolCall, tool_hints
from headroom.engine.router import route

COMP = DiffCompressor()


def _module(n: int, tag: str) -> list[str]:
    return [f"def function_{tag}_{i}(argument_one, argument_two):  # a reasonably long line {i}\n" for i in range(n)]


def _file_diff(path: str, old: list[str], new: list[str], context: int = 3) -> str:
    """What ``git diff`` prints for one file (difflib's unified diff under git's file header)."""
    body = "".join(difflib.unified_diff(old, new, f"a/{path}", f"b/{path}", n=context))
    return f"diff --git a/{path} b/{path}\nindex 1234567..89abcde 100644\n{body}"


def _edited(lines: list[str], every: int) -> list[str]:
    out = list(lines)
    for i in range(5, len(out), every):
        out[i] = out[i].replace("argument_two", "argument_2")
    return out


def _changed(text: str) -> list[str]:
    keep = ("diff --git", "index ", "--- ", "+++ ", "@@ ", "commit ", "Author:", "Date:", "Binary files")
    return [ln for ln in text.splitlines() if ln.startswith(keep) or ln[:1] in "+-"]


def test_keeps_headers_and_changes_trims_context() -> None:
    old = _module(200, "a")
    text = _file_diff("src/a.py", old, _edited(old, 20)) + _file_diff("src/b.py", old, _edited(old, 35))
    assert COMP.sniff(Block(text))
    out, ctx = run(COMP, text)
    out_lines = out.splitlines()
    for line in _changed(text):
        assert line in out_lines
    assert ctx.dropped["context lines"] > 0
    # Each change keeps one context line on each side.
    lines = text.splitlines()
    first_change = next(i for i, ln in enumerate(lines) if ln.startswith("-def"))
    assert lines[first_change - 1] in out_lines and lines[first_change + 2] in out_lines
    assert "context lines elided; retrieve hr:" in out
    assert len(out) < 0.8 * len(text)


def test_git_log_p_with_commit_headers() -> None:
    old = _module(120, "c")
    commits = []
    for k, every in enumerate((15, 40)):
        head = f"commit {'%040x' % (k + 1)}\nAuthor: Dev <dev@example.com>\nDate:   Mon Jan 1 00:00:00 2024 +0000\n\n"
        msg = f"    Change number {k}\n\n    Why it changed.\n\n"
        commits.append(head + msg + _file_diff(f"pkg/m{k}.py", old, _edited(old, every)))
    text = "\n".join(commits)
    out, _ = run(COMP, text)
    out_lines = out.splitlines()
    for line in _changed(text):
        assert line in out_lines
    assert "    Why it changed." in out_lines


def test_lock_file_collapsed() -> None:
    def lock(version: str) -> list[str]:
        pkgs = {
            f"node_modules/p{i}": {"version": f"{version}.{i}", "integrity": f"sha512-{version}{i}"} for i in range(60)
        }
        return [ln + "\n" for ln in json.dumps({"packages": pkgs}, indent=2).splitlines()]

    old = _module(50, "d")
    text = _file_diff("package-lock.json", lock("1.0"), lock("1.1")) + _file_diff("src/d.py", old, _edited(old, 30))
    out, ctx = run(COMP, text)
    assert "[generated/lock file package-lock.json: 1 hunks, +120 -120 lines]" in out
    assert "+++ b/package-lock.json" in out
    assert '"version": "1.1.' not in out
    for line in _changed(_file_diff("src/d.py", old, _edited(old, 30))):
        assert line in out.splitlines()
    assert ctx.dropped["lines"] > 200


def test_binary_and_no_newline_lines_kept() -> None:
    context = "".join(f" unchanged line {i} of the file, long enough to be worth a marker\n" for i in range(7))
    text = (
        "diff --git a/logo.png b/logo.png\nindex 1111111..2222222 100644\n"
        "Binary files a/logo.png and b/logo.png differ\n"
        "diff --git a/e.py b/e.py\n--- a/e.py\n+++ b/e.py\n@@ -1,8 +1,8 @@\n"
        + context
        + "-old last\n\\ No newline at end of file\n+new last\n\\ No newline at end of file\n"
    )
    out, ctx = run(COMP, text)
    assert "Binary files a/logo.png and b/logo.png differ" in out
    assert out.endswith("-old last\n\\ No newline at end of file\n+new last\n\\ No newline at end of file\n")
    assert ctx.dropped["context lines"] == 6


def test_plain_diff_u_and_determinism() -> None:
    old = _module(150, "f")
    text = "".join(difflib.unified_diff(old, _edited(old, 25), "f.py.orig", "f.py"))
    assert COMP.sniff(Block(text))
    outs = {run(COMP, text)[0] for _ in range(3)}
    assert len(outs) == 1


@pytest.mark.parametrize(
    "text",
    [
        "just prose, mentioning diff --git in passing\n" * 10,
        "--- a list item\n+++ not a diff\nno hunks here\n",
        "",
    ],
)
def test_sniff_rejects_non_diffs(text: str) -> None:
    assert not COMP.sniff(Block(text))


@pytest.mark.parametrize(
    "text",
    [
        "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,50 +1,50 @@\n context\n-old\n+new\n",  # truncated hunk
        "diff --git a/x b/x\n@@ -a,b +c,d @@\n garbage\n",
        "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n" + " ctx line that is fairly long indeed\n" * 40,
        "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n\n\n-a\n+b\n\n" * 20,
    ],
)
def test_malformed_diffs_skip_or_stay_valid(text: str) -> None:
    try:
        out, _ = run(COMP, text)
    except Skip:
        return
    for line in text.splitlines():
        if line.startswith(("+", "-", "@@", "diff ")):
            assert line in out.splitlines()


# -- large real diffs: added and removed runs outlined ---------------------------------------------------

REPO = Path(__file__).resolve().parent.parent
#: Real stdlib modules a diff adds whole (about 9,000 lines, nearly all ``+``), and two it edits in place.
ADDED = (
    "configparser.py",
    "argparse.py",
    "textwrap.py",
    "shlex.py",
    "csv.py",
    "fileinput.py",
    "calendar.py",
    "tarfile.py",
)
EDITED = ("getopt.py", "glob.py")
_MARKER_LINE_RE = re.compile(r"^\[\d+ [a-z ]+ elided; retrieve (hr:[0-9a-f]{12}:\d+-\d+)\]$")


def _routed(text: str, question: str | None, command: str = "git diff --cached") -> tuple[str, MemoryCCRStore]:
    """Compress ``text`` as a Bash tool result through the router, the way the proxy does."""
    store = MemoryCCRStore()
    block = Block(text, "Bash", {"command": command})
    outcome = route(block, question, tool_hints(ToolCall("Bash", {"command": command})), EngineConfig())
    assert outcome.compressor == "diff", outcome.reason
    put_all(store, outcome.entries)
    return outcome.text, store


def _restored(out: str, store: MemoryCCRStore) -> str:
    """``out`` with every marker line replaced by the lines it stands for."""
    parts: list[str] = []
    for line in out.splitlines(keepends=True):
        m = _MARKER_LINE_RE.match(line.rstrip("\n"))
        parts.append(retrieve(store, m.group(1)) if m else line)
    return "".join(parts)


@pytest.fixture(scope="module")
def added_diff(tmp_path_factory: pytest.TempPathFactory) -> str:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    return str(engine_workloads().stdlib_added_diff(tmp_path_factory.mktemp("diff"), ADDED, EDITED))


def test_all_added_diff_saves_half_and_keeps_what_the_question_names(added_diff: str) -> None:
    lines = added_diff.splitlines()
    assert len(lines) > 8000 and sum(ln.startswith("+") for ln in lines) > 0.9 * len(lines)
    question = "Review the new `wrap` function in textwrap.py and the `parse_known_args` method: any bug?"
    out, store = _routed(added_diff, question)
    assert len(out) <= 0.5 * len(added_diff)
    out_lines = set(out.splitlines())
    # Every line of the functions the question names, verbatim (the bodies a reviewer must read).
    for name in ("def wrap(", "def parse_known_args("):
        start = next(i for i, ln in enumerate(lines) if ln.lstrip("+ ").startswith(name))
        indent = len(lines[start]) - len(lines[start][1:].lstrip()) - 1
        body = [lines[start]]
        for ln in lines[start + 1 :]:
            if ln[1:].strip() and len(ln) - len(ln[1:].lstrip()) - 1 <= indent:
                break
            body.append(ln)
        assert len(body) > 5
        missing = [ln for ln in body if ln[1:].strip() and ln not in out_lines]
        assert not missing, missing[:5]
    # Every file header, hunk header, and every added or removed signature stays.
    for ln in lines:
        if ln.startswith(("diff --git", "+++ ", "--- ", "@@ ")) or re.match(r"^[+-]\s*(?:async def|def|class) ", ln):
            assert ln in out_lines, ln
    # Each elided span is its own marker, and putting every marker back gives the diff byte for byte.
    assert _restored(out, store) == added_diff


def test_added_diff_compression_is_deterministic(added_diff: str) -> None:
    question = "What does the added `Calendar` class do?"
    outs = {_routed(added_diff, question)[0] for _ in range(2)}
    assert len(outs) == 1


def test_small_hunks_in_edited_files_stay_verbatim(added_diff: str) -> None:
    out, _ = _routed(added_diff, None)
    out_lines = set(out.splitlines())
    section = added_diff[added_diff.index("diff --git a/getopt.py") :]
    section = section[: section.index("\ndiff --git", 1)]
    changed = [ln for ln in section.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    assert changed and all(ln in out_lines for ln in changed)


def test_large_run_inside_an_edited_file_is_outlined_unless_the_question_names_its_hunk() -> None:
    old = _module(20, "g")
    new_fn = ["def helper_function(value):\n"] + [
        f"    value = value * {k} + {k}  # step {k} of many\n" for k in range(80)
    ]
    new = old[:10] + new_fn + ["    return value\n"] + old[10:]
    text = _file_diff("pkg/g.py", old, new)
    out, ctx = run(COMP, text)
    assert "+def helper_function(value):" in out and ctx.dropped["added lines"] > 60
    # git names the enclosing function after the hunk's @@; a question about it keeps the hunk whole.
    header = next(ln for ln in text.splitlines() if ln.startswith("@@"))
    named = text.replace(header, header + " def function_g_9(argument_one, argument_two):")
    out, ctx = run(COMP, named, question="What changed in `function_g_9`?")
    assert "added lines" not in ctx.dropped
    assert all(ln in out.splitlines() for ln in named.splitlines() if ln.startswith("+"))


def test_git_log_p_of_this_repository() -> None:
    wl = engine_workloads()
    text = wl.git_log_diff(9000)
    if text is None:
        pytest.skip("not a git checkout with history")
    picked = wl.added_function(text)
    assert picked is not None
    path, name, body = picked
    out, store = _routed(text, f"Review the `{name}` function added in `{path}`.", "git log -p --reverse")
    assert len(out) <= 0.5 * len(text)
    out_lines = set(out.splitlines())
    assert all(ln in out_lines for ln in body)
    assert _restored(out, store) == text


def test_added_prose_keeps_head_tail_and_headings() -> None:
    doc = []
    for k in range(6):
        doc.append(f"## Section {k}\n")
        doc += [f"Paragraph line {k}.{j}: words that explain the section in some detail.\n" for j in range(15)]
    text = _file_diff("docs/guide.md", [], doc)
    out, ctx = run(COMP, text)
    out_lines = out.splitlines()
    assert all(f"+## Section {k}" in out_lines for k in range(6))
    assert "+Paragraph line 0.0: words that explain the section in some detail." in out_lines
    assert "+Paragraph line 5.14: words that explain the section in some detail." in out_lines
    assert ctx.dropped["added lines"] > 60
    store = MemoryCCRStore()
    put_all(store, ctx.entries)
    assert _restored(out, store) == text
