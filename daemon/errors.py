"""Errors of the application layer; the CLI prints them as one line (see ``headroom.daemon.cli``)."""

from __future__ import annotations

from headroom.engine.errors import HeadroomError


class ConfigError(HeadroomError):
    """config.toml is unreadable or has a wrong key or value (the message names both)."""


class DaemonError(HeadroomError):
    """The service cannot start or is not in the state a command needs."""


class AlreadyRunning(DaemonError):
    """Another daemon of this user holds the lock."""


class ProxyError(HeadroomError):
    """The proxy cannot start (port taken, bad address)."""
