"""Claude Code session logs (``<config>/projects/<encoded-cwd>/**.jsonl``) in the normalized model.

Claude Code is closed source, so this format is known only from real logs (see ``FORMATS.md`` §1).
Every line is a self-contained record with its own ``sessionId``, ``cwd``, ``version`` and
``timestamp``. So the reader needs almost no memory between records: ``state`` holds the file's
identity, which makes resuming a half-read file after a restart trivial. It also holds the start times
of tool calls that are still waiting for their result.

Layouts, all handled the same way, since a record carries its own identity:

* v1.0.x: sub-agents run *inline*, in the parent's file, flagged ``isSidechain:true``. They stay in the
  parent session with ``sidechain=True`` (there is no agent id to split them out by).
* v2.0.x: ``agent-<8 hex>.jsonl`` beside the session file. v2.1.x:
  ``<sessionId>/subagents/[workflows/<wf>/]agent-<17 hex>.jsonl``, with an ``agent-<id>.meta.json``
  sidecar giving the title. Each sub-agent file is its own session ``agent-<id>``, child of ``sessionId``.
* Except the replays: ``subagents/agent-acompact-<hex>.jsonl`` (automatic compaction) and
  ``agent-aside_question-<hex>.jsonl`` (``/btw``) start with a copy of the parent's history (same uuids,
  tool_use ids, request ids) and end with one new prompt and answer. They are not sessions of their own:
  their records go to the parent session, in batches flagged ``replay`` so that ingestion adds only what
  the parent does not already hold (a replayed call is the same call; its usage shares the parent's key).
  A compaction agent's new prompt is the harness's instruction, never a user prompt.

Traps handled:

* One API response is written as one line per content block. Every line repeats ``message.id``,
  ``requestId`` and ``usage``, and ``output_tokens`` is partial on all lines but the last. Usage rows
  share a key and ingestion keeps one of them. Keys and eligibility copy ccusage exactly; see
  :mod:`._claude_usage`, which also explains why the parent log's ``progress`` copies of sub-agent
  responses are emitted.
* A user record is a human prompt only when it is plain text. These are not prompts but META:
  ``tool_result`` carriers, ``isMeta`` skill/caveat injections, ``isCompactSummary`` summaries, and the
  typed slash command with its local output (``<command-name>``, ``<local-command-stdout>``...). IDE
  context blocks (``<ide_opened_file>``, ``<system-reminder>``) are dropped from a prompt's text.
* Failures come in several kinds, and they must stay apart:
  * ``tool_result.is_error`` is a tool failure;
  * "The user doesn't want to proceed…", "User rejected tool use" or "Permission … denied" means the
    call was *rejected*;
  * "[Request interrupted by user…]" or "Cancelled: parallel tool call" means it was *cancelled*;
  * ``system/api_error`` and ``isApiErrorMessage`` (a ``<synthetic>`` assistant message) are API
    errors;
  * "Prompt is too long" / "Conversation too long" is a context overflow.
* Formats change monthly. Unknown record types are kept raw as UNKNOWN events, and known-but-noisy
  ones (file-history snapshots, queue operations, skill listings, 2.1.3xx's ``api-request*``,
  ``atis-latch``, ``tools-used``, ``teleported-from``) are dropped: they name no session on their own,
  so a file holding only such records is no session. ``cost-state`` (Claude Code's running cost) is kept
  as a META event. Nothing here raises on an odd shape.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from headroom.learn.model import (
    Batch,
    Event,
    EventKind,
    Merge,
    SessionInfo,
    Usage,
    parse_ts,
)
from headroom.learn.readers._claude_tools import (
    INTERRUPT_PREFIX,
    server_tool_result,
    to_json,
    tool_result,
    tool_use,
)
from headroom.learn.readers._claude_usage import file_id, usage_line
from headroom.learn.readers.base import LogReader, State
from headroom.memory.redact import redact_text

# Records that only echo or checkpoint what other records already say.
_SILENT_TYPES = frozenset(
    {
        "file-history-snapshot",
        "queue-operation",
        "last-prompt",
        "permission-mode",
        "mode",
        "agent-name",
        "agent-setting",
        "pr-link",
        "tag",
        "progress",  # hook and sub-agent progress; its usage copies are taken before dispatch
        "teleported-from",  # a session continued from claude.ai: the remote id and branch
        # 2.1.3xx: the request's parameters, message blobs and shape (usage comes from `assistant`), a
        # latch, the tools named (the tool_use blocks have them), the running cost (kept as a META event)
        "api-request",
        "api-request-blob",
        "api-request-shape",
        "atis-latch",
        "tools-used",
        "cost-state",
    }
)
_TITLE_FIELDS = {"summary": "summary", "custom-title": "customTitle", "ai-title": "aiTitle"}
_SKIP_DIRS = frozenset({"tool-results", "memory"})

# Text the harness injects as a "user" message: a typed slash command and what it printed.
_COMMAND_PREFIXES = (
    "<command-name>",
    "<command-message>",
    "<command-args>",
    "<local-command-stdout>",
    "<local-command-stderr>",
    "<local-command-caveat>",
    "Caveat: The messages below were generated by the user while running local commands",
    "<bash-input>",
    "<bash-stdout>",
    "<bash-stderr>",
    "<user-memory-input>",
    "<task-notification>",
)
# Context blocks that ride along with a real prompt (IDE state, reminders); dropped from its text.
_CONTEXT_PREFIXES = ("<ide_opened_file>", "<ide_selection>", "<ide_diagnostics>", "<system-reminder>")
_OVERFLOW_MARKERS = (
    "prompt is too long",
    "conversation too long",
    "exceed context limit",
    "context_length_exceeded",
    "maximum context length",
)
_API_STATUS = re.compile(r"API Error: (\d{3})\b")
_HEAD = 512  # classification looks at this many characters: outputs can be megabytes
_META_SIDECAR_MAX = 64 * 1024
# Sub-agents that replay their parent's history before their own turn (the automatic compaction, the /btw
# side question): the same uuids, tool_use ids and usage, then one new prompt and answer.
_COMPACTION = "acompact"
_REPLAY_KINDS = (_COMPACTION, "aside_question")


class ClaudeReader(LogReader):
    """Reads Claude Code's per-session JSONL logs and their sub-agent logs."""

    agent = "claude"

    def accepts(self, path: Path, root: Path) -> bool:
        name = path.name
        if not name.endswith(".jsonl") or name == "journal.jsonl":
            return False
        try:
            parts = path.relative_to(root).parts
        except ValueError:
            return False
        if _SKIP_DIRS.intersection(parts[:-1]):
            return False
        if len(parts) == 2:  # <project>/<sessionId>.jsonl, or a v2.0 <project>/agent-<id>.jsonl
            return True
        # <project>/<sessionId>/subagents/[workflows/<wf>/]agent-<id>.jsonl
        return len(parts) >= 4 and parts[2] == "subagents" and name.startswith("agent-")

    def begin(self, path: Path, root: Path) -> State:
        try:
            relative = path.relative_to(root)
        except ValueError:
            relative = Path(path.name)
        stem = path.name.removesuffix(".jsonl")
        state: State = {"file": file_id(relative.as_posix()), "session": stem, "open": {}}
        replay = _replay_kind(stem)
        parts = relative.parts
        if replay is not None and "subagents" in parts[:-1] and parts.index("subagents") >= 1:
            # Part of the parent's session: its records carry the parent's sessionId, uuids and tool ids.
            state["replay"] = replay
            state["session"] = parts[parts.index("subagents") - 1]
        elif stem.startswith("agent-"):
            agent_id = stem.removeprefix("agent-")
            state["agent"] = agent_id
            state["session"] = f"agent-{agent_id}"
            if "subagents" in parts[:-1] and parts.index("subagents") >= 1:
                state["parent"] = parts[parts.index("subagents") - 1]
            title = _sidecar_title(path.with_name(stem + ".meta.json"))
            if title:
                state["title"] = title
        return state

    def feed(self, record: dict[str, Any], raw: bytes, offset: int, state: State, out: Batch) -> None:
        if "replay" in state:
            out.replay = True
        kind = record.get("type")
        ts = parse_ts(record.get("timestamp"))
        line = usage_line(record, raw, state["file"], offset, ts)
        if line is None and kind in _SILENT_TYPES:
            # Bookkeeping names no session by itself (a file holding only such records is no session).
            if kind == "cost-state" and state.get("live"):
                _cost(record, raw, offset, ts, state, out)
            return
        state["live"] = True
        session = _session(record, ts, state, out)

        if line is not None:
            usage_session = session
            if kind == "progress":  # a sub-agent's response mirrored into the parent log
                usage_session = _progress_session(record, session, out)
            out.usage.append(
                Usage(
                    session_key=usage_session,
                    key=line.key,
                    ts=line.ts,
                    model=line.model,
                    input_tokens=line.input_tokens,
                    output_tokens=line.output_tokens,
                    cache_read_tokens=line.cache_read_tokens,
                    cache_creation_tokens=line.cache_creation_tokens,
                    cache_write_1h_tokens=line.cache_write_1h_tokens,
                    merge=Merge.MAX,
                    sidechain=line.sidechain,
                )
            )

        uuid = record.get("uuid")
        key = uuid if isinstance(uuid, str) and uuid else f"{state['file']}:{offset}"
        event = Event(session, key, EventKind.META, ts, offset, sidechain=record.get("isSidechain") is True)
        if kind == "user":
            _user(record, event, state, out)
        elif kind == "assistant":
            _assistant(record, event, state, out)
        elif kind == "system":
            _system(record, event, out)
        elif kind == "attachment":
            _attachment(record, event, out)
        elif isinstance(kind, str) and kind in _TITLE_FIELDS:
            _title(record, kind, session, state, out)
        elif kind not in _SILENT_TYPES:
            event.kind = EventKind.UNKNOWN
            event.raw = raw.decode("utf-8", "replace")
            out.events.append(event)


def _session(record: dict[str, Any], ts: datetime | None, state: State, out: Batch) -> str:
    """The session this record belongs to, recording what it tells about that session."""
    record_sid = record.get("sessionId")
    sid = record_sid if isinstance(record_sid, str) and record_sid else None
    agent_id = state.get("agent")
    known = out.sessions.get(sid or state["session"] if agent_id is None else state["session"])
    if known is not None:  # the hot path: every line repeats these fields; only widen and fill gaps
        _refresh(known, record, ts)
        return known.key
    if agent_id is None:
        info = SessionInfo(key=sid or state["session"], kind="main")
    else:
        # A workflow agent's sessionId reads "<parent>#agent-<id>"; the folder name is the surer parent.
        parent = state.get("parent") or (sid.split("#", 1)[0] if sid else None)
        info = SessionInfo(key=state["session"], parent_key=parent, subagent_id=agent_id, kind="subagent")
        if "title" in state:
            info.title = state.pop("title")  # once; a later title record may still replace it
    cwd, branch, version = record.get("cwd"), record.get("gitBranch"), record.get("version")
    info.cwd = info.project_root = cwd if isinstance(cwd, str) and cwd else None
    info.git_branch = branch if isinstance(branch, str) and branch else None
    info.cli_version = version if isinstance(version, str) and version else None
    info.started_at = info.ended_at = ts
    out.session(info)
    return info.key


def _refresh(info: SessionInfo, record: dict[str, Any], ts: datetime | None) -> None:
    """Fold one more record of a session already in this batch into its info (as ``SessionInfo.merge``)."""
    if ts is not None:
        if info.started_at is None or ts < info.started_at:
            info.started_at = ts
        if info.ended_at is None or ts > info.ended_at:
            info.ended_at = ts
    version = record.get("version")
    if isinstance(version, str) and version:
        info.cli_version = version
    if info.cwd is None:
        cwd = record.get("cwd")
        if isinstance(cwd, str) and cwd:
            info.cwd = info.project_root = cwd
    if info.git_branch is None:
        branch = record.get("gitBranch")
        if isinstance(branch, str) and branch:
            info.git_branch = branch


def _cost(record: dict[str, Any], raw: bytes, offset: int, ts: datetime | None, state: State, out: Batch) -> None:
    """``cost-state`` (2.1.3xx): Claude Code's own running cost of the session, kept as a META event."""
    total = record.get("totalCostUSD")
    if not isinstance(total, (int, float)) or isinstance(total, bool):
        return
    models = record.get("modelUsage")
    names = ", ".join(sorted(models)) if isinstance(models, dict) else ""
    session = _session(record, ts, state, out)
    text = f"cost so far: ${total:.4f}" + (f" ({names})" if names else "")
    out.events.append(Event(session, f"{state['file']}:{offset}", EventKind.META, ts, offset, role="system", text=text))


def _progress_session(record: dict[str, Any], parent: str, out: Batch) -> str:
    data = record.get("data")
    agent_id = data.get("agentId") if isinstance(data, dict) else None
    if not isinstance(agent_id, str) or not agent_id:
        return parent
    key = f"agent-{agent_id}"
    out.session(SessionInfo(key=key, parent_key=parent, subagent_id=agent_id, kind="subagent"))
    return key


def _user(record: dict[str, Any], event: Event, state: State, out: Batch) -> None:
    message = record.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    texts: list[str] = []
    carries_results = False
    for block in [content] if isinstance(content, str) else content if isinstance(content, list) else []:
        if isinstance(block, str):
            texts.append(block)
            continue
        if not isinstance(block, dict):
            continue
        block_type = block.get("type")
        if block_type == "tool_result":
            carries_results = True
            tool_result(block, record, event, state, out)
        elif block_type == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block_type in ("image", "document"):
            texts.append(f"[{block_type}]")
    if not texts:
        return
    event.role, event.text = "user", "\n".join(texts)
    first = texts[0].lstrip()
    if any(text.startswith(INTERRUPT_PREFIX) for text in texts):
        event.kind = EventKind.INTERRUPT
    elif record.get("isCompactSummary") or record.get("isMeta") or record.get("isVisibleInTranscriptOnly"):
        event.kind = EventKind.META
    elif first.startswith(_COMMAND_PREFIXES):
        event.kind = EventKind.CONTEXT_OVERFLOW if _overflow(first) else EventKind.META
    elif carries_results:
        event.kind = EventKind.META  # text riding along with tool results is harness-made
    else:
        prompt = [text for text in texts if not text.lstrip().startswith(_CONTEXT_PREFIXES)]
        if prompt and state.get("replay") != _COMPACTION:  # a compaction agent's only new prompt is the harness's
            event.kind, event.text = EventKind.USER_PROMPT, "\n".join(prompt)
    out.events.append(event)


def _assistant(record: dict[str, Any], event: Event, state: State, out: Batch) -> None:
    message = record.get("message")
    if not isinstance(message, dict):
        return
    content = message.get("content")
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    api_error = record.get("isApiErrorMessage") is True
    synthetic = message.get("model") == "<synthetic>"
    emitted = False
    for index, block in enumerate(blocks if isinstance(blocks, list) else []):
        if not isinstance(block, dict):
            continue
        item = Event(
            event.session_key,
            event.key if index == 0 else f"{event.key}.{index}",
            EventKind.ASSISTANT_TEXT,
            event.ts,
            event.seq,
            role="assistant",
            sidechain=event.sidechain,
        )
        block_type = block.get("type")
        if block_type == "text":
            item.text = block.get("text") if isinstance(block.get("text"), str) else None
            if api_error:
                _classify_api_error(item, item.text or "")
            elif synthetic:  # harness placeholders such as "No response requested."
                item.kind = EventKind.META
        elif block_type in ("thinking", "redacted_thinking"):
            item.kind = EventKind.REASONING
            thinking = block.get("thinking")
            item.text = thinking if isinstance(thinking, str) else None
        elif block_type in ("tool_use", "server_tool_use", "mcp_tool_use"):
            if not tool_use(block, item, state, out):
                continue
        elif isinstance(block_type, str) and block_type.endswith("_tool_result"):
            server_tool_result(block, item, out)  # web search/fetch results come inline, no event
            continue
        else:
            continue
        out.events.append(item)
        emitted = True
    if api_error and not emitted:
        error = record.get("error")
        event.role, event.text = "assistant", error if isinstance(error, str) else None
        _classify_api_error(event, event.text or "")
        out.events.append(event)


def _system(record: dict[str, Any], event: Event, out: Batch) -> None:
    subtype = record.get("subtype")
    content = record.get("content")
    event.role, event.text = "system", content if isinstance(content, str) else None
    if subtype == "api_error":
        error = record.get("error")
        status = error.get("status") if isinstance(error, dict) else None
        event.status_code = status if isinstance(status, int) and not isinstance(status, bool) else None
        text = _error_message(error) or (f"HTTP {event.status_code}" if event.status_code else "API error")
        attempt, limit = record.get("retryAttempt"), record.get("maxRetries")
        if isinstance(attempt, int) and isinstance(limit, int):
            text += f" (retry {attempt}/{limit})"
        event.text = text
        event.kind = EventKind.CONTEXT_OVERFLOW if _overflow(text) else EventKind.API_ERROR
    elif subtype in ("compact_boundary", "microcompact_boundary"):
        event.kind = EventKind.COMPACTION
        meta = record.get("compactMetadata") or record.get("microcompactMetadata")
        if isinstance(meta, dict):
            details = ", ".join(f"{name}={meta[name]}" for name in ("trigger", "preTokens") if name in meta)
            event.text = f"{event.text or 'Conversation compacted'} ({details})" if details else event.text
    elif subtype == "turn_duration":
        return
    elif subtype == "stop_hook_summary":
        errors = record.get("hookErrors")
        if not errors or not isinstance(errors, list):
            return
        event.text = "\n".join(error if isinstance(error, str) else to_json(error) for error in errors)
    elif event.text is not None and _overflow(event.text[:_HEAD]):
        event.kind = EventKind.CONTEXT_OVERFLOW
    elif event.text is None:
        event.text = subtype if isinstance(subtype, str) else None
    out.events.append(event)


def _attachment(record: dict[str, Any], event: Event, out: Batch) -> None:
    """Only hook errors are worth keeping; the rest is context (skill lists, file deltas, todos)."""
    attachment = record.get("attachment")
    kind = attachment.get("type") if isinstance(attachment, dict) else None
    if not isinstance(attachment, dict) or not isinstance(kind, str) or "error" not in kind:
        return
    text: str = kind
    for name in ("blockingError", "stderr", "content", "message"):
        value = attachment.get(name)
        if isinstance(value, dict):  # hook_blocking_error nests {"blockingError": reason, "command": …}
            value = value.get("blockingError") or value
        if value:
            text = value if isinstance(value, str) else to_json(value)
            break
    hook = attachment.get("hookName")
    event.role, event.text = "system", f"{hook}: {text}" if isinstance(hook, str) and hook else text
    out.events.append(event)


def _title(record: dict[str, Any], kind: str, session: str, state: State, out: Batch) -> None:
    """A session title: the latest one wins, except that an AI title never replaces the user's own."""
    title = record.get(_TITLE_FIELDS[kind])
    if not isinstance(title, str) or not title.strip():
        return
    if kind == "custom-title":
        state["custom"] = True
    elif state.get("custom"):
        return
    out.session(SessionInfo(key=session, title=title.strip()))


def _classify_api_error(event: Event, text: str) -> None:
    match = _API_STATUS.search(text[:_HEAD])
    event.status_code = int(match.group(1)) if match else None
    event.kind = EventKind.CONTEXT_OVERFLOW if _overflow(text) else EventKind.API_ERROR


def _overflow(text: str) -> bool:
    head = text[:_HEAD].lower()
    return any(marker in head for marker in _OVERFLOW_MARKERS)


def _error_message(error: Any) -> str | None:
    """The innermost human message of an API error (``error.error.error.message`` and shallower)."""
    node = error
    for _ in range(4):
        if not isinstance(node, dict):
            return None
        message = node.get("message")
        if isinstance(message, str) and message:
            return message
        node = node.get("error")
    return None


def _replay_kind(stem: str) -> str | None:
    """``acompact`` / ``aside_question`` for the sub-agent files that start with a copy of the parent's history."""
    for kind in _REPLAY_KINDS:
        if stem.startswith(f"agent-{kind}-"):
            return kind
    return None


def _sidecar_title(path: Path) -> str | None:
    """``agent-<id>.meta.json`` → "Explore: Find Teams launch command" (it may not exist yet)."""
    try:
        if path.stat().st_size > _META_SIDECAR_MAX:
            return None
        meta = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(meta, dict):
        return None
    parts = [meta.get(name) for name in ("agentType", "description")]
    texts = [part.strip() for part in parts if isinstance(part, str) and part.strip()]
    # Redacted here: until the file's first record it waits in the reader state, which is stored as is.
    return redact_text(": ".join(texts)) or None
