"""The one contract every part of the daemon keeps, so :class:`~headroom.daemon.service.Service` runs them alike.

A component (ingest's follow loop, memory, hooks, proxy, scheduler, learn) is started with the service's
``ExitStack`` (``start(stack)`` pushes its own ``stop``, so shutdown runs in reverse order of start), answers
``health()`` with a typed :class:`Health` record from numbers it keeps anyway, and takes a reloaded config in
``reconfigure(config)`` (applying what it can read live; see ``config.LIVE_KEYS``). The service knows no
component's internals: it starts them in order, asks them for health, hands them the new config.

A component that cannot start (a taken port, a socket path too long) notes why in the shared :class:`Errors`
and reports ``state="failed"``; the daemon goes on without it. Shaped after apscheduler's and httpx's
lifecycles: start/stop are idempotent, health never blocks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from headroom.daemon.config import Config
    from headroom.memory.db import Database

log = logging.getLogger("headroom.daemon")

#: A component's state as health reports it.
RUNNING, STOPPED, FAILED, DISABLED = "running", "stopped", "failed", "disabled"


@dataclass
class Health:
    """One component's health: its state, its last error, and (in subclasses) its own typed figures.

    ``details`` carries figures a component reports that have no field of their own (the proxy's and the
    hooks' counters, which their servers compute); ``as_dict`` flattens them, so ``/healthz`` and
    ``headroom daemon status`` read the same JSON as before the records were typed."""

    state: str
    last_error: str | None = None
    details: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "details"}
        out.update(self.details)
        return out


@dataclass
class IngestHealth(Health):
    pending_paths: int = 0
    #: How far ingestion is behind the agents' writes (seconds; 0 when caught up).
    lag_s: float = 0.0
    events_seen: int = 0
    #: Log record types met for the first time by this daemon (format drift): status warns about them.
    new_record_types: list[dict[str, str | None]] = field(default_factory=list)


@dataclass
class MemoryHealth(Health):
    embed_backlog: int | None = None
    rounds: int = 0
    errors: int = 0


@dataclass
class LearnHealth(Health):
    last: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class Component(Protocol):
    """What the service runs: see the module docstring."""

    name: str

    def start(self, stack: contextlib.ExitStack) -> None: ...

    def stop(self) -> None: ...

    def health(self) -> Health: ...

    def reconfigure(self, config: Config) -> None: ...


class Errors:
    """The last error per component (``ingest``, ``proxy``, ``config``, ``database``...), and the last of all.

    Shared by the service and its components: a component notes its own errors here instead of the service
    reading them out of it."""

    def __init__(self) -> None:
        self.by_component: dict[str, str] = {}
        self.last: str | None = None

    def note(self, component: str, message: str, exc: BaseException | None = None) -> None:
        self.last = message
        self.by_component[component] = message
        log.error(message, exc_info=exc if os.environ.get("HEADROOM_RAISE_ERRORS") else None)

    def get(self, component: str) -> str | None:
        return self.by_component.get(component)

    def clear(self, component: str) -> None:
        self.by_component.pop(component, None)

    def not_running(self, component: str) -> Health:
        """The health of a component with nothing running: failed when it noted an error, else stopped."""
        failed = self.get(component)
        return Health(FAILED if failed else STOPPED, failed)


@dataclass
class Runtime:
    """What the service shares with its components, all built before anything starts: the current config
    (replaced on a reload), the shared :class:`Errors`, the stop event, and the database (opened by the service
    before the first component starts; ``None`` until then)."""

    config: Config
    errors: Errors = field(default_factory=Errors)
    stop_event: threading.Event = field(default_factory=threading.Event)
    db: Database | None = None

    def database(self) -> Database:
        assert self.db is not None, "the service opens the database before it starts a component"
        return self.db

    def current_config(self) -> Config:
        return self.config
