"""Which items a team shares, and whose they are: the rules behind "private by default" (issue 17).

An item is ``team`` when it is what a repository holds (a file read inside the project: every clone has it,
unless its name looks like a secrets file: ``.env``, ``secrets.yaml``, ``*.pem``, ``id_rsa``…) or when its
author shares it explicitly (``memory save --team``, a lesson accepted for the team); everything else is
``private``: prompts, tool outputs, fetched pages, notes. On PostgreSQL a private item's dedup key is the
content hash salted with its owner, so two developers' identical prompts stay two items, each its owner's (a
shared key would let one user's insert find, or be refused by, a row the other owns). One person's SQLite
file keeps the plain content hash.

Row-level security (:mod:`headroom.memory.rls`) is what enforces this for a member's role; the filters here
apply the same rule in the queries, so a connection that bypasses the policies (the table owner) still
searches, forgets and redacts only its own and the team's items.
"""

from __future__ import annotations

import hashlib
import posixpath
import re

from sqlalchemy import ColumnElement, or_

from headroom.memory.identity import current_user
from headroom.memory.models import MemoryItemRow

PRIVATE = "private"
TEAM = "team"


_MSYS_DRIVE = re.compile(r"^/([A-Za-z])(/|$)")


def _drive_form(path: str) -> str:
    """``/c/Users/x`` (Git Bash / MSYS, as Claude Code on Windows often names files) as ``c:/Users/x``."""
    return _MSYS_DRIVE.sub(lambda m: f"{m.group(1)}:{m.group(2)}", path, count=1)


def in_repository(path: str | None, project: str) -> bool:
    """Whether ``path`` lies inside ``project`` (a relative path without ``..`` is taken as inside)."""
    if not path or not project:
        return False
    full = posixpath.normpath(path.replace("\\", "/"))
    absolute = full.startswith(("/", "~")) or full[1:2] == ":"
    if not absolute:
        return not full.startswith("..")
    root = posixpath.normpath(project.replace("\\", "/")).rstrip("/")
    if root[1:2] == ":" or full[1:2] == ":":  # a Windows project: its files may be named the MSYS way too
        full, root = _drive_form(full), _drive_form(root)
    if root[1:2] == ":":  # Windows: drive letters and names compare case-insensitively
        full, root = full.lower(), root.lower()
    return full.startswith(root + "/")


# Files inside a repository that are usually not committed and hold secrets: their reads stay private.
_PRIVATE_NAME = re.compile(
    r"(^|[._-])(env|secrets?|credentials?|passwords?|passwd|tokens?|netrc|npmrc|pypirc|htpasswd)([._-]|$)"
    r"|\.(pem|key|p12|pfx|keystore|jks|kdbx|tfstate|tfvars)$|^id_(rsa|dsa|ecdsa|ed25519)",
    re.IGNORECASE,
)


def visibility_for(kind: str, path: str | None, project: str, *, team: bool = False) -> str:
    """``team`` for an explicit share or a repository file read (not a secrets-looking file), else ``private``."""
    if team:
        return TEAM
    if kind == "file_read" and path and in_repository(path, project):
        name = posixpath.basename(path.replace("\\", "/"))
        return PRIVATE if _PRIVATE_NAME.search(name) else TEAM
    return PRIVATE


def dedup_key(digest: str, visibility: str, *, shared_database: bool, user: str | None = None) -> str:
    """The unique key an item is stored under: the content hash, salted with the owner for a private item
    on a shared database (64 hex characters either way)."""
    if not shared_database or visibility == TEAM:
        return digest
    owner = current_user() if user is None else user
    return hashlib.sha256(f"{owner}\0{digest}".encode()).hexdigest()


def readable(user: str | None = None) -> ColumnElement[bool]:
    """Items the user may read: the team's and their own (and rows from before identities: user "")."""
    me = current_user() if user is None else user
    return or_(MemoryItemRow.visibility == TEAM, MemoryItemRow.user_id.in_([me, ""]))


def owned(user: str | None = None) -> ColumnElement[bool]:
    """Items the user may delete or rewrite: their own."""
    me = current_user() if user is None else user
    return MemoryItemRow.user_id.in_([me, ""])
