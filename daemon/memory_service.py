"""The daemon's side of the shared memory: building it from the config, and the worker that keeps it current.

The worker is one thread. Woken after every ingestion pass (and every few seconds anyway), it feeds new
session rows into the store, embeds a batch of the backlog, and once an hour runs the retention jobs:
CCR originals and block-memo entries unused for ``ccr_retention_days`` are expired, and the store is pruned
to ``max_db_mb``. Ingestion never waits for any of it: the main thread only sets an event. An error in one
round is logged and counted; the next round tries again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from headroom.daemon.config import Config
from headroom.daemon.memory_feed import MemoryFeed
from headroom.memory.api import Memory
from headroom.memory.ccr_store import FileCCRStore
from headroom.memory.db import Database
from headroom.memory.embed import Embedder, SentenceTransformerEmbedder
from headroom.memory.memo_store import DBBlockMemo

log = logging.getLogger("headroom.memory")

ROUND_SECONDS = 5.0
MAINTENANCE_SECONDS = 3600.0


def make_embedder(config: Config) -> Embedder | None:
    """The configured embedder (loaded lazily, on first use), or None when embeddings are off."""
    if not config.memory.embeddings:
        return None
    path = Path(config.memory.model_path).expanduser() if config.memory.model_path else None
    # One torch thread: the daemon shares the machine with the agents, and with the cores busy two threads
    # were 14 times slower per query than one (bench/README.md, Memory); idle, the second saves ~2 ms.
    return SentenceTransformerEmbedder(path, threads=1)


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


@dataclass
class WorkerState:
    rounds: int = 0
    fed_items: int = 0
    embedded: int = 0
    errors: int = 0
    last_error: str | None = None
    last_maintenance: dict[str, int] = field(default_factory=dict)
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
        self._next_maintenance = time.monotonic() + 60.0  # not during start-up's backfill
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

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        if self.memory.vectors is not None:
            self.memory.vectors.save()
        log.info("memory worker stopped")

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(ROUND_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                break
            self.run_round()

    def run_round(self) -> None:
        """One round: feed, one embedding batch per pass until the backlog is empty or a stop, maintenance."""
        self.state.rounds += 1
        try:
            report = self.feed.run()
            self.state.fed_items += report.items_created
            while self.memory.vectors is not None and self._embedder_ready() and not self._stop.is_set():
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
            if time.monotonic() >= self._next_maintenance:
                self._next_maintenance = time.monotonic() + MAINTENANCE_SECONDS
                self.maintain()
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
        if getattr(embedder, "loaded", True) or self._load_error is not None:
            return True  # a failed load: embed_pending reports the error (and search falls back to full text)
        if self._loader is None:
            self._loader = threading.Thread(target=self._load, args=(embedder,), name="headroom-model", daemon=True)
            self._loader.start()
        return False

    def _load(self, embedder: Any) -> None:
        try:
            embedder.load()
        except Exception as exc:  # EmbedderUnavailable, or a library failing in its own way
            self._load_error = f"{type(exc).__name__}: {exc}"
        self.wake()

    def maintain(self) -> dict[str, int]:
        """The retention jobs: expire CCR originals and memo entries, prune the store to its cap."""
        cfg = self.config.memory
        retention = timedelta(days=cfg.ccr_retention_days)
        ccr = FileCCRStore(self.config.paths.ccr_dir).expire(retention.total_seconds())
        memo = self.memo.expire(retention) if self.memo is not None else 0
        pruned = self.memory.prune(int(cfg.max_db_mb * 1e6))
        done = {"ccr_expired": ccr.deleted, "memo_expired": memo, "items_pruned": pruned}
        if any(done.values()):
            log.info("memory maintenance: %s", ", ".join(f"{k} {v}" for k, v in done.items()))
        self.state.last_maintenance = done
        return done
