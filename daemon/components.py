"""The daemon's components under the one contract of daemon/component.py (ingest's is daemon/follow.py).

Each wraps the part it runs (the memory worker, the hooks' socket, the proxy, the scheduler, the learn jobs)
with ``start(stack)``, ``stop()``, ``health()`` and ``reconfigure(config)``: what to build from the config,
what a failure to start means (logged, reported as ``failed``, the daemon goes on), how the part reports its
health, and what of a reloaded config it takes live. Components that others need (the memory's store and block
memo for the proxy, the hooks and the scheduler) are handed over as components, read at start.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from headroom.daemon.component import DISABLED, FAILED, RUNNING, STOPPED, Health, LearnHealth, MemoryHealth, Runtime
from headroom.daemon.config import Config
from headroom.daemon.errors import ProxyError
from headroom.daemon.hooks.answers import HookAnswers
from headroom.daemon.hooks.server import HookServer, Request
from headroom.daemon.learn_service import LearnJobs
from headroom.daemon.memory_service import MemoryWorker, open_memory, register_jobs, search_endpoint, socket_search
from headroom.daemon.proxy.server import ProxyServer, build_app
from headroom.daemon.scheduler import Scheduler
from headroom.daemon.stats_request import stats_request
from headroom.memory.memo_store import DBBlockMemo

log = logging.getLogger("headroom.daemon")


class MemoryComponent:
    """The memory worker (feed, embeddings, retention) and the block memo the proxy shares across agents."""

    name = "memory"

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.config = rt.config
        self.worker: MemoryWorker | None = None
        self.memo: DBBlockMemo | None = None

    def start(self, stack: contextlib.ExitStack) -> None:
        if not self.config.memory.enabled:
            log.info("memory disabled in the config")
            return

        db = self.rt.database()
        memo = self.memo = DBBlockMemo(db)
        stack.callback(memo.close)
        worker = MemoryWorker(self.config, open_memory(self.config, db), memo)
        worker.start()
        self.worker = worker
        stack.callback(self.stop)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker.memory.close()

    def wake(self) -> None:
        if self.worker is not None:
            self.worker.wake()

    def reconfigure(self, config: Config) -> None:
        self.config = config
        if self.worker is not None:
            self.worker.config = config

    def health(self) -> MemoryHealth:
        worker = self.worker
        if worker is None:
            return MemoryHealth(DISABLED if not self.config.memory.enabled else STOPPED)
        return worker.health()


class HooksComponent:
    """The agents' hooks' socket (daemon/hooks/server.py), which also answers the CLI's and the MCP servers'
    local requests (memory search, stats); a path that cannot be bound is logged, not fatal."""

    name = "hooks"

    def __init__(self, rt: Runtime, memory: MemoryComponent) -> None:
        self.rt = rt
        self.memory = memory
        self.errors = rt.errors
        self.server: HookServer | None = None

    def start(self, stack: contextlib.ExitStack) -> None:
        paths = self.rt.config.paths
        db = self.rt.database()
        memory = self.memory.worker.memory if self.memory.worker is not None else None
        answers = HookAnswers(self.rt.current_config, db, memory, paths.hooks_stats)
        requests: dict[str, Request] = {"stats_rows": stats_request(db)}
        if memory is not None:
            requests["memory_search"] = socket_search(memory)
        server = HookServer(answers, paths.hooks_socket, requests)
        try:
            server.start()
        except OSError as exc:
            self.errors.note(self.name, f"hooks not started: {exc}")
            return
        self.server = server
        stack.callback(self.stop)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def reconfigure(self, config: Config) -> None:
        """Nothing to do: the answers read the current config (``rt.config``) on every request."""

    def health(self) -> Health:
        if self.server is None:
            return self.errors.not_running(self.name)
        info = self.server.health()
        return Health(str(info.pop("state")), info.pop("last_error"), details=info)


class ProxyComponent:
    """The proxy on its own thread; a taken port is logged and the daemon goes on without it."""

    name = "proxy"

    def __init__(self, rt: Runtime, memory: MemoryComponent, daemon_health: Callable[[], dict[str, Any]]) -> None:
        self.rt = rt
        self.config = rt.config
        self.memory = memory
        self.errors = rt.errors
        self.daemon_health = daemon_health
        self.server: ProxyServer | None = None

    def start(self, stack: contextlib.ExitStack) -> None:
        if not self.config.proxy.enabled:
            log.info("proxy disabled in the config")
            return

        worker = self.memory.worker
        search = search_endpoint(worker.memory) if worker is not None else None
        try:
            proxy = self.config.proxy
            db = self.rt.database()
            app = build_app(self.config, db, memo=self.memory.memo, memory_search=search, health=self.daemon_health)
            server = ProxyServer(app, proxy.host, proxy.port, state_file=self.config.paths.proxy_state)
            server.start()
        except ProxyError as exc:
            self.errors.note(self.name, f"proxy not started: {exc}")
            return
        self.server = server
        stack.callback(self.stop)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def reconfigure(self, config: Config) -> None:
        """``[engine]`` and ``proxy.holdout`` are live (the rewriter takes a new engine config; new holdout draws,
        so a conversation may change group); the rest of ``[proxy]`` needs a restart."""
        old, self.config = self.config, config
        if self.server is not None and config.engine != old.engine:
            self.server.app.rewriter.reconfigure(config.engine)
        if self.server is not None and config.proxy.holdout != old.proxy.holdout:
            self.server.app.rewriter.policy.holdout = config.proxy.holdout

    def health(self) -> Health:
        if self.server is None:
            return Health(DISABLED) if not self.config.proxy.enabled else self.errors.not_running(self.name)
        info = self.server.health()
        stopping = self.server.stopping or self.rt.stop_event.is_set()
        state = RUNNING if info.pop("running") else STOPPED if stopping else FAILED
        error = info.pop("error")
        return Health(state, str(error) if error is not None else None, details=info)


class SchedulerComponent:
    """The periodic jobs (apscheduler on its own threads, jobs stored in the DB): learn's, if enabled, and the
    memory's retention and compaction. Started after, and so stopped before, what its jobs use."""

    name = "scheduler"

    def __init__(self, rt: Runtime, memory: MemoryComponent, learn: LearnComponent) -> None:
        self.rt = rt
        self.memory = memory
        self.learn = learn
        self.scheduler: Scheduler | None = None

    def start(self, stack: contextlib.ExitStack) -> None:
        db = self.rt.database()
        scheduler = Scheduler(db, every=self.rt.current_config().scheduler.every)
        self.learn.register(scheduler)
        register_jobs(scheduler, self.rt.current_config, db, self.memory.worker, self.memory.memo)
        scheduler.start()
        self.scheduler = scheduler
        stack.callback(self.stop)

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()

    def reconfigure(self, config: Config) -> None:
        """Nothing to do: the jobs read the current config (``rt.config``) when they run."""

    def health(self) -> Health:
        if self.scheduler is None:
            return Health(STOPPED)
        info = self.scheduler.health()
        return Health(str(info.pop("state")), info.pop("last_error"), details=info)


class LearnComponent:
    """The learn jobs, which run on the scheduler: registered there when learn is enabled."""

    name = "learn"

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.config = rt.config
        self.jobs: LearnJobs | None = None

    def start(self, stack: contextlib.ExitStack) -> None:
        """Nothing runs until the scheduler does (see :meth:`register`)."""

    def register(self, scheduler: Scheduler) -> None:
        if not self.config.learn.enabled:
            log.info("learn disabled in the config")
            return

        self.jobs = LearnJobs(self.config, self.rt.database())
        self.jobs.register(scheduler)

    def stop(self) -> None:
        """Nothing to do: the scheduler stops the jobs."""

    def reconfigure(self, config: Config) -> None:
        self.config = config
        if self.jobs is not None:
            self.jobs.reconfigure(config)

    def health(self) -> LearnHealth:
        if self.jobs is None:
            return LearnHealth(DISABLED if not self.config.learn.enabled else STOPPED)
        return self.jobs.health()
