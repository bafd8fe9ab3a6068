"""Which file reads a team shares: ``in_repository`` over POSIX, Windows and Git Bash (MSYS) spellings."""

from __future__ import annotations

import pytest

from headroom.memory.visibility import PRIVATE, TEAM, in_repository, visibility_for


@pytest.mark.parametrize(
    ("path", "project", "inside"),
    [
        ("/home/a/shop/src/app.py", "/home/a/shop", True),
        ("/home/a/shopping/app.py", "/home/a/shop", False),
        ("src/app.py", "/home/a/shop", True),
        ("../other/app.py", "/home/a/shop", False),
        ("C:\\Users\\lo\\vault\\a.md", "C:\\Users\\lo\\vault", True),
        ("c:\\users\\LO\\Vault\\a.md", "C:\\Users\\lo\\vault", True),
        # Claude Code on Windows under Git Bash names files /c/...: the same file (the team load test found
        # these reads private, and stored twice on PostgreSQL, while the Windows spelling was shared)
        ("/c/Users/lo/vault/a.md", "C:\\Users\\lo\\vault", True),
        ("/C/Users/lo/vault/notes/b.md", "c:\\users\\lo\\vault", True),
        ("C:\\Users\\lo\\vault\\a.md", "/c/Users/lo/vault", True),
        ("/d/Users/lo/vault/a.md", "C:\\Users\\lo\\vault", False),
        ("/c/Users/lo/vaultx/a.md", "C:\\Users\\lo\\vault", False),
        ("/c/work/a.py", "/c/work", True),  # a POSIX folder named /c stays a POSIX folder
        (None, "/home/a/shop", False),
    ],
)
def test_in_repository(path: str | None, project: str, inside: bool) -> None:
    assert in_repository(path, project) is inside


def test_a_secrets_file_inside_stays_private() -> None:
    assert visibility_for("file_read", "/c/Users/lo/vault/.env", "C:\\Users\\lo\\vault") == PRIVATE
    assert visibility_for("file_read", "/c/Users/lo/vault/README.md", "C:\\Users\\lo\\vault") == TEAM
