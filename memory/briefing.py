"""The project briefing: what the agents read, decided and were asked here lately, for the next session.

Delivered at the start of a Claude Code session (a SessionStart hook prints it as additional context) and on
request through the MCP tools to any agent. It lists, newest and most-seen first:

1. decisions and lessons (in full, they are short),
2. what the user asked recently,
3. the files the agents read (path, who, when, and the item id that gives the content back),
4. notable command outputs (the command, who, the id).

Only this project's sightings are used, and only active versions. The text is cut to ``max_bytes`` (UTF-8)
at a line boundary: Claude Code truncates hook context past 10,000 characters and Codex stops reading
instruction files after 32 KiB, so the default of 9,000 bytes fits every host. Content is already redacted in
the store; the briefing is redacted again on the way out, in case the rules grew since it was stored.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select

from headroom.memory.models import MemoryItemRow, MemorySightingRow
from headroom.memory.redact import redact_text
from headroom.memory.store import MemoryStore, utcnow

DEFAULT_BYTES = 9000
HALF_LIFE_DAYS = 3.0
_NOTE = "\n[… more in memory_search]"
_SHARES = (0.35, 0.2, 0.3, 0.15)  # of the budget, per section below, before the rest is shared out
SECTIONS = (
    ("decision", "Decisions and lessons"),
    ("instruction", "What the user asked"),
    ("file_read", "Files read (memory_get <id> gives the content back)"),
    ("tool_output", "Command outputs (memory_get <id>)"),
)


@dataclass
class _Entry:
    item_id: int
    kind: str
    title: str
    content: str
    agents: set[str] = field(default_factory=set)
    last: datetime = datetime.min
    sightings: int = 0

    def score(self, now: datetime) -> float:
        age_days = max(0.0, (now - self.last).total_seconds() / 86400)
        return math.pow(0.5, age_days / HALF_LIFE_DAYS) * (1 + math.log1p(self.sightings))


def _when(ts: datetime, now: datetime) -> str:
    delta = now - ts
    if delta < timedelta(hours=1):
        return f"{max(1, int(delta.total_seconds() // 60))} min ago"
    if delta < timedelta(days=1):
        return f"{int(delta.total_seconds() // 3600)} h ago"
    return f"{delta.days} d ago"


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _line(e: _Entry, now: datetime, project: str) -> str:
    who = ", ".join(sorted(e.agents)) or "saved"
    meta = f"({who}, {_when(e.last, now)}; #{e.item_id})"
    if e.kind in ("decision", "lesson"):
        return f"- {_short(e.content, 600)} {meta}"
    if e.kind == "instruction":
        return f'- "{_short(e.content, 240)}" {meta}'
    title = e.title
    if e.kind == "file_read" and project and title.startswith(project.rstrip("/") + "/"):
        title = os.path.relpath(title, project)
    return f"- {_short(title, 160)} {meta}"


def build_briefing(
    store: MemoryStore,
    project: str,
    *,
    exclude_session: str | None = None,
    max_bytes: int = DEFAULT_BYTES,
    days: float = 14.0,
    per_section: int = 15,
    now: datetime | None = None,
) -> str:
    """The briefing for ``project`` ("" when nothing is known). ``exclude_session`` leaves out what the
    starting session itself did (a resumed session already has it in context)."""
    now = now or utcnow()
    entries: dict[int, _Entry] = {}
    with store.db.sessions() as s:
        rows = s.execute(
            select(
                MemoryItemRow.id,
                MemoryItemRow.kind,
                MemoryItemRow.title,
                MemoryItemRow.content,
                MemorySightingRow.agent,
                MemorySightingRow.session_key,
                MemorySightingRow.path,
                MemorySightingRow.ts,
            )
            .join(MemorySightingRow, MemorySightingRow.item_id == MemoryItemRow.id)
            .where(
                MemorySightingRow.project == project,
                MemorySightingRow.ts >= now - timedelta(days=days),
                MemoryItemRow.status == "active",
            )
        ).all()
        global_rows = s.execute(
            select(
                MemoryItemRow.id,
                MemoryItemRow.kind,
                MemoryItemRow.title,
                MemoryItemRow.content,
                MemoryItemRow.last_seen_at,
            ).where(MemoryItemRow.global_scope.is_(True), MemoryItemRow.status == "active")
        ).all()
    for item_id, kind, title, content, agent, session_key, path, ts in rows:
        if exclude_session and session_key == exclude_session:
            continue
        e = entries.get(item_id)
        if e is None:
            e = entries[item_id] = _Entry(item_id, kind, path or title or "", content)
        e.agents.add(agent)
        e.sightings += 1
        if ts > e.last:
            e.last = ts
            if path:
                e.title = path
    for item_id, kind, title, content, last in global_rows:
        if item_id not in entries and kind in ("decision", "lesson"):
            entries[item_id] = _Entry(item_id, kind, title or "", content, {"global"}, last, 1)
    if not entries:
        return ""
    by_section: dict[str, list[_Entry]] = defaultdict(list)
    for e in entries.values():
        by_section["decision" if e.kind == "lesson" else e.kind].append(e)
    header = [
        f"## headroom memory: what agents did in this project lately ({project or 'no project'})",
        "Search it with the memory_search tool; memory_get <#id> gives an item back in full.",
    ]
    lines = {
        kind: [
            redact_text(_line(e, now, project))
            for e in sorted(by_section.get(kind, []), key=lambda e: (-e.score(now), -e.item_id))[:per_section]
        ]
        for kind, _ in SECTIONS
    }
    return _fit(header, lines, max_bytes)


def _fit(header: list[str], lines: dict[str, list[str]], max_bytes: int) -> str:
    """Every section gets its share of ``max_bytes`` first, then what is left goes to the rest in order.

    A flat cut would let fifty decisions crowd out every file; shares keep each kind of memory in view.
    """
    budget = max_bytes - _size(header) - len(_NOTE.encode())
    headings = {kind: f"\n### {heading}" for kind, heading in SECTIONS}
    shares = dict(zip((k for k, _ in SECTIONS), _SHARES))
    taken: dict[str, list[str]] = {kind: [] for kind, _ in SECTIONS}
    used = 0
    for final in (False, True):
        for kind, _ in SECTIONS:
            cap = budget if final else int(budget * shares[kind])
            spent = sum(len(x.encode()) + 1 for x in taken[kind]) + (
                len(headings[kind].encode()) + 1 if taken[kind] else 0
            )
            for line in lines[kind][len(taken[kind]) :]:
                cost = len(line.encode()) + 1 + (0 if taken[kind] else len(headings[kind].encode()) + 1)
                if spent + cost > cap or used + cost > budget:
                    break
                taken[kind].append(line)
                spent += cost
                used += cost
    out = list(header)
    for kind, _ in SECTIONS:
        if taken[kind]:
            out.append(headings[kind])
            out.extend(taken[kind])
    if any(len(taken[k]) < len(lines[k]) for k in lines):
        out.append(_NOTE.strip())
    return "\n".join(out)


def _size(lines: list[str]) -> int:
    return sum(len(x.encode()) + 1 for x in lines)
