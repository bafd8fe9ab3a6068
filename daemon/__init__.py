"""headroom.daemon: the application: CLI, configuration, paths, ingestion, the service, proxy, MCP server, hooks.

:func:`load_config` reads ``config.toml`` into a :class:`Config`, whose :class:`Paths` name every file and folder
(``HEADROOM_HOME`` moves them all); :class:`Service` runs ingestion, the watcher, the scheduler and the proxy in
one process. The CLI (``headroom.daemon.cli``) is the entry point and is not re-exported: nothing outside it
imports it. Names load on first use (PEP 562), as in :mod:`headroom.memory`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headroom.memory.facade import lazy_getattr

if TYPE_CHECKING:
    from headroom.daemon.config import Config, load_config
    from headroom.daemon.errors import AlreadyRunning, ConfigError, DaemonError, ProxyError
    from headroom.daemon.paths import Paths
    from headroom.daemon.providers import Provider
    from headroom.daemon.service import Service

_WHERE = {
    "AlreadyRunning": "errors",
    "Config": "config",
    "ConfigError": "errors",
    "DaemonError": "errors",
    "Paths": "paths",
    "Provider": "providers",
    "ProxyError": "errors",
    "Service": "service",
    "load_config": "config",
}

__all__ = [
    "AlreadyRunning",
    "Config",
    "ConfigError",
    "DaemonError",
    "Paths",
    "Provider",
    "ProxyError",
    "Service",
    "load_config",
]

__getattr__ = lazy_getattr(__name__, _WHERE)
