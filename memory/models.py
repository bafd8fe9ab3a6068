"""SQLAlchemy models: the session mirror that ingestion fills and everything else reads.

The tables mirror the agents' own logs in the normalized model of ``headroom.learn.model``; they outlive
the logs (Claude and Gemini delete sessions after 30 days). Every row derived from a log has a natural key
(``session_id`` + ``key``, or ``agent`` + ``key`` for usage), so ingestion can upsert: re-reading a file
after a crash, a truncation or an in-place rewrite converges to the same rows.

Types are kept portable (no SQLite- or PostgreSQL-only column types) so that ``database_url`` may point at
PostgreSQL. Timestamps are naive UTC. ``day`` columns (UTC date) are stored, not computed, so per-day
statistics are a plain indexed GROUP BY on either backend.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    Unicode,
    UniqueConstraint,
    event,
    false,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column

from headroom.memory.identity import current_machine, current_user
from headroom.memory.redact import redact_json, redact_text

# Alembic batch mode on SQLite recreates tables and needs every constraint to have a predictable name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Owned:
    """Who wrote the row (issue 17: many developers' daemons on one database).

    The defaults are read from :mod:`headroom.memory.identity` at insert time, ORM or Core, so no write path
    can leave them out; rows written before revision 0008 carry the identity of the machine that upgraded a
    SQLite file, and ``""`` on a shared PostgreSQL database (nobody's in particular, until ``team adopt``).
    """

    user_id: Mapped[str] = mapped_column(String(64), default=current_user, server_default="")
    machine_id: Mapped[str] = mapped_column(String(64), default=current_machine, server_default="")


#: The tables whose rows carry ``user_id``/``machine_id`` (migration 0008 adds them; a test keeps it true).
OWNED_TABLES = (
    "source_files",
    "ingest_issues",
    "sessions",
    "events",
    "tool_calls",
    "usage",
    "proxy_requests",
    "memory_items",
    "memory_sightings",
    "block_memo",
    "state_values",
    "lessons",
)


class SourceFileRow(Owned, Base):
    """One agent log file and how far it has been ingested.

    Identity is the file's (device, inode): a renamed file keeps its offset, a replaced one is detected.
    ``offset`` and ``state`` (the reader's resumable state, JSON) advance in the same transaction as the rows
    read up to that offset. ``fingerprint`` (hash of the first bytes) tells an appended file from a rewrite.
    """

    __tablename__ = "source_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    device: Mapped[int] = mapped_column(BigInteger, default=0)
    inode: Mapped[int] = mapped_column(BigInteger, default=0)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    mtime_ns: Mapped[int] = mapped_column(BigInteger, default=0)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str | None] = mapped_column(Text)
    records: Mapped[int] = mapped_column(Integer, default=0)
    missing: Mapped[bool] = mapped_column(Boolean, default=False)  # deleted by the agent: data is kept
    first_seen: Mapped[datetime] = mapped_column(DateTime)
    ingested_at: Mapped[datetime | None] = mapped_column(DateTime)

    # A file is one machine's: the same path on two machines is two files (issue 17).
    __table_args__ = (
        UniqueConstraint("machine_id", "path"),
        Index("ix_source_files_machine_id_device_inode", "machine_id", "device", "inode"),
    )


class IngestIssueRow(Owned, Base):
    """Bad input met while ingesting a file, counted per file and kind (``headroom doctor`` lists them)."""

    __tablename__ = "ingest_issues"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str | None] = mapped_column(Text)
    first_seen: Mapped[datetime] = mapped_column(DateTime)
    last_seen: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (UniqueConstraint("machine_id", "path", "kind"),)


class SessionRow(Owned, Base):
    """One agent session (a sub-agent is a session of its own, linked to its parent).

    The counters are derived from the child rows by ingestion (see ``stale``) so that listing thousands of
    sessions never scans the timeline.
    """

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(255))
    parent_key: Mapped[str | None] = mapped_column(String(255))
    subagent_id: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16), default="main")
    title: Mapped[str | None] = mapped_column(Text)
    cwd: Mapped[str | None] = mapped_column(Text)
    project_root: Mapped[str | None] = mapped_column(Text)
    # The repository the project is a checkout of (``git:<normalized remote>``; learn.projects.repository_of):
    # one project across machines and paths, while project_root stays this machine's folder.
    repository: Mapped[str | None] = mapped_column(Text)
    git_branch: Mapped[str | None] = mapped_column(Text)
    cli_version: Mapped[str | None] = mapped_column(String(64))
    models: Mapped[str | None] = mapped_column(Text)  # comma-separated, in first-use order
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    turns: Mapped[int] = mapped_column(Integer, default=0)
    events: Mapped[int] = mapped_column(Integer, default=0)
    tool_calls: Mapped[int] = mapped_column(Integer, default=0)
    failed_tool_calls: Mapped[int] = mapped_column(Integer, default=0)
    api_errors: Mapped[int] = mapped_column(Integer, default=0)
    interruptions: Mapped[int] = mapped_column(Integer, default=0)
    compactions: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_creation_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    stale: Mapped[bool] = mapped_column(Boolean, default=True)  # counters need recomputing

    __table_args__ = (
        UniqueConstraint("agent", "key"),
        Index("ix_sessions_started_at", "started_at"),
        Index("ix_sessions_project_root", "project_root"),
        Index("ix_sessions_stale", "stale"),
        Index("ix_sessions_user_id", "user_id"),
        Index("ix_sessions_repository", "repository"),
        Index("ix_sessions_machine_id", "machine_id"),
    )


class EventRow(Owned, Base):
    """One timeline entry of a session (see ``headroom.learn.model.EventKind``)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime | None] = mapped_column(DateTime)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    role: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str | None] = mapped_column(Text)
    tool_call_key: Mapped[str | None] = mapped_column(String(255))
    status_code: Mapped[int | None] = mapped_column(Integer)
    sidechain: Mapped[bool] = mapped_column(Boolean, default=False)
    raw: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("session_id", "key"),
        Index("ix_events_session_id_ts", "session_id", "ts"),
    )


class ToolCallRow(Owned, Base):
    """A tool call and its result (either half may arrive first, in another batch)."""

    __tablename__ = "tool_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    input: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    day: Mapped[date | None] = mapped_column(Date)
    # What the call was, decided by the reader (learn.model.ToolCall): kind, command line, target path.
    kind: Mapped[str | None] = mapped_column(String(16))
    command: Mapped[str | None] = mapped_column(Text)
    path: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    output: Mapped[str | None] = mapped_column(Text)  # the agent's wrapper removed
    output_size: Mapped[int | None] = mapped_column(Integer)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    failed: Mapped[bool | None] = mapped_column(Boolean)  # THE failure flag: read it, never re-derive it
    by_user: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    duration_ms: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        UniqueConstraint("session_id", "key"),
        Index("ix_tool_calls_day_status", "day", "status"),
        Index("ix_tool_calls_day_failed", "day", "failed"),
    )


class UsageRow(Owned, Base):
    """Tokens of one model call, deduplicated per agent by its natural key."""

    __tablename__ = "usage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(255))
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    ts: Mapped[datetime | None] = mapped_column(DateTime)
    day: Mapped[date | None] = mapped_column(Date)
    model: Mapped[str | None] = mapped_column(String(128))
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_creation_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    sidechain: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The part of ``cache_creation_tokens`` written to the 1-hour cache (Claude), billed at a higher rate.
    cache_write_1h_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))

    __table_args__ = (
        UniqueConstraint("agent", "key"),
        # (day, agent, model): stats groups usage by model to price it; the index keeps that grouping a scan.
        Index("ix_usage_day_agent_model", "day", "agent", "model"),
        Index("ix_usage_session_id", "session_id"),
        Index("ix_usage_user_id_day", "user_id", "day"),
        Index("ix_usage_machine_id_day", "machine_id", "day"),
    )


class ProxyRequestRow(Owned, Base):
    """One request that went through the local proxy: what it cost before and after compression.

    ``tokens_before``/``tokens_after`` are headroom's own counts of the request's messages; the ``input_…``,
    ``cache_…`` and ``output_tokens`` columns are what the provider reported in its answer (``None`` when it
    reported nothing, e.g. an error or a cut stream). ``added_ms`` is the time the proxy spent before the
    upstream call (parsing, compressing, re-encoding). No header, key or body is ever stored here.
    """

    __tablename__ = "proxy_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime, index=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    agent: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(16))
    endpoint: Mapped[str] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(128))
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[int] = mapped_column(Integer, default=0)
    mode: Mapped[str] = mapped_column(String(16), default="ccr")
    tokens_before: Mapped[int] = mapped_column(Integer, default=0)
    tokens_after: Mapped[int] = mapped_column(Integer, default=0)
    bytes_before: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_after: Mapped[int] = mapped_column(BigInteger, default=0)
    blocks_compressed: Mapped[int] = mapped_column(Integer, default=0)
    frozen_messages: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    cache_read_tokens: Mapped[int | None] = mapped_column(Integer)
    cache_write_tokens: Mapped[int | None] = mapped_column(Integer)
    added_ms: Mapped[float] = mapped_column(default=0.0)
    duration_ms: Mapped[float] = mapped_column(default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    #: A hash of the agent's conversation (its session id, or its first user message): never the id itself.
    conversation: Mapped[str | None] = mapped_column(String(32), index=True)
    project: Mapped[str | None] = mapped_column(Text)
    #: Sent uncompressed on purpose: the comparison group of ``stats --proxy`` (``[proxy] holdout``).
    holdout: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Why this conversation went lossless ("cache": its cache reads dropped; "cost": it cost more), or None.
    fallback: Mapped[str | None] = mapped_column(String(16))
    #: Removed tokens that sat in messages sent before: without the proxy they would have been cache reads.
    tokens_removed_prefix: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

    __table_args__ = (
        Index("ix_proxy_requests_user_id_day", "user_id", "day"),
        Index("ix_proxy_requests_machine_id_day", "machine_id", "day"),
    )


class MemoryItemRow(Owned, Base):
    """One distinct piece of content in the shared memory, whoever read or wrote it.

    Identity is the hash of the normalized, *redacted* content: the same file read by Claude and by Codex is
    one item with two sightings. Visibility follows the sightings: an item belongs to every project it was
    seen in (``global_scope`` items belong to all). A newer version of the same thing (the same file after an
    edit, or a near-duplicate by the dedup policy) points at the one it replaces through ``supersedes_id``;
    the old one stays, with ``status = "superseded"``: nothing is ever deleted by similarity.

    ``content`` is already redacted. A blob larger than the store's inline limit keeps only an excerpt here
    and a reference (``ref``) to where the whole lives (a tool call of the session mirror, a file).
    """

    __tablename__ = "memory_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(24))
    title: Mapped[str | None] = mapped_column(Text)
    content: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger, default=0)  # characters of the whole content
    ref: Mapped[str | None] = mapped_column(Text)  # where a blob stored by reference lives
    global_scope: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | superseded
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("memory_items.id", ondelete="SET NULL"))
    link_reason: Mapped[str | None] = mapped_column(String(64))  # why it supersedes: "same path", "similar 0.93"
    redactions: Mapped[int] = mapped_column(Integer, default=0)
    sightings: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    embed_model: Mapped[str | None] = mapped_column(String(64))  # the model of its vector; NULL: to embed
    # "private": its owner's only (prompts, tool outputs, notes); "team": every user of a shared database may
    # read it (repository file reads, notes saved with --team, lessons accepted for the team). Enforced on
    # PostgreSQL by row-level security (revision 0009); one person's SQLite file has nobody to hide from.
    visibility: Mapped[str] = mapped_column(String(8), default="private", server_default="private")

    __table_args__ = (
        Index("ix_memory_items_embed_model", "embed_model"),
        Index("ix_memory_items_global_scope", "global_scope"),  # every search adds the global items
        Index("ix_memory_items_supersedes_id", "supersedes_id"),
    )


class MemorySightingRow(Owned, Base):
    """Who met an item, where and when: provenance. One row per (item, agent, session, tool call)."""

    __tablename__ = "memory_sightings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("memory_items.id", ondelete="CASCADE"))
    project: Mapped[str] = mapped_column(Text, default="")  # git root or cwd; "" for none
    agent: Mapped[str] = mapped_column(String(16), default="")
    session_key: Mapped[str] = mapped_column(String(255), default="")
    tool_call_key: Mapped[str] = mapped_column(String(255), default="")
    path: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16), default="api")  # log | proxy | mcp | cli | api
    ts: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        # user_id: two developers saving the same note anonymously are two sightings, each its owner's.
        UniqueConstraint(
            "item_id", "user_id", "agent", "session_key", "tool_call_key", name="uq_memory_sightings_item_user_meeting"
        ),
        Index("ix_memory_sightings_user_id", "user_id"),
        Index("ix_memory_sightings_project_ts", "project", "ts"),
        # Which items a project sees, answered from the index alone (item lookups use the unique key above).
        Index("ix_memory_sightings_project_item_id", "project", "item_id"),
    )


class MemoryVectorRow(Base):
    """An item's embedding (float32, L2-normalised): the source of truth the vector index is rebuilt from."""

    __tablename__ = "memory_vectors"

    item_id: Mapped[int] = mapped_column(ForeignKey("memory_items.id", ondelete="CASCADE"), primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class BlockMemoRow(Owned, Base):
    """What the proxy served for a block's content in a project: every agent gets the same bytes and ids."""

    __tablename__ = "block_memo"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(Text, default="")
    key: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    entry_ids: Mapped[str] = mapped_column(Text, default="")  # space-separated CCR ids the text refers to
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_used_at: Mapped[datetime] = mapped_column(DateTime, index=True)

    __table_args__ = (UniqueConstraint("project", "key"),)


class StateValueRow(Owned, Base):
    """Small named values that must survive restarts (e.g. how far the memory feed has read).

    Keyed by (machine_id, name): a machine's cursors are its own; a value for the whole database (the memory's
    generation) is kept under machine_id ``""``.
    """

    __tablename__ = "state_values"

    machine_id: Mapped[str] = mapped_column(String(64), primary_key=True, default="", server_default="")
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class SchedulerJobRow(Base):
    """apscheduler's job store (the table ``SQLAlchemyJobStore`` expects): the daemon's periodic jobs and
    when each runs next, kept in the DB so a run missed while the daemon was down is made up, once, at start.
    ``job_state`` is apscheduler's pickle of the job (a function reference, its trigger and arguments)."""

    __tablename__ = "scheduler_jobs"

    id: Mapped[str] = mapped_column(Unicode(191), primary_key=True)
    next_run_time: Mapped[float | None] = mapped_column(Float(25), index=True)
    job_state: Mapped[bytes] = mapped_column(LargeBinary)
    #: Whose machine's job (revision 0012): filled by the server, since apscheduler writes only the columns above
    #: (on PostgreSQL the connected member's user id, for the row-level security policy; ``''`` for the owner).
    user_id: Mapped[str] = mapped_column(String(64), default="", server_default="")


class LessonRow(Owned, Base):
    """A lesson mined from failed sessions, with its evidence and where it is in its life.

    ``key`` is stable across runs (a hash over the scope and the failure signature), so mining again
    updates the same row. ``status``: proposed (mined, not written yet), active (written into the agents'
    files), retired (``retired_reason``: expired, a path it names is gone, it did not help, or by hand).
    ``sessions_before``/``recurring_before`` are the project's sessions and those showing the failure in the
    window before activation; ``sessions_after``/``recurring_after`` the same since: whether it helped.
    """

    __tablename__ = "lessons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    project: Mapped[str] = mapped_column(Text, default="")  # "" for lessons about the environment
    scope: Mapped[str] = mapped_column(String(16), default="project")
    kind: Mapped[str] = mapped_column(String(32))
    signature: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    names: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of the paths/commands it names
    evidence: Mapped[str] = mapped_column(Text, default="[]")  # JSON list, redacted
    status: Mapped[str] = mapped_column(String(16), default="proposed", index=True)
    retired_reason: Mapped[str | None] = mapped_column(Text)
    sessions: Mapped[int] = mapped_column(Integer, default=0)
    count: Mapped[int] = mapped_column(Integer, default=0)
    corrected_by_user: Mapped[bool] = mapped_column(Boolean, default=False)
    first_seen: Mapped[datetime | None] = mapped_column(DateTime)
    last_seen: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    validated_at: Mapped[datetime | None] = mapped_column(DateTime)
    sessions_before: Mapped[int | None] = mapped_column(Integer)
    recurring_before: Mapped[int | None] = mapped_column(Integer)
    sessions_after: Mapped[int | None] = mapped_column(Integer)
    recurring_after: Mapped[int | None] = mapped_column(Integer)
    # Team review (issue 17): the users whose machines mined it (JSON list); a project lesson seen by two or
    # more becomes a proposal for the repository's shared files ("pending"), written there only once a
    # reviewer accepts it ("accepted"; "rejected" keeps it out). None: not a team proposal.
    seen_by: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    team_status: Mapped[str | None] = mapped_column(String(16))
    team_decided_by: Mapped[str | None] = mapped_column(String(64))
    team_decided_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_lessons_project_status", "project", "status"),
        Index("ix_lessons_user_id", "user_id"),
    )


@event.listens_for(LessonRow, "before_insert")
@event.listens_for(LessonRow, "before_update")
def _redact_lesson(mapper: Mapper[LessonRow], connection: Connection, target: LessonRow) -> None:
    """A lesson is written into agents' files and may be shared with a team: its texts are redacted on every write.

    Here rather than in learn, so that no path that stores a lesson can forget it (DESIGN invariant 4); it is
    idempotent, so text learn already redacted passes unchanged.
    """
    for name in ("text", "signature", "retired_reason"):
        value = getattr(target, name)
        if value:
            setattr(target, name, redact_text(value))
    for name in ("names", "evidence"):
        value = getattr(target, name)
        if value:
            setattr(target, name, redact_json(value))
