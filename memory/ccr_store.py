"""The persistent CCR store: the originals behind compression markers, kept for a retention, then expired.

One file per entry under ``<data dir>/ccr/<first two hex>/<id>``, owner-only (files 0600 in a 0700 folder: they
hold what the agents sent, secrets included, byte for byte), written atomically (temp file + rename, see
:mod:`headroom.memory.files`) so a reader never sees half an original. Ids are content hashes, so writing an
existing id again is a no-op (it only refreshes the file's time); a different text under a held id is refused
(a 48-bit collision), and a file that no longer hashes to its id (emptied by a power cut: writes are not
fsynced) is written again. Files rather than DB rows on purpose: the proxy puts originals on the request path,
and a file write never waits for SQLite's write lock, which ingestion may hold for a while; the CLI, the MCP
server and the proxy share the folder without coordination.

Project scope: an original written for a known project (the proxy reads it from the request, the MCP server
and ``headroom compress`` from their working directory) gets a ``<id>.projects`` file beside it listing the
projects that produced it; :meth:`FileCCRStore.get` with a ``project`` answers only those (an entry without
one, written before this or for an unknown project, stays readable by all). :meth:`FileCCRStore.scoped` is
the view a component working for one project uses.

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

from headroom.engine.ccr import CCRCollision, CCREntry, content_id
from headroom.memory.files import write_atomic

_ID_RE = re.compile(r"[0-9a-f]{12}")
_PROJECTS = ".projects"  # beside an entry: the projects that produced it


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
        """Keep ``entry``; a no-op (but a touch) when it is already here.

        A file already at the id is compared with the text: the same, it is only touched; another text whose hash
        is the id is a collision of the 48-bit ids (:class:`CCRCollision`: never answer one original for another);
        anything else is a damaged file (emptied by a power cut: writes are not fsynced) and is written again.
        """
        path = self._path(entry.id)
        data = entry.text.encode("utf-8", "surrogatepass")
        try:
            held = path.read_bytes()
        except OSError:
            held = None
        if held == data:
            _touch(path)
            return
        if held is not None and _intact(held, entry.id):
            raise CCRCollision(entry.id)
        if not self._root_checked:
            self._owner_only_root()
        path.parent.mkdir(exist_ok=True, mode=0o700)
        # no fsync: the proxy puts originals on a request's path
        write_atomic(path, data, mode=0o600, fsync=False)

    def _owner_only_root(self) -> None:
        """Create the folder owner-only, or make an existing one so (an older version or a copy may have left it
        0755): the originals are what the agents sent, secrets included, and only this user may read them."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.root.stat().st_mode & 0o077:
            os.chmod(self.root, 0o700)  # mkdir's mode is filtered by the umask, and an existing folder keeps its own
        self._root_checked = True

    def scoped(self, project: str) -> ScopedCCRStore:
        """This store as ``project`` sees it: what it puts is claimed for it, what it gets must be its own."""
        return ScopedCCRStore(self, project)

    def claim(self, entry_id: str, project: str) -> None:
        """Record that ``project`` produced the entry (so it may retrieve it)."""
        path = self._path(entry_id).with_suffix(_PROJECTS)
        if project in self._projects(path):
            return
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8", errors="surrogatepass") as fh:
            fh.write(project.replace("\n", " ") + "\n")

    def visible(self, entry_id: str, project: str) -> bool:
        """Whether ``project`` may read the entry: it produced it, or no project was ever recorded for it."""
        claimed = self._projects(self._path(entry_id).with_suffix(_PROJECTS))
        return not claimed or project in claimed

    @staticmethod
    def _projects(path: Path) -> set[str]:
        try:
            return set(path.read_text(encoding="utf-8", errors="surrogatepass").splitlines())
        except OSError:
            return set()

    def get(self, entry_id: str, project: str | None = None) -> str | None:
        """The original, or None when unknown, expired or (with ``project``) another project's."""
        try:
            if project is not None and not self.visible(entry_id, project):
                return None
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
                if path.suffix == _PROJECTS:  # goes with its entry, below
                    if not path.with_suffix("").exists():
                        path.unlink(missing_ok=True)
                    continue
                try:
                    st = path.stat()
                    if st.st_mtime < cutoff:
                        path.unlink()
                        path.with_suffix(_PROJECTS).unlink(missing_ok=True)
                        report.deleted += 1
                        report.bytes_freed += st.st_size
                    else:
                        report.kept += 1
                        report.bytes_kept += st.st_size
                except OSError:
                    continue  # deleted meanwhile by another process
        return report


class ScopedCCRStore:
    """A :class:`FileCCRStore` seen by one project (the engine's store interface: ``put`` and ``get``)."""

    def __init__(self, base: FileCCRStore, project: str) -> None:
        self.base, self.project = base, project

    def put(self, entry: CCREntry) -> None:
        self.base.put(entry)
        self.base.claim(entry.id, self.project)

    def get(self, entry_id: str) -> str | None:
        return self.base.get(entry_id, project=self.project)


@dataclass
class ExpireReport:
    deleted: int = 0
    bytes_freed: int = 0
    kept: int = 0
    bytes_kept: int = 0


def _intact(held: bytes, entry_id: str) -> bool:
    """Whether ``held`` is a whole original: its content id is the id it is stored under."""
    try:
        return content_id(held.decode("utf-8", "surrogatepass")) == entry_id
    except UnicodeDecodeError:
        return False


def _touch(path: Path) -> None:
    """Mark an original used now (retention counts from the last use, not from the first write)."""
    with contextlib.suppress(OSError):
        os.utime(path)
