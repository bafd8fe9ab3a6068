"""The shared memory's records: what goes in (:class:`Draft`), what a put did (:class:`PutResult`), and an item
with its provenance as readers get it (:class:`Item`, :class:`Sighting`). Plain data, apart from the store's
transactions (:mod:`headroom.memory.store`) so callers can name them without the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from headroom.memory.models import MemoryItemRow, MemorySightingRow

if TYPE_CHECKING:
    from sqlalchemy import Row
    from typing_extensions import Unpack

EXCERPT_CHARS = 16_000  # head + tail kept (and indexed) for content stored by reference


@dataclass(frozen=True)
class Draft:
    """Content to put, and where it was met. ``project`` is a git root or cwd ("" for none)."""

    content: str
    kind: str
    project: str = ""
    agent: str = ""
    session_key: str = ""
    tool_call_key: str = ""
    path: str | None = None
    title: str | None = None
    ts: datetime | None = None
    source: str = "api"
    global_scope: bool = False
    team: bool = False  # shared with every user of a team database (see headroom.memory.visibility)
    ref: str | None = None  # where the whole lives, for content stored by reference


@dataclass(frozen=True)
class PutResult:
    """What a put did. ``item_id`` is None when the content was skipped (``skipped`` says why)."""

    item_id: int | None
    created: bool = False
    new_sighting: bool = False
    redactions: int = 0
    supersedes: int | None = None
    skipped: str | None = None


@dataclass
class Sighting:
    project: str
    agent: str
    session_key: str
    tool_call_key: str
    path: str | None
    source: str
    ts: datetime


@dataclass
class Item:
    """An item as shown to a user or an agent (content already redacted)."""

    id: int
    kind: str
    title: str | None
    content: str
    size: int
    ref: str | None
    global_scope: bool
    status: str
    supersedes_id: int | None
    superseded_by: list[int]
    link_reason: str | None
    redactions: int
    created_at: datetime
    last_seen_at: datetime
    sightings: list[Sighting] = field(default_factory=list)

    @property
    def agents(self) -> list[str]:
        return sorted({s.agent for s in self.sightings if s.agent})

    @property
    def projects(self) -> list[str]:
        return sorted({s.project for s in self.sightings})

    def scoped(self, project: str | None) -> Item:
        """This item as ``project`` may see it: only that project's sightings, and its own path as the title.

        Another project's paths, sessions and agents never show through a shared item (None: all of them).
        """
        if project is None:
            return self
        mine = [s for s in self.sightings if s.project == project]
        paths = [s.path for s in mine if s.path]
        title = paths[-1] if paths else (None if self.kind == "file_read" and self.sightings else self.title)
        return replace(self, sightings=mine, title=title)

    def as_dict(self, *, content: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "size": self.size,
            "ref": self.ref,
            "global": self.global_scope,
            "status": self.status,
            "supersedes": self.supersedes_id,
            "superseded_by": self.superseded_by,
            "link_reason": self.link_reason,
            "redactions": self.redactions,
            "created_at": self.created_at.isoformat(),
            "last_seen_at": self.last_seen_at.isoformat(),
            "agents": self.agents,
            "sightings": [
                {
                    "project": s.project,
                    "agent": s.agent,
                    "session": s.session_key,
                    "tool_call": s.tool_call_key,
                    "path": s.path,
                    "source": s.source,
                    "ts": s.ts.isoformat(),
                }
                for s in self.sightings
            ],
        }
        if content:
            out["content"] = self.content
        return out


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """Head and tail of ``text`` within ``limit`` characters, with a note of what is left out."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[… {len(text) - 2 * half} characters not stored inline …]\n{text[-half:]}"


def sighting_of(x: MemorySightingRow) -> Sighting:
    return Sighting(x.project, x.agent, x.session_key, x.tool_call_key, x.path, x.source, x.ts)


def item_of(r: MemoryItemRow | Row[Unpack[tuple[Any, ...]]], newer: list[int], sightings: list[Sighting]) -> Item:
    """An :class:`Item` from an ORM row or a row of its columns (read by name)."""
    return Item(
        r.id,
        r.kind,
        r.title,
        r.content,
        r.size,
        r.ref,
        r.global_scope,
        r.status,
        r.supersedes_id,
        newer,
        r.link_reason,
        r.redactions,
        r.created_at,
        r.last_seen_at,
        sightings,
    )
