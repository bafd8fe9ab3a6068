"""The daemon's side of the shared memory: building it from the config, the worker that keeps it current,
and its periodic jobs.

The worker is one thread. Woken after every ingestion pass, it feeds new session rows into the store and
embeds the backlog batch by batch; it is the only thread that changes the in-memory vector index. The
periodic work runs on the daemon's scheduler (``daemon/scheduler.py``, its job store in the DB):
``memory-backlog`` wakes the worker every minute for what other processes added (``headroom memory save``,
the MCP server), ``memory-prune`` prunes the store to ``max_db_mb`` (handed to the worker's thread, since it
drops vectors), ``ccr-expiry`` deletes CCR originals and block-memo entries unused for ``ccr_retention_days``,
and ``db-compact`` checkpoints the WAL and VACUUMs a SQLite file that has much free space, nightly.
Ingestion never waits for any of it: the main thread only sets an event. An error in one round is logged and
counted; the next round tries again.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from headroom.daemon.component import FAILED, RUNNING, STOPPED, MemoryHealth
from headroom.daemon.config import Config
from headroom.daemon.memory_feed import MemoryFeed
from headroom.daemon.scheduler import Scheduler
from headroom.memory.api import Memory
from headroom.memory.ccr_store import FileCCRStore
from headroom.memory.db import Database
from headroom.memory.embed import Embedder, HashEmbedder, SentenceTransformerEmbedder
from headroom.memory.memo_store import DBBlockMemo

log = logging.getLogger("headroom.memory")

CALL_TIMEOUT_S = 600.0


def make_embedder(config: Config) -> Embedder | None:
    """The configured embedder (loaded lazily, on first use), or None when embeddings are off."""
    if not config.memory.embeddings:
        return None
    path = Path(config.memory.model_path).expanduser() if config.memory.model_path else None
    # One torch thread: the daemon shares the machine with the agents, and with the cores busy two threads
    # were 14 times slower per query than one (bench/README.md, Memory); idle, the second saves ~2 ms.
    # HEADROOM_EMBED_BACKEND=torch computes the model with sentence-transformers and torch instead of numpy
    # (memory/minilm.py): the same vectors at ~4 times the memory; kept for comparison and as an escape hatch.
    # HEADROOM_EMBED_BACKEND=hash: the deterministic feature-hashing embedder, no model at all (vectors of no
    # semantic worth; for load tests that run many daemons on a small machine, bench/team_load.py).
    backend = os.environ.get("HEADROOM_EMBED_BACKEND", "auto").strip().lower() or "auto"
    if backend == "hash":
        return HashEmbedder()
    if backend not in ("auto", "numpy", "torch"):
        log.warning("HEADROOM_EMBED_BACKEND=%s is not auto, numpy, torch or hash: using auto", backend)
        backend = "auto"
    return SentenceTransformerEmbedder(path, threads=1, backend=backend)


def open_memory(config: Config, db: Database, *, embedder: Embedder | None = None) -> Memory:
    return Memory(
        db, embedder=embedder if embedder is not None else make_embedder(config), index_dir=config.paths.index_dir
    )


SNIPPET_CHARS = 300


def search_payload(
    memory: Memory, query: str, project: str | None, *, k: int = 8, kinds: list[str] | None = None
) -> dict[str, Any]:
    """A search answer as the MCP tool and the daemon's endpoint give it: items scoped to ``project``."""
    result = memory.search(query, project=project, k=k, kinds=kinds)
    hits = []
    for hit in result.hits:
        item = hit.item.scoped(project)
        hits.append(
            {
                "id": item.id,
                "kind": item.kind,
                "title": item.title,
                "status": item.status,
                "agents": item.agents,
                "last_seen": item.last_seen_at.isoformat(timespec="minutes"),
                "size": item.size,
                "score": round(hit.score, 4),
                "via": hit.via,
                "snippet": " ".join(item.content[:SNIPPET_CHARS].split()),
            }
        )
    return {"project": project, "mode": result.mode, "note": result.note, "hits": hits}


def search_endpoint(memory: Memory) -> Callable[[dict[str, str]], dict[str, Any]]:
    """``GET /memory/search?q=…&project=…&k=…&kinds=a,b`` for the MCP servers (the model is loaded here once)."""

    def handle(params: dict[str, str]) -> dict[str, Any]:
        query = params.get("q", "")
        if not query.strip():
            raise ValueError("q (the query) is required")
        try:
            k = max(1, min(50, int(params.get("k", "8"))))
        except ValueError:
            raise ValueError("k must be a number") from None
        kinds = [x for x in params.get("kinds", "").split(",") if x] or None
        return search_payload(memory, query, params.get("project", ""), k=k, kinds=kinds)

    return handle


def socket_search(memory: Memory) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The ``memory_search`` request on the daemon's local socket (daemon/hooks/server.py), for
    ``headroom memory search`` and the MCP servers: ``{"q", "project" (null: every project), "k", "kinds",
    "detail"}``. ``detail`` answers each hit as :meth:`~headroom.memory.search.Hit.as_dict` (the CLI's
    ``--json``), else as :func:`search_payload` does (the MCP tool's shape)."""

    def handle(request: dict[str, Any]) -> dict[str, Any]:
        query = request.get("q")
        if not isinstance(query, str) or not query.strip():
            raise ValueError("q (the query) is required")
        k, project, kinds = request.get("k", 8), request.get("project"), request.get("kinds") or None
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 200:
            raise ValueError("k must be a number from 1 to 200")
        if project is not None and not isinstance(project, str):
            raise ValueError("project must be a string or null")
        if kinds is not None and (not isinstance(kinds, list) or not all(isinstance(x, str) for x in kinds)):
            raise ValueError("kinds must be a list of strings")
        if not request.get("detail"):
            return search_payload(memory, query, project, k=k, kinds=kinds)
        result = memory.search(query, project=project, k=k, kinds=kinds)
        return {
            "project": project,
            "mode": result.mode,
            "note": result.note,
            "hits": [hit.as_dict(project=project) for hit in result.hits],
        }

    return handle


@dataclass
class WorkerState:
    rounds: int = 0
    fed_items: int = 0
    embedded: int = 0
    errors: int = 0
    last_error: str | None = None
    #: Items still waiting for an embedding after the last batch (None until one ran, or without embeddings):
    #: kept here so health checks read a number instead of counting rows on every request.
    embed_backlog: int | None = None


class MemoryWorker:
    """Feeds, embeds and maintains the memory on its own thread."""

    def __init__(self, config: Config, memory: Memory, memo: DBBlockMemo | None = None) -> None:
        self.config = config
        self.memory = memory
        self.memo = memo
        self.feed = MemoryFeed(memory.store)
        self.state = WorkerState()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="headroom-memory", daemon=True)
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._last_embed_error: str | None = None  # logged once, not every round
        self._loader: threading.Thread | None = None
        self._load_error: str | None = None

    def start(self) -> None:
        self._thread.start()
        log.info("memory worker started (embeddings: %s)", "on" if self.memory.vectors else "off")

    def wake(self) -> None:
        self._wake.set()

    @property
    def alive(self) -> bool:
        """Whether the worker's thread runs (it catches every error, so a dead thread is a bug worth reporting)."""
        return self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def health(self) -> MemoryHealth:
        state = RUNNING if self.alive else STOPPED if self.stopping else FAILED
        st = self.state
        return MemoryHealth(state, st.last_error, embed_backlog=st.embed_backlog, rounds=st.rounds, errors=st.errors)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        if self.memory.vectors is not None:
            self.memory.vectors.save()
        log.info("memory worker stopped")

    def call(self, func: Callable[[], Any], timeout: float = CALL_TIMEOUT_S) -> Any:
        """Run ``func`` on the worker's thread (between rounds) and return its result: for jobs that change
        what the worker owns (the vector index), from the scheduler's threads."""
        if not self.alive:
            raise RuntimeError("the memory worker is not running")
        done: Future[Any] = Future()
        self._calls.put((func, done))
        self._wake.set()
        return done.result(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                break
            self._run_calls()
            self.run_round()
        self._run_calls(cancel=True)

    def _run_calls(self, *, cancel: bool = False) -> None:
        while True:
            try:
                func, done = self._calls.get_nowait()
            except queue.Empty:
                return
            if cancel:
                done.set_exception(RuntimeError("the memory worker stopped"))
                continue
            try:
                done.set_result(func())
            except Exception as exc:  # the caller (a scheduled job) reports it
                done.set_exception(exc)

    def run_round(self) -> None:
        """One round: feed, then embedding batches until the backlog is empty or a stop."""
        self.state.rounds += 1
        try:
            report = self.feed.run()
            self.state.fed_items += report.items_created
            vectors = self.memory.vectors
            # The model (~450 MB with torch) is loaded only once something needs a vector: an idle daemon
            # over an empty or fully embedded store stays small.
            wanted = vectors is not None and (self._loader is not None or vectors.has_pending())
            while wanted and self._embedder_ready() and not self._stop.is_set():
                got = self.memory.embed_pending(
                    limit=self.config.memory.embed_batch, batch=self.config.memory.embed_batch
                )
                self.state.embedded += got.embedded
                self.state.embed_backlog = got.pending
                if got.error and got.error != self._last_embed_error:
                    log.warning("memory: embeddings unavailable, search is full-text only: %s", got.error)
                self._last_embed_error = got.error
                if got.embedded == 0 or got.pending == 0:
                    break
        except Exception as exc:  # one bad round must never stop the worker
            self.state.errors += 1
            self.state.last_error = f"{type(exc).__name__}: {exc}"
            log.error("memory worker round failed: %s", self.state.last_error)

    def _embedder_ready(self) -> bool:
        """Whether the model is loaded; the first call starts loading it on its own thread.

        Loading torch and the model takes seconds: on the worker's thread it would hold back the feed, and
        with it full-text search of everything the agents did meanwhile.
        """
        assert self.memory.vectors is not None
        embedder = self.memory.vectors.embedder
        if embedder.loaded or self._load_error is not None:
            return True  # a failed load: embed_pending reports the error (and search falls back to full text)
        if self._loader is None:
            self._loader = threading.Thread(target=self._load, args=(embedder,), name="headroom-model", daemon=True)
            self._loader.start()
        return False

    def _load(self, embedder: Embedder) -> None:
        try:
            embedder.load()
        except Exception as exc:  # EmbedderUnavailable, or a library failing in its own way
            self._load_error = f"{type(exc).__name__}: {exc}"
        self.wake()

    def prune(self) -> int:
        """Prune the store to ``max_db_mb`` (on the worker's thread: it drops vectors from the index)."""
        pruned = self.memory.prune(int(self.config.memory.max_db_mb * 1e6))
        if pruned:
            log.info("memory: %d items pruned to keep the store under %s MB", pruned, self.config.memory.max_db_mb)
        return pruned


def expire_originals(config: Config, memo: DBBlockMemo | None) -> dict[str, int]:
    """Delete CCR originals and block-memo entries unused for ``ccr_retention_days``."""
    retention = timedelta(days=config.memory.ccr_retention_days)
    ccr = FileCCRStore(config.paths.ccr_dir).expire(retention.total_seconds())
    memo_expired = memo.expire(retention) if memo is not None else 0
    done = {"ccr_expired": ccr.deleted, "memo_expired": memo_expired}
    if any(done.values()):
        log.info("retention: %s", ", ".join(f"{k} {v}" for k, v in done.items()))
    return done


def register_jobs(
    scheduler: Scheduler,
    config: Callable[[], Config],
    db: Database,
    worker: MemoryWorker | None,
    memo: DBBlockMemo | None,
) -> None:
    """The memory's periodic jobs (see the module docstring). ``config`` gives the current config (a reload
    may change the retention); ``worker`` is None with the memory disabled, when only the proxy's CCR
    originals and the database itself need looking after."""
    if worker is not None:
        scheduler.add("memory-backlog", worker.wake, IntervalTrigger(minutes=1), what="embed what others added")
        scheduler.add(
            "memory-prune",
            lambda: worker.call(worker.prune),
            IntervalTrigger(hours=1),
            what="prune to max_db_mb",
            team=True,  # the memory is the whole database's: one daemon prunes it
        )
    scheduler.add(
        "ccr-expiry",
        lambda: expire_originals(config(), memo),
        IntervalTrigger(hours=1),
        what="expire unused CCR originals",
    )
    scheduler.add(
        "db-compact",
        db.compact,
        CronTrigger(hour=4, minute=45),
        grace_s=12 * 3600,
        what="checkpoint, VACUUM",
        team=True,
    )
