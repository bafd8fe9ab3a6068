"""Database errors, mapped from SQLAlchemy/Alembic at the boundary so callers see one hierarchy."""

from __future__ import annotations

from headroom.engine.errors import HeadroomError


class DatabaseError(HeadroomError):
    """The database cannot be opened or used."""


class DatabaseTooNew(DatabaseError):
    """The DB's schema revision is unknown to this code: it was written by a newer headroom."""

    def __init__(self, url: str, revision: str, head: str, min_client: str | None = None) -> None:
        self.url, self.revision, self.head, self.min_client = url, revision, head, min_client
        window = f", and needs a client at revision {min_client} or later" if min_client else ""
        super().__init__(
            f"the database {url} is at schema revision {revision}, which this headroom does not know "
            f"(its newest is {head}): it was written by a newer headroom{window}. Upgrade headroom "
            "(pip install -U headroom) or point database_url at another database."
        )


class DatabaseNeedsUpgrade(DatabaseError):
    """The schema is older than the code, and this process may not upgrade it (a read-only open)."""


class DatabaseLocked(DatabaseError):
    """Another process kept the database locked past the busy timeout."""


class DatabaseFull(DatabaseError):
    """The disk (or the database's size limit) is full: writing must wait until space returns."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether a driver error means "no space": SQLite's SQLITE_FULL, PostgreSQL's disk_full (53100), ENOSPC."""
    orig = getattr(exc, "orig", exc)
    if getattr(orig, "sqlite_errorname", None) == "SQLITE_FULL" or getattr(orig, "sqlstate", None) == "53100":
        return True
    text = str(orig).lower()
    return "database or disk is full" in text or "no space left on device" in text
