"""``knowledge.unwrap_shell`` answers most commands without shlex; its answers are shlex's, whatever the command."""

from __future__ import annotations

import os
import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.learn.knowledge import unwrap_shell

SHELLS = {"bash", "sh", "zsh", "dash", "bash.exe", "sh.exe"}


def by_shlex(command: str) -> str:
    """The definition: split the command as a POSIX shell would; ``SHELL -c|-lc SCRIPT`` gives SCRIPT."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    if len(words) == 3 and os.path.basename(words[0]) in SHELLS and words[1] in ("-c", "-lc"):
        return words[2]
    return command


@pytest.mark.parametrize(
    "command",
    [
        "",
        "   ",
        "git status",
        "bash -lc 'ls -la'",
        "  bash -c ls",
        '/bin/bash -lc "x y"',
        "ba'sh' -c x",  # quotes inside the first word: shlex decides
        '"bash" -c x',
        "\\bash -c x",
        "bash\t-c\tx",
        "bash\n-c x",
        "bash\x0b-c x",  # not shlex whitespace: one word
        "bash -c 'unbalanced",
        "ls 'unbalanced",
        "sh -c",
        "zsh -lc 'a' b",
        "sh.exe -c x",
    ],
)
def test_known_shapes(command: str) -> None:
    assert unwrap_shell(command) == by_shlex(command)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="abshz/.-lc '\"\\\t\n\x0b;|", max_size=24))
def test_generated_commands(command: str) -> None:
    assert unwrap_shell(command) == by_shlex(command)
