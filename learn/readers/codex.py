"""OpenAI Codex CLI rollouts (``$CODEX_HOME/sessions`` and ``archived_sessions``) → the normalized model.

Three on-disk eras, all read here:

* TS ``codex-cli`` (spring 2025): ``rollout-<date>-<uuid>.json``, one pretty JSON document
  ``{session:{timestamp,id,instructions}, items:[ResponseItem…]}`` rewritten in place. It is a
  :meth:`whole_file` format; its events are keyed by item index so a re-parse upserts the same rows.
* Early Rust (summer 2025): JSONL whose first line is a bare ``{id,timestamp,instructions,git}`` header,
  then bare ResponseItems without timestamps and ``{"record_type":"state"}`` bookkeeping lines.
* ``RolloutLine`` JSONL (autumn 2025 on): ``{timestamp, type, payload}`` with ``session_meta``,
  ``turn_context``, ``response_item``, ``event_msg``, ``compacted``; 2026 builds add an ``ordinal``,
  ``world_state`` and ``token_usage_record`` lines (the latter duplicates ``token_count``: ccusage ignores
  it, so do we).

Traps handled:

* Only a first ``session_meta`` names the session: resume appends to the same file without a new one, and
  a fork replays its parent's ``session_meta`` and history after its own. A child's lines stamped before
  its own start are that replay and produce no events (their token counts still go through accounting).
* The model's input carries injected context as user messages (AGENTS.md, ``<environment_context>``, …):
  prompts come from ``response_item`` messages with those items filtered out, the one source present in
  every era; the ``event_msg/user_message`` UI mirror is ignored so no prompt counts twice.
* Tool failure is never a field: a non-zero ``Exit code: N`` / ``Process exited with code N`` at the head
  of the output, ``metadata.exit_code`` in JSON-string outputs, ``apply_patch verification failed``,
  ``Script failed`` (code mode), sandbox denials → error; ``aborted`` → cancelled; ``… rejected by user``
  and guardian denials → rejected. Only the head of an output is scanned. Code-mode ``exec`` scripts run
  nested commands that exist only as ``item_completed`` events: each becomes a tool call of its own.
* Each call's kind, command line (argv lists and ``bash -lc`` unwrapped) or path is decided on its call
  side; a shell call's command waits in the state until its result, which is unwrapped (``Chunk ID…
  Output:`` headers removed) and judged by :func:`~headroom.learn.knowledge.is_failure` ("no match" is an
  answer). ``exec_command_end`` with ``source: "user_shell"`` is a command the *user* typed after ``!``:
  a ``user_shell`` call marked ``by_user``, never an agent failure.
* Code mode: the model's JavaScript ``exec`` call and the ``exec_command`` (or patch) it runs (an
  ``item_completed`` CommandExecution or FileChange) are one call, kept under the ``exec`` call's id with the
  inner command or path, exit code and output; a second command in the same script is a call of its own.
* ``compacted`` and the ``context_compacted`` event mark one compaction: the second of a pair is META.
* Token usage follows ccusage exactly (see ``_codex_usage``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import orjson

from headroom.learn.knowledge import describe_call, is_failure, shell_command, unwrap_output
from headroom.learn.model import (
    Agent,
    Batch,
    Event,
    EventKind,
    SessionInfo,
    ToolCall,
    ToolKind,
    ToolStatus,
    parse_ts,
)
from headroom.learn.readers import _codex_usage as usage
from headroom.learn.readers.base import LogReader, State

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_EXIT = re.compile(r"^(?:Exit code:|Process exited with code) (-?\d+)", re.M)
_WALL = re.compile(r"^Wall time:? ([\d.]+) seconds", re.M)
_TAG = re.compile(r"<([A-Za-z_][\w-]*)")
_CWD = re.compile(r"<cwd>([^<]+)</cwd>")
_STATUS = re.compile(r"\bstatus(?: code)?:? (\d{3})\b", re.I)
_HEAD = 400  # characters of a tool output scanned for exit codes and failure markers
_EPOCH = datetime(1970, 1, 1)
_MS = timedelta(milliseconds=1)

# Known lines and payloads that carry nothing for the model (or duplicate what we read elsewhere).
_SKIP_LINES = frozenset({"world_state", "token_usage_record"})
_SKIP_ITEMS = frozenset({"ghost_snapshot", "additional_tools", "compaction", "compaction_summary"})
_SKIPPED_EVENTS = """
    user_message agent_message agent_reasoning agent_reasoning_raw_content agent_reasoning_section_break
    task_started task_complete turn_started turn_complete item_started thread_settings_applied
    thread_name_updated plan_update exec_command_begin patch_apply_begin mcp_tool_call_begin web_search_begin
    web_search_end turn_diff view_image_tool_call background_event session_configured undo_started
    undo_completed shutdown_complete warning deprecation_notice raw_response_item exec_command_output_delta"""
_SKIP_EVENTS = frozenset(_SKIPPED_EVENTS.split())
_META_EVENTS = frozenset({"thread_rolled_back", "entered_review_mode", "exited_review_mode"})
_REJECTED = ("exec command rejected by user", "patch rejected by user", "rejected by user")
_ERRORS = ("apply_patch verification failed", "Script failed", "failed in sandbox", "sandbox denied")
_ITEM_TOOLS = {"CommandExecution": "exec_command", "FileChange": "apply_patch", "McpToolCall": ""}
_MAX_OPEN_CALLS = 256  # shell calls awaiting a result, kept in state for their command
_OVERFLOW = ("context window", "context_length_exceeded", "maximum context length", "context_window_exceeded")


class _At(NamedTuple):
    """Where a record sits: its session, time, position and event key."""

    sid: str
    ts: datetime | None
    seq: int
    key: str

    def event(self, kind: EventKind, text: str | None = None, **extra: Any) -> Event:
        return Event(self.sid, self.key, kind, self.ts, self.seq, text=text, **extra)


class CodexReader(LogReader):
    """Reads Codex CLI rollouts of every era; usage totals match ccusage 20.0.24 per UTC day."""

    agent: ClassVar[Agent] = "codex"

    def accepts(self, path: Path, root: Path) -> bool:
        name = path.name
        return name.startswith("rollout-") and name.endswith((".jsonl", ".json"))

    def whole_file(self, path: Path) -> bool:
        return path.name.endswith(".json")

    def begin(self, path: Path, root: Path) -> State:
        # The file name carries the thread id; it keys anything read before a session_meta line.
        found = _UUID.findall(path.name)
        sid = found[-1] if found else path.stem
        return {"sid": sid, "path": str(path), "root": str(root), "u": usage.new_state(path, root)}

    def feed(self, record: dict[str, Any], raw: bytes, offset: int, state: State, out: Batch) -> None:
        kind = record.get("type")
        payload = record.get("payload")
        if not isinstance(payload, dict) or not isinstance(kind, str):
            self._bare(record, raw, offset, state, out)
            return
        sid: str = state["sid"]
        if kind == "event_msg" and payload.get("type") == "token_count":
            state.pop("cmp", None)
            usage.on_token_count(record, payload, sid, state["u"], out)
            ts = parse_ts(record.get("timestamp"))
            if ts is not None and not _inherited(ts, state):
                _touch(out, sid, ts)
            return
        if kind == "turn_context":
            usage.on_turn_context(payload, state["u"])
            cwd = payload.get("cwd")
            if isinstance(cwd, str) and cwd and not state.get("cwd"):
                state["cwd"] = cwd
                out.session(SessionInfo(sid, cwd=cwd, project_root=cwd))
            return
        stamp = record.get("timestamp")
        ts = parse_ts(stamp)
        if kind == "session_meta":
            self._meta(payload, stamp, ts, offset, state, out)
            return
        if ts is not None:
            if _inherited(ts, state):
                return  # the parent's history replayed into a fork or sub-agent: not this session's events
            _touch(out, sid, ts)
        at = _At(sid, ts, offset, f"o{offset}")
        if kind == "response_item":
            self._item(payload, at, state, out, raw)
        elif kind == "event_msg":
            self._event(payload, at, state, out, raw)
        elif kind == "compacted":
            text = payload.get("message")
            self._compaction("line", at, text if isinstance(text, str) else None, state, out)
        elif kind not in _SKIP_LINES:
            out.events.append(at.event(EventKind.UNKNOWN, raw=raw.decode("utf-8", "replace")))

    def feed_document(self, doc: Any, state: State, out: Batch) -> None:
        """The TS-era whole-file rollout; items have no timestamps, so keys and order are item indexes."""
        if not isinstance(doc, dict):
            return
        session = doc.get("session")
        if isinstance(session, dict) and isinstance(session.get("id"), str) and session["id"]:
            state["sid"] = session["id"]
        started = parse_ts(session.get("timestamp")) if isinstance(session, dict) else None
        out.session(SessionInfo(state["sid"], kind="main", started_at=started))
        items = doc.get("items")
        for index, item in enumerate(items if isinstance(items, list) else ()):
            if isinstance(item, dict):
                self._item(item, _At(state["sid"], None, index, f"i{index}"), state, out, None)

    # -- line kinds -----------------------------------------------------------------------------------

    def _bare(self, record: dict[str, Any], raw: bytes, offset: int, state: State, out: Batch) -> None:
        """Early-Rust lines: the header, state bookkeeping, and ResponseItems without an envelope."""
        if "record_type" in record:
            return
        kind = record.get("type")
        at = _At(state["sid"], parse_ts(record.get("timestamp")), offset, f"o{offset}")
        if kind is None and offset == 0 and isinstance(record.get("id"), str):
            state["sid"] = record["id"]
            state["meta"] = True
            git = record.get("git")
            branch = git.get("branch") if isinstance(git, dict) else None
            info = SessionInfo(record["id"], kind="main", started_at=at.ts, ended_at=at.ts)
            info.git_branch = branch if isinstance(branch, str) else None
            out.session(info)
        elif isinstance(kind, str) and "payload" not in record and _is_item(kind):
            self._item(record, at, state, out, raw)
        else:
            out.events.append(at.event(EventKind.UNKNOWN, raw=raw.decode("utf-8", "replace")))

    def _meta(
        self, p: dict[str, Any], stamp: object, ts: datetime | None, offset: int, state: State, out: Batch
    ) -> None:
        sid = p.get("id")
        if not isinstance(sid, str) or not sid or (state.get("meta") and sid != state["sid"]):
            return  # a fork's replayed parent session_meta: the file's first session_meta owns it
        state["meta"] = True
        state["sid"] = sid
        source = p.get("source")
        sub = source.get("subagent", source.get("subAgent")) if isinstance(source, dict) else None
        spawn = sub.get("thread_spawn") if isinstance(sub, dict) else None
        parent = _text(spawn.get("parent_thread_id")) if isinstance(spawn, dict) else None
        fork = _text(p.get("forked_from_id"))
        git = p.get("git")
        info = SessionInfo(
            sid,
            parent_key=parent or fork,
            subagent_id=sid if sub is not None else None,
            kind="subagent" if sub is not None else "main",
            cwd=_text(p.get("cwd")),
            project_root=_text(p.get("cwd")),  # as for Claude: the folder the agent was started in
            git_branch=_text(git.get("branch")) if isinstance(git, dict) else None,
            cli_version=_text(p.get("cli_version")),
            started_at=parse_ts(p.get("timestamp")) or ts,
            ended_at=ts,
        )
        if info.cwd:
            state["cwd"] = info.cwd
        out.session(info)
        # ccusage only honours a parent named on the file's first line (forked_from_id first).
        if offset == 0 and (fork or parent):
            forked_at = usage.ts_ms(stamp.strip() if isinstance(stamp, str) else stamp)
            state["child"] = forked_at
            usage.start_replay(state["u"], fork or parent or "", forked_at, state.get("path"), state.get("root"))

    def _item(self, p: dict[str, Any], at: _At, state: State, out: Batch, raw: bytes | None) -> None:
        kind = _text(p.get("type")) or ""
        if kind == "message":
            self._message(p, at, state, out)
        elif kind == "reasoning":
            text = _join(p.get("summary")) or _join(p.get("content"))
            if text:
                out.events.append(at.event(EventKind.REASONING, text, role="assistant"))
        elif kind.endswith("_output"):
            call_id = _text(p.get("call_id"))
            if call_id:
                command = state.setdefault("cmd", {}).pop(call_id, None)
                result = _result(at.sid, call_id, p.get("output"), at.ts, command)
                script = state.get("exec")
                if isinstance(script, dict) and script.get("id") == call_id:
                    state.pop("exec")
                    if script.get("n"):  # code mode: the nested command already gave status, exit and output
                        result = _script_end(result)
                out.tool_calls.append(result)
        elif kind.endswith("_call"):
            self._call(p, kind, at, state, out)
        elif kind not in _SKIP_ITEMS:
            text = (raw if raw is not None else orjson.dumps(p)).decode("utf-8", "replace")
            out.events.append(at.event(EventKind.UNKNOWN, raw=text))

    def _message(self, p: dict[str, Any], at: _At, state: State, out: Batch) -> None:
        role = p.get("role")
        if role == "assistant":
            text = _join(p.get("content"))
            if text:
                out.events.append(at.event(EventKind.ASSISTANT_TEXT, text, role="assistant"))
            return
        if role != "user":
            return  # developer/system messages: permissions and instructions the harness injects
        content = p.get("content")
        parts = content if isinstance(content, list) else [{"text": content}]
        prompt: list[str] = []
        injected: list[str] = []
        for part in parts:
            chunk = part.get("text") if isinstance(part, dict) else None
            if isinstance(chunk, str) and chunk:
                (injected if _is_injected(chunk) else prompt).append(chunk)
        if prompt:
            out.events.append(at.event(EventKind.USER_PROMPT, "\n".join(prompt), role="user"))
        elif injected:
            text = "\n".join(injected)
            out.events.append(at.event(EventKind.META, text, role="user"))
            match = _CWD.search(text, 0, 2000) if not state.get("cwd") else None
            if match:  # early Rust logs have no cwd field: the environment context names it
                state["cwd"] = match.group(1).strip()
                out.session(SessionInfo(at.sid, cwd=state["cwd"], project_root=state["cwd"]))

    def _call(self, p: dict[str, Any], kind: str, at: _At, state: State, out: Batch) -> None:
        name = _text(p.get("name")) or kind.removesuffix("_call")
        args = p.get("arguments", p.get("input", p.get("action")))
        text = args if isinstance(args, str) or args is None else orjson.dumps(args).decode()
        status = None
        if not p.get("call_id"):  # web_search_call & co. are whole in one item: their status is the result
            status = {"completed": ToolStatus.OK, "failed": ToolStatus.ERROR}.get(str(p.get("status")))
        tool_key = _text(p.get("call_id")) or _text(p.get("id")) or at.key
        call = ToolCall(at.sid, tool_key, name=name, input=text, started_at=at.ts, status=status)
        call.kind, call.command, call.path = describe_call(name, text)
        call.failed = is_failure(status, None, None, None)
        if call.kind is ToolKind.SHELL and call.command and p.get("call_id"):
            pending: dict[str, str] = state.setdefault("cmd", {})
            pending[tool_key] = call.command
            if len(pending) > _MAX_OPEN_CALLS:
                del pending[next(iter(pending))]
        if name == "exec" and kind == "custom_tool_call" and p.get("call_id"):
            # A code-mode script: its nested command folds into it (keeping the path the script named, if any).
            state["exec"] = {"id": tool_key, "n": 0, "path": call.path is not None}
        out.tool_calls.append(call)
        out.events.append(at.event(EventKind.TOOL_CALL, name, role="assistant", tool_call_key=tool_key))

    def _event(self, p: dict[str, Any], at: _At, state: State, out: Batch, raw: bytes) -> None:
        kind = _text(p.get("type")) or ""
        if kind in _SKIP_EVENTS:
            return
        if kind == "turn_aborted":
            reason = p.get("reason")
            interrupted = reason in (None, "interrupted")
            out.events.append(
                at.event(EventKind.INTERRUPT if interrupted else EventKind.META, str(reason or "interrupted"))
            )
        elif kind == "context_compacted":
            self._compaction("event", at, None, state, out)
        elif kind in ("error", "stream_error"):
            text = _text(p.get("message"))
            overflow = "context_window_exceeded" in str(p.get("codex_error_info"))
            overflow = overflow or any(marker in (text or "")[:500] for marker in _OVERFLOW)
            code = _STATUS.search(text or "", 0, 300)
            kind_ = EventKind.CONTEXT_OVERFLOW if overflow else EventKind.API_ERROR
            out.events.append(at.event(kind_, text, status_code=int(code.group(1)) if code else None))
        elif kind in ("exec_command_end", "patch_apply_end", "mcp_tool_call_end"):
            call_id = _text(p.get("call_id"))
            if call_id and p.get("source") == "user_shell":
                out.tool_calls.append(_user_shell(at, call_id, p))
            elif call_id:
                exit_code, status = _int(p.get("exit_code")), _end_status(p)
                command = state.get("cmd", {}).get(call_id)
                # After its output (which forgot the command) it must not undo a "no match" decision.
                failed = is_failure(status, exit_code, command, _text(p.get("aggregated_output"))) if command else None
                out.tool_calls.append(
                    ToolCall(at.sid, call_id, status=status, exit_code=exit_code, failed=failed, ended_at=at.ts)
                )
        elif kind == "item_completed":
            self._completed(p, at, state, out)
        elif kind in _META_EVENTS:
            out.events.append(at.event(EventKind.META, str(kind)))
        else:
            out.events.append(at.event(EventKind.UNKNOWN, raw=raw.decode("utf-8", "replace")))

    def _completed(self, p: dict[str, Any], at: _At, state: State, out: Batch) -> None:
        """``item_completed`` (2026): a command or patch result, the only trace of code-mode nested calls."""
        item = p.get("item")
        if not isinstance(item, dict) or _text(item.get("type")) not in _ITEM_TOOLS:
            return
        item_id = _text(item.get("id"))
        if not item_id:
            return
        exit_code = _int(item.get("exit_code"))
        status = _end_status(item)
        output = _text(item.get("aggregated_output"))
        if item_id.startswith("call"):  # the result of a call logged as a response_item: complete it
            failed = is_failure(status, exit_code, state.get("cmd", {}).get(item_id), output)
            out.tool_calls.append(
                ToolCall(at.sid, item_id, status=status, exit_code=exit_code, failed=failed, ended_at=at.ts)
            )
            return
        kind = item["type"]
        spec = item.get("command") if kind == "CommandExecution" else item.get("changes", item.get("arguments"))
        duration = item.get("duration")
        millis = None
        if isinstance(duration, dict):
            millis = (_int(duration.get("secs")) or 0) * 1000 + (_int(duration.get("nanos")) or 0) // 1_000_000
        name = _ITEM_TOOLS[kind] or str(item.get("tool") or kind)
        text = None if spec is None else orjson.dumps(spec).decode()
        described = describe_call(name, text)
        failed = is_failure(status, exit_code, described[1], output)
        script = state.get("exec")
        if kind != "McpToolCall" and isinstance(script, dict) and not script.get("n"):
            # Code mode: the command or patch the open ``exec`` script ran is that call's result, not a call.
            script["n"] = 1
            path = None if script.get("path") else described[2]
            call = ToolCall(at.sid, script["id"], kind=described[0], command=described[1], path=path)
            call.status = status
            call.exit_code, call.failed, call.output = exit_code, failed, output
            call.output_size = None if output is None else len(output)
            out.tool_calls.append(call)
            return
        call = ToolCall(at.sid, item_id, name=name, input=text)
        call.kind, call.command, call.path = described
        call.started_at, call.ended_at = parse_ts(p.get("started_at_ms")), at.ts
        call.status, call.exit_code, call.duration_ms, call.failed = status, exit_code, millis, failed
        call.output, call.output_size = output, None if output is None else len(output)
        out.tool_calls.append(call)
        out.events.append(at.event(EventKind.TOOL_CALL, call.name, role="assistant", tool_call_key=item_id))

    def _compaction(self, kind: str, at: _At, text: str | None, state: State, out: Batch) -> None:
        # One compaction writes a `compacted` line and a `context_compacted` event: count the pair once.
        if state.get("cmp") not in (None, kind):
            state.pop("cmp")
            out.events.append(at.event(EventKind.META, "compaction"))
        else:
            state["cmp"] = kind
            out.events.append(at.event(EventKind.COMPACTION, text or None))


def _user_shell(at: _At, call_id: str, p: dict[str, Any]) -> ToolCall:
    """A command the user ran with ``!``: a whole call in one event, by the user, never an agent failure."""
    output = _text(p.get("aggregated_output")) or _text(p.get("formatted_output"))
    command = shell_command({"command": p.get("command")})
    call = ToolCall(at.sid, call_id, name="user_shell", kind=ToolKind.SHELL, command=command, by_user=True)
    call.input = orjson.dumps({"command": p.get("command")}).decode()
    call.started_at, call.ended_at = at.ts, at.ts
    call.status, call.exit_code, call.failed = _end_status(p), _int(p.get("exit_code")), False
    call.output, call.output_size = output, None if output is None else len(output)
    return call


def _script_end(result: ToolCall) -> ToolCall:
    """The end of a code-mode script whose command already completed the call: only its own failure counts."""
    end = ToolCall(result.session_key, result.key, ended_at=result.ended_at, duration_ms=result.duration_ms)
    if result.status is ToolStatus.ERROR and result.exit_code is None:  # "Script failed": the JavaScript threw
        end.status, end.failed, end.output, end.output_size = result.status, True, result.output, result.output_size
    return end


def _result(sid: str, call_id: str, output: object, ts: datetime | None, command: str | None = None) -> ToolCall:
    """The result side of a tool call from its ``*_output`` item (``command``: the shell call's, if any)."""
    exit_code: int | None = None
    millis: int | None = None
    ok: bool | None = None
    text: str | None = None
    if isinstance(output, str):
        text = output
        if output.startswith('{"output"'):  # older JSON-string form: {"output": …, "metadata": {exit_code…}}
            try:
                doc = orjson.loads(output)
            except orjson.JSONDecodeError:
                doc = None
            if isinstance(doc, dict) and isinstance(doc.get("output"), str):
                text = doc["output"]
                meta = doc.get("metadata")
                if isinstance(meta, dict):
                    exit_code = _int(meta.get("exit_code"))
                    seconds = meta.get("duration_seconds")
                    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
                        millis = int(seconds * 1000)
    elif isinstance(output, list):  # content items (code mode, images): keep the text parts
        text = "".join(part["text"] for part in output if isinstance(part, dict) and isinstance(part.get("text"), str))
    elif isinstance(output, dict):
        inner = output.get("content", output.get("output"))
        text = inner if isinstance(inner, str) else None
        ok = output.get("success") if isinstance(output.get("success"), bool) else None
    head = (text or "")[:_HEAD]
    if exit_code is None:
        found = _EXIT.search(head)
        exit_code = int(found.group(1)) if found else None
    if millis is None:
        wall = _WALL.search(head)
        millis = int(float(wall.group(1)) * 1000) if wall else None
    start = head.lstrip()
    if start.startswith(_REJECTED) or "rejected due to unacceptable risk" in head:
        status = ToolStatus.REJECTED
    elif start.startswith(("aborted", "command aborted")):
        status = ToolStatus.CANCELLED  # Codex's output for a call cut short by an interrupt
    elif exit_code is not None:
        status = ToolStatus.OK if exit_code == 0 else ToolStatus.ERROR
    elif ok is False or start.startswith(_ERRORS) or "sandbox denied" in head:
        status = ToolStatus.ERROR
    else:
        status = ToolStatus.OK
    clean = None if text is None else unwrap_output(text)
    size = None if clean is None else len(clean)
    call = ToolCall(sid, call_id, status=status, output=clean, output_size=size, exit_code=exit_code, ended_at=ts)
    call.duration_ms, call.failed = millis, is_failure(status, exit_code, command, clean)
    return call


def _end_status(p: dict[str, Any]) -> ToolStatus | None:
    """Status of an ``*_end`` event or ``item_completed`` item (their fields vary by kind and version)."""
    status = str(p.get("status", "")).lower()
    if status == "declined":
        return ToolStatus.REJECTED
    if (
        status == "failed"
        or p.get("success") is False
        or p.get("error")
        or (isinstance(p.get("result"), dict) and "Err" in p["result"])
    ):
        return ToolStatus.ERROR
    exit_code = _int(p.get("exit_code"))
    if exit_code is not None:
        return ToolStatus.OK if exit_code == 0 else ToolStatus.ERROR
    return ToolStatus.OK if status == "completed" or p.get("success") is True else None


def _inherited(ts: datetime, state: State) -> bool:
    """Whether a line of a fork or sub-agent predates the child itself (its parent's replayed history)."""
    start = state.get("child")
    return start is not None and (ts - _EPOCH) // _MS < start


def _touch(out: Batch, sid: str, ts: datetime) -> None:
    """Widen the session's bounds without allocating a SessionInfo per line."""
    info = out.sessions.get(sid)
    if info is None:
        out.sessions[sid] = SessionInfo(sid, started_at=ts, ended_at=ts)
        return
    if info.ended_at is None or ts > info.ended_at:
        info.ended_at = ts
    if info.started_at is None or ts < info.started_at:
        info.started_at = ts


def _join(content: object) -> str:
    """The text of a message's content items (``input_text``, ``output_text``, ``summary_text``…)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "\n".join(c["text"] for c in content if isinstance(c, dict) and isinstance(c.get("text"), str) and c["text"])


def _is_injected(text: str) -> bool:
    """Context Codex sends as a user message: AGENTS.md, or one whole ``<tag>…</tag>`` block."""
    start = text[:200].lstrip()  # slices: AGENTS.md text can be long, and only its ends matter
    if start.startswith("# AGENTS.md instructions"):
        return True
    tag = _TAG.match(start)
    return tag is not None and text[-200:].rstrip().endswith(f"</{tag.group(1)}>")


def _is_item(kind: str) -> bool:
    return kind in ("message", "reasoning") or kind.endswith(("_call", "_output")) or kind in _SKIP_ITEMS


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
