"""A CCR store of plain files, so ``headroom compress`` and a later ``headroom retrieve`` share originals.

One file per entry under ``<data dir>/ccr/<first two hex>/<id>``, owner-only, written atomically (temp file +
rename) so a reader never sees half an original. Ids are content hashes, so writing an existing id again is
a no-op. The database-backed store of the memory package replaces this for the daemon.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from headroom.engine.ccr import CCREntry

_ID_RE = re.compile(r"[0-9a-f]{12}")


class FileCCRStore:
    """Originals as files in ``root`` (created 0700)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, entry_id: str) -> Path:
        if not _ID_RE.fullmatch(entry_id):  # ids come from user input: never let one name a path
            raise ValueError(f"not a CCR id: {entry_id!r}")
        return self.root / entry_id[:2] / entry_id

    def put(self, entry: CCREntry) -> None:
        path = self._path(entry.id)
        if path.exists():
            return
        if not self.root.exists():
            self.root.mkdir(parents=True, mode=0o700)
            os.chmod(self.root, 0o700)  # mkdir's mode is filtered by the umask
        path.parent.mkdir(exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{entry.id}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogatepass", newline="") as fh:
            fh.write(entry.text)
        os.replace(tmp, path)

    def get(self, entry_id: str) -> str | None:
        try:
            path = self._path(entry_id)
            with open(path, encoding="utf-8", errors="surrogatepass", newline="") as fh:
                return fh.read()
        except (OSError, ValueError):
            return None
