"""The session mirror: normalized batches written into the database, idempotently.

Every row is upserted on its natural key, so writing the same batch twice (a crash between reading and
committing, a file re-read after truncation, two processes catching up at once) converges to the same
rows. Partial items merge: a tool call's result fills in the call written by an earlier batch, a
re-appended Gemini message replaces its earlier copy, Claude's streamed copies of one API response keep
the largest usage. A batch flagged ``replay`` (a file that copies another's history) only adds rows and
fills unknown fields: whichever file is read first, the original's rows win. Session counters are
derived data: writers mark sessions ``stale`` and :func:`headroom.learn.counters.refresh_sessions` recomputes
them from the child rows in a few grouped queries.

The mirror's text is redacted before it is written (DESIGN invariant 4: only the CCR originals and the proxy's
block memo may keep what an agent saw byte for byte): a batch becomes redacted rows in ``learn/prepare.py``
(:func:`prepare_batch`, no database needed), and :func:`write_prepared` upserts them.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from headroom.learn import model as m
from headroom.learn.bulk import execute_many
from headroom.learn.counters import TOKEN_COLUMNS
from headroom.learn.knowledge import describe_call, is_failure, unwrap_output
from headroom.learn.prepare import Prepared, prepare_batch
from headroom.learn.projects import (
    HASH_PREFIX,
    hash_candidates,
    is_windows,
    preferred,
    project_key,
    project_root,
    sha256_of,
)
from headroom.memory import models as orm
from headroom.memory.identity import current_machine
from headroom.memory.redact import redact_text
from headroom.memory.store import bump_generation

_SESSIONS: Table = orm.SessionRow.__table__  # type: ignore[assignment]
_EVENTS: Table = orm.EventRow.__table__  # type: ignore[assignment]
_TOOLS: Table = orm.ToolCallRow.__table__  # type: ignore[assignment]
_SIGHTINGS: Table = orm.MemorySightingRow.__table__  # type: ignore[assignment]
_USAGE: Table = orm.UsageRow.__table__  # type: ignore[assignment]
_ISSUES: Table = orm.IngestIssueRow.__table__  # type: ignore[assignment]
_FILES: Table = orm.SourceFileRow.__table__  # type: ignore[assignment]


def _dialect(dbs: Session) -> str:
    return dbs.get_bind().dialect.name


@functools.lru_cache(maxsize=128)
def _statement(dialect: str, kind: str, shape: tuple[str, ...]) -> Any:
    """The upsert for one table and row shape, built once: building it costs more than a batch's inserts.

    SQLite and PostgreSQL share the ON CONFLICT API. ``shape`` is the rows' columns, in order.
    """
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    if kind == "sessions":
        stmt = insert(_SESSIONS)
        new, old = stmt.excluded, _SESSIONS.c
        first_wins = ("parent_key", "subagent_id", "cwd", "git_branch", "repository")
        set_: dict[str, Any] = {name: func.coalesce(old[name], new[name]) for name in first_wins}
        # A project known only by its hash gives way to a real root, which is never replaced.
        set_["project_root"] = case(
            (old.project_root.startswith(HASH_PREFIX), func.coalesce(new.project_root, old.project_root)),
            else_=func.coalesce(old.project_root, new.project_root),
        )
        set_ |= {name: func.coalesce(new[name], old[name]) for name in ("title", "cli_version")}
        set_["kind"] = case((new.kind == "subagent", new.kind), else_=old.kind)
        set_["started_at"] = case(
            (old.started_at.is_(None), new.started_at),
            (new.started_at < old.started_at, new.started_at),
            else_=old.started_at,
        )
        set_["ended_at"] = case(
            (old.ended_at.is_(None), new.ended_at),
            (new.ended_at > old.ended_at, new.ended_at),
            else_=old.ended_at,
        )
        set_["stale"] = True
        return stmt.on_conflict_do_update(index_elements=["agent", "key"], set_=set_)
    if kind in ("events", "tool_calls", "events-replay", "tool_calls-replay"):
        table = _EVENTS if kind.startswith("events") else _TOOLS
        stmt = insert(table)
        names = [name for name in shape if name not in ("session_id", "key")]
        if kind == "tool_calls-replay":  # a replayed copy fills what is still unknown, never overwrites
            set_ = {name: func.coalesce(table.c[name], stmt.excluded[name]) for name in names}
        else:
            set_ = {} if kind == "events-replay" else {name: stmt.excluded[name] for name in names}
        if not set_:  # a tool call known by its key only, or a replayed event: nothing to overwrite
            return stmt.on_conflict_do_nothing(index_elements=["session_id", "key"])
        return stmt.on_conflict_do_update(index_elements=["session_id", "key"], set_=set_)
    stmt = insert(_USAGE)
    set_ = {name: stmt.excluded[name] for name in shape if name not in ("agent", "key")}
    where = None
    if kind == f"usage-{m.Merge.MAX.value}":  # see prepare._rank; on a tie the first copy stays
        new, old = stmt.excluded, _USAGE.c
        where = or_(
            and_(new.sidechain.is_(False), old.sidechain.is_(True)),
            and_(new.sidechain == old.sidechain, _total(new) > _total(old)),
        )
    return stmt.on_conflict_do_update(index_elements=["agent", "key"], set_=set_, where=where)


def write_batch(dbs: Session, agent: m.Agent, batch: m.Batch) -> int:
    """Upsert everything in ``batch`` (inside the caller's transaction). Returns the rows written."""
    return write_prepared(dbs, agent, prepare_batch(agent, batch))


def write_prepared(dbs: Session, agent: m.Agent, prepared: Prepared) -> int:
    """Upsert prepared rows (inside the caller's transaction). Returns the rows written."""
    if prepared.empty:
        return 0
    _one_spelling(dbs, prepared.sessions)
    execute_many(dbs, _statement(_dialect(dbs), "sessions", ()), prepared.sessions, ("sessions",))
    ids = _session_ids(dbs, agent, [row["key"] for row in prepared.sessions])
    written = len(ids)
    if prepared.events:
        _renumber_stand_ins(dbs, [(ids[session], key) for session, key in prepared.prompts])
        kind = "events-replay" if prepared.replay else "events"
        written += _write_rows(dbs, ids, kind, prepared.events, (kind,))
    kind = "tool_calls-replay" if prepared.replay else "tool_calls"
    for rows in prepared.tool_calls.values():
        written += _write_rows(dbs, ids, kind, rows, (kind,))
    if prepared.retracted:
        dbs.execute(_USAGE.delete().where(_USAGE.c.agent == agent, _USAGE.c.key.in_(prepared.retracted)))
    for merge, rows in prepared.usage:
        written += _write_rows(dbs, ids, f"usage-{merge}", rows, ("usage", merge))
    return written


def _write_rows(dbs: Session, ids: dict[str, int], kind: str, rows: list[dict[str, Any]], key: tuple[str, ...]) -> int:
    """Upsert rows of one shape, their session keys stored as the ids (the prepared rows are not changed, so
    writing them again, in a transaction run again after a rollback, gives that transaction's ids)."""
    execute_many(dbs, _statement(_dialect(dbs), kind, tuple(rows[0])), rows, key, session_ids=ids)
    return len(rows)


def _session_ids(dbs: Session, agent: str, keys: list[str]) -> dict[str, int]:
    """The ids of the sessions just upserted. On SQLite one plain query per 500 keys (it runs per chunk)."""
    if dbs.get_bind().dialect.name != "sqlite":
        old = _SESSIONS.c
        found = dbs.execute(select(old.key, old.id).where(old.agent == agent, old.key.in_(keys)))
        return {key: ident for key, ident in found.all()}  # noqa: C416 (rows, not pairs, for mypy)
    conn = dbs.connection()
    ids: dict[str, int] = {}
    for at in range(0, len(keys), 500):
        part = keys[at : at + 500]
        sql = f'SELECT "key", id FROM sessions WHERE agent = ? AND "key" IN ({", ".join("?" * len(part))})'
        ids.update(conn.exec_driver_sql(sql, (agent, *part)).all())
    return ids


def _one_spelling(dbs: Session, rows: list[dict[str, Any]]) -> None:
    """Give every spelling of one Windows project the same ``project_root`` (see ``learn.projects``).

    The stored spelling is :func:`preferred` among all seen so far; rows stored under another one move.
    """
    spellings = {row["project_root"] for row in rows if row["project_root"] and is_windows(row["project_root"])}
    if not spellings:
        return
    column = _SESSIONS.c.project_root
    folded = func.rtrim(func.lower(func.replace(column, "/", "\\")), "\\")  # project_key, in SQL
    keys = {project_key(spelling) for spelling in spellings}
    stored = {p for (p,) in dbs.execute(select(column).where(folded.in_(keys)).distinct())}
    by_key: dict[str, set[str]] = {}
    for spelling in stored | spellings:
        by_key.setdefault(project_key(spelling), set()).add(spelling)
    chosen: dict[str, str] = {}
    for variants in by_key.values():
        best = preferred(variants)
        moved = (variants & stored) - {best}
        if moved:
            dbs.execute(update(_SESSIONS).where(column.in_(moved)).values(project_root=best))
            _move_sightings(dbs, moved, best)
        chosen.update(dict.fromkeys(variants, best))
    for row in rows:
        row["project_root"] = chosen.get(row["project_root"], row["project_root"])


def _move_sightings(dbs: Session, old: set[str], new: str) -> None:
    """Memory sightings follow their sessions to the project's new name.

    The memory feed records a sighting under its session's project as it stands then; a project search
    matches sightings by that name exactly. Without this, what the feed put before a rename (a Windows
    spelling giving way to the preferred one, a Gemini hash named) is out of the project's sight for good,
    while a read of the finished logs puts it under the final name (found by the team load test, issue 17).
    """
    sightings = _SIGHTINGS.c
    moved = update(_SIGHTINGS).where(sightings.project.in_(old - {new})).values(project=new).returning(sightings.id)
    if dbs.execute(moved).first() is not None:
        bump_generation(dbs)  # cached visible ids of the project must be read again


def resolve_hashed_projects(dbs: Session) -> int:
    """Name the projects known only by a hash (legacy Gemini folders) from every root known so far.

    Any agent's root may be the one: the hash is of the root in whatever casing gemini-cli saw, so each
    known root is tried in its spellings (:func:`~headroom.learn.projects.hash_candidates`). Returns how
    many hashes were named.
    """
    column = _SESSIONS.c.project_root
    hashed = {p for (p,) in dbs.execute(select(column).where(column.startswith(HASH_PREFIX)).distinct())}
    if not hashed:
        return 0
    known = {p for (p,) in dbs.execute(select(column).where(column.is_not(None)).distinct())} - hashed
    known |= {p for (p,) in dbs.execute(select(_SESSIONS.c.cwd).where(_SESSIONS.c.cwd.is_not(None)).distinct())}
    wanted = {value.removeprefix(HASH_PREFIX): value for value in hashed}
    resolved = 0
    for root in sorted(known):
        for spelling in hash_candidates(root):
            placeholder = wanted.pop(sha256_of(spelling), None)
            if placeholder is None:
                continue
            project = project_root(spelling)
            dbs.execute(update(_SESSIONS).where(column == placeholder).values(project_root=project))
            _move_sightings(dbs, {placeholder}, project)
            resolved += 1
            _one_spelling(dbs, [{"project_root": project}])
        if not wanted:
            break
    return resolved


_PROMPT = m.EventKind.USER_PROMPT.value
# Built once: it runs per session per batch, and building the statement cost more than running it.
_STAND_INS = select(_EVENTS.c.id).where(
    _EVENTS.c.session_id == bindparam("session"),
    _EVENTS.c.key.in_(bindparam("keys", expanding=True)),
    _EVENTS.c.kind != _PROMPT,
)


def _renumber_stand_ins(dbs: Session, keys: list[tuple[int, str]]) -> None:
    """Give a new id to every stored row that the coming upsert turns into a prompt (it was something else).

    Such a row is a stand-in: a replay (a compaction agent's copy of its parent's history, read before the
    parent's own lines) wrote the parent's prompts as META, since a compaction file's prompts are the
    harness's. The parent's line overwrites it as a prompt under the same key, but the row would keep its id,
    which the memory feed (it follows event ids with a cursor) may already have passed: the prompt was never
    fed, while a read of the finished files feeds it (issue 17's team load test: 5 prompts of two developers).
    A fresh id, above every id given so far, puts it after the cursor whatever order the files came in. Only
    prompts are renumbered (a handful per batch, one indexed look-up); nothing refers to an event by its id.
    """
    if not keys:
        return
    ev = _EVENTS.c
    by_session: dict[int, list[str]] = {}
    for session_id, key in keys:
        by_session.setdefault(session_id, []).append(key)
    stale: list[int] = []
    for session_id, names in by_session.items():
        for start in range(0, len(names), 500):
            stale += dbs.execute(_STAND_INS, {"session": session_id, "keys": names[start : start + 500]}).scalars()
    for old in stale:
        if _dialect(dbs) == "postgresql":
            fresh: Any = func.nextval(func.pg_get_serial_sequence(_EVENTS.name, "id"))
        else:  # no AUTOINCREMENT: the next rowid is one above the largest, this row's own included
            fresh = int(dbs.execute(select(func.max(ev.id))).scalar_one()) + 1
        dbs.execute(update(_EVENTS).where(ev.id == old).values(id=fresh))


def _total(columns: Any) -> Any:
    return sum((columns[name] for name in TOKEN_COLUMNS[1:]), columns[TOKEN_COLUMNS[0]])


def record_issue(dbs: Session, path: str, kind: str, detail: str, now: datetime) -> bool:
    """Count one bad-input problem for a file. Returns True the first time (the caller logs only then)."""
    detail = redact_text(detail)  # an exception's message may quote the line it choked on
    machine = current_machine()  # a file is one machine's (issue 17)
    insert = postgresql.insert if dbs.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(_ISSUES).values(
        machine_id=machine, path=path, kind=kind, count=1, detail=detail, first_seen=now, last_seen=now
    )
    # One statement (no look-then-insert race); ``count`` tells the first time from the others.
    count = dbs.execute(
        stmt.on_conflict_do_update(
            index_elements=["machine_id", "path", "kind"],
            set_={"count": _ISSUES.c.count + 1, "detail": detail, "last_seen": now},
        ).returning(_ISSUES.c.count)
    ).scalar()
    return count == 1


def backfill_tool_fields(conn: Connection) -> int:
    """Give rows written before the tool-call fields existed the fields a fresh ingest gives (migration 0006).

    Every row is described again with the readers' functions; a Codex code-mode command logged as its own
    call is folded into the ``exec`` script that ran it; Codex files are marked to be read again from the
    start (the old reader dropped ``source: "user_shell"``, which only the log has). Returns the rows updated.
    """
    tc = _TOOLS.c
    done, last = 0, 0
    while True:
        rows = conn.execute(
            select(tc.id, tc.name, tc.input, tc.status, tc.exit_code, tc.output)
            .where(tc.id > last)
            .order_by(tc.id)
            .limit(1000)
        ).all()
        if not rows:
            break
        for ident, name, raw_input, status, exit_code, output in rows:
            kind, command, path = describe_call(name, raw_input)
            clean = unwrap_output(output) if output is not None else None
            values: dict[str, Any] = {"kind": kind.value if kind else None, "command": command, "path": path}
            values["failed"] = is_failure(status, exit_code, command, clean)
            if clean != output:
                values["output"], values["output_size"] = clean, len(clean or "")
            conn.execute(update(_TOOLS).where(tc.id == ident).values(**values))
        done += len(rows)
        last = rows[-1][0]
    _fold_code_mode(conn)
    sf = _FILES.c
    conn.execute(update(_FILES).where(sf.agent == "codex").values(offset=0, fingerprint=None, state=None))
    conn.execute(update(_SESSIONS).values(stale=True))
    return done


def _fold_code_mode(conn: Connection) -> None:
    """Old rows: a code-mode script's first nested command or patch is the script's result, as the reader has it."""
    tc, ev = _TOOLS.c, _EVENTS.c
    nested = conn.execute(
        select(tc.id, tc.session_id, tc.key, tc.started_at, tc.kind, tc.command, tc.path, tc.status, tc.exit_code)
        .add_columns(tc.output, tc.output_size, tc.failed)
        .join(_SESSIONS, _SESSIONS.c.id == tc.session_id)
        .where(_SESSIONS.c.agent == "codex", tc.name.in_(("exec_command", "apply_patch")), tc.key.not_like("call%"))
        .where(tc.started_at.is_not(None))
        .order_by(tc.session_id, tc.started_at)
    ).all()
    folded: set[int] = set()
    for row in nested:
        script = conn.execute(
            select(tc.id, tc.ended_at)
            .where(tc.session_id == row.session_id, tc.name == "exec", tc.started_at <= row.started_at)
            .order_by(tc.started_at.desc())
            .limit(1)
        ).first()
        if script is None or script.id in folded or (script.ended_at is not None and script.ended_at < row.started_at):
            continue
        folded.add(script.id)
        fields = ("kind", "command", "path", "status", "exit_code", "output", "output_size", "failed")
        conn.execute(update(_TOOLS).where(tc.id == script.id).values({name: getattr(row, name) for name in fields}))
        conn.execute(_EVENTS.delete().where(ev.session_id == row.session_id, ev.tool_call_key == row.key))
        conn.execute(_TOOLS.delete().where(tc.id == row.id))


__all__ = [
    "backfill_tool_fields",
    "record_issue",
    "resolve_hashed_projects",
    "write_batch",
    "write_prepared",
]
