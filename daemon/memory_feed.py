"""Feeds the shared memory from the session mirror: what each agent read, ran, fetched and was asked.

The feed follows two cursors (the last tool-call row and the last prompt event it handled), stored in
``state_values`` and advanced in the same transaction as the items it put, so a crash either keeps a batch
and its cursor or neither: nothing is fed twice, nothing is skipped. A tool call still waiting for its
result stops the tool-call cursor for a while (its output usually lands in the next batch); one that never
completes (an interrupted session) is passed over after :data:`PENDING_GRACE`. A call passed over is still
looked at again for :data:`LATE_KEEP` (a sub-agent's task that ran longer than the grace, a log backfilled
with its results written later): when its result lands, its output is fed then (the team load test found
such outputs missing against a read of the finished logs).

Cursors and rows are per machine (issue 17): on a database shared by a team, each daemon feeds the sessions
its own machine ingested, under its own cursors, so two daemons never put the same backlog twice.

It reads only committed rows, so it may run on any thread after ingestion (the daemon calls it after each
ingest pass; ``headroom memory …`` commands call it before answering, so they work without the daemon).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from headroom.learn.knowledge import Found, from_prompt, from_tool_call
from headroom.memory.identity import current_machine
from headroom.memory.models import EventRow, SessionRow, ToolCallRow
from headroom.memory.records import Draft
from headroom.memory.store import MemoryStore, utcnow
from headroom.memory.upsert import retrying

log = logging.getLogger("headroom.memory")

PENDING_GRACE = timedelta(minutes=30)
#: How long a call passed over while pending is looked at again, and how many such calls are remembered.
LATE_KEEP = timedelta(days=2)
LATE_MAX = 1000
BATCH = 200
_TOOLS_CURSOR = "memory_feed.tool_calls"
_PROMPTS_CURSOR = "memory_feed.prompts"
_LATE = "memory_feed.late_calls"  # JSON: [[tool call id, when it was passed over (epoch seconds)], ...]
#: The state values that are one machine's (``headroom team adopt`` moves unowned ones to a machine).
MACHINE_CURSORS = (_TOOLS_CURSOR, _PROMPTS_CURSOR, _LATE)


@dataclass
class FeedReport:
    tool_calls: int = 0
    prompts: int = 0
    items_created: int = 0
    sightings: int = 0
    skipped: int = 0
    redactions: int = 0

    def add(self, other: FeedReport) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


class MemoryFeed:
    """Moves new rows of the session mirror into the memory store."""

    def __init__(self, store: MemoryStore, *, now: datetime | None = None, machine: str | None = None) -> None:
        self.store = store
        self._now = now
        self.machine = current_machine() if machine is None else machine

    def run(self, max_batches: int | None = None) -> FeedReport:
        """Feed everything new (or ``max_batches`` batches of each kind)."""
        total = FeedReport()
        batches = 0
        while max_batches is None or batches < max_batches:
            # A deadlock or a lost race with another daemon on a shared database: the batch runs again whole.
            got = retrying(self._tool_batch, what="memory feed")
            got.add(retrying(self._prompt_batch, what="memory feed"))
            total.add(got)
            batches += 1
            if got.tool_calls < BATCH and got.prompts < BATCH:
                break
        if total.items_created or total.sightings:
            log.info(
                "memory: %d new items, %d sightings (%d redactions) from %d tool calls and %d prompts",
                total.items_created,
                total.sightings,
                total.redactions,
                total.tool_calls,
                total.prompts,
            )
        return total

    def _tool_batch(self) -> FeedReport:
        report = FeedReport()
        now = self._now or utcnow()
        with self.store.db.transaction() as s:
            cursor = int(self.store.state(_TOOLS_CURSOR, s, machine=self.machine) or 0)
            rows = s.execute(
                select(ToolCallRow, SessionRow.agent, SessionRow.key, SessionRow.cwd, SessionRow.project_root)
                .join(SessionRow, SessionRow.id == ToolCallRow.session_id)
                .where(ToolCallRow.id > cursor, ToolCallRow.machine_id == self.machine)
                .order_by(ToolCallRow.id)
                .limit(BATCH)
            ).all()
            late = self._late(s)
            before = dict(late)
            drafts = self._late_results(s, late, now)
            last = cursor
            for call, agent, session_key, cwd, project in rows:
                if call.status == "pending":
                    started = call.started_at or now
                    if now - started < PENDING_GRACE:
                        break  # its result is probably in the next batch: wait here
                    late[call.id] = now.timestamp()  # passed over, but looked at again (see the module doc)
                last = call.id
                report.tool_calls += 1
                draft = _call_draft(call, agent, session_key, cwd, project)
                if draft is not None:
                    drafts.append(draft)
            self._put(drafts, report, s)
            if last != cursor:
                self.store.set_state(s, _TOOLS_CURSOR, str(last), machine=self.machine)
            if late != before:
                kept = sorted(late.items(), key=lambda kv: kv[1])[-LATE_MAX:]
                self.store.set_state(s, _LATE, json.dumps([[i, t] for i, t in kept]), machine=self.machine)
        return report

    def _late(self, s: Session) -> dict[int, float]:
        """The calls passed over while pending: id -> when (a damaged value reads as none)."""
        try:
            value = json.loads(self.store.state(_LATE, s, machine=self.machine) or "[]")
            return {int(i): float(t) for i, t in value}
        except (TypeError, ValueError):
            return {}

    def _late_results(self, s: Session, late: dict[int, float], now: datetime) -> list[Draft]:
        """Drafts of the passed-over calls whose result has landed since; ``late`` loses those, the ones gone
        and the ones waited for longer than :data:`LATE_KEEP`."""
        if not late:
            return []
        rows = s.execute(
            select(ToolCallRow, SessionRow.agent, SessionRow.key, SessionRow.cwd, SessionRow.project_root)
            .join(SessionRow, SessionRow.id == ToolCallRow.session_id)
            .where(ToolCallRow.id.in_(list(late)))
        ).all()
        found = {call.id for call, *_ in rows}
        for gone in set(late) - found:
            del late[gone]
        drafts = []
        for call, agent, session_key, cwd, project in rows:
            if call.status == "pending":
                if now.timestamp() - late[call.id] > LATE_KEEP.total_seconds():
                    del late[call.id]
                continue
            del late[call.id]
            draft = _call_draft(call, agent, session_key, cwd, project)
            if draft is not None:
                drafts.append(draft)
        return drafts

    def _prompt_batch(self) -> FeedReport:
        report = FeedReport()
        with self.store.db.transaction() as s:
            cursor = int(self.store.state(_PROMPTS_CURSOR, s, machine=self.machine) or 0)
            rows = s.execute(
                select(
                    EventRow.id,
                    EventRow.key,
                    EventRow.text,
                    EventRow.ts,
                    SessionRow.agent,
                    SessionRow.key,
                    SessionRow.cwd,
                    SessionRow.project_root,
                )
                .join(SessionRow, SessionRow.id == EventRow.session_id)
                .where(EventRow.id > cursor, EventRow.kind == "user_prompt", EventRow.machine_id == self.machine)
                .order_by(EventRow.id)
                .limit(BATCH)
            ).all()
            drafts: list[Draft] = []
            for _id, key, text, ts, agent, session_key, cwd, project in rows:
                report.prompts += 1
                found = from_prompt(text)
                if found is not None:
                    drafts.append(_draft(found, agent, session_key, f"prompt:{key}", project or cwd, ts))
            self._put(drafts, report, s)
            if rows:
                self.store.set_state(s, _PROMPTS_CURSOR, str(rows[-1][0]), machine=self.machine)
        return report

    def _put(self, drafts: list[Draft], report: FeedReport, s: Session) -> None:
        for result in self.store.put_many(drafts, session=s):
            if result.item_id is None:
                report.skipped += 1
                continue
            report.items_created += int(result.created)
            report.sightings += int(result.new_sighting)
            report.redactions += result.redactions


def _call_draft(call: ToolCallRow, agent: str, session_key: str, cwd: str | None, project: str | None) -> Draft | None:
    """What a completed tool call adds to the memory (None: failed, pending, or nothing worth keeping)."""
    if call.status != "ok" or call.failed:
        return None
    found = from_tool_call(call.kind, call.name, call.command, call.path, call.output, call.input, cwd)
    if found is None:
        return None
    return _draft(found, agent, session_key, call.key, project or cwd, call.ended_at or call.started_at)


def _draft(
    found: Found, agent: str, session_key: str, call_key: str, project: str | None, ts: datetime | None
) -> Draft:
    return Draft(
        found.content,
        found.kind,
        project=project or "",
        agent=agent,
        session_key=session_key,
        tool_call_key=call_key,
        path=found.path,
        title=found.title,
        ts=ts,
        source="log",
    )
