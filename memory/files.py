r"""One atomic file write for every package that writes files (the lowest one that does I/O holds it).

A reader of the path sees the old file or the new one, never half of either: the data goes to a temp file in
the same folder (``mkstemp``: a unique ``.<name>.….headroom-tmp`` name, owner-only from its first byte), is
flushed, optionally fsynced, given its final mode, and renamed over the path. If anything fails the temp file
is removed and the error propagates unchanged; callers turn it into their own message.

The choices a caller makes, and why they differ:

* ``mode``: the final permission bits, exact whatever the umask (0600 for anything holding what an agent sent,
  a token or a pid). ``None`` keeps the mode of the file being replaced, and gives a new file the umask's
  default, as an editor would (the instruction files and agent configs belong to the user).
* ``fsync``: wait until the data is on disk before the rename, so a power cut leaves the old file or the new
  one, not an empty one. Off only where a write sits on a request's path and a lost file is recoverable (the CCR
  store finds a damaged original by its content hash and writes it again), or the file goes with the process.
* ``through_symlink``: replace the file a symlink points to and keep the link (a dotfile managed in a
  repository and linked into ``$HOME``); otherwise a symlink at the path is replaced by the new file.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

#: The temp file's suffix: one name, so a file left by a killed process is recognisably headroom's.
TEMP_SUFFIX = ".headroom-tmp"


def _umask_default() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(
    path: str | os.PathLike[str],
    data: bytes | Callable[[IO[bytes]], object],
    *,
    mode: int | None = 0o600,
    fsync: bool = True,
    through_symlink: bool = False,
) -> Path:
    """Replace ``path`` with ``data`` (bytes, or a function that writes to the open binary file) in one rename.

    Returns the path that was replaced (the symlink's target with ``through_symlink``).
    """
    target = Path(os.path.realpath(path)) if through_symlink else Path(path)
    if mode is None:
        try:
            mode = stat.S_IMODE(target.stat().st_mode)
        except FileNotFoundError:
            mode = _umask_default()
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, bytes):
                handle.write(data)
            else:
                data(handle)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


__all__ = ["TEMP_SUFFIX", "write_atomic"]
