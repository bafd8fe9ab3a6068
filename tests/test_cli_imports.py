"""The CLI's fast paths import nothing heavy: a set of modules, read with ``-X importtime`` in a fresh process.

An import-set check rather than a timing (timings are for bench/): ``headroom --help``, ``--version``, a bare
``headroom statusline`` (Claude Code runs it on every redraw) and a command group's ``--help`` must not load
SQLAlchemy, numpy, httpx, the price table or the proxy's and the service's libraries.
"""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest

from headroom.daemon.cli import COMMANDS, SUMMARIES, cli

#: Top-level packages that cost tens to hundreds of milliseconds each, and what pulls them in.
HEAVY = (
    "sqlalchemy",
    "alembic",
    "numpy",
    "httpx",
    "genai_prices",
    "torch",
    "tiktoken",
    "uvicorn",
    "websockets",
    "apscheduler",
    "watchdog",
)


def imported_by(*argv: str, stdin: str = "") -> set[str]:
    """Every module ``headroom ARGV`` imports, as ``-X importtime`` reports them."""
    script = f"import sys; sys.argv = ['headroom', *{list(argv)!r}]; from headroom.daemon.entry import main; main()"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", script],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HEADROOM_RAISE_ERRORS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("argv", [("--help",), ("--version",), ("hooks", "--help"), ("mcp", "--help")])
def test_fast_paths_import_nothing_heavy(argv: tuple[str, ...]) -> None:
    modules = imported_by(*argv)
    assert "headroom.daemon.cli" in modules  # the reader sees the imports (not an empty set that always passes)
    assert sorted(m for m in modules if m.split(".")[0] in HEAVY) == []


def test_help_lists_every_command_without_importing_one() -> None:
    modules = imported_by("--help")
    loaded = {m.rsplit(".", 1)[-1] for m in modules if m.startswith("headroom.daemon.cli.")}
    assert loaded.isdisjoint(set(COMMANDS.values()) - {"common"})


def test_the_summaries_are_the_commands_own_help() -> None:
    """``--help`` shows SUMMARIES; each must be what the command's docstring says (no drift)."""
    ctx = click.Context(cli)
    assert set(SUMMARIES) == set(COMMANDS)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None
        assert command.get_short_help_str(limit=1000) == SUMMARIES[name], name


def test_a_bare_statusline_imports_nothing_heavy() -> None:
    modules = imported_by("statusline", stdin='{"session_id": "none-such"}')
    assert "headroom.daemon.statusline" in modules
    assert sorted(m for m in modules if m.split(".")[0] in (*HEAVY, "click", "rich")) == []
