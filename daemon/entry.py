"""The ``headroom`` console script: ``headroom statusline`` without importing the CLI, everything else through it.

Why: Claude Code runs the status line on every redraw, and importing the click CLI (SQLAlchemy, rich, every
command module) takes several times the 50 ms budget. A bare ``headroom statusline`` (stdin JSON in, one line
out) goes straight to :mod:`headroom.daemon.statusline`, and ``stats --json --no-refresh`` by period to
:func:`headroom.daemon.stats_fast.quick_main` (which hands anything it does not answer back); any other
arguments (``statusline install``, ``--help``...) go to the CLI as before.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["statusline"]:
        from headroom.daemon.statusline import main as statusline

        sys.exit(statusline())
    if sys.argv[1:2] == ["stats"] and "--no-refresh" in sys.argv:
        from headroom.daemon.stats_fast import quick_main  # the plain per-day JSON without the CLI (~0.3 s less)

        code = quick_main(sys.argv[2:])
        if code is not None:
            sys.exit(code)
    from headroom.daemon.cli import main as cli

    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
