"""Whether a tool call a hook reports failed, and how the lesson miner would name that failure.

The hosts hand a hook the call as it happened (Claude's error text, Codex's bare output, Gemini's
``llmContent``), not the logged record the readers see; this turns it into the same stored fields (kind,
command, path, exit code, output without the wrapper) and runs the same failure rule and error classes the
miner runs, so a live lesson and a mined one name a failure alike.
"""

from __future__ import annotations

import json
import re
from typing import Any

from headroom.learn import failures
from headroom.learn.error_classes import classify as classify_failure
from headroom.learn.knowledge import describe_call, is_failure, unwrap_output
from headroom.memory.models import ToolCallRow

_SELF_EVIDENT = ("not-found:", "path:", "missing-file:")
_NO_SUCH = re.compile(r": No such file or directory$", re.MULTILINE)
_EXIT_KEYS = ("exit_code", "exitCode", "returncode", "return_code")
_OUTPUT_KEYS = ("stdout", "stderr", "output", "aggregated_output", "formatted_output", "llmContent", "content")


def _response_text(response: Any) -> tuple[str, int | None, bool]:
    """The output text, exit code and error flag of a host's ``tool_response``."""
    if isinstance(response, str):
        return response, None, False
    if not isinstance(response, dict):
        return "", None, False
    code = next((response[k] for k in _EXIT_KEYS if isinstance(response.get(k), int)), None)
    parts = [str(response[k]) for k in _OUTPUT_KEYS if isinstance(response.get(k), str) and response[k]]
    error = response.get("error")
    if error:
        parts.append(str(error.get("message", error)) if isinstance(error, dict) else str(error))
    return "\n".join(parts), code, bool(error)


def classify(agent: str, event: str, payload: dict[str, Any], project: str) -> tuple[bool, str | None, str | None]:
    """Whether the call the event reports failed, its failure signature (as the lesson miner gives it, when it
    can without the fix) and its error line."""
    if agent == "claude" and event == "PostToolUse":
        return False, None, None  # Claude Code reports failures as PostToolUseFailure
    name = str(payload.get("tool_name") or "")
    tool_input = payload.get("tool_input")
    if agent == "claude":  # PostToolUseFailure: the error text, "Exit code N" first for Bash
        output, code, errored = str(payload.get("error") or ""), None, True
        if payload.get("is_interrupt"):
            return False, None, None
    else:
        output, code, errored = _response_text(payload.get("tool_response"))
    session = str(payload.get("session_id") or "")
    if agent == "codex" and code is None and not errored:
        # Codex hands PostToolUse the shell's output alone, without its exit code: only an output that itself
        # says the command failed ("python: command not found", "x.txt: No such file or directory" about one
        # of its own arguments) counts as a failure.
        _failed, signature, error = _detect(agent, session, project, name, tool_input, output, 1, True)
        if (signature and signature.startswith(_SELF_EVIDENT)) or (signature is None and _NO_SUCH.search(output)):
            return True, signature, error
        return False, None, None
    return _detect(agent, session, project, name, tool_input, output, code, errored)


def _detect(
    agent: str, session: str, project: str, name: str, tool_input: Any, output: str, code: int | None, errored: bool
) -> tuple[bool, str | None, str | None]:
    """Failed or not, and the signature, decided the way ingestion and the miner decide it for a logged call:
    the readers' call description and failure rule (:mod:`headroom.learn.knowledge`), then the error classes
    (:func:`headroom.learn.error_classes.classify`) over a one-step session."""
    raw = tool_input if isinstance(tool_input, str) else json.dumps(tool_input)
    if code is None:
        code = _exit_code(output)
    output = unwrap_output(output)
    kind, command, path = describe_call(name, raw)
    status = "error" if errored else "ok"
    failed = bool(is_failure(status, code, command, output))
    if not failed:
        return False, None, None
    row = ToolCallRow(
        key="live",
        name=name,
        input=raw,
        output=output,
        status=status,
        exit_code=code,
        kind=kind.value if kind is not None else None,
        command=command,
        path=path,
        failed=True,
        by_user=False,
    )
    steps = failures.steps_of([row], project)
    view = failures.SessionView(agent, session, project, failures.machine_of(project), steps)
    found = classify_failure(view, steps[0])
    # A detector may need the fix to name the failure at all (a missing file is one only once found elsewhere),
    # and the fix lies ahead here: the error line, as the miner keeps it, still recognizes the same failure.
    error = failures.short(view.local(failures.error_line(output)))
    return True, (found.signature if found is not None else None), error


_CLAUDE_EXIT = re.compile(r"\A(?:Error: )?Exit code (-?\d+)\n")
_GEMINI_EXIT = re.compile(r"^Exit Code: (-?\d+)\s*$", re.MULTILINE)


def _exit_code(output: str) -> int | None:
    """The exit code a hook's tool output states (Claude's first line, Gemini's trailer; Codex states none)."""
    m = _CLAUDE_EXIT.match(output)
    if m:
        return int(m.group(1))
    found = _GEMINI_EXIT.findall(output[-2000:])
    return int(found[-1]) if found else None
