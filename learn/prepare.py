"""A normalized batch turned into the rows the session mirror stores: everything of a write that needs no database.

What :func:`headroom.learn.mirror.write_prepared` upserts, built apart from it so that it can be built in another
process (a backfill's helper, ``daemon/ingest_pipeline.py``), which therefore imports no SQLAlchemy and starts fast.
The text is redacted here (DESIGN invariant 4): every plain string field of an event or a tool call except the few
that are identifiers (keys, kind, role, tool name), so a column added to the model later is redacted without anyone
remembering to. Redaction is deterministic, so a re-read batch still converges. (Split from ``learn/mirror.py``.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from headroom.learn import model as m
from headroom.learn.projects import project_root, repository_of
from headroom.memory.redact import redact_many

_TOOL_CALL_SIDE = ("name", "input", "started_at", "kind", "command", "path")
_TOOL_RESULT_SIDE = ("status", "output", "output_size", "exit_code", "failed", "ended_at", "duration_ms")
# Tool-call fields that name things rather than carry text: stored as they are.
_TOOL_IDENTIFIERS = frozenset({"name", "status", "kind"})


def _redact_fields(rows: list[dict[str, Any]], names: tuple[str, ...] | None = None) -> None:
    """Redact, in place, the text of ``rows``: the fields in ``names``, or every plain string but identifiers.

    One :func:`redact_many` call per batch: a batch is thousands of short texts (DESIGN invariant 4).
    """
    spots = [
        (row, name)
        for row in rows
        for name, value in row.items()
        if type(value) is str and value and (name in names if names else name not in _TOOL_IDENTIFIERS)
    ]
    for (row, name), clean in zip(spots, redact_many([row[name] for row, name in spots])):
        row[name] = clean


@dataclass
class Prepared:
    """A batch as rows, redacted: everything of a write that needs no database (picklable).

    Built where the log is read (in a backfill, a helper process: parsing and redaction run beside the writer,
    see ``daemon/ingest_pipeline.py``). Rows name their session by its key in ``session_id`` until
    :func:`write_prepared` knows the ids.
    """

    sessions: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[tuple[str, str]] = field(default_factory=list)  # (session key, event key) of the prompts
    tool_calls: dict[tuple[str, ...], list[dict[str, Any]]] = field(default_factory=dict)  # by row shape
    usage: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)  # (merge, rows)
    retracted: list[str] = field(default_factory=list)  # usage keys a last copy without tokens withdraws
    replay: bool = False

    @property
    def empty(self) -> bool:
        return not self.sessions


def prepare_batch(agent: m.Agent, batch: m.Batch) -> Prepared:
    """The rows :func:`write_prepared` upserts for ``batch``, redacted (DESIGN invariant 4); no database needed."""
    keys = {e.session_key for e in batch.events}
    keys |= {t.session_key for t in batch.tool_calls}
    keys |= {u.session_key for u in batch.usage}
    for key in keys - batch.sessions.keys():
        batch.sessions[key] = m.SessionInfo(key=key)
    prepared = Prepared(replay=batch.replay)
    if not batch.sessions:
        return prepared
    prepared.sessions = _session_rows(agent, list(batch.sessions.values()))
    prepared.events, prepared.prompts = _event_rows(batch.events, replay=batch.replay)
    prepared.tool_calls = _tool_rows(batch.tool_calls)
    prepared.retracted, prepared.usage = _usage_rows(agent, batch.usage)
    return prepared


def _session_rows(agent: m.Agent, infos: list[m.SessionInfo]) -> list[dict[str, Any]]:
    rows = []
    for info in infos:
        project = info.project_root or info.cwd
        root = project_root(project) if project else None
        rows.append(
            {
                "agent": agent,
                "key": info.key,
                "parent_key": info.parent_key,
                "subagent_id": info.subagent_id,
                "kind": info.kind or ("subagent" if info.parent_key else "main"),
                "title": info.title,
                "cwd": info.cwd,
                "project_root": root,
                # The repository it is a checkout of, read here where the checkout is (issue 17).
                "repository": repository_of(root) if root else None,
                "git_branch": info.git_branch,
                "cli_version": info.cli_version,
                "started_at": info.started_at,
                "ended_at": info.ended_at,
                "stale": True,
            }
        )
    _redact_fields(rows, ("title",))
    return rows


def _event_rows(events: list[m.Event], *, replay: bool) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Event rows (the last copy of a key wins, as on conflict), and the prompts among them (not in a replay)."""
    latest: dict[tuple[str, str], m.Event] = {}
    for event in events:
        latest[(event.session_key, event.key)] = event
    rows = [
        {
            "session_id": e.session_key,
            "key": e.key,
            "kind": e.kind.value,
            "ts": e.ts,
            "seq": e.seq,
            "role": e.role,
            "text": e.text,
            "tool_call_key": e.tool_call_key,
            "status_code": e.status_code,
            "sidechain": e.sidechain,
            "raw": e.raw,
        }
        for e in latest.values()
    ]
    _redact_fields(rows, ("text", "raw"))
    if replay:
        return rows, []
    return rows, [(e.session_key, e.key) for e in latest.values() if e.kind is m.EventKind.USER_PROMPT]


def _tool_rows(calls: list[m.ToolCall]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """Tool-call rows by shape: an upsert may only overwrite the columns this batch knows about."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for call in calls:
        fields = merged.setdefault((call.session_key, call.key), {})
        for name in _TOOL_CALL_SIDE + _TOOL_RESULT_SIDE:
            value = getattr(call, name)
            if value is not None:
                fields[name] = value.value if isinstance(value, (m.ToolStatus, m.ToolKind)) else value
        if call.by_user:  # False says nothing: the other half of a user's command does not know it
            fields["by_user"] = True
    _redact_fields(list(merged.values()))  # every text field; enums (status, kind), flags and numbers are not str
    by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for (session_key, key), fields in merged.items():
        row = {"session_id": session_key, "key": key, **fields}
        if "started_at" in fields:
            row["day"] = fields["started_at"].date()
        by_shape.setdefault(tuple(sorted(row)), []).append(row)
    return by_shape


def _usage_rows(agent: m.Agent, usage: list[m.Usage]) -> tuple[list[str], list[tuple[str, list[dict[str, Any]]]]]:
    """The usage keys withdrawn, and the rows to upsert per merge rule."""
    kept: dict[str, m.Usage] = {}
    for item in usage:  # the same rule as the SQL upsert, within the batch
        known = kept.get(item.key)
        if known is None or item.merge is m.Merge.LAST or _rank(item) > _rank(known):
            kept[item.key] = item
    # A last copy with no tokens retracts the call (Codex withdraws a replayed call once it knows).
    retracted = [k for k, u in kept.items() if u.merge is m.Merge.LAST and u.total == 0 and not u.reasoning_tokens]
    for key in retracted:
        del kept[key]
    by_merge: list[tuple[str, list[dict[str, Any]]]] = []
    for merge in m.Merge:
        rows = [
            {
                "agent": agent,
                "key": u.key,
                "session_id": u.session_key,
                "ts": u.ts,
                "day": u.ts.date() if u.ts else None,
                "model": u.model,
                "input_tokens": u.input_tokens,
                "output_tokens": u.output_tokens,
                "cache_read_tokens": u.cache_read_tokens,
                "cache_creation_tokens": u.cache_creation_tokens,
                "reasoning_tokens": u.reasoning_tokens,
                "cache_write_1h_tokens": u.cache_write_1h_tokens,
                "sidechain": u.sidechain,
            }
            for u in kept.values()
            if u.merge is merge
        ]
        if rows:
            by_merge.append((merge.value, rows))
    return retracted, by_merge


def _rank(item: m.Usage) -> tuple[bool, int]:
    """Which of two copies of one model call to keep (``Merge.MAX``), as ccusage decides.

    A copy logged by the main conversation beats a sidechain copy (Claude mirrors a sub-agent's responses
    into the parent log), then the larger total wins: streamed lines carry partial output counts.
    """
    return (not item.sidechain, item.total)


__all__ = ["Prepared", "prepare_batch"]
