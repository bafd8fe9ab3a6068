"""The hook command each agent runs: pass the event on stdin to the daemon and print what it answers.

Agents run hooks synchronously, on every session start, prompt and tool call, so this script imports
nothing but ``sys`` and the C socket module (``_socket``: ``socket`` pulls in ``enum``, ``json`` pulls
in ``re``; together they were most of the hook's start-up on a loaded machine), and is started with
``python -I -S`` (no site-packages scan, no environment). It does not even parse the event: it sends
one header line and the event's bytes as they came, and the daemon answers with the exact bytes to
print, in the host's own shape (:func:`render`, applied in the daemon). It must never break the agent: without a
daemon, with a slow one, or with anything else going wrong, it exits 0 and prints the host's empty answer:

- Claude Code and Codex accept an empty stdout; with context they take
  ``{"hookSpecificOutput": {"hookEventName": EVENT, "additionalContext": TEXT}}`` (Codex refuses any other
  key: its output schemas have ``additionalProperties: false``).
- Gemini CLI parses stdout as JSON on exit 0 ("silence is mandatory" for anything else), so the empty answer
  is ``{}``; context uses the same ``hookSpecificOutput`` shape.

Timeouts are per purpose: a briefing may take a moment on a big store, a tool hook must not.
"""

from __future__ import annotations

import _socket
import sys

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
#: Multiplies every timeout (1 to 20): for a machine so loaded that the daemon's answers come late.
SCALE_VARIABLE = "HEADROOM_HOOK_TIMEOUT_SCALE"
MAX_STDIN = 16 << 20
MAX_ANSWER = 1 << 20
_KEEP = 3000  # characters kept from each end of a long string


def empty_answer(agent: str) -> str:
    """What to print when there is nothing to add ("" prints nothing)."""
    return "{}" if agent == "gemini" else ""


def render(agent: str, event: str, context: str) -> str:
    """The host's output for ``context`` (the empty answer when it is empty)."""
    import json

    if not context:
        return empty_answer(agent)
    return json.dumps(
        {"hookSpecificOutput": {"hookEventName": event, "additionalContext": context}}, ensure_ascii=False
    )


def trim(value: object, depth: int = 0) -> object:
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


def exchange(socket_path: str, data: bytes, timeout: float) -> bytes:
    """Send ``data`` to the daemon and return all it answers; ``OSError`` on any trouble (timeouts too)."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        sock.sendall(data)
        sock.shutdown(_socket.SHUT_WR)
        chunks, size = [], 0
        while size < MAX_ANSWER:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        sock.close()


def ask(socket_path: str, request: dict[str, object], timeout: float) -> dict[str, object]:
    """One JSON request, one JSON answer (``hooks status``, tests and the benchmark; not the hook path)."""
    import json

    answer = json.loads(exchange(socket_path, json.dumps(request).encode() + b"\n", timeout) or b"{}")
    if not isinstance(answer, dict):
        raise ValueError("the daemon's answer is not an object")
    return answer


def timeout_scale() -> float:
    """``HEADROOM_HOOK_TIMEOUT_SCALE`` from the agent's environment, read through the built-in ``posix`` module
    (``os`` is not imported here: the client's start-up time is the hook's cost)."""
    try:
        import posix

        value = float(posix.environ.get(SCALE_VARIABLE.encode(), b"1"))
    except (ImportError, ValueError):  # no posix (Windows) or not a number: the defaults
        return 1.0
    if not value >= 1.0:  # below 1, or NaN
        return 1.0
    return min(value, 20.0)


def run(argv: list[str], stdin: bytes) -> bytes:
    """The bytes to print for ``argv`` (``AGENT EVENT --socket PATH``) and the event read from stdin."""
    args = list(argv)
    socket_path = ""
    if "--socket" in args:
        i = args.index("--socket")
        socket_path = args[i + 1] if i + 1 < len(args) else ""
        del args[i : i + 2]
    agent, event = ([*args, "", ""])[:2]
    purpose = EVENTS.get((agent, event))
    empty = empty_answer(agent).encode()
    if purpose is None or not socket_path:
        return empty
    # agent and event come from EVENTS: plain words, nothing to escape
    header = f'{{"v": 2, "agent": "{agent}", "event": "{event}"}}\n'.encode()
    try:
        answer = exchange(socket_path, header + stdin, TIMEOUTS[purpose] * timeout_scale())
    except OSError:  # no daemon, a slow one (socket.timeout is an OSError): the agent goes on without us
        return empty
    return answer if answer.strip() else empty


def main() -> None:
    agent = sys.argv[1] if len(sys.argv) > 1 else ""
    try:
        out = run(sys.argv[1:], sys.stdin.buffer.read(MAX_STDIN))
    except Exception:  # a hook must never break the agent's loop
        out = empty_answer(agent).encode()
    if out.strip():
        sys.stdout.buffer.write(out.rstrip(b"\n") + b"\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
