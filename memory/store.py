"""The shared memory: items with provenance, deduplicated across agents, secrets redacted before storage.

``put`` is the only way in. It redacts, normalizes and hashes the content (:mod:`headroom.memory.dedup`), then
either adds a sighting to the item with that hash or creates the item, linking it as the newer version of
what was at the same path before. Everything happens in one transaction per batch, so the feed can commit a
batch and its cursor together. Embedding, vector search and near-duplicate links live in
:mod:`headroom.memory.vectors`; ranking and full-text search in :mod:`headroom.memory.search`.

Scoping: an item is visible in a project when it has a sighting there, or when it was saved as global. The
same content read in two projects is stored once (one item, a sighting in each), and neither project's
sessions can learn from the other what the other did not already hold.

Large content (over ``inline_chars``) is stored by reference: an excerpt (head and tail) is kept and indexed,
``ref`` says where the whole lives, and the hash is still over the whole, so exact dedup still holds.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Dialect, delete, func, select, update
from sqlalchemy.orm import Session

from headroom.memory.db import Database
from headroom.memory.dedup import clean_text, content_hash, looks_binary, normalize
from headroom.memory.identity import current_machine, current_user
from headroom.memory.kinds import KINDS
from headroom.memory.models import MemoryItemRow, MemorySightingRow, MemoryVectorRow, StateValueRow
from headroom.memory.records import Draft, Item, PutResult, Sighting, excerpt, item_of, sighting_of
from headroom.memory.redact import redact
from headroom.memory.upsert import insert_for, upsert
from headroom.memory.visibility import TEAM, dedup_key, owned, readable, visibility_for

log = logging.getLogger("headroom.memory")

SOURCES = ("log", "proxy", "mcp", "cli", "api")
INLINE_CHARS = 1 << 20  # 1 M characters stored whole; larger is stored by reference
TITLE_CHARS = 200
_GENERATION = "memory.generation"


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


#: What :meth:`MemoryStore.items` reads: the fields of :class:`Item` (``item_of`` reads them by name).
_ITEM_COLUMNS = (
    MemoryItemRow.id,
    MemoryItemRow.kind,
    MemoryItemRow.title,
    MemoryItemRow.content,
    MemoryItemRow.size,
    MemoryItemRow.ref,
    MemoryItemRow.global_scope,
    MemoryItemRow.status,
    MemoryItemRow.supersedes_id,
    MemoryItemRow.link_reason,
    MemoryItemRow.redactions,
    MemoryItemRow.created_at,
    MemoryItemRow.last_seen_at,
)
#: The fields of :class:`Sighting`, in its order.
_SIGHTING_COLUMNS = (
    MemorySightingRow.project,
    MemorySightingRow.agent,
    MemorySightingRow.session_key,
    MemorySightingRow.tool_call_key,
    MemorySightingRow.path,
    MemorySightingRow.source,
    MemorySightingRow.ts,
)

_ITEM_NAMES = ", ".join(c.key for c in _ITEM_COLUMNS)
_SIGHTING_NAMES = ", ".join(c.key for c in _SIGHTING_COLUMNS)
Converter = Callable[[Any], Any] | None


@functools.cache
def _converters(dialect: Dialect) -> tuple[list[Converter], list[Converter]]:
    """The result converters of :data:`_ITEM_COLUMNS` and :data:`_SIGHTING_COLUMNS` on ``dialect`` (SQLite: its
    datetime strings and 0/1 booleans), the ones SQLAlchemy applies to the same columns."""

    def of(columns: tuple[Any, ...]) -> list[Converter]:
        return [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]

    return of(_ITEM_COLUMNS), of(_SIGHTING_COLUMNS)


def _converted(row: Sequence[Any], converters: list[Converter]) -> list[Any]:
    return [v if f is None or v is None else f(v) for v, f in zip(row, converters, strict=True)]


class MemoryStore:
    """Items, sightings and their lifecycle in the database (thread-safe: every call opens its own session)."""

    def __init__(self, db: Database, *, inline_chars: int = INLINE_CHARS) -> None:
        self.db = db
        self.inline_chars = inline_chars

    # -- writing -----------------------------------------------------------------------------------

    def put(self, content: str, kind: str, **where: Any) -> PutResult:
        """Put one piece of content (see :class:`Draft` for ``where``)."""
        return self.put_many([Draft(content, kind, **where)])[0]

    def put_many(self, drafts: Sequence[Draft], session: Session | None = None) -> list[PutResult]:
        """Put a batch in one transaction (or in ``session``, the caller's, to commit with its own rows)."""
        if session is not None:
            results = [self._put(session, d) for d in drafts]
            self._bump(session)
            return results
        with self.db.transaction() as s:
            results = [self._put(s, d) for d in drafts]
            self._bump(s)
            return results

    def _put(self, s: Session, d: Draft) -> PutResult:
        if d.kind not in KINDS:
            raise ValueError(f"unknown memory kind {d.kind!r} (one of {', '.join(KINDS)})")
        if looks_binary(d.content):
            return PutResult(None, skipped="binary content")
        cleaned = clean_text(d.content)
        red = redact(cleaned)
        text = normalize(red.text)
        if not text.strip():
            return PutResult(None, skipped="empty")
        visibility = visibility_for(d.kind, d.path, d.project, team=d.team)
        digest = dedup_key(content_hash(text), visibility, shared_database=not self.db.is_sqlite)
        now = utcnow()
        ts = d.ts.astimezone(timezone.utc).replace(tzinfo=None) if d.ts and d.ts.tzinfo else (d.ts or now)
        title = title_of(d)
        stored, ref = (text, d.ref) if len(text) <= self.inline_chars else (excerpt(text), d.ref or "not kept")
        # One statement, so that two daemons putting the same content at once make one item (the loser's
        # insert waits for the winner's commit, then does nothing): never a unique violation (issue 17).
        inserted = s.execute(
            insert_for(s)(MemoryItemRow)
            .values(
                content_hash=digest,
                kind=d.kind,
                title=title,
                content=stored,
                size=len(text),
                ref=ref,
                global_scope=d.global_scope,
                visibility=visibility,
                status="active",
                redactions=len(red.findings),
                sightings=0,
                created_at=now,
                last_seen_at=ts,
                user_id=current_user(),
                machine_id=current_machine(),
            )
            .on_conflict_do_nothing(index_elements=["content_hash"])
            .returning(MemoryItemRow.id)
        ).scalar()
        created = inserted is not None
        item = s.execute(select(MemoryItemRow).where(MemoryItemRow.content_hash == digest)).scalar_one()
        supersedes: int | None = None
        if created:
            if d.path and d.kind == "file_read":
                supersedes = self._link_same_path(s, item, d.project, d.path)
        else:
            if d.global_scope and not item.global_scope:
                item.global_scope = True
            if visibility == TEAM and item.visibility != TEAM:  # its author shares it now
                item.visibility = TEAM
            item.last_seen_at = max(item.last_seen_at, ts)
        new_sighting = self._add_sighting(s, item, d, ts)
        return PutResult(item.id, created, new_sighting, len(red.findings), supersedes)

    def _add_sighting(self, s: Session, item: MemoryItemRow, d: Draft, ts: datetime) -> bool:
        user = current_user()
        row = {
            "item_id": item.id,
            "project": d.project,
            "agent": d.agent,
            "session_key": d.session_key,
            "tool_call_key": d.tool_call_key,
            "path": d.path,
            "source": d.source,
            "ts": ts,
            "user_id": user,
            "machine_id": current_machine(),
        }
        keys = ["item_id", "user_id", "agent", "session_key", "tool_call_key"]
        # RETURNING, not rowcount: PostgreSQL's driver reports -1 for a conflict that inserted nothing.
        added = s.execute(
            insert_for(s)(MemorySightingRow)
            .values(**row)
            .on_conflict_do_nothing(index_elements=keys)
            .returning(MemorySightingRow.id)
        ).scalar()
        if added is None:
            if not (d.session_key or d.tool_call_key):  # an anonymous save repeated: refresh its time
                s.execute(
                    update(MemorySightingRow)
                    .where(
                        MemorySightingRow.item_id == item.id,
                        MemorySightingRow.user_id == user,
                        MemorySightingRow.agent == d.agent,
                        MemorySightingRow.session_key == "",
                        MemorySightingRow.tool_call_key == "",
                    )
                    .values(ts=ts)
                )
            return False  # the same meeting read again (a re-ingested log): idempotent
        # Counted in SQL: another daemon may count a sighting of the same item in the same moment.
        s.execute(
            update(MemoryItemRow).where(MemoryItemRow.id == item.id).values(sightings=MemoryItemRow.sightings + 1)
        )
        s.expire(item, ["sightings"])
        return True

    def _link_same_path(self, s: Session, item: MemoryItemRow, project: str, path: str) -> int | None:
        """Rule 2 of the policy: the newest other item read at ``path`` in ``project`` is superseded."""
        prev = s.execute(
            select(MemoryItemRow)
            .join(MemorySightingRow, MemorySightingRow.item_id == MemoryItemRow.id)
            .where(
                MemorySightingRow.project == project,
                MemorySightingRow.path == path,
                MemoryItemRow.id != item.id,
                MemoryItemRow.kind == "file_read",
                MemoryItemRow.status == "active",
            )
            .order_by(MemorySightingRow.ts.desc())
            .limit(1)
        ).scalar_one_or_none()
        if prev is None:
            return None
        link(prev, item, "same path")
        return prev.id

    def forget(self, item_ids: Iterable[int]) -> int:
        """Delete items (their sightings and vectors go with them): only ever on an explicit request."""
        ids = list(item_ids)
        if not ids:
            return 0
        with self.db.transaction() as s:
            if not self.db.is_sqlite:  # a shared database: only the user's own items, never a teammate's
                ids = list(s.execute(select(MemoryItemRow.id).where(MemoryItemRow.id.in_(ids), owned())).scalars())
            s.execute(update(MemoryItemRow).where(MemoryItemRow.supersedes_id.in_(ids)).values(supersedes_id=None))
            s.execute(delete(MemorySightingRow).where(MemorySightingRow.item_id.in_(ids)))
            s.execute(delete(MemoryVectorRow).where(MemoryVectorRow.item_id.in_(ids)))
            n = len(s.execute(select(MemoryItemRow.id).where(MemoryItemRow.id.in_(ids))).all())
            s.execute(delete(MemoryItemRow).where(MemoryItemRow.id.in_(ids)))
            self._bump(s)
        return n

    # -- reading -----------------------------------------------------------------------------------

    def _readable(self, row: MemoryItemRow) -> bool:
        """On a shared database, is this the user's own or a team item? (Row-level security says the same.)"""
        return self.db.is_sqlite or row.visibility == TEAM or row.user_id in (current_user(), "")

    def get(self, item_id: int, *, project: str | None = None) -> Item | None:
        """One item with its sightings; None when unknown or (with ``project``) not visible there."""
        with self.db.sessions() as s:
            row = s.get(MemoryItemRow, item_id)
            if row is None or not self._readable(row):
                return None
            sightings = s.execute(
                select(MemorySightingRow).where(MemorySightingRow.item_id == item_id).order_by(MemorySightingRow.ts)
            ).scalars()
            newer = s.execute(select(MemoryItemRow.id).where(MemoryItemRow.supersedes_id == item_id)).scalars().all()
            item = item_of(row, list(newer), [sighting_of(x) for x in sightings])
        if project is not None and not item.global_scope and project not in item.projects:
            return None
        return item

    def items(self, ids: Sequence[int]) -> dict[int, Item]:
        """Several items by id, with their sightings (one query each for items, sightings and links).

        Plain column rows, not ORM objects: search loads its ~20 front runners and their sightings on every
        query, and the ORM's identity map and attribute instrumentation were ~2 ms of that at 100k items
        (bench/README.md, Memory). The values are the same (the same column types convert them)."""
        if not ids:
            return {}
        if self.db.is_sqlite:
            return self._items_sqlite(list(ids))
        with self.db.sessions() as s:
            rows = s.execute(select(*_ITEM_COLUMNS).where(MemoryItemRow.id.in_(ids))).all()
            sightings: dict[int, list[Sighting]] = {}
            for x in s.execute(
                select(MemorySightingRow.item_id, *_SIGHTING_COLUMNS)
                .where(MemorySightingRow.item_id.in_(ids))
                .order_by(MemorySightingRow.ts)
            ):
                sightings.setdefault(x[0], []).append(Sighting(*x[1:]))
            newer: dict[int, list[int]] = {}
            for new_id, old_id in s.execute(
                select(MemoryItemRow.id, MemoryItemRow.supersedes_id).where(MemoryItemRow.supersedes_id.in_(ids))
            ):
                if old_id is not None:
                    newer.setdefault(old_id, []).append(new_id)
        return {r.id: item_of(r, newer.get(r.id, []), sightings.get(r.id, [])) for r in rows}

    def _items_sqlite(self, ids: list[int]) -> dict[int, Item]:
        """:meth:`items` through the DB-API cursor, with the column types' own converters (SQLAlchemy's
        statement building was ~1 ms of the ~1.4 a search's front runners took at 100k items)."""
        item_conv, sighting_conv = _converters(self.db.engine.dialect)
        marks = ",".join("?" for _ in ids)
        with self.db.sessions() as s:
            cursor = s.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(f"SELECT {_ITEM_NAMES} FROM memory_items WHERE id IN ({marks})", ids)
                rows = [_converted(r, item_conv) for r in cursor.fetchall()]
                sightings: dict[int, list[Sighting]] = {}
                cursor.execute(
                    f"SELECT item_id, {_SIGHTING_NAMES} FROM memory_sightings WHERE item_id IN ({marks}) ORDER BY ts",
                    ids,
                )
                for x in cursor.fetchall():
                    sightings.setdefault(x[0], []).append(Sighting(*_converted(x[1:], sighting_conv)))
                newer: dict[int, list[int]] = {}
                cursor.execute(f"SELECT id, supersedes_id FROM memory_items WHERE supersedes_id IN ({marks})", ids)
                for new_id, old_id in cursor.fetchall():
                    if old_id is not None:
                        newer.setdefault(old_id, []).append(new_id)
            finally:
                cursor.close()
        # _ITEM_COLUMNS are named as Item's fields: all of them but ``superseded_by`` and ``sightings``.
        keys = [c.key for c in _ITEM_COLUMNS]
        return {
            r[0]: Item(
                **dict(zip(keys, r, strict=True)), superseded_by=newer.get(r[0], []), sightings=sightings.get(r[0], [])
            )
            for r in rows
        }

    def history(self, item_id: int) -> list[int]:
        """The version chain through ``item_id``, oldest first."""
        with self.db.sessions() as s:
            chain = [item_id]
            cur: int | None = item_id
            while cur is not None and len(chain) < 1000:
                cur = s.execute(select(MemoryItemRow.supersedes_id).where(MemoryItemRow.id == cur)).scalar()
                if cur is not None:
                    chain.insert(0, cur)
            cur = item_id
            while cur is not None and len(chain) < 1000:
                cur = s.execute(
                    select(MemoryItemRow.id).where(MemoryItemRow.supersedes_id == cur).order_by(MemoryItemRow.id)
                ).scalar()
                if cur is not None:
                    chain.append(cur)
        return chain

    def visible_ids(self, project: str | None, *, include_global: bool = True) -> set[int] | None:
        """Ids of the items ``project`` may see (None: every item, for a search across all projects)."""
        if project is None:
            return None
        with self.db.sessions() as s:
            ids = set(
                s.execute(
                    select(MemorySightingRow.item_id).where(MemorySightingRow.project == project).distinct()
                ).scalars()
            )
            if include_global:
                ids.update(s.execute(select(MemoryItemRow.id).where(MemoryItemRow.global_scope.is_(True))).scalars())
            if not self.db.is_sqlite and ids:
                ids = set(s.execute(select(MemoryItemRow.id).where(MemoryItemRow.id.in_(ids), readable())).scalars())
        return ids

    def stats(self, project: str | None = None) -> dict[str, Any]:
        """Counts for ``headroom memory stats`` (per kind, per agent, links, redactions, embedding backlog)."""
        visible = self.visible_ids(project)
        with self.db.sessions() as s:
            where = [MemoryItemRow.id.in_(visible)] if visible is not None else []
            kinds = dict(
                s.execute(select(MemoryItemRow.kind, func.count()).where(*where).group_by(MemoryItemRow.kind)).all()
            )
            swhere = [MemorySightingRow.project == project] if project is not None else []
            agents = dict(
                s.execute(
                    select(MemorySightingRow.agent, func.count()).where(*swhere).group_by(MemorySightingRow.agent)
                ).all()
            )
            row = s.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(MemoryItemRow.size), 0),
                    func.coalesce(func.sum(MemoryItemRow.redactions), 0),
                    func.count(MemoryItemRow.supersedes_id),
                    func.count(MemoryItemRow.embed_model),
                    func.count(MemoryItemRow.ref),
                ).where(*where)
            ).one()
            projects = s.execute(select(func.count(func.distinct(MemorySightingRow.project)))).scalar() or 0
        return {
            "project": project,
            "items": int(row[0]),
            "chars": int(row[1]),
            "redactions": int(row[2]),
            "versions_linked": int(row[3]),
            "embedded": int(row[4]),
            "by_reference": int(row[5]),
            "by_kind": {k: int(v) for k, v in sorted(kinds.items())},
            "sightings_by_agent": {k or "(none)": int(v) for k, v in sorted(agents.items())},
            "projects": int(projects),
            "db_bytes": self.db.size_bytes(),
        }

    # -- maintenance -------------------------------------------------------------------------------

    def redact_scan(self, *, apply: bool = False) -> dict[str, Any]:
        """Find stored content that today's redaction would change (rules grow); with ``apply``, clean it.

        A cleaned item whose new hash equals another item's is merged into that one (its sightings move).
        """
        found: dict[str, int] = {}
        changed: list[int] = []
        last = 0
        while True:
            with self.db.sessions() as s:
                mine = [owned()] if not self.db.is_sqlite else []  # a teammate's items are theirs to clean
                rows = s.execute(
                    select(MemoryItemRow.id, MemoryItemRow.content, MemoryItemRow.title)
                    .where(MemoryItemRow.id > last, *mine)
                    .order_by(MemoryItemRow.id)
                    .limit(500)
                ).all()
            if not rows:
                break
            last = rows[-1][0]
            for item_id, content, title in rows:
                red, red_title = redact(content), redact(title or "")
                if not red.findings and not red_title.findings:
                    continue
                for kind, n in {**red.counts(), **red_title.counts()}.items():
                    found[kind] = found.get(kind, 0) + n
                changed.append(item_id)
                if apply:
                    self._rewrite(item_id, red.text, red_title.text if title else None, len(red.findings))
        return {"items": len(changed), "ids": changed, "findings": found, "applied": apply}

    def _rewrite(self, item_id: int, content: str, title: str | None, redactions: int) -> None:
        text = normalize(content)
        with self.db.transaction() as s:
            item = s.get(MemoryItemRow, item_id)
            if item is None:
                return
            digest = dedup_key(
                content_hash(text), item.visibility, shared_database=not self.db.is_sqlite, user=item.user_id
            )
            twin = s.execute(select(MemoryItemRow).where(MemoryItemRow.content_hash == digest)).scalar_one_or_none()
            if twin is not None and twin.id != item_id:
                s.execute(update(MemorySightingRow).where(MemorySightingRow.item_id == item_id).values(item_id=twin.id))
                s.execute(
                    update(MemoryItemRow).where(MemoryItemRow.supersedes_id == item_id).values(supersedes_id=twin.id)
                )
                twin.sightings = (twin.sightings or 0) + (item.sightings or 0)
                s.execute(delete(MemoryVectorRow).where(MemoryVectorRow.item_id == item_id))
                s.delete(item)
            else:
                item.content, item.content_hash = text, digest
                item.title = title if title is not None else item.title
                item.redactions = (item.redactions or 0) + redactions
                item.embed_model = None  # the vector was of the unredacted text: embed again
                s.execute(delete(MemoryVectorRow).where(MemoryVectorRow.item_id == item_id))
            self._bump(s)

    def prune_ids(self, max_bytes: int, *, keep_days: int = 30) -> list[int]:
        """The oldest, least-seen items to delete so that stored content fits ``max_bytes``.

        Never chosen: the newest version of anything with a sighting in the last ``keep_days`` days, global
        items, decisions and lessons (what agents or users chose to keep). Superseded versions go first.
        """
        with self.db.sessions() as s:
            total = int(s.execute(select(func.coalesce(func.sum(func.length(MemoryItemRow.content)), 0))).scalar() or 0)
        if total <= max_bytes:
            return []
        cutoff = utcnow() - timedelta(days=keep_days)
        doomed: list[int] = []
        with self.db.sessions() as s:
            candidates = s.execute(
                select(
                    MemoryItemRow.id,
                    func.length(MemoryItemRow.content),
                    MemoryItemRow.status,
                    MemoryItemRow.last_seen_at,
                )
                .where(MemoryItemRow.global_scope.is_(False), MemoryItemRow.kind.notin_(("decision", "lesson")))
                .order_by(MemoryItemRow.status.desc(), MemoryItemRow.sightings, MemoryItemRow.last_seen_at)
            ).all()
        for item_id, size, status, last_seen in candidates:
            if total <= max_bytes:
                break
            if status == "active" and last_seen >= cutoff:
                continue
            doomed.append(item_id)
            total -= int(size or 0)
        return doomed

    # -- small persistent values -------------------------------------------------------------------

    def generation(self) -> int:
        """A number that changes whenever any process changes which items a project sees (one indexed read).

        Caches of visible ids key on it: the daemon's search must see what an MCP server or the CLI saved.
        """
        return int(self.state(_GENERATION) or 0)

    def _bump(self, session: Session) -> None:
        bump_generation(session)

    def state(self, name: str, session: Session | None = None, *, machine: str = "") -> str | None:
        """A stored value: the database's (``machine`` ``""``) or one machine's (its cursors)."""
        if session is not None:
            return get_state(session, name, machine)
        with self.db.sessions() as s:
            return get_state(s, name, machine)

    def set_state(self, session: Session, name: str, value: str, *, machine: str = "") -> None:
        set_state(session, name, value, machine)


def bump_generation(session: Session) -> None:
    """Say (in ``session``'s transaction) that which items a project sees has changed (see ``generation``)."""
    set_state(session, _GENERATION, str(int(get_state(session, _GENERATION) or 0) + 1))


def get_state(session: Session, name: str, machine: str = "") -> str | None:
    """The value ``name`` of ``machine`` (``""``: the whole database's), None when never set."""
    where = (StateValueRow.machine_id == machine, StateValueRow.name == name)
    return session.execute(select(StateValueRow.value).where(*where)).scalar()


def set_state(session: Session, name: str, value: str, machine: str = "") -> None:
    """Store ``name`` = ``value`` for ``machine``: one statement that cannot race another writer into a
    duplicate key (insert, or update on conflict, on SQLite and PostgreSQL alike)."""
    row = {"machine_id": machine, "name": name, "value": value, "user_id": current_user()}
    session.execute(upsert(session, StateValueRow, [row], ["machine_id", "name"], update=["value"]))


def link(old: MemoryItemRow, new: MemoryItemRow, reason: str) -> None:
    """Mark ``new`` as the newer version of ``old`` (``old`` is kept)."""
    new.supersedes_id = old.id
    new.link_reason = reason[:64]
    old.status = "superseded"


def title_of(d: Draft) -> str | None:
    title = d.title or d.path
    if title is None:
        first = next((line.strip() for line in d.content.splitlines() if line.strip()), "")
        title = first[:TITLE_CHARS] or None
    return redact(clean_text(title)).text[:TITLE_CHARS] if title else None
