"""The hook command each agent runs: read the event on stdin, ask the daemon, print the host's output shape.

Agents run hooks synchronously, on every session start, prompt and tool call, so this file is kept to the
standard library and is started as a script with ``python -S`` (no site-packages scan, no headroom import:
about 10 ms instead of 40 ms). It must never break the agent: whatever happens (no daemon, a slow daemon,
bad stdin, a bug) it exits 0 and prints either nothing or a valid, empty answer for that host:

- Claude Code and Codex accept an empty stdout; with context they take
  ``{"hookSpecificOutput": {"hookEventName": EVENT, "additionalContext": TEXT}}`` (Codex refuses any other
  key: its output schemas have ``additionalProperties: false``).
- Gemini CLI parses stdout as JSON on exit 0 ("silence is mandatory" for anything else), so the empty answer
  is ``{}``; context uses the same ``hookSpecificOutput`` shape.

The daemon answers one JSON line per connection on a Unix socket under headroom's state dir (owner-only).
The event is trimmed before it is sent (a tool's output can be megabytes; the head and tail say whether and
how it failed). Timeouts are per purpose: a briefing may take a moment on a big store, a tool hook must not.
"""

from __future__ import annotations

import json
import socket
import sys
from typing import Any

#: (agent, host event) -> purpose. One table for the client, the installer and the daemon.
EVENTS: dict[tuple[str, str], str] = {
    ("claude", "SessionStart"): "start",
    ("claude", "UserPromptSubmit"): "prompt",
    ("claude", "PostToolUse"): "tool",
    ("claude", "PostToolUseFailure"): "tool",
    ("codex", "SessionStart"): "start",
    ("codex", "UserPromptSubmit"): "prompt",
    ("codex", "PostToolUse"): "tool",
    ("gemini", "SessionStart"): "start",
    ("gemini", "BeforeAgent"): "prompt",
    ("gemini", "AfterTool"): "tool",
}
#: Seconds to wait for the daemon, per purpose (connecting to a socket nobody listens on fails at once).
TIMEOUTS = {"start": 2.0, "prompt": 0.5, "tool": 0.3}
MAX_STDIN = 16 << 20
MAX_ANSWER = 1 << 20
_KEEP = 3000  # characters kept from each end of a long string


def empty_answer(agent: str) -> str:
    """What to print when there is nothing to add ("" prints nothing)."""
    return "{}" if agent == "gemini" else ""


def render(agent: str, event: str, context: str) -> str:
    """The host's output for ``context`` (the empty answer when it is empty)."""
    if not context:
        return empty_answer(agent)
    return json.dumps(
        {"hookSpecificOutput": {"hookEventName": event, "additionalContext": context}}, ensure_ascii=False
    )


def trim(value: Any, depth: int = 0) -> Any:
    """``value`` with long strings cut to their head and tail and deep or long containers shortened."""
    if isinstance(value, str):
        return value if len(value) <= 2 * _KEEP else value[:_KEEP] + "\n[…]\n" + value[-_KEEP:]
    if depth > 6:
        return None
    if isinstance(value, dict):
        return {str(k): trim(v, depth + 1) for k, v in list(value.items())[:64]}
    if isinstance(value, list):
        return [trim(v, depth + 1) for v in value[:64]]
    return value


def ask(socket_path: str, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One request to the daemon; raises OSError/ValueError on any trouble (the caller answers empty)."""
    data = json.dumps(request, ensure_ascii=False).encode("utf-8") + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks, size = [], 0
        while size < MAX_ANSWER:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    answer = json.loads(b"".join(chunks) or b"{}")
    if not isinstance(answer, dict):
        raise ValueError("the daemon's answer is not an object")
    return answer


def run(argv: list[str], stdin: bytes) -> str:
    """The text to print for ``argv`` (``AGENT EVENT --socket PATH``) and the event read from stdin."""
    args = list(argv)
    socket_path = ""
    if "--socket" in args:
        i = args.index("--socket")
        socket_path = args[i + 1] if i + 1 < len(args) else ""
        del args[i : i + 2]
    agent, event = ([*args, "", ""])[:2]
    purpose = EVENTS.get((agent, event))
    if purpose is None or not socket_path:
        return empty_answer(agent)
    try:
        payload = json.loads(stdin.decode("utf-8", "replace") or "{}")
    except ValueError:
        return empty_answer(agent)
    if not isinstance(payload, dict):
        return empty_answer(agent)
    request = {"v": 1, "agent": agent, "event": event, "purpose": purpose, "payload": trim(payload)}
    try:
        answer = ask(socket_path, request, TIMEOUTS[purpose])
    except (OSError, ValueError):  # no daemon, a slow one, a broken answer: the agent goes on without us
        return empty_answer(agent)
    context = answer.get("context")
    return render(agent, event, context if isinstance(context, str) else "")


def main() -> None:
    try:
        out = run(sys.argv[1:], sys.stdin.buffer.read(MAX_STDIN))
    except Exception:  # a hook must never break the agent's loop
        out = empty_answer(sys.argv[1] if len(sys.argv) > 1 else "")
    if out:
        sys.stdout.write(out + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
