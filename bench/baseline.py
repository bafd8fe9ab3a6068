"""A ``headroom`` command running the code of another commit, for before/after figures in one benchmark run.

    python bench/baseline.py 43bee50 /tmp/headroom-base     # prints the command: /tmp/headroom-base/headroom-cmd
    python bench/ingest_bench.py --baseline /tmp/headroom-base/headroom-cmd --parts backfill,ccusage

The commit's package folders are exported (``git archive``) under ``DIR/headroom/`` and a launcher ``DIR/headroom-cmd``
runs them with this checkout's virtual environment (the same dependencies), with the editable install's finder
taken out of the way so ``headroom.*`` imports resolve to the export. Timings then differ by the code alone.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from benchlib import REPO

PACKAGES = ("daemon", "engine", "learn", "memory", "migrations")

LAUNCHER = """#!{python}
# headroom at {commit} (exported by bench/baseline.py), not the editable install of this checkout.
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
sys.path.insert(0, {root!r})
import headroom.learn.mirror
assert headroom.learn.mirror.__file__.startswith({root!r}), headroom.learn.mirror.__file__
from headroom.daemon.entry import main
sys.argv[0] = "headroom"
sys.exit(main())
"""


def use_export(root: Path) -> None:
    """Make ``headroom.*`` imports in this process resolve to the package exported under ``root`` (what the
    launcher does), for a benchmark that imports the engine itself."""
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
    sys.path.insert(0, str(root))


def export(commit: str, target: Path) -> Path:
    """Export ``commit``'s package under ``target``; the launcher's path."""
    data = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, *PACKAGES], check=True, capture_output=True
    ).stdout
    shutil.rmtree(target / "headroom", ignore_errors=True)
    (target / "headroom").mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(target / "headroom", filter="data")
    full = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", commit], check=True, capture_output=True, text=True
    ).stdout.strip()
    launcher = target / "headroom-cmd"
    launcher.write_text(LAUNCHER.format(python=sys.executable, commit=full, root=str(target)), encoding="utf-8")
    launcher.chmod(0o755)
    return launcher


def main() -> None:
    parser = argparse.ArgumentParser(description="a headroom command running another commit's code")
    parser.add_argument("commit", help="the commit (or branch, tag) to export")
    parser.add_argument("target", type=Path, help="where to export it (replaced)")
    args = parser.parse_args()
    launcher = export(args.commit, args.target.absolute())
    subprocess.run([str(launcher), "--help"], check=True, capture_output=True)  # it starts
    print(launcher)


if __name__ == "__main__":
    main()
