"""The persistent CCR store: the originals behind compression markers, kept for a retention, then expired.

One file per entry under ``<data dir>/ccr/<first two hex>/<id>``, owner-only (files 0600 in a 0700 folder: they
hold what the agents sent, secrets included, byte for byte), written atomically (temp file +
rename) so a reader never sees half an original. Ids are content hashes, so writing an existing id again is
a no-op (it only refreshes the file's time). Files rather than DB rows on purpose: the proxy puts originals
on the request path, and a file write never waits for SQLite's write lock, which ingestion may hold for a
while; the CLI, the MCP server and the proxy share the folder without coordination.

Retention counts from the last use: ``put`` and ``get`` touch the file's mtime, and :meth:`FileCCRStore.expire`
(a daemon job) deletes files older than the retention (default 7 days, ``[memory] ccr_retention_days``).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from headroom.engine.ccr import CCREntry

_ID_RE = re.compile(r"[0-9a-f]{12}")


class FileCCRStore:
    """Originals as files in ``root`` (created 0700)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root_checked = False

    def _path(self, entry_id: str) -> Path:
        if not _ID_RE.fullmatch(entry_id):  # ids come from user input: never let one name a path
            raise ValueError(f"not a CCR id: {entry_id!r}")
        return self.root / entry_id[:2] / entry_id

    def put(self, entry: CCREntry) -> None:
        path = self._path(entry.id)
        if path.exists():
            _touch(path)
            return
        if not self._root_checked:
            self._owner_only_root()
        path.parent.mkdir(exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{entry.id}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogatepass", newline="") as fh:
            fh.write(entry.text)
        os.replace(tmp, path)

    def _owner_only_root(self) -> None:
        """Create the folder owner-only, or make an existing one so (an older version or a copy may have left it
        0755): the originals are what the agents sent, secrets included, and only this user may read them."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.root.stat().st_mode & 0o077:
            os.chmod(self.root, 0o700)  # mkdir's mode is filtered by the umask, and an existing folder keeps its own
        self._root_checked = True

    def get(self, entry_id: str) -> str | None:
        try:
            path = self._path(entry_id)
            with open(path, encoding="utf-8", errors="surrogatepass", newline="") as fh:
                text = fh.read()
        except (OSError, ValueError):
            return None
        _touch(path)
        return text

    def expire(self, max_age_s: float, now: float | None = None) -> ExpireReport:
        """Delete originals unused for ``max_age_s`` seconds (and temp files a crash left behind)."""
        report = ExpireReport()
        cutoff = (now if now is not None else time.time()) - max_age_s
        if not self.root.is_dir():
            return report
        for folder in self.root.iterdir():
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                try:
                    st = path.stat()
                    if st.st_mtime < cutoff:
                        path.unlink()
                        report.deleted += 1
                        report.bytes_freed += st.st_size
                    else:
                        report.kept += 1
                        report.bytes_kept += st.st_size
                except OSError:
                    continue  # deleted meanwhile by another process
        return report


@dataclass
class ExpireReport:
    deleted: int = 0
    bytes_freed: int = 0
    kept: int = 0
    bytes_kept: int = 0


def _touch(path: Path) -> None:
    """Mark an original used now (retention counts from the last use, not from the first write)."""
    with contextlib.suppress(OSError):
        os.utime(path)
