"""What each agent's tools are, and what in a session is worth remembering for the next agent.

**Tool facts** (used by the readers, once per call): every agent names the same actions differently
(Claude ``Bash``/``Read``, Codex ``exec_command``/``shell_command``/``apply_patch``, Gemini
``run_shell_command``/``read_file``), wraps commands differently (argv lists, ``bash -lc '…'``, PowerShell
``-Command``, code mode's JavaScript ``exec``) and frames outputs differently (``Exit code 1``,
``Process exited with code 1 … Output:``, ``Output: … Exit Code: 1 … Process Group PGID``). :data:`TOOL_KINDS`
is the one table of tool names in the code base; :func:`describe_call`, :func:`unwrap_output` and
:func:`is_failure` turn a call into its kind, command line or path, clean output and failed-or-not. The readers
call them and store the answers; stats, learn, memory and the dashboard read the stored fields.

**Memory content**: Claude's Read numbers every line (``   12\t…``); once outputs are unwrapped, the same file
read by Claude, Codex and Gemini is the same content, and therefore one memory item with three sightings.
Only successful calls are kept (failures are the learn package's business), edits' confirmations are not
content, and outputs too short to matter are skipped.
"""

from __future__ import annotations

import json
import ntpath
import os
import posixpath
import re
import shlex
from dataclasses import dataclass
from typing import Any

import orjson

from headroom.learn.model import ToolKind, ToolStatus
from headroom.learn.projects import is_windows

MIN_FILE_CHARS = 8
MIN_OUTPUT_CHARS = 200
MIN_PROMPT_CHARS = 24

# The one list of tool names: base name (lower case, MCP ``mcp__server__`` prefix removed) → kind.
_KIND_NAMES = {
    ToolKind.SHELL: "bash shell shell_command exec_command local_shell run_shell_command container.exec exec "
    "user_shell",
    ToolKind.READ: "read read_file readfile view read_many_files notebookread view_image",
    ToolKind.EDIT: "edit multiedit replace apply_patch str_replace str_replace_based_edit_tool notebookedit edit_file",
    ToolKind.WRITE: "write write_file create_file",
    ToolKind.SEARCH: "grep glob ls search_file_content list_directory grep_search glob_search find_files",
    ToolKind.FETCH: "webfetch websearch web_fetch google_web_search web_search fetch",
    ToolKind.TASK: "task agent spawn_agent delegate_to_agent codebase_investigator",
}
TOOL_KINDS: dict[str, ToolKind] = {name: kind for kind, names in _KIND_NAMES.items() for name in names.split()}

# Exit 1 with no output from these is an answer ("no match", "differs", "false", "not there"), not a failure.
NO_MATCH_PROGRAMS = frozenset({"grep", "egrep", "fgrep", "rg", "ag", "ugrep", "diff", "cmp", "test", "[", "[["})
NO_MATCH_PROGRAMS |= {"which", "command", "pgrep", "findstr", "findstr.exe"}
_NO_MATCH_GIT = frozenset({"diff", "grep", "check-ignore", "config"})  # git config KEY: exit 1 = not set
_CHAIN = frozenset({"&&", "||", ";", "|", "&", ";;", "|&"})
_PREFIX_WORDS = frozenset({"sudo", "env", "time", "exec", "nice", "!"})
_ENV_ASSIGN = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*=")
_SHELLS = frozenset({"bash", "sh", "zsh", "dash", "bash.exe", "sh.exe"})
_FIRST_WORD = re.compile(r"[ \t\r\n]*([^ \t\r\n]*)")  # shlex's whitespace, not str.split's
_QUOTING = re.compile(r"[\"'\\]")
_POWERSHELLS = frozenset({"powershell", "powershell.exe", "pwsh", "pwsh.exe"})
_CODE_MODE_CMD = re.compile(r"""tools\.exec_command\(\s*\{\s*["']?cmd["']?\s*:\s*("(?:[^"\\\n]|\\.)*")""")
_CODE_MODE_PATCH = re.compile(r"\*\*\* (?:Update|Add|Delete) File: ([^\\\n\"']+)")
_PATCH_PATH = re.compile(r"^\*\*\* (?:Update|Add|Delete) File: (.+?)\s*$", re.MULTILINE)
_PATH_KEYS = ("file_path", "absolute_path", "path", "notebook_path", "dir_path", "directory")

_CLAUDE_NUMBERED = re.compile(r"^ *\d+(?:\t|\u2192)", re.MULTILINE)
_SYSTEM_REMINDER = re.compile(r"\n*<system-reminder>.*?</system-reminder>\s*", re.DOTALL)
_CODEX_HEADER = re.compile(
    r"\A(?:Chunk ID: [^\n]*\n)?(?:Wall time:? [^\n]*\n)(?:Process exited with code -?\d+\n)?"
    r"(?:Original token count: \d+\n)?Output:\n",
)
_CODEX_SCRIPT = re.compile(r"\AScript (?:completed|failed)\nWall time [^\n]*\nOutput:\n")
_CODEX_EXIT = re.compile(r"\AExit code: -?\d+\nWall time: [^\n]*\nOutput:\n")
_CLAUDE_EXIT = re.compile(r"\A(?:Error: )?Exit code -?\d+(?:\n|\Z)")
_CLAUDE_ERROR_TAG = re.compile(r"\A\s*<tool_use_error>(.*?)</tool_use_error>\s*\Z", re.DOTALL)
_GEMINI_CONTEXT = re.compile(
    r"\A(?:Output too large\.[^\n]*\n)?<untrusted_context>\n(.*?)\n?</untrusted_context>\s*\Z", re.DOTALL
)
_GEMINI_HEAD = re.compile(r"\A(?:Command: [^\n]*\n)?(?:Directory: [^\n]*\n)?Output: ?")
_GEMINI_TAIL = re.compile(
    r"(?:\n(?:Error: [^\n]*|Exit Code: -?\d+|Signal: [^\n]*|Background PIDs: [^\n]*|Process Group PGID: [^\n]*))+\s*\Z"
)


def base_tool(name: str) -> str:
    """A tool's name without case and MCP prefix (``mcp__server__read_file`` → ``read_file``)."""
    return name.lower().rsplit("__", 1)[-1]


def tool_kind(name: str | None) -> ToolKind | None:
    """What a tool does, from its name alone (``None`` when the name is unknown to the log)."""
    if not name:
        return None
    return TOOL_KINDS.get(base_tool(name), ToolKind.OTHER)


def describe_call(name: str | None, raw_input: str | None) -> tuple[ToolKind | None, str | None, str | None]:
    """A call's kind, its command line (shell calls) and its target path (file and search calls)."""
    kind = tool_kind(name)
    if kind is None:
        return None, None, None
    args = tool_args(raw_input)
    if kind is ToolKind.SHELL:
        if base_tool(name or "") == "exec" and isinstance(args, str):
            patched = _CODE_MODE_PATCH.findall(args) if "tools.apply_patch(" in args else []
            if len(patched) == 1 and args.count("tools.") == 1:  # a script that only applies a patch
                return ToolKind.EDIT, None, patched[0]
            return kind, code_mode_command(args), None
        return kind, shell_command(args), None
    if kind in (ToolKind.READ, ToolKind.EDIT, ToolKind.WRITE, ToolKind.SEARCH):
        return kind, None, target_path(args)
    return kind, None, None


def code_mode_command(script: str) -> str | None:
    """The command of a Codex code-mode script that runs exactly one ``tools.exec_command({cmd: "…"})``."""
    found = _CODE_MODE_CMD.findall(script)
    if len(found) != 1:
        return None
    try:
        value = json.loads(found[0])
    except ValueError:
        return None
    if not isinstance(value, str):
        return None
    return unwrap_shell(value)


def target_path(args: Any) -> str | None:
    """The file or folder a read, edit, write or search call names (a patch: its first file)."""
    if isinstance(args, dict):
        for key in _PATH_KEYS:
            value = args.get(key)
            if isinstance(value, str) and value:
                return value
        patch = args.get("input") or args.get("patch")
        if isinstance(patch, str):
            return target_path(patch)
        keys = [k for k in args if isinstance(k, str) and ("/" in k or "\\" in k)]
        return keys[0] if keys and len(keys) == len(args) else None  # Codex FileChange items: {path: change}
    if isinstance(args, str):
        match = _PATCH_PATH.search(args)
        return match.group(1) if match else None
    return None


def tool_args(raw: str | None) -> Any:
    """A tool call's logged input: parsed JSON, or the text itself for freeform tools."""
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw  # Codex's freeform tools (apply_patch, exec) log their input as plain text


def unwrap_output(output: str) -> str:
    """The tool's own output without the agent's wrapper.

    Codex's ``Chunk ID … Process exited with code N … Output:`` / ``Exit code: N … Output:`` headers and
    code mode's ``Script completed … Output:``; Claude's ``Exit code N`` first line and
    ``<tool_use_error>`` tags; Gemini's ``<untrusted_context>`` and ``Output: … Exit Code: N … Process Group
    PGID: N`` framing (``(empty)`` is no output).
    """
    for pattern in (_CODEX_HEADER, _CODEX_SCRIPT, _CODEX_EXIT, _CLAUDE_EXIT):
        m = pattern.match(output)
        if m:
            return output[m.end() :]
    m = _CLAUDE_ERROR_TAG.match(output)
    if m:
        return m.group(1)
    m = _GEMINI_CONTEXT.match(output)
    inner = m.group(1) if m else output
    head = _GEMINI_HEAD.match(inner)
    if head is None:
        return inner
    body = _GEMINI_TAIL.sub("", inner[head.end() :])
    return "" if body.strip() == "(empty)" else body


def unwrap_shell(command: str) -> str:
    """``bash -lc 'cmd'`` → ``cmd`` (the shell the agent wraps every command in is not the command)."""
    # Most commands are no wrapper, and splitting them all is a backfill's cost: a first word without quotes
    # or escapes is the first word shlex would give, so when it names no shell the answer is already known.
    first = _FIRST_WORD.match(command).group(1)  # type: ignore[union-attr]  # the pattern always matches
    if not first or (os.path.basename(first) not in _SHELLS and not _QUOTING.search(first)):
        return command
    return unwrap_shell_split(command)


def unwrap_shell_split(command: str) -> str:
    """:func:`unwrap_shell` by its definition: split as a POSIX shell would; ``SHELL -c|-lc SCRIPT`` gives SCRIPT."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    if len(words) == 3 and os.path.basename(words[0]) in _SHELLS and words[1] in ("-c", "-lc"):
        return words[2]
    return command


def shell_command(args: Any) -> str | None:
    """The command line of a shell tool call, the agent's wrapper removed.

    Codex logs argv lists (``["bash", "-lc", "…"]``, ``["powershell.exe", "-Command", "…"]``), Claude and
    Gemini a ``command`` string, Codex's unified exec a ``cmd`` string.
    """
    if isinstance(args, list) and args and all(isinstance(a, str) for a in args):
        program = os.path.basename(args[0].replace("\\", "/")).lower()
        if len(args) >= 3 and program in _SHELLS and args[1] in ("-c", "-lc"):
            return str(args[2])
        if program in _POWERSHELLS and "-Command" in args[1:-1]:
            return str(args[args.index("-Command") + 1])
        if program in ("cmd", "cmd.exe") and len(args) >= 3 and args[1].lower() == "/c":
            return " ".join(args[2:])
        return shlex.join(args)
    if isinstance(args, dict):
        for key in ("cmd", "command"):
            value = args.get(key)
            if isinstance(value, str):
                return unwrap_shell(value)
            if isinstance(value, list):
                return shell_command(value)
    return None


def last_command_words(command: str, *, pipeline_head: bool = False) -> list[str]:
    """The words of the last simple command of a command line (what its exit status reports).

    ``cd x && VAR=1 sudo grep -r foo .`` → ``["grep", "-r", "foo", "."]``. Quotes are respected. With
    ``pipeline_head``, the first command of the last pipeline (``npm test | tail`` → ``npm test``): what a
    person would name the command by.
    """
    lexer = shlex.shlex(command.replace("\n", " ; "), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        tokens = command.split()
    words: list[str] = []
    piped = False
    for token in tokens:
        if token in ("|", "|&") and pipeline_head:
            piped = True
        elif token in _CHAIN:
            words, piped = [], False
        elif not piped:
            words.append(token)
    while words and (_ENV_ASSIGN.match(words[0]) or words[0] in _PREFIX_WORDS):
        words.pop(0)
    return words


def is_no_match(command: str | None, exit_code: int | None, output: str | None) -> bool:
    """Exit 1 with no output from grep/rg/diff/test/``[``/``git diff``…: an answer, not a failure."""
    if exit_code != 1 or not command or (output or "").strip():
        return False
    words = last_command_words(command)
    if not words:
        return False
    program = os.path.basename(words[0])
    if program == "git":
        rest = [w for w in words[1:] if not w.startswith("-")]
        return bool(rest) and rest[0] in _NO_MATCH_GIT
    return program in NO_MATCH_PROGRAMS


def is_failure(
    status: ToolStatus | str | None, exit_code: int | None, command: str | None, output: str | None
) -> bool | None:
    """THE definition of a failed tool call (``None`` while it has no result).

    An error status or a non-zero exit code, except a "no match" answer (:func:`is_no_match`); cancelled
    and rejected calls are not failures (they keep their own status).
    """
    value = status.value if isinstance(status, ToolStatus) else status
    if value is None or value == ToolStatus.PENDING.value:
        return None
    if value in (ToolStatus.CANCELLED.value, ToolStatus.REJECTED.value):
        return False
    if value != ToolStatus.ERROR.value and exit_code in (None, 0):
        return False
    return not is_no_match(command, exit_code, output)


# Tools of kind OTHER whose output is bookkeeping, not content (plans, todo lists, terminal input).
_NOT_CONTENT = frozenset({"todowrite", "update_plan", "exitplanmode", "write_stdin", "save_memory"})


@dataclass(frozen=True)
class Found:
    """A piece of content met in a session: what it is, the text, and the file it came from (if any)."""

    kind: str  # file_read | tool_output | fetched_doc | instruction
    content: str
    path: str | None = None
    title: str | None = None


_QUIET = frozenset({"2>/dev/null", "2>&1"})  # a successful cat writes nothing to stderr
_DRIVE_ONLY = re.compile(r"\A[A-Za-z]:(?![\\/])")  # what shlex leaves of an unquoted C:\Users\x


def _cat_path(command: str, cwd: str | None) -> str | None:
    """The file of a plain ``cat FILE``, resolved against ``cwd``; anything fancier (a pipe, several files,
    options) is a tool output, not a file's content.

    Agents on Windows run it in the project with a ``cd`` first (``cd "C:\\…" && cat "notes.md" 2>&1``, as
    Claude Code does through Git Bash): that is the same read, met in the folder it names.
    """
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if len(words) > 3 and words[0] == "cd" and words[2] == "&&":
        if _DRIVE_ONLY.match(words[1]):
            return None  # its backslashes were taken as escapes: the folder is not known
        cwd, words = _resolve(words[1], cwd), words[3:]
    if words and words[-1] in _QUIET:
        words = words[:-1]
    if len(words) == 2 and words[0] == "cat" and not words[1].startswith("-"):
        return _resolve(words[1], cwd)
    return None


def _resolve(path: str, cwd: str | None) -> str:
    """``path`` made absolute against ``cwd``. A Windows path is absolute (``C:\\…``, ``c:/…``) and keeps the
    agent's spelling; a relative one in a Windows folder takes that folder's separators."""
    if is_windows(path) or not cwd or posixpath.isabs(path):
        return posixpath.normpath(path)
    if is_windows(cwd):
        joined = ntpath.normpath(ntpath.join(cwd, path))
        return joined if "\\" in cwd else joined.replace("\\", "/")
    return posixpath.normpath(posixpath.join(cwd, path))


def from_tool_call(
    kind: ToolKind | str | None,
    name: str | None,
    command: str | None,
    path: str | None,
    output: str | None,
    raw_input: str | None,
    cwd: str | None,
) -> Found | None:
    """The content a successful tool call brought into the session, or None when there is nothing to keep.

    Works on the stored fields (kind, command, path, unwrapped output): a ``cat README.md`` is a file read
    whichever agent's shell tool ran it.
    """
    if not output or not name:
        return None
    kind = ToolKind(kind) if isinstance(kind, str) else kind or tool_kind(name)
    if kind in (ToolKind.EDIT, ToolKind.WRITE) or base_tool(name) in _NOT_CONTENT:
        return None
    if kind is ToolKind.READ:
        text = _SYSTEM_REMINDER.sub("\n", output)
        if _CLAUDE_NUMBERED.match(text):
            text = _CLAUDE_NUMBERED.sub("", text)
        if len(text.strip()) < MIN_FILE_CHARS:
            return None
        resolved = _resolve(path, cwd) if path else None
        return Found("file_read", text, resolved, resolved)
    if kind is ToolKind.FETCH:
        args = tool_args(raw_input)
        title = None
        if isinstance(args, dict):
            title = args.get("url") or args.get("query") or args.get("prompt")
        if len(output.strip()) < MIN_OUTPUT_CHARS:
            return None
        return Found("fetched_doc", output, None, str(title)[:200] if title else None)
    if kind is ToolKind.SHELL and command:
        cat = _cat_path(command, cwd)
        if cat is not None and len(output.strip()) >= MIN_FILE_CHARS:
            return Found("file_read", output, cat, cat)
    if len(output.strip()) < MIN_OUTPUT_CHARS:
        return None
    title = f"$ {command}" if command else name
    return Found("tool_output", output, None, title[:200])


def from_prompt(text: str | None) -> Found | None:
    """A prompt the user typed: an instruction worth showing the next agent (short acknowledgements are not)."""
    if not text or len(text.strip()) < MIN_PROMPT_CHARS:
        return None
    return Found("instruction", text.strip(), None, None)
