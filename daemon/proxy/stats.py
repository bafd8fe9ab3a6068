"""Per-request proxy statistics: written off the hot path, summarised for ``GET /stats`` and ``headroom stats``.

The request handler only builds a :class:`RequestRecord` and drops it into a bounded queue; a single writer
thread counts tokens (the engine's counts are lazy precisely so that this happens here, not before the
upstream call) and inserts rows in batches. A full queue drops records and counts the drops instead of
slowing requests down: statistics are worth less than latency.

A record waiting for its token count holds the parsed request (the count needs it), so the queue is bounded
by bytes as well as by records: past ``max_pending_bytes`` of request text waiting, a new record is kept
without its token count (its row still has the sizes, status and the provider's usage) and the skip is
counted in ``tokens_skipped``. A burst of large requests then costs a bounded amount of memory.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import case, func, insert, or_, select

from headroom.memory.db import Database
from headroom.memory.models import ProxyRequestRow
from headroom.memory.writer import BatchWriter

log = logging.getLogger("headroom.proxy")


@dataclass
class RequestRecord:
    """What one proxied request cost; ``tokens`` is called in the writer thread and returns (before, after)."""

    agent: str
    provider: str
    endpoint: str
    model: str | None
    stream: bool
    mode: str
    bytes_before: int
    bytes_after: int
    blocks_compressed: int = 0
    frozen_messages: int = 0
    status: int = 0
    added_ms: float = 0.0
    duration_ms: float = 0.0
    error: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    #: (whole request, after compression, removed tokens in messages sent before); called on the writer thread
    tokens: Callable[[], tuple[int, int, int]] | None = None
    weight: int = 0  # bytes of request text that ``tokens`` keeps alive until it is called
    ts: datetime = field(default_factory=lambda: datetime.now(timezone.utc).replace(tzinfo=None))
    conversation: str | None = None
    project: str | None = None
    holdout: bool = False
    fallback: str | None = None
    messages: int = 0  # the conversation's length: for the watchdog only, not stored

    def row(self) -> dict[str, Any]:
        before = after = prefix = 0
        if self.tokens is not None:
            try:
                before, after, prefix = self.tokens()
            except Exception as exc:  # a count must never lose the row
                log.warning("token count failed: %s: %s", type(exc).__name__, exc)
        return {
            "ts": self.ts,
            "day": self.ts.date(),
            "agent": self.agent,
            "provider": self.provider,
            "endpoint": self.endpoint,
            "model": (self.model or None) and self.model[:128],
            "stream": self.stream,
            "status": self.status,
            "mode": self.mode,
            "tokens_before": before,
            "tokens_after": after,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "blocks_compressed": self.blocks_compressed,
            "frozen_messages": self.frozen_messages,
            "input_tokens": self.usage.get("input"),
            "output_tokens": self.usage.get("output"),
            "cache_read_tokens": self.usage.get("cache_read"),
            "cache_write_tokens": self.usage.get("cache_write"),
            "added_ms": round(self.added_ms, 3),
            "duration_ms": round(self.duration_ms, 3),
            "error": self.error[:500] if self.error else None,
            "conversation": self.conversation,
            "project": self.project,
            "holdout": self.holdout,
            "fallback": self.fallback,
            "tokens_removed_prefix": prefix,
        }


#: Request text that records waiting for their token counts may keep alive (their parsed bodies weigh more).
PENDING_BYTES = 32 << 20


class StatsWriter(BatchWriter[RequestRecord]):
    """The proxy's statistics writer; ``db=None`` keeps no rows (counts only)."""

    def __init__(
        self,
        db: Database | None,
        *,
        max_pending_bytes: int = PENDING_BYTES,
        observe: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.db = db
        self.observe = observe  # the savings watchdog learns from every row, once its tokens are counted
        self.max_pending_bytes = max_pending_bytes
        self.pending_bytes = 0
        self.tokens_skipped = 0
        self._weights = threading.Lock()
        super().__init__(self._insert, "headroom-proxy-stats")

    def submit(self, record: RequestRecord) -> None:
        if record.tokens is not None:
            with self._weights:
                if self.pending_bytes + record.weight > self.max_pending_bytes:
                    record.tokens, record.weight = None, 0  # let the parsed body go now
                    self.tokens_skipped += 1
                else:
                    self.pending_bytes += record.weight
        dropped = self.dropped
        super().submit(record)
        if self.dropped != dropped and record.tokens is not None:  # the queue was full: nothing will count it
            self._release(record)

    def _release(self, record: RequestRecord) -> None:
        with self._weights:
            self.pending_bytes -= record.weight
        record.tokens, record.weight = None, 0

    def _insert(self, records: list[RequestRecord]) -> None:
        rows = []
        for record in records:
            row = record.row()  # token counting happens here, on the writer thread
            self._release(record)
            if self.observe is not None:
                try:
                    self.observe({**row, "messages": record.messages})
                except Exception as exc:  # the watchdog must never lose rows
                    log.warning("savings watchdog failed: %s: %s", type(exc).__name__, exc)
            rows.append(row)
        if self.db is not None:
            with self.db.transaction() as session:
                session.execute(insert(ProxyRequestRow), rows)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 2)


def proxy_summary(
    db: Database, *, days: int | None = None, since: date | None = None, agent: str | None = None
) -> dict[str, Any]:
    """Totals and per-agent figures of the proxy's requests (all time, the last ``days`` days, or from the
    UTC day ``since``; optionally one agent's)."""
    t = ProxyRequestRow
    where: list[Any] = []
    if days is not None:
        where.append(t.ts >= datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=days))
    if since is not None:
        where.append(t.day >= since)
    if agent is not None:
        where.append(t.agent == agent)
    columns = (
        func.count(),
        func.coalesce(func.sum(t.tokens_before), 0),
        func.coalesce(func.sum(t.tokens_after), 0),
        func.coalesce(func.sum(t.bytes_before), 0),
        func.coalesce(func.sum(t.bytes_after), 0),
        func.coalesce(func.sum(t.input_tokens), 0),
        func.coalesce(func.sum(t.cache_read_tokens), 0),
        func.coalesce(func.sum(t.cache_write_tokens), 0),
        func.coalesce(func.sum(t.output_tokens), 0),
        func.sum(case((or_(t.status >= 400, t.error.is_not(None)), 1), else_=0)),
    )
    keys = (
        "requests",
        "tokens_before",
        "tokens_after",
        "bytes_before",
        "bytes_after",
        "input_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "output_tokens",
        "errors",
    )

    def shape(values: Any) -> dict[str, Any]:
        out: dict[str, Any] = {k: int(v or 0) for k, v in zip(keys, values)}
        out["tokens_saved"] = out["tokens_before"] - out["tokens_after"]
        out["saved"] = round(out["tokens_saved"] / out["tokens_before"], 4) if out["tokens_before"] else 0.0
        return out

    with db.transaction() as session:
        total = shape(session.execute(select(*columns).where(*where)).one())
        per_agent = {
            row[0]: shape(row[1:])
            for row in session.execute(select(t.agent, *columns).where(*where).group_by(t.agent).order_by(t.agent))
        }
        latencies = [v for (v,) in session.execute(select(t.added_ms).where(*where).order_by(t.id.desc()).limit(5000))]
    total["added_ms_p50"] = _percentile(latencies, 0.5)
    total["added_ms_p99"] = _percentile(latencies, 0.99)
    return {"days": days, "total": total, "agents": per_agent}
