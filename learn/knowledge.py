"""What in a session is worth remembering for the next agent: files read, tool outputs, fetched docs, prompts.

Each agent wraps the same content differently: Claude's Read numbers every line (``   12\\t…``), Codex puts
a header before a command's output (``Chunk ID… Output:``), Gemini wraps shell output in
``<untrusted_context>`` with a process-group trailer. These wrappers are stripped here so that the same file
read by Claude, Codex and Gemini is the same content, and therefore one memory item with three sightings.

Only successful calls are kept (failures are the learn package's business), edits' confirmations are not
content, and outputs too short to matter are skipped.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from typing import Any

import orjson

MIN_FILE_CHARS = 8
MIN_OUTPUT_CHARS = 200
MIN_PROMPT_CHARS = 24

_FILE_READ_TOOLS = {"read", "read_file", "view", "readfile"}
_FETCH_TOOLS = {"webfetch", "websearch", "web_fetch", "google_web_search", "web_search", "fetch"}
_SHELL_TOOLS = {"bash", "exec_command", "shell", "local_shell", "run_shell_command", "container.exec", "exec"}
_SKIP_TOOLS = {
    "edit",
    "multiedit",
    "write",
    "write_file",
    "replace",
    "apply_patch",
    "todowrite",
    "update_plan",
    "notebookedit",
    "exitplanmode",
    "write_stdin",
    "save_memory",
}

_CLAUDE_NUMBERED = re.compile(r"^ *\d+(?:\t|\u2192)", re.MULTILINE)
_SYSTEM_REMINDER = re.compile(r"\n*<system-reminder>.*?</system-reminder>\s*", re.DOTALL)
_CODEX_HEADER = re.compile(
    r"\A(?:Chunk ID: [^\n]*\n)?(?:Wall time:? [^\n]*\n)(?:Process exited with code -?\d+\n)?"
    r"(?:Original token count: \d+\n)?Output:\n",
)
_CODEX_SCRIPT = re.compile(r"\AScript completed\nWall time [^\n]*\nOutput:\n")
_CODEX_EXIT = re.compile(r"\AExit code: -?\d+\nWall time: [^\n]*\nOutput:\n")
_GEMINI_WRAP = re.compile(
    r"\A<untrusted_context>\nOutput: ?(.*?)\n(?:Exit Code: -?\d+\n)?(?:Process Group PGID: \d+\n)?"
    r"</untrusted_context>\s*\Z",
    re.DOTALL,
)


@dataclass(frozen=True)
class Found:
    """A piece of content met in a session: what it is, the text, and the file it came from (if any)."""

    kind: str  # file_read | tool_output | fetched_doc | instruction
    content: str
    path: str | None = None
    title: str | None = None


def tool_args(raw: str | None) -> Any:
    """A tool call's logged input: parsed JSON, or the text itself for freeform tools."""
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw  # Codex's freeform tools (apply_patch, exec) log their input as plain text


def unwrap_output(output: str) -> str:
    """The tool's own output without the agent's wrapper (Codex header, Gemini context tags)."""
    for pattern in (_CODEX_HEADER, _CODEX_SCRIPT, _CODEX_EXIT):
        m = pattern.match(output)
        if m:
            return output[m.end() :]
    m = _GEMINI_WRAP.match(output)
    if m:
        return m.group(1)
    return output


def shell_command(args: Any) -> str | None:
    """The command line of a shell tool call (Codex logs argv lists such as ``["bash", "-lc", "…"]``)."""
    if isinstance(args, list) and args and all(isinstance(a, str) for a in args):
        if len(args) >= 3 and args[1] in ("-c", "-lc"):
            return str(args[2])
        return shlex.join(args)
    if isinstance(args, dict):
        for key in ("cmd", "command"):
            value = args.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, list):
                return shell_command(value)
    return None


def _cat_path(command: str) -> str | None:
    """The file of a plain ``cat FILE`` (anything fancier is a tool output, not a file's content)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if len(words) == 2 and words[0] == "cat" and not words[1].startswith("-"):
        return words[1]
    return None


def _resolve(path: str, cwd: str | None) -> str:
    if os.path.isabs(path) or not cwd:
        return os.path.normpath(path)
    return os.path.normpath(os.path.join(cwd, path))


def from_tool_call(name: str | None, raw_input: str | None, output: str | None, cwd: str | None) -> Found | None:
    """The content a successful tool call brought into the session, or None when there is nothing to keep."""
    if not output or not name:
        return None
    lname = name.lower()
    base = lname.rsplit("__", 1)[-1]  # MCP tools: mcp__server__tool
    if base in _SKIP_TOOLS:
        return None
    args = tool_args(raw_input)
    if base in _FILE_READ_TOOLS and isinstance(args, dict):
        raw_path = args.get("file_path") or args.get("absolute_path") or args.get("path")
        text = _SYSTEM_REMINDER.sub("\n", output)
        if _CLAUDE_NUMBERED.match(text):
            text = _CLAUDE_NUMBERED.sub("", text)
        text = unwrap_output(text)
        if len(text.strip()) < MIN_FILE_CHARS:
            return None
        path = _resolve(raw_path, cwd) if isinstance(raw_path, str) else None
        return Found("file_read", text, path, path)
    if base in _FETCH_TOOLS:
        title = None
        if isinstance(args, dict):
            title = args.get("url") or args.get("query") or args.get("prompt")
        text = unwrap_output(output)
        if len(text.strip()) < MIN_OUTPUT_CHARS:
            return None
        return Found("fetched_doc", text, None, str(title)[:200] if title else None)
    text = unwrap_output(output)
    command = shell_command(args) if base in _SHELL_TOOLS else None
    if command is not None:
        cat = _cat_path(command)
        if cat is not None and len(text.strip()) >= MIN_FILE_CHARS:
            path = _resolve(cat, cwd)
            return Found("file_read", text, path, path)
    if len(text.strip()) < MIN_OUTPUT_CHARS:
        return None
    title = f"$ {command}" if command else name
    return Found("tool_output", text, None, title[:200])


def from_prompt(text: str | None) -> Found | None:
    """A prompt the user typed: an instruction worth showing the next agent (short acknowledgements are not)."""
    if not text or len(text.strip()) < MIN_PROMPT_CHARS:
        return None
    return Found("instruction", text.strip(), None, None)
