"""The error classes a failed tool call is recognized as, each with its signature, scope and fix.

One detector per class, tried in order; the first that recognizes the call decides. Each names *what went wrong*
(the signature groups the same mistake under any command line) and looks for the fix in the same session: the
next successful call that the class accepts as doing the same job (:meth:`SessionView.later_ok`).

Order matters: transient state is ruled out first (it is never a lesson), then the classes whose message is
unambiguous (CRLF, git's safe.directory, Git Bash's path rewriting, PowerShell's parser), then the broad ones
(command not found, a missing path) and last a plain failed command, which becomes a lesson only with a fix.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable

from headroom.learn.failures import (
    EDIT,
    READ,
    SHELL,
    WRITE,
    Failure,
    SessionView,
    Step,
    blame,
    error_line,
    mask,
    normalize_command,
)

_TRANSIENT = re.compile(
    r"database is locked|out of sync|would be overwritten|unstaged changes|uncommitted changes|rate.?limit|"
    r"too many requests|\b429\b|\b50[234]\b|ECONNRESET|connection reset|cannot lock ref|index\.lock|"
    r"Another git process|failed to push some refs|\[rejected\]|non-fast-forward|quota",
    re.IGNORECASE,
)
_NETWORK = re.compile(
    r"ENOTFOUND|EAI_AGAIN|Could not resolve host|Temporary failure in name resolution|Network is unreachable|"
    r"getaddrinfo|Failed to establish a new connection|nodename nor servname|Name or service not known",
    re.IGNORECASE,
)
_CRLF = re.compile(r"\$'\\r': command not found|\\r': No such file|bash\\r|\r: command not found|/env: '[^']*\r'")
_SAFE_DIR = re.compile(r"detected dubious ownership|safe\.directory", re.IGNORECASE)
_GIT_BASH_PATH = re.compile(
    r"(?:'|source=|destination=)(\S?)[A-Za-z]:/[^'\n]*?/(?:Programs/)?Git/|Invalid path '/(\S)'"
)
_PS_SEPARATOR = re.compile(r"The token '(&&|\|\|)' is not a valid statement separator")
_PS_PARAM = re.compile(r"A parameter cannot be found that matches parameter name '([\w-]+)'")
_NOT_FOUND = (
    re.compile(r"(?:^|\s)(?:[\w./-]+: )?(?:line \d+: )?([\w.+-]+): (?:command )?not found\b", re.MULTILINE),
    re.compile(r"command not found: ([\w.+-]+)"),
    re.compile(r"'([\w.+-]+)' is not recognized as an internal or external command"),
    re.compile(r"The term '([\w.+-]+)' is not\s+recognized"),
    re.compile(r"ObjectNotFound: \(([\w.+-]+):String\)"),
)
_MISSING_TOOL = re.compile(r"not installed|not recognized|command not found|: not found|CommandNotFound")
_MISSING_SCRIPT = re.compile(r'Missing script: "?([\w:.-]+)"?')
_NO_MODULE = re.compile(r"No module named '?([\w.]+)'?")
_TIMEOUT = re.compile(r"timed out after|command timed out|Command timed out|timeout exceeded", re.IGNORECASE)
_READ_TOO_LARGE = re.compile(r"exceeds maximum allowed (?:tokens|size)")
_EDIT_UNREAD = re.compile(r"File has not been read yet")
_EDIT_STALE = re.compile(r"modified since (?:it was )?read")
_EDIT_NO_MATCH = re.compile(
    r"String to replace not found|Could not find an exact match|0 occurrences found|apply_patch verification failed|"
    r"Failed to find expected lines"
)
_REQUIRED_PARAM = re.compile(r"(?:params/)?([\w/]*?)\s*must have required property '(\w+)'")
_UNEXPECTED_PARAM = re.compile(r"unexpected parameter `(\w+)`")
_PROTECTED = re.compile(r"GH013|protected branch|Changes must be made through a pull request", re.IGNORECASE)
_REF = re.compile(r"refs/heads/([\w./-]*\w)")
_NOT_REPO = re.compile(r"not a git repository")
_ZSH_GLOB = re.compile(r"zsh:\d+: no matches found: (\S+)")
_NO_SUCH = re.compile(
    r"([^\s:'\"`]+)['\"`]?: No such file or directory|File (?:not found|does not exist)[:.]?\s*['\"]?([^\s'\"]*)|"
    r"cannot access '([^']+)': No such file"
)
_VENV = re.compile(r"(?:^|/)\.?venv/|(?:^|\s)(?:uv|poetry|pipenv|hatch|pdm) run\b|activate\b")
_TEST_CMD = re.compile(
    r"\b(?:pytest|py\.test|unittest|nose2?|tox|nox|jest|vitest|mocha|rspec|phpunit|ctest)\b|"
    r"\b(?:npm|yarn|pnpm|bun|deno|go|cargo|mvn|gradle|gradlew|make|dotnet|mix|swift)\s+(?:run\s+)?test\b",
)
_CMDLET = re.compile(r"\A[A-Z][a-z]+-[A-Z]\w+\Z")
_CMDLET_USE = re.compile(r"\b((?:Get|Select|Where|ForEach|Copy|Remove|Move|Set)-[A-Z][A-Za-z]+)\b")
# Other names of the same program, for "command not found" fixes that are not a prefix variant.
_ALTERNATIVES = {
    "pnpm": ("npm", "yarn", "npx"),
    "yarn": ("npm", "pnpm", "npx"),
    "npm": ("pnpm", "yarn"),
    "python": ("python3", "py", "uv"),
    "pip": ("pip3", "python3", "uv"),
    "docker-compose": ("docker",),
    "firebase": ("npx",),
}


def _program(step: Step, error: str) -> list[str]:
    return blame(step.parts, error) if step.parts else []


def _same_goal(failed: Step, words: list[str], candidate: Step) -> bool:
    """Whether ``candidate`` redoes ``failed``'s job: the same arguments under another program or spelling."""
    if not candidate.parts:
        return False
    theirs = blame(candidate.parts)
    return theirs[1:] == words[1:] or (len(words) > 1 and words[1:2] == theirs[1:2])


def _not_found(view: SessionView, step: Step, text: str) -> Failure | None:
    for pattern in _NOT_FOUND:
        m = pattern.search(text)
        if not m:
            continue
        name = m.group(1)
        if name not in step.programs or "/" in name:
            continue
        words = next(p for p in step.parts if os.path.basename(p[0]) == name)
        fix = None
        for later in view.later_ok(step):
            if not later.parts or later.kind != SHELL:
                continue
            program = os.path.basename(blame(later.parts)[0])
            variant = program != name and (program.startswith(name) or name.startswith(program))
            if (
                variant
                or program in _ALTERNATIVES.get(name, ())
                or (_same_goal(step, words, later) and program != name)
            ):
                fix = program
                break
        if fix is not None and any(
            s.failed and fix in s.programs and _MISSING_TOOL.search(s.output) for s in view.steps if s.seq > step.seq
        ):
            fix = None  # the "fix" failed too later in the session (``wsl`` after ``bash``, WSL not installed)
        return view.failure(
            step,
            f"not-found:{name}",
            scope="machine",
            command=shlex.join(words),
            error=error_line(text),
            fix=fix,
        )
    return None


def _crlf(view: SessionView, step: Step, text: str) -> Failure | None:
    if not _CRLF.search(text):
        return None
    fix = next(
        (
            shlex.join(blame(s.parts))
            for s in view.later_ok(step)
            if s.command and re.search(r"dos2unix|\\r|autocrlf|unix2dos", s.command)
        ),
        None,
    )
    words = _program(step, text)
    return view.failure(step, "crlf", command=shlex.join(words) if words else None, error=error_line(text), fix=fix)


def _safe_directory(view: SessionView, step: Step, text: str) -> Failure | None:
    if not _SAFE_DIR.search(text) or "git" not in step.programs:
        return None
    fix = next(
        (s.command for s in view.later_ok(step) if s.command and "safe.directory" in s.command),
        "git config --global --add safe.directory <repo>",
    )
    return view.failure(step, "git-safe-directory", command=step.command, error=error_line(text), fix=mask(fix))


def _git_bash_path(view: SessionView, step: Step, text: str) -> Failure | None:
    m = _GIT_BASH_PATH.search(text)
    if not m or "git" not in step.programs:
        return None
    words = next(p for p in step.parts if os.path.basename(p[0]) == "git")
    lead = next((w[0] for w in words[2:] if w[:1] in "!~@" and len(w) > 1 and w[1] == "/"), m.group(1) or m.group(2))
    if not lead or lead.isalnum():
        return None
    fix = None
    for later in view.later_ok(step):
        if (
            "git" in later.programs
            and later.command
            and (f"./{lead}/" in later.command or ":(literal)" in later.command)
        ):
            fix = "./" if f"./{lead}/" in later.command else ":(literal)"
            break
    return view.failure(
        step, f"git-bash-path:{lead}", command=shlex.join(words[:2]), error=error_line(text), fix=fix, detail=lead
    )


def _powershell(view: SessionView, step: Step, text: str) -> Failure | None:
    m = _PS_SEPARATOR.search(text)
    if m:
        return view.failure(step, "powershell-separator", scope="machine", command=m.group(1), error=error_line(text))
    m = _PS_PARAM.search(text)
    if m and step.parts:
        words = step.parts[0]
        flag = m.group(1)
        if not any(w.lstrip("-") == flag for w in words[1:]) or _CMDLET.match(words[0]):
            return None
        fix = None
        for later in view.later_ok(step, 3):
            if later.parts and (_CMDLET.match(later.parts[0][0]) or later.parts[0][0] in ("dir",)):
                fix = shlex.join(later.parts[0][:1] + [w for w in later.parts[0][1:] if w.startswith("-")])
                break
        sig = f"powershell-param:{os.path.basename(words[0])} -{flag}"
        return view.failure(step, sig, scope="machine", command=f"{words[0]} -{flag}", error=error_line(text), fix=fix)
    return None


def _missing_script(view: SessionView, step: Step, text: str) -> Failure | None:
    m = _MISSING_SCRIPT.search(text)
    if not m:
        return None
    script = m.group(1)
    words = _program(step, text)
    fix = None
    for later in view.later_ok(step):
        if not later.parts or later.kind != SHELL:
            continue
        line = " ".join(blame(later.parts))
        if (script == "test" and _TEST_CMD.search(line)) or (script != "test" and script in line):
            fix = line
            break
    return view.failure(
        step, f"npm-missing-script:{script}", command=shlex.join(words), error=error_line(text), fix=fix, detail=script
    )


def _module_missing(view: SessionView, step: Step, text: str) -> Failure | None:
    m = _NO_MODULE.search(text)
    if not m or not step.command or _VENV.search(step.command):
        return None
    fix = None
    for later in view.later_ok(step):
        if later.command and _VENV.search(later.command):
            fix = " ".join(blame(later.parts)) if later.parts else later.command
            break
    return view.failure(
        step,
        "py-module-missing",
        command=" ".join(_program(step, text)),
        error=error_line(text),
        fix=fix,
        detail=m.group(1).split(".")[0],
    )


def _network(view: SessionView, step: Step, text: str) -> Failure | None:
    if not _NETWORK.search(text) or view.agent != "codex":
        return None  # elsewhere a one-off network error is not a fact; Codex's sandbox has no network by default
    words = _program(step, text)
    return view.failure(
        step, "sandbox-no-network", agent_only="codex", command=" ".join(words[:2]), error=error_line(text)
    )


def _timeout(view: SessionView, step: Step, text: str) -> Failure | None:
    if not (_TIMEOUT.search(text) or step.exit_code in (124, 143)):
        return None
    cmdlet = _CMDLET_USE.search(step.command or "")
    if cmdlet:  # a PowerShell script: the cmdlet that did the work names it
        head = cmdlet.group(1) + (" -Recurse" if "-Recurse" in (step.command or "") else "")
    else:
        words = _program(step, text)
        head = " ".join(w for w in words[:2] if not w.startswith("-")) if words else ""
    plain = re.fullmatch(r"[\w.-]+(?: [\w:.-]+)?", head) is not None
    return view.failure(
        step, "timeout", agent_only=view.agent, command=mask(head) if plain else None, error=error_line(text)
    )


def _agent_tool(view: SessionView, step: Step, text: str) -> Failure | None:
    """Failures of the agent's own tools: they go to that agent's file only."""

    def tool(sig: str, **extra: str | None) -> Failure:
        return view.failure(
            step, sig, scope="agent", agent_only=view.agent, command=step.tool, error=error_line(text), **extra
        )

    if step.kind == READ and _READ_TOO_LARGE.search(text):
        return tool("read-too-large")
    if step.kind in (EDIT, WRITE) and _EDIT_UNREAD.search(text):
        return tool("edit-unread")
    if step.kind in (EDIT, WRITE) and _EDIT_STALE.search(text):
        return tool("edit-stale")
    if _EDIT_NO_MATCH.search(text) and step.kind != SHELL:
        return tool(f"edit-no-match:{step.tool}")
    m = _REQUIRED_PARAM.search(text)
    if m:
        where = re.sub(r"/\d+", "[]", m.group(1)).strip("/").replace("/", ".")
        field = f"{where}.{m.group(2)}" if where else m.group(2)
        return tool(f"tool-param:{step.name}:missing:{field}", detail=field)
    m = _UNEXPECTED_PARAM.search(text)
    if m:
        return tool(f"tool-param:{step.name}:unexpected:{m.group(1)}", detail=m.group(1))
    return None


def _protected(view: SessionView, step: Step, text: str) -> Failure | None:
    if not _PROTECTED.search(text) or "git" not in step.programs:
        return None
    m = _REF.search(text)
    branch = m.group(1) if m else "main"
    return view.failure(
        step, f"protected-branch:{branch}", command=step.command, error=error_line(text), explicit=True, detail=branch
    )


def _git_dir(step: Step) -> str | None:
    """The folder a successful git call ran in, when the call names one (a dir argument, ``cd X &&``, ``-C X``)."""
    if "git" not in step.programs:
        return None
    if isinstance(step.args, dict):
        for key in ("dir_path", "workdir", "cwd", "directory"):
            value = step.args.get(key)
            if isinstance(value, str) and value.strip("./"):
                return value
    for i, part in enumerate(step.parts):
        if part[0] == "cd" and len(part) == 2 and any(p[0] == "git" for p in step.parts[i + 1 :]):
            return part[1]
        if part[0] == "git" and len(part) > 2 and part[1] == "-C":
            return part[2]
    return None


def _not_a_repo(view: SessionView, step: Step, text: str) -> Failure | None:
    if not _NOT_REPO.search(text) or "git" not in step.programs:
        return None
    fix = None
    for later in view.later_ok(step):
        folder = _git_dir(later)
        if folder and not folder.startswith(("/", "~")) and ":" not in folder:
            fix = view.local(folder.replace("\\", "/").rstrip("/"))
            break
    return view.failure(step, "not-a-git-repo", command="git", error=error_line(text), fix=fix)


def _zsh_glob(view: SessionView, step: Step, text: str) -> Failure | None:
    m = _ZSH_GLOB.search(text)
    if not m or "[" not in m.group(1):
        return None
    return view.failure(step, "zsh-glob-brackets", command=step.command, error=error_line(text))


def _missing_path(view: SessionView, step: Step, text: str) -> Failure | None:
    m = _NO_SUCH.search(text)
    if not m:
        return None
    missing = step.path
    if missing is None and step.parts:
        named = (m.group(1) or m.group(2) or m.group(3) or "").strip("'\"")
        words = _program(step, text)
        missing = next((w for w in words[1:] if named and (w == named or named.endswith(w) or w.endswith(named))), None)
    if not missing or not re.search(r"[./]", missing.strip("./")):
        return None
    base = os.path.basename(missing.rstrip("/"))
    for later in view.later_ok(step, 4):
        candidates = [later.path] if later.path else [w for p in later.parts for w in p[1:]]
        for cand in candidates:
            if cand and cand != missing and os.path.basename(cand.rstrip("/")) == base and "*" not in cand:
                return view.failure(
                    step, f"path:{mask(missing)}", command=missing, error=error_line(text), fix=cand, detail=missing
                )
    return None  # a missing file nobody found says nothing a next session can use


def _plain(view: SessionView, step: Step, text: str) -> Failure | None:
    """A failed command with no class: a lesson only if the next try that differs in one word worked."""
    if not step.parts or _TEST_CMD.search(step.command or ""):
        return None  # a failing test run is the normal work loop
    words = _program(step, text)
    for later in view.later_ok(step, 3):
        if not later.parts:
            continue
        theirs = blame(later.parts)
        if theirs[0] != words[0] or len(theirs) != len(words):
            continue
        diffs = [i for i, (a, b) in enumerate(zip(words, theirs)) if a != b]
        if len(diffs) == 1 and words[diffs[0]].startswith("-") and theirs[diffs[0]].startswith("-"):
            return view.failure(
                step,
                f"cmd:{normalize_command(shlex.join(words), view.project)}",
                command=shlex.join(words),
                error=error_line(text),
                fix=shlex.join(theirs),
            )
    return None


_DETECTORS: tuple[Callable[[SessionView, Step, str], Failure | None], ...] = (
    _crlf,
    _safe_directory,
    _git_bash_path,
    _powershell,
    _protected,
    _agent_tool,
    _not_found,
    _missing_script,
    _module_missing,
    _network,
    _timeout,
    _not_a_repo,
    _zsh_glob,
    _missing_path,
    _plain,
)


def classify(view: SessionView, step: Step) -> Failure | None:
    """The failure a failed call is, or None when it teaches nothing (transient, a test run, unclassified)."""
    text = step.output
    if _TRANSIENT.search(text) and not _PROTECTED.search(text):
        return None
    for detect in _DETECTORS:
        found = detect(view, step, text)
        if found is not None:
            return found
    return None


__all__ = ["classify"]
