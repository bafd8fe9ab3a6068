"""The journal of headroom's writes into agent files: a backup of every file's prior bytes, and undo.

Split from :mod:`headroom.learn.writers`, whose block parsing and atomic writes it reuses to take back
exactly headroom's block when the user edited the file since.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from headroom.learn.writers import (
    _BOM,
    Plan,
    WriteError,
    _check_writable,
    _decode,
    _find_block,
    _read,
    _remove,
    _write_atomic,
)


def _sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


class Journal:
    """An append-only JSONL journal of headroom's writes, with a backup of every file's prior bytes.

    One ``write`` line per applied plan, then ``undone`` / ``failed`` lines that refer to it by id; nothing is
    ever rewritten. The folder is the caller's (e.g. ``<data dir>/learn``) and owner-only: backups hold the
    user's file contents.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.backups = root / "backups"
        self.path = root / "journal.jsonl"
        for folder in (root, self.backups):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(folder, 0o700)

    # writing

    def _append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def _mark(self, entry_id: str, op: str, **extra: Any) -> None:
        self._append({"op": op, "id": entry_id, "at": _now(), **extra})

    def record(self, plan: Plan, *, run: str | None = None, lessons: Sequence[str] = ()) -> str:
        """Journal ``plan`` before it is written: back up the prior bytes; returns the entry id.

        ``run`` ties together every file one ``learn --apply`` wrote (:meth:`undo_run` takes them all back);
        ``lessons`` are the keys of the lessons the write put in the file.
        """
        entry_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"
        backup = "absent"
        if plan.before is not None:
            name = f"{entry_id}.before"
            fd = os.open(self.backups / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, plan.before)
                os.fsync(fd)
            finally:
                os.close(fd)
            backup = f"backups/{name}"
        self._append(
            {
                "op": "write",
                "id": entry_id,
                "at": _now(),
                "agent": plan.target.agent,
                "path": str(plan.target.path),
                "before": backup,
                "before_sha256": _sha256(plan.before),
                "after_sha256": _sha256(plan.after),
                "lessons_written": plan.lessons_written,
                "note": plan.note,
                "run": run or entry_id,
                "lessons": list(lessons),
            }
        )
        return entry_id

    # reading

    def _records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a torn last line after a crash: the write it described never happened
        return records

    def entries(self) -> list[dict[str, Any]]:
        """Every write, oldest first, each with ``status``: ``written``, ``undone`` or ``failed``."""
        writes: dict[str, dict[str, Any]] = {}
        for record in self._records():
            if record.get("op") == "write":
                writes[record["id"]] = {**record, "status": "written"}
            elif record.get("id") in writes and record.get("op") in ("undone", "failed"):
                writes[record["id"]]["status"] = record["op"]
        return list(writes.values())

    # undoing

    def undo(self, entry_id: str | None = None) -> list[Path]:
        """Undo the newest write still in effect (or ``entry_id``); returns the paths changed.

        Without an id, repeated calls step back through the writes, newest first, and do nothing once all are
        undone; undoing a given entry a second time does nothing.

        If the file still holds exactly what headroom wrote, its prior bytes come back (or it is deleted if
        headroom created it). If the user edited it since, only headroom's block is restored to what it was
        before the write (or removed), so their edits stay.
        """
        entries = self.entries()
        if entry_id is None:
            live = [e for e in entries if e["status"] == "written"]
            if not live:
                return []
            entry = live[-1]
        else:
            found = [e for e in entries if e["id"] == entry_id]
            if not found:
                raise WriteError(f"no journal entry {entry_id!r}")
            entry = found[0]
        if entry["status"] != "written":
            return []
        path = Path(entry["path"])
        before = None if entry["before"] == "absent" else (self.root / entry["before"]).read_bytes()
        current = _read(path)
        changed = self._restore(path, before, current, entry["after_sha256"])
        self._mark(entry["id"], "undone")
        return [path] if changed else []

    def undo_run(self, ident: str | None = None) -> tuple[list[Path], list[str]]:
        """Undo every write of one learn run still in effect: the newest run, or the run of ``ident`` (a run or an
        entry id). Returns the paths changed and the keys of the lessons those writes had put in.

        Writes are taken back newest first, so a file written twice in the run ends with its bytes from before it.
        """
        entries = self.entries()
        live = [e for e in entries if e["status"] == "written"]
        if ident is None:
            if not live:
                return [], []
            run = live[-1].get("run", live[-1]["id"])
        else:
            found = [e for e in entries if ident in (e["id"], e.get("run"))]
            if not found:
                raise WriteError(f"no journal entry or run {ident!r}")
            run = found[0].get("run", found[0]["id"])
        paths: list[Path] = []
        keys: list[str] = []
        for entry in reversed([e for e in live if e.get("run", e["id"]) == run]):
            paths += self.undo(entry["id"])
            keys += [k for k in entry.get("lessons", []) if k not in keys]
        return paths, keys

    def _restore(self, path: Path, before: bytes | None, current: bytes | None, after_sha: str | None) -> bool:
        if current is None or current == before:
            return False  # the user deleted it, or it already holds the old bytes: nothing of ours to take back
        if _sha256(current) == after_sha:
            if before is None:
                Path(os.path.realpath(path)).unlink()
            else:
                _check_writable(path)
                _write_atomic(path, before)
            return True
        # Edited since our write: put back only our block's region.
        decoded = _decode(current, path)
        bom = _BOM if decoded.startswith(_BOM) else ""
        text = decoded[len(bom) :]
        ours = _find_block(text, path)
        if ours is None:
            return False  # the user removed the block themselves
        old_block = None
        if before is not None:
            old_text = before.decode("utf-8")
            old_text = old_text[len(_BOM) :] if old_text.startswith(_BOM) else old_text
            found = _find_block(old_text, path)
            old_block = None if found is None else old_text[found.start : found.end]
        restored = _remove(text, ours) if old_block is None else text[: ours.start] + old_block + text[ours.end :]
        if before is None and restored == "":
            Path(os.path.realpath(path)).unlink()
            return True
        _check_writable(path)
        _write_atomic(path, (bom + restored).encode("utf-8"))
        return True


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
