"""``knowledge.unwrap_shell`` answers most commands without shlex; its answers are shlex's, whatever the command."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.learn.knowledge import unwrap_shell, unwrap_shell_split


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("", ""),
        ("   ", "   "),
        ("git status", "git status"),
        ("bash -lc 'ls -la'", "ls -la"),
        ("  bash -c ls", "ls"),
        ('/bin/bash -lc "x y"', "x y"),
        ("ba'sh' -c x", "x"),  # quotes inside the first word: shlex decides
        ('"bash" -c x', "x"),
        ("\\bash -c x", "x"),
        ("bash\t-c\tx", "x"),
        ("bash\n-c x", "x"),
        ("bash\x0b-c x", "bash\x0b-c x"),  # not shlex whitespace: one word
        ("bash -c 'unbalanced", "bash -c 'unbalanced"),
        ("ls 'unbalanced", "ls 'unbalanced"),
        ("sh -c", "sh -c"),
        ("zsh -lc 'a' b", "zsh -lc 'a' b"),
        ("sh.exe -c x", "x"),
    ],
)
def test_known_shapes(command: str, expected: str) -> None:
    assert unwrap_shell(command) == expected
    assert unwrap_shell_split(command) == expected


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="abshz/.-lc '\"\\\t\n\x0b;|", max_size=24))
def test_generated_commands(command: str) -> None:
    """The shortcut never changes an answer: generated commands near the wrapper shapes agree with the split."""
    assert unwrap_shell(command) == unwrap_shell_split(command)
