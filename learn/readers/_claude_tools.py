"""Claude Code tool calls: the call side, the result side, and how a call ended.

A ``tool_use`` block in an assistant record opens a call; a ``tool_result`` block in a later user record
(keyed by the same ``tool_use_id``) closes it. Both halves become :class:`ToolCall` items with the same
key and ingestion merges them. The call's start time waits in the reader's state until its result
arrives, so ``duration_ms`` survives a restart between the two records.

The outcome is read from the first characters of the result only (outputs can be megabytes):

* the user said no → *rejected*: "The user doesn't want to proceed…", "User rejected tool use",
  or a permission denial;
* the harness stopped it → *cancelled*: "The user doesn't want to take this action right now",
  "[Request interrupted by user…]", "Cancelled: parallel tool call", or a Bash ``interrupted`` flag;
* ``is_error`` otherwise → *error*.

The call side gets its kind, command line or path from :func:`~headroom.learn.knowledge.describe_call`; a
shell call's command waits in the state with its start time, so the result side can tell a "no match"
(``grep`` exit 1, no output) from a failure. The stored output has Claude's ``Exit code N`` line and
``<tool_use_error>`` tags removed.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from headroom.learn.knowledge import describe_call, is_failure, unwrap_output
from headroom.learn.model import Batch, Event, EventKind, ToolCall, ToolKind, ToolStatus, parse_ts
from headroom.learn.readers.base import State

INTERRUPT_PREFIX = "[Request interrupted by user"

_REJECTED_PREFIXES = (
    "The user doesn't want to proceed with this tool use",
    "User rejected tool use",
    "Permission for this tool use was denied",
    "Permission to use ",
    "Tool execution denied",
)
_CANCELLED_PREFIXES = (
    "The user doesn't want to take this action right now",
    INTERRUPT_PREFIX,
    "Cancelled: parallel tool call",
    "Interrupted by user",
)
_EXIT_CODE = re.compile(r"Exit code (-?\d+)")
_MAX_OPEN_CALLS = 256  # tool calls awaiting a result, kept in state for their start time
_HEAD = 512  # outcome detection reads this many characters


def tool_use(block: dict[str, Any], item: Event, state: State, out: Batch) -> bool:
    """Open a call from a ``tool_use`` block and turn ``item`` into its timeline event (False: no id)."""
    call_id, name = block.get("id"), block.get("name")
    if not isinstance(call_id, str) or not call_id:
        return False
    try:
        arguments = orjson.dumps(block.get("input")).decode() if "input" in block else None
    except TypeError:  # orjson refuses integers beyond 64 bits; keep the call without its arguments
        arguments = None
    tool_name = name if isinstance(name, str) else None
    kind, command, path = describe_call(tool_name, arguments)
    call = ToolCall(item.session_key, call_id, name=tool_name, input=arguments, started_at=item.ts)
    call.kind, call.command, call.path = kind, command, path
    out.tool_calls.append(call)
    item.kind, item.text, item.tool_call_key = EventKind.TOOL_CALL, tool_name, call_id
    if item.ts is not None:
        _remember(state.setdefault("open", {}), call_id, item.ts.isoformat())
    if kind is ToolKind.SHELL and command:
        _remember(state.setdefault("cmd", {}), call_id, command)
    return True


def _remember(pending: dict[str, str], call_id: str, value: str) -> None:
    """Keep a fact about an open call until its result; calls that never get one must not grow the state."""
    pending[call_id] = value
    if len(pending) > _MAX_OPEN_CALLS:
        del pending[next(iter(pending))]


def tool_result(block: dict[str, Any], record: dict[str, Any], event: Event, state: State, out: Batch) -> None:
    """Close a call from a ``tool_result`` block of a user record (``toolUseResult`` adds details)."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        return
    raw_output = flatten(block.get("content"))
    result = record.get("toolUseResult")
    status, exit_code = _outcome(block.get("is_error") is True, raw_output, result)
    output = unwrap_output(raw_output)
    command = state.get("cmd", {}).pop(call_id, None)
    started = parse_ts(state["open"].pop(call_id, None))
    duration: int | None = None
    if started is not None and event.ts is not None:
        duration = max(0, round((event.ts - started).total_seconds() * 1000))
    elif isinstance(result, dict):  # sub-agent calls report their own run time
        reported = result.get("totalDurationMs", result.get("durationMs"))
        if isinstance(reported, (int, float)) and not isinstance(reported, bool):
            duration = int(reported)
    out.tool_calls.append(
        ToolCall(
            event.session_key,
            call_id,
            status=status,
            output=output,
            output_size=len(output),
            exit_code=exit_code,
            failed=is_failure(status, exit_code, command, output),
            ended_at=event.ts,
            duration_ms=duration,
        )
    )


def server_tool_result(block: dict[str, Any], item: Event, out: Batch) -> None:
    """Close a server-side call (web search, web fetch): its result arrives in the assistant record."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        return
    content = block.get("content")
    failed = isinstance(content, dict) and str(content.get("type", "")).endswith("_error")
    output = flatten(content)
    out.tool_calls.append(
        ToolCall(
            item.session_key,
            call_id,
            status=ToolStatus.ERROR if failed else ToolStatus.OK,
            output=output,
            output_size=len(output),
            failed=failed,
            ended_at=item.ts,
        )
    )


def _outcome(is_error: bool, output: str, result: Any) -> tuple[ToolStatus, int | None]:
    """How a tool call ended and its exit code, from the first characters of its output only."""
    head = _strip_error_wrappers(output[:_HEAD])
    result_head = _strip_error_wrappers(result[:_HEAD]) if isinstance(result, str) else ""
    status = ToolStatus.ERROR if is_error else ToolStatus.OK
    if is_error or result_head.startswith("User rejected"):
        if head.startswith(_REJECTED_PREFIXES) or result_head.startswith(_REJECTED_PREFIXES):
            status = ToolStatus.REJECTED
        elif head.startswith(_CANCELLED_PREFIXES) or result_head.startswith(_CANCELLED_PREFIXES):
            status = ToolStatus.CANCELLED
    if isinstance(result, dict) and result.get("interrupted") is True:
        status = ToolStatus.CANCELLED
    exit_code: int | None = None
    match = _EXIT_CODE.match(head)
    if match:
        exit_code = int(match.group(1))
    elif isinstance(result, dict):
        reported = result.get("exitCode")
        if isinstance(reported, int) and not isinstance(reported, bool):
            exit_code = reported
        elif status is ToolStatus.OK and "stdout" in result and "interrupted" in result:
            exit_code = 0  # Bash reports a non-zero exit as an error, so a clean result exited 0
    return status, exit_code


def _strip_error_wrappers(text: str) -> str:
    text = text.lstrip()
    text = text.removeprefix("<tool_use_error>").lstrip()
    return text.removeprefix("Error: ")


def flatten(content: Any) -> str:
    """A tool result as text: text blocks joined, images and other blocks as placeholders."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict):
                text = block.get("text")
                if block.get("type") == "text" and isinstance(text, str):
                    parts.append(text)
                else:
                    parts.append(f"[{block.get('type') or 'block'}]")
        return "\n".join(parts)
    if content is None:
        return ""
    return to_json(content)


def to_json(value: Any) -> str:
    """Compact JSON text for a value we only keep for reading (never raises)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)
