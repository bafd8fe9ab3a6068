"""Who writes a row: the user and the machine of this process, decided in one place.

Many developers' daemons may share one database (issue 17), so every row a machine writes carries
``user_id`` and ``machine_id``; the models take their column defaults from :func:`current`, so no write path
can forget them. The identity is, in order: what :func:`configure` was given (``[team] user`` / ``machine`` in
config.toml, which ``load_config`` passes on), the environment (``HEADROOM_USER``, ``HEADROOM_MACHINE``), and
the defaults: the OS login name, and a random machine id generated once and kept owner-only in the state
folder (``state/machine-id`` under ``HEADROOM_HOME``). The machine id is random rather than the host name
because host names repeat (every laptop called ``macbook``) and change; a copied home keeps its id, which is
what a moved disk should do.

This module sits in the memory layer (the models need it) and so cannot ask ``daemon.paths`` where the state
folder is: ``load_config`` passes it; used as a library without a config, the same rule as ``paths()`` is
applied (``HEADROOM_HOME/state``, else the platform's state folder).
"""

from __future__ import annotations

import getpass
import os
import re
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

MACHINE_ID_FILE = "machine-id"
_MAX_LEN = 64  # the columns are String(64)
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Identity:
    """The user and machine every row this process writes is stamped with."""

    user: str
    machine: str


_lock = threading.Lock()
_current: dict[str, Identity] = {}  # "": this process's identity, once resolved


def current() -> Identity:
    """This process's identity (resolved once, on first use, when :func:`configure` was not called)."""
    found = _current.get("")
    if found is None:
        with _lock:
            found = _current.get("") or _current.setdefault("", resolve())
    return found


def current_user() -> str:
    """The user id (a column default: SQLAlchemy calls it for every insert that does not name the column)."""
    return current().user


def current_machine() -> str:
    """The machine id (a column default, like :func:`current_user`)."""
    return current().machine


def configure(user: str = "", machine: str = "", state_dir: Path | None = None) -> Identity:
    """Set this process's identity from the config (empty values fall back as :func:`resolve` says)."""
    identity = resolve(user, machine, state_dir)
    with _lock:
        _current[""] = identity
    return identity


def reset() -> None:
    """Forget the resolved identity (tests that switch ``HEADROOM_HOME``/``HEADROOM_USER`` between cases)."""
    with _lock:
        _current.clear()


def resolve(user: str = "", machine: str = "", state_dir: Path | None = None) -> Identity:
    """The identity from explicit values, else the environment, else the defaults (see the module doc)."""
    user = clean(os.environ.get("HEADROOM_USER", "") or user) or clean(_login_name())
    machine = clean(os.environ.get("HEADROOM_MACHINE", "") or machine)
    if not machine:
        machine = machine_id(state_dir if state_dir is not None else default_state_dir())
    return Identity(user=user or "unknown", machine=machine)


def clean(value: str) -> str:
    """An id as stored: trimmed, no control characters, at most 64 characters."""
    return _UNSAFE.sub("", value).strip()[:_MAX_LEN]


def machine_id(state_dir: Path) -> str:
    """The machine id kept in ``state_dir/machine-id``, created (owner-only) on first use.

    Two processes creating it at once both write a candidate to a private temporary file and link it into
    place; the loser reads the winner's id, so a machine never has two ids.
    """
    path = state_dir / MACHINE_ID_FILE
    existing = _read_id(path)
    if existing:
        return existing
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    candidate = uuid.uuid4().hex[:16]
    temp = path.with_name(f".{MACHINE_ID_FILE}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (candidate + "\n").encode())
    finally:
        os.close(fd)
    try:
        os.link(temp, path)  # fails if another process got there first: then its id is the one
    except FileExistsError:
        pass
    finally:
        temp.unlink(missing_ok=True)
    return _read_id(path) or candidate


def default_state_dir() -> Path:
    """The state folder by the rule of ``headroom.daemon.paths.paths`` (which this layer cannot import)."""
    home = os.environ.get("HEADROOM_HOME")
    if home:
        return Path(home).expanduser() / "state"
    # lazy: only when no state dir is configured
    import platformdirs

    return Path(platformdirs.user_state_dir("headroom", appauthor=False))


def _read_id(path: Path) -> str:
    try:
        return clean(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return ""


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container with a bare uid)
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"


__all__ = [
    "Identity",
    "clean",
    "configure",
    "current",
    "current_machine",
    "current_user",
    "machine_id",
    "reset",
    "resolve",
]
