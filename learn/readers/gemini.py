"""Gemini CLI session logs: ``~/.gemini/tmp/<project>/chats/``.

Layout. ``<project>`` is ``sha256(project root)`` (before Feb 2026) or a slug of the root's basename, which
holds the root in ``.project_root``; ``~/.gemini/projects.json`` maps roots to slugs. :meth:`begin` reads
those small files (hashing the registered roots to name a hash dir). Main sessions are
``chats/session-<minute>-<id8>.json[l]``, sub-agents ``chats/<parentSessionId>/<sessionId>.json[l]``; the
background skill extractor's sub-agents sit under ``chats/skill-extraction-<id>/``, which is no session, so
they get no parent and keep that folder name as ``subagent_id``.

Formats. Until Apr 2026 a chat was one pretty-printed ``ConversationRecord`` rewritten in place
(:meth:`feed_document`); resuming one copies it into a ``.jsonl`` twin with the same ids. JSONL is
append-only: a metadata line (the only one naming ``sessionId`` and ``kind``, so ``state`` keeps them),
message records re-appended whole under the same ``id`` whenever they change, ``{"$set": {…}}`` updates and
``{"$rewindTo": id}``. ``{"$set": {"messages": […]}}`` replaces the whole list: the ``<session_context>``
turn at start, ``/compress`` (a ``<state_snapshot>`` turn and an ack), masking of old tool outputs, and a
resume that re-creates history with new timestamps and ``<id>_response`` turns. So a checkpoint only adds
turns this file has not shown (``state["seen"]``); re-emitting known ids would overwrite good events and
tool outputs with masked or re-dated copies.

Keys. Events by message id (a later copy overwrites), tool calls by their id, a rewind by its byte offset.
Usage ``<sessionId>:<message id>``, ``Merge.LAST``: a legacy file and its twin make one row per call.

Usage is ccusage 20's, exactly: per file, the last copy of an id that yields usage; input minus ``cached``
only when ``total`` shows input included it, plus ``tool``; output without ``thoughts``, which (with any
unexplained rest of ``total``) become ``reasoning_tokens``; no model, no usage (a JSONL file's last model
stands in); nothing from checkpoints; rewound calls count (they were billed). ccusage counts a twin's
calls twice; we count them once.

Events. User text is a prompt (slash commands stay in ``logs.json``); user turns of bare
``functionResponse`` parts repeat tool results the ToolCall has, and are skipped. A shell call recorded as
``success`` whose output ends with ``Exit Code: N`` (N != 0) is an error (unless it is a "no match" answer,
see ``knowledge.is_failure``; the stored output drops the ``Output: … Exit Code: … PGID`` framing); policy
denials and refused confirmations are ``rejected``. "Request cancelled." and ``$rewindTo`` (the user undid turns) are
interrupts, context-window warnings overflows, ``error`` turns API errors with their HTTP status.
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from headroom.learn.knowledge import describe_call, is_failure, unwrap_output
from headroom.learn.model import (
    Batch,
    Event,
    EventKind,
    Merge,
    SessionInfo,
    ToolCall,
    ToolKind,
    ToolStatus,
    Usage,
    parse_ts,
)
from headroom.learn.projects import HASH_PREFIX, hash_candidates
from headroom.learn.readers.base import LogReader, State

_SKILL_EXTRACTION = "skill-extraction-"
_MESSAGE_TYPES = ("user", "gemini", "info", "error", "warning")
# Anything else (validating, scheduled, executing, awaiting_approval) is still in flight.
_STATUS = {"success": ToolStatus.OK, "error": ToolStatus.ERROR, "cancelled": ToolStatus.CANCELLED}
# The shell tool prints "Exit Code: N" after the output, and Gemini's own truncation keeps the tail.
_EXIT_TAIL = 1024
_EXIT = re.compile(r"^Exit Code: (-?\d+)\s*$", re.M)
_REJECTED = ("Tool execution denied by policy", "User did not allow tool call")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HTTP = re.compile(r'(?i)(?:\bstatus(?:\s*code)?["\s:=]*|"code"\s*:\s*|\bAPI Error:\s*)([1-5]\d\d)\b')
# Quota exhaustion is a 429 that Gemini CLI rewords without the number.
_QUOTA = re.compile(r"RESOURCE_EXHAUSTED|exhausted your capacity", re.I)
_OVERFLOW = re.compile(
    r"context window|exceeds the maximum number of tokens|input token count|maximum context length", re.I
)
_CONTEXT = "<session_context>"
# What the CLI sends as a user message by itself (after an invalid stream, or when its next-speaker check says
# the model should go on): the harness's, not a turn of the user's.
_CONTINUE = "System: Please continue."
_SNAPSHOT = "<state_snapshot>"
_SNAPSHOT_ACK = "Got it. Thanks for the additional context"
_SUB = 1024  # seq slots per message of a legacy document (events of one message share its slot)


class GeminiReader(LogReader):
    """Reads Gemini CLI chats, both the legacy whole-file JSON and the current append-only JSONL."""

    agent = "gemini"

    def accepts(self, path: Path, root: Path) -> bool:
        try:
            parts = path.relative_to(root).parts
        except ValueError:
            return False
        name = parts[-1]
        if len(parts) < 3 or parts[1] != "chats" or not name.endswith((".json", ".jsonl")):
            return False
        if len(parts) == 3:
            return name.startswith("session-")
        return len(parts) == 4  # chats/<parentSessionId>/<sessionId>.jsonl

    def whole_file(self, path: Path) -> bool:
        return path.suffix == ".json"

    def begin(self, path: Path, root: Path) -> State:
        # chats/<file> is a main session, chats/<parentSessionId>/<file> a sub-agent.
        subagent = path.parent.name != "chats"
        parent = path.parent.name if subagent else None
        agent_id = None
        if parent is not None and parent.startswith(_SKILL_EXTRACTION):
            parent, agent_id = None, parent
        project_dir = path.parent.parent.parent if subagent else path.parent.parent
        # The file name stands in until the metadata line names the session (a sub-agent's is its id).
        state = _fresh_state(path.stem)
        state.update(kind="subagent" if subagent else "main", parent=parent, agent_id=agent_id)
        state["project"] = _project_root(project_dir, root)
        return state

    def feed(self, record: dict[str, Any], raw: bytes, offset: int, state: State, out: Batch) -> None:
        if "seen" not in state:  # a state saved by an older version of this reader
            state.update({**_fresh_state("unknown"), **state})
        model = record.get("model")
        if isinstance(model, str) and model.strip():
            state["model"] = model.strip()
        # Same precedence as gemini-cli's own loader (loadConversationRecord).
        if isinstance(record.get("$rewindTo"), str):
            self._rewind(record["$rewindTo"], offset, state, out)
        elif isinstance(record.get("id"), str) or _text_in(record.get("type"), _MESSAGE_TYPES):
            mid = _message_id(record, f"@{offset}")
            state["seen"][mid] = 1
            if isinstance(record.get("timestamp"), str):
                state["ts"] = record["timestamp"]
            _message(record, mid, state, out, offset, hint=state["model"], fallback=None)
        elif isinstance(record.get("$set"), dict):
            self._metadata(record["$set"], offset, state, out)
        elif isinstance(record.get("sessionId"), str):
            state["sid"] = record["sessionId"]
            if _text_in(record.get("kind"), ("main", "subagent")):
                state["kind"] = record["kind"]
            self._metadata(record, offset, state, out)
        else:
            out.events.append(_unknown(state, f"unknown:{offset}", offset, raw.decode("utf-8", "replace")))

    def feed_document(self, doc: Any, state: State, out: Batch) -> None:
        if not isinstance(doc, dict):
            out.events.append(_unknown(state, "document", 0, _dumps(doc)))
            return
        state = {**state, "seen": {}}  # a re-parse starts from the same state: never mutate it
        if isinstance(doc.get("sessionId"), str):
            state["sid"] = doc["sessionId"]
        if _text_in(doc.get("kind"), ("main", "subagent")):
            state["kind"] = doc["kind"]
        _set_project(doc, state)
        started, ended = parse_ts(doc.get("startTime")), parse_ts(doc.get("lastUpdated"))
        title = doc.get("summary") if isinstance(doc.get("summary"), str) else None
        out.session(_info(state, started_at=started, ended_at=ended, title=title))
        messages = doc.get("messages")
        if not isinstance(messages, list):
            return
        for index, msg in enumerate(messages):
            if isinstance(msg, dict):
                # ccusage: no model fallback in this format; an undated call is dated by the session.
                mid = _message_id(msg, f"#{index}")
                _message(msg, mid, state, out, index * _SUB, hint=None, fallback=started or ended)

    def _metadata(self, upd: dict[str, Any], offset: int, state: State, out: Batch) -> None:
        _set_project(upd, state)
        title = upd.get("summary") if isinstance(upd.get("summary"), str) else None
        if isinstance(upd.get("lastUpdated"), str):
            state["ts"] = upd["lastUpdated"]
        started = parse_ts(upd.get("startTime"))
        out.session(_info(state, started_at=started, ended_at=parse_ts(upd.get("lastUpdated")), title=title))
        if isinstance(upd.get("messages"), list):
            self._checkpoint(upd["messages"], offset, state, out)

    def _checkpoint(self, messages: list[Any], offset: int, state: State, out: Batch) -> None:
        """A replacement message list: only the turns this file has not shown yet are news."""
        seen: dict[str, int] = state["seen"]
        for index, msg in enumerate(messages):
            if not isinstance(msg, dict):
                continue
            mid = _message_id(msg, f"@{offset}.{index}")
            if mid in seen:
                continue
            seen[mid] = 1
            # Not billed here: a checkpoint repeats calls already logged, or synthesises turns no model made.
            _message(msg, mid, state, out, offset + index * 64, hint=None, fallback=None, replay=True)

    def _rewind(self, target: str, offset: int, state: State, out: Batch) -> None:
        # The undone turns stay on the timeline and in usage (they happened and were billed).
        text = f"Rewound the conversation to before message {target}"
        ts = parse_ts(state["ts"])
        out.events.append(_event(state, f"rewind:{offset}", EventKind.INTERRUPT, ts, offset, role="user", text=text))


def _message(
    msg: dict[str, Any],
    mid: str,
    state: State,
    out: Batch,
    seq: int,
    *,
    hint: str | None,
    fallback: datetime | None,
    replay: bool = False,
) -> None:
    """Events, tool calls and usage of one message record (or of one new turn of a checkpoint)."""
    kind = msg.get("type")
    ts = parse_ts(msg.get("timestamp"))
    if ts is not None and not replay:
        out.session(_info(state, started_at=ts, ended_at=ts))
    if ts is None:
        ts = fallback if fallback is not None else parse_ts(state["ts"])

    def event(key: str, ek: EventKind, k: int, role: str, text: str | None, **kw: Any) -> None:
        out.events.append(_event(state, key, ek, ts, seq + k, role=role, text=text, **kw))

    if kind == "user":
        text, _thought, responses_only = _parts(msg.get("content"))
        if responses_only:
            return  # a tool result sent back to the model: the ToolCall row has it
        shown = msg.get("displayContent")
        if shown:
            text = _parts(shown)[0] or text
        if text.lstrip().startswith(_CONTEXT) or text.strip() == _CONTINUE:
            event(mid, EventKind.META, 0, "user", text)
        elif replay and _SNAPSHOT in text[:200]:
            event(mid, EventKind.COMPACTION, 0, "user", text)
        elif text:
            event(mid, EventKind.USER_PROMPT, 0, "user", text)
    elif kind == "gemini":
        text, thought, _ = _parts(msg.get("content"))
        thought = _thoughts(msg.get("thoughts")) or thought
        if thought:
            event(f"{mid}:thoughts", EventKind.REASONING, 0, "assistant", thought)
        if text:
            synthetic = replay and text.startswith(_SNAPSHOT_ACK)
            event(mid, EventKind.META if synthetic else EventKind.ASSISTANT_TEXT, 1, "assistant", text)
        calls = msg.get("toolCalls")
        for j, call in enumerate(calls if isinstance(calls, list) else ()):
            if isinstance(call, dict):
                _tool_call(call, f"{mid}:{j}", state, out, seq=seq + 2 + j, ts=ts)
        if not replay:
            _usage(msg, mid, state, out, hint=hint, fallback=fallback)
    elif kind in ("info", "error", "warning"):
        text = _parts(msg.get("content"))[0]
        ek, code = _notice(kind, text)
        event(mid, ek, 0, "user" if ek is EventKind.INTERRUPT else "system", text, status_code=code)
    else:
        event(mid, EventKind.UNKNOWN, 0, "system", None, raw=_dumps(msg))


def _tool_call(
    call: dict[str, Any], fallback_key: str, state: State, out: Batch, *, seq: int, ts: datetime | None
) -> None:
    key = call["id"] if isinstance(call.get("id"), str) and call["id"] else fallback_key
    name = call.get("name") if isinstance(call.get("name"), str) else None
    args = call.get("args")
    arguments = _dumps(args) if args is not None else None
    output = _tool_output(call.get("result"), call.get("resultDisplay"))
    raw_status = call.get("status")
    status = _STATUS.get(raw_status, ToolStatus.PENDING) if isinstance(raw_status, str) else None
    exit_code = None
    kind, command, path = describe_call(name, arguments)
    if output and kind is ToolKind.SHELL:
        found = _EXIT.findall(output[-_EXIT_TAIL:])
        exit_code = int(found[-1]) if found else None
    # Gemini records a shell command that ran as "success" whatever its exit status.
    if status is ToolStatus.OK and exit_code:
        status = ToolStatus.ERROR
    if status in (ToolStatus.ERROR, ToolStatus.CANCELLED) and output:
        head = output[:500]
        if any(marker in head for marker in _REJECTED):
            status = ToolStatus.REJECTED
    started = parse_ts(call.get("timestamp")) or ts
    clean = unwrap_output(output) if output is not None else None
    size = len(clean) if clean is not None else None
    out.tool_calls.append(
        ToolCall(
            state["sid"],
            key,
            name=name,
            input=arguments,
            started_at=started,
            kind=kind,
            command=command,
            path=path,
            status=status,
            output=clean,
            output_size=size,
            exit_code=exit_code,
            failed=is_failure(status, exit_code, command, clean),
        )
    )
    tool_event = _event(state, f"tool:{key}", EventKind.TOOL_CALL, started, seq, role="assistant", text=name)
    tool_event.tool_call_key = key
    out.events.append(tool_event)


def _tool_output(result: Any, display: Any) -> str | None:
    """The text the model got back: functionResponse output or error, else what the user was shown."""
    texts: list[str] = []
    for part in result if isinstance(result, list) else [result]:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict):
            response = part.get("functionResponse")
            if isinstance(response, dict):
                body = response.get("response")
                if isinstance(body, dict):
                    value = body.get("output", body.get("error"))
                    if isinstance(value, str):
                        texts.append(value)
                    elif body:  # MCP tools answer with content blocks
                        texts.append(_dumps(body))
                elif isinstance(body, str):
                    texts.append(body)
            elif isinstance(part.get("text"), str):
                texts.append(part["text"])
    if texts:
        return texts[0] if len(texts) == 1 else "\n".join(texts)
    return display if isinstance(display, str) and display else None


def _usage(
    msg: dict[str, Any], mid: str, state: State, out: Batch, *, hint: str | None, fallback: datetime | None
) -> None:
    """One model call's tokens, exactly as ccusage counts them (see the module docstring)."""
    tokens = msg.get("tokens")
    if not isinstance(tokens, dict):
        return
    model = msg.get("model")
    model = model.strip() if isinstance(model, str) and model.strip() else hint
    if model is None:
        return
    prompt = _count(tokens, "input", "prompt", "input_tokens", "prompt_tokens")
    output = _count(tokens, "output", "candidates", "output_tokens", "candidates_tokens")
    cached = _count(tokens, "cached", "cached_tokens")
    thoughts = _count(tokens, "thoughts", "reasoning", "thoughts_tokens", "reasoning_tokens")
    tool = _count(tokens, "tool", "tool_tokens")
    total = _number(tokens["total"] if "total" in tokens else tokens.get("total_tokens"))
    inclusive = prompt + output + thoughts + tool
    # Gemini's promptTokenCount includes the cached part; ccusage only subtracts it when total proves it.
    if cached > 0 and total == inclusive:
        prompt -= min(prompt, cached)
    prompt += tool
    known = prompt + output + cached + thoughts
    missing = max(0, (total if total is not None else known) - known)
    if missing and output == 0:
        output = missing
    else:
        thoughts += missing
    if prompt == output == cached == thoughts == 0:
        return
    ts = parse_ts(msg.get("timestamp")) or parse_ts(msg.get("created_at")) or fallback
    sid = state["sid"]
    out.usage.append(
        Usage(
            sid,
            f"{sid}:{mid}",
            ts,
            model,
            input_tokens=prompt,
            output_tokens=output,
            cache_read_tokens=cached,
            reasoning_tokens=thoughts,
            merge=Merge.LAST,
            sidechain=state["kind"] == "subagent",
        )
    )


def _number(value: Any) -> int | None:
    """A JSON number as ccusage reads one: floats truncate, negatives clamp to 0, anything else is absent."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return max(0, int(value))


def _count(tokens: dict[str, Any], *names: str) -> int:
    for name in names:
        value = _number(tokens.get(name))
        if value is not None:
            return value
    return 0


def _notice(kind: str, text: str) -> tuple[EventKind, int | None]:
    """Classify an info / error / warning turn, with the HTTP status an error names."""
    code = None
    if kind == "error":
        match = _HTTP.search(text)
        code = int(match.group(1)) if match else (429 if _QUOTA.search(text) else None)
    if _OVERFLOW.search(text):
        return EventKind.CONTEXT_OVERFLOW, code
    if kind == "error" or "malformed function call" in text:
        return EventKind.API_ERROR, code
    if kind == "info" and text.startswith("Request cancelled"):
        return EventKind.INTERRUPT, None
    return EventKind.META, None


def _parts(content: Any) -> tuple[str, str, bool]:
    """(text, thought text, whether it only carries tool results) of a string or PartListUnion."""
    if isinstance(content, str):
        return content, "", False
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        return "", "", False
    texts: list[str] = []
    thoughts: list[str] = []
    responses = False
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict):
            text = part.get("text")
            if isinstance(text, str):
                (thoughts if part.get("thought") else texts).append(text)
            elif "functionResponse" in part:
                responses = True
    return "".join(texts), "".join(thoughts), responses and not texts


def _thoughts(thoughts: Any) -> str:
    if not isinstance(thoughts, list):
        return ""
    pieces = []
    for thought in thoughts:
        if isinstance(thought, dict):
            subject, description = thought.get("subject"), thought.get("description")
            text = description if isinstance(description, str) else ""
            pieces.append(f"{subject}: {text}" if isinstance(subject, str) and subject else text)
    return "\n".join(piece for piece in pieces if piece)


def _message_id(msg: dict[str, Any], fallback: str) -> str:
    mid = msg.get("id")
    return mid.strip() if isinstance(mid, str) and mid.strip() else fallback


def _info(state: State, **facts: Any) -> SessionInfo:
    project = state["project"]
    hashed = isinstance(project, str) and project.startswith(HASH_PREFIX)  # resolved by ingestion later
    return SessionInfo(
        key=state["sid"],
        parent_key=state["parent"],
        subagent_id=state["agent_id"],
        kind=state["kind"],
        cwd=None if hashed else project,
        project_root=project,
        **facts,
    )


def _event(state: State, key: str, kind: EventKind, ts: datetime | None, seq: int, **facts: Any) -> Event:
    return Event(state["sid"], key, kind, ts, seq, sidechain=state["kind"] == "subagent", **facts)


def _unknown(state: State, key: str, seq: int, raw: str) -> Event:
    return _event(state, key, EventKind.UNKNOWN, parse_ts(state["ts"]), seq, raw=raw)


def _set_project(record: dict[str, Any], state: State) -> None:
    """Take the project root from ``directories`` when one of them hashes to the record's projectHash."""
    dirs, digest = record.get("directories"), record.get("projectHash")
    project = state["project"]
    if project is not None and not project.startswith(HASH_PREFIX):
        return
    if isinstance(dirs, list) and isinstance(digest, str):
        for candidate in dirs:
            if isinstance(candidate, str) and _sha256(candidate) == digest:
                state["project"] = candidate
                return
    if project is None and isinstance(digest, str) and _HEX64.fullmatch(digest):
        state["project"] = HASH_PREFIX + digest  # only a hash: ingestion matches it with roots known elsewhere


def _project_root(project_dir: Path, root: Path) -> str | None:
    """The project of a ``tmp/<dir>``: its ``.project_root``, else ``projects.json`` (by slug or by hash)."""
    try:
        with (project_dir / ".project_root").open("rb") as marker:
            text = marker.read(4096).decode("utf-8", "replace").strip()
        if text:
            return text
    except OSError:
        pass
    try:
        registry = orjson.loads((root.parent / "projects.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    projects = registry.get("projects") if isinstance(registry, dict) else None
    if not isinstance(projects, dict):
        return None
    name = project_dir.name
    for path, slug in projects.items():
        if slug == name:
            return str(path)
    if _HEX64.fullmatch(name):
        for path in projects:
            for spelling in hash_candidates(str(path)):
                if _sha256(spelling) == name:
                    return spelling
        return HASH_PREFIX + name
    return None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _fresh_state(sid: str) -> State:
    return {
        "sid": sid,
        "kind": "main",
        "parent": None,
        "agent_id": None,
        "project": None,
        "model": None,  # last model named in this file: ccusage prices a model-less record with it
        "ts": None,  # last timestamp seen, for records that carry none ($rewindTo, checkpoints)
        "seen": {},  # message ids this file has shown (a JSON object: O(1) lookups after a reload)
    }


def _text_in(value: Any, choices: tuple[str, ...]) -> bool:
    return isinstance(value, str) and value in choices


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer beyond 64 bits, from a caller that decoded with the json module
        return repr(value)
