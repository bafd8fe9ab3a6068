"""The root of headroom's exception hierarchy.

It lives in ``engine`` only because that is the bottom of the import chain (engine ← memory ← learn ←
daemon): every package can raise a ``HeadroomError`` subclass, and the CLI's error boundary turns any of
them into a one-line message instead of a traceback.

    HeadroomError
    ├── memory.errors.DatabaseError
    │   ├── DatabaseTooNew        the DB was written by a newer headroom
    │   └── DatabaseLocked        another process holds the DB past the busy timeout
    └── daemon.errors.ConfigError, DaemonError, ...
"""

from __future__ import annotations


class HeadroomError(Exception):
    """An error with a message meant for the user (no traceback needed)."""
