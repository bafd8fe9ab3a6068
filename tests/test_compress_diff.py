"""The diff compressor: headers and changed lines verbatim, context trimmed, lock files collapsed."""

from __future__ import annotations

import difflib
import json

import pytest
from compress_helpers import run

from headroom.engine.compressors.base import Block, Skip
from headroom.engine.compressors.diff import DiffCompressor

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
