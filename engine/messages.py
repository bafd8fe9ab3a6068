"""The four request shapes, read as one list of text slots the router may compress.

A *slot* is one string inside a message (a tool result's text, a text part) with what the engine needs to
compress it well: the role, whether it is a tool result, the tool call that produced it (name and input, so
a Grep's pattern or a Read's file path can guide the compressor) and the question the user had asked when
that tool ran.

Shapes: Anthropic Messages (``tool_use`` / ``tool_result`` blocks), OpenAI Chat Completions (``tool_calls``
and ``role: tool``), OpenAI Responses input items (``function_call`` / ``function_call_output``,
``custom_tool_call*``, ``local_shell_call*``, ``message``) and Gemini ``contents`` (``parts`` with
``functionCall`` / ``functionResponse``).

The question of a slot is the last text the user typed *before* it, so a message compresses the same way
however the conversation continues: what was sent once is sent again byte-identical (prompt caches hit).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Path = tuple[str | int, ...]

#: Wrappers that harnesses put into user turns; they are context, not what the user asked.
_HARNESS_PREFIXES = (
    "<system-reminder>",
    "<environment_context>",
    "<session_context>",
    "<user_instructions>",
    "<command-",
    "<local-command-",
    "Caveat:",
)


@dataclass(frozen=True)
class ToolCall:
    name: str
    input: Mapping[str, Any]


@dataclass(frozen=True)
class Slot:
    """One compressible string: ``message`` index, ``path`` inside that message, and its context."""

    message: int
    path: Path
    text: str
    role: str
    is_tool_result: bool
    tool: ToolCall | None = None
    question: str | None = None
    #: Position among the message's slots (stable order for decisions).
    order: int = 0


def _as_input(raw: Any) -> Mapping[str, Any]:
    """A tool input as a mapping: JSON-string arguments are parsed, anything else wrapped."""
    if isinstance(raw, Mapping):
        return raw
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {"input": raw}
        return parsed if isinstance(parsed, Mapping) else {"input": parsed}
    if raw is None:
        return {}
    return {"input": raw}


def _user_text(text: str) -> str | None:
    stripped = text.strip()
    if not stripped or stripped.startswith(_HARNESS_PREFIXES):
        return None
    return stripped


class _Walker:
    """Collects slots in message order while tracking tool calls and the current question."""

    def __init__(self) -> None:
        self.calls: dict[str, ToolCall] = {}
        self.by_name: dict[str, ToolCall] = {}
        self.question: str | None = None
        self.slots: list[Slot] = []
        self._order = 0

    def call(self, call_id: str | None, name: str, raw_input: Any) -> None:
        tc = ToolCall(name, _as_input(raw_input))
        if call_id:
            self.calls[call_id] = tc
        self.by_name[name] = tc

    def tool_for(self, call_id: str | None, name: str | None = None) -> ToolCall | None:
        if call_id and call_id in self.calls:
            return self.calls[call_id]
        if name:
            return self.by_name.get(name)
        return None

    def user_said(self, text: str) -> None:
        said = _user_text(text)
        if said is not None:
            self.question = said

    def add(
        self,
        message: int,
        path: Path,
        text: Any,
        role: str,
        *,
        tool: ToolCall | None = None,
        is_tool_result: bool = False,
    ) -> None:
        if not isinstance(text, str) or not text:
            return
        self.slots.append(Slot(message, path, text, role, is_tool_result, tool, self.question, self._order))
        self._order += 1


def _content_parts(
    w: _Walker, i: int, role: str, content: Any, base: Path, tool: ToolCall | None, is_result: bool
) -> None:
    """Text parts of a content value (a string or a list of typed parts)."""
    if isinstance(content, str):
        w.add(i, base, content, role, tool=tool, is_tool_result=is_result)
        return
    if not isinstance(content, list):
        return
    for j, part in enumerate(content):
        if isinstance(part, str):
            w.add(i, (*base, j), part, role, tool=tool, is_tool_result=is_result)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            w.add(i, (*base, j, "text"), part["text"], role, tool=tool, is_tool_result=is_result)


def _anthropic_or_chat(w: _Walker, i: int, msg: Mapping[str, Any]) -> None:
    role = str(msg.get("role", ""))
    content = msg.get("content")
    if role == "tool":  # OpenAI chat tool result
        _content_parts(w, i, role, content, ("content",), w.tool_for(msg.get("tool_call_id"), msg.get("name")), True)
        return
    for tc in msg.get("tool_calls") or ():
        if isinstance(tc, dict):
            fn = tc.get("function") or {}
            w.call(tc.get("id"), str(fn.get("name", "")), fn.get("arguments"))
    if isinstance(content, str):
        if role == "user":
            w.user_said(content)
        w.add(i, ("content",), content, role)
        return
    if not isinstance(content, list):
        return
    for j, block in enumerate(content):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind in ("tool_use", "server_tool_use"):
            w.call(block.get("id"), str(block.get("name", "")), block.get("input"))
        elif kind in ("tool_result", "mcp_tool_result"):
            tool = w.tool_for(block.get("tool_use_id"))
            _content_parts(w, i, role, block.get("content"), ("content", j, "content"), tool, True)
        elif kind in ("text", "input_text") and isinstance(block.get("text"), str):
            if role == "user":
                w.user_said(block["text"])
            w.add(i, ("content", j, "text"), block["text"], role)


def _responses_item(w: _Walker, i: int, item: Mapping[str, Any]) -> None:
    kind = item.get("type")
    if kind in ("function_call", "custom_tool_call"):
        w.call(item.get("call_id"), str(item.get("name", "")), item.get("arguments", item.get("input")))
    elif kind == "local_shell_call":
        w.call(item.get("call_id"), "local_shell", (item.get("action") or {}))
    elif kind in ("function_call_output", "custom_tool_call_output", "local_shell_call_output"):
        tool = w.tool_for(item.get("call_id"))
        _content_parts(w, i, "tool", item.get("output"), ("output",), tool, True)
    elif kind == "message" or (kind is None and "role" in item):
        role = str(item.get("role", ""))
        content = item.get("content")
        if isinstance(content, str):
            if role == "user":
                w.user_said(content)
            w.add(i, ("content",), content, role)
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    if role == "user":
                        w.user_said(part["text"])
                    w.add(i, ("content", j, "text"), part["text"], role)


def _gemini_content(w: _Walker, i: int, content: Mapping[str, Any]) -> None:
    role = str(content.get("role", "user"))
    for j, part in enumerate(content.get("parts") or ()):
        if not isinstance(part, dict):
            continue
        if "functionCall" in part and isinstance(part["functionCall"], dict):
            fc = part["functionCall"]
            w.call(fc.get("id"), str(fc.get("name", "")), fc.get("args"))
        elif "functionResponse" in part and isinstance(part["functionResponse"], dict):
            fr = part["functionResponse"]
            tool = w.tool_for(fr.get("id"), fr.get("name"))
            response = fr.get("response")
            if isinstance(response, dict):
                for key, value in response.items():
                    if isinstance(value, str):
                        w.add(
                            i,
                            ("parts", j, "functionResponse", "response", key),
                            value,
                            "tool",
                            tool=tool,
                            is_tool_result=True,
                        )
        elif isinstance(part.get("text"), str) and not part.get("thought"):
            if role == "user":
                w.user_said(part["text"])
            w.add(i, ("parts", j, "text"), part["text"], role)


#: Each conversation shape (the name a provider's endpoint gives, see ``headroom.daemon.providers``) and
#: the walker that reads one of its messages.
SHAPES: dict[str, Callable[[_Walker, int, Mapping[str, Any]], None]] = {
    "anthropic": _anthropic_or_chat,
    "openai": _anthropic_or_chat,
    "responses": _responses_item,
    "gemini": _gemini_content,
}


def shape_of(messages: Sequence[Any]) -> str:
    """``anthropic``, ``openai``, ``responses`` or ``gemini`` (the first message that tells decides)."""
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        if "parts" in msg:
            return "gemini"
        if msg.get("type") in (
            "function_call",
            "function_call_output",
            "message",
            "reasoning",
            "custom_tool_call",
            "custom_tool_call_output",
            "local_shell_call",
        ):
            return "responses"
        if msg.get("role") == "tool" or "tool_calls" in msg:
            return "openai"
        content = msg.get("content")
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") in ("tool_use", "tool_result", "thinking"):
                    return "anthropic"
                if isinstance(block, dict) and block.get("type") in ("input_text", "output_text"):
                    return "responses"
    return "openai"


def iter_slots(messages: Sequence[Any]) -> Iterator[Slot]:
    """Every text slot of ``messages`` in order, each with its tool call and question."""
    w = _Walker()
    walk = SHAPES[shape_of(messages)]
    for i, msg in enumerate(messages):
        if isinstance(msg, dict):
            walk(w, i, msg)
    yield from w.slots


def last_question(messages: Sequence[Any]) -> str | None:
    """The last text the user typed (harness wrappers skipped)."""
    question: str | None = None
    for slot in iter_slots(messages):
        question = slot.question
    return question


def set_path(message: Any, path: Path, value: str) -> Any:
    """A copy of ``message`` with the string at ``path`` replaced; containers on the path are copied."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(message, dict):
        out = dict(message)
        out[head] = set_path(message[head], rest, value)
        return out
    if isinstance(message, list):
        lst = list(message)
        assert isinstance(head, int)
        lst[head] = set_path(message[head], rest, value)
        return lst
    raise TypeError(f"cannot follow {path!r} into {type(message).__name__}")


#: Tool-input keys that name the file a tool read or searched.
PATH_KEYS = ("file_path", "path", "filename", "file", "absolute_path", "notebook_path", "target_file")


def tool_path(tool: ToolCall | None) -> str | None:
    """The file path a tool call names, if any."""
    if tool is None:
        return None
    for key in PATH_KEYS:
        value = tool.input.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def tool_hints(tool: ToolCall | None) -> str:
    """The tool input's strings joined (a grep pattern, a path, a shell command) for relevance scoring."""
    if tool is None:
        return ""
    parts: list[str] = []
    for value in tool.input.values():
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts.extend(v for v in value if isinstance(v, str))
    return " ".join(parts)[:2000]
