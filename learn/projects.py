"""Project identity: which project a logged working directory belongs to, and how to name it.

Logs come from many machines. One project shows up as ``C:\\Users\\me\\VAULT``, ``c:\\Users\\me\\VAULT`` and
``c:\\users\\me\\vault`` (Windows paths are case-insensitive; Gemini lower-cases its ``.project_root``), as
worktrees of the repository (Claude Code's ``<repo>/.claude/worktrees/<name>``, git worktrees on this
machine), and, for old Gemini logs, only as ``sha256(<the root as typed, in one casing>)``. The functions
here are pure (the database side lives in ``headroom.learn.mirror``):

* :func:`project_root` folds a directory into its project (a worktree into its repository, a folder of a
  git work tree on this machine into the work tree's root);
* :func:`project_key` is the identity two spellings of one project share; :func:`preferred` picks the one
  spelling to show, the same whichever spelling was seen first;
* :func:`hash_candidates` lists the spellings whose sha256 may name a legacy Gemini folder;
* :func:`display_names` gives each project of a summary the shortest path suffix that tells it apart;
* :func:`repository_of` names a checkout by its repository (its normalized git remote), so that one repository
  checked out at different paths on different machines is one project (issue 17); each machine keeps its
  own ``project_root`` (where its files are written), the shared name is stored beside it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

# A project known only by the sha256 of its root (legacy Gemini folders), until a known root matches it.
HASH_PREFIX = "sha256:"
_WINDOWS = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")
_WORKTREE = re.compile(r"^(?P<repo>.+?)[\\/]\.claude[\\/]worktrees[\\/][^\\/]+(?:[\\/].*)?$")
_SEPARATORS = re.compile(r"[\\/]+")


def is_windows(path: str) -> bool:
    """Whether ``path`` was logged on Windows (a drive letter or a UNC share)."""
    return bool(_WINDOWS.match(path))


def project_key(path: str) -> str:
    """What two spellings of one project have in common: Windows paths compare case-insensitively.

    ASCII-only lower-casing, the same as SQLite's ``lower()``, so the database can compare keys too.
    """
    if not is_windows(path):
        return path
    folded = path.replace("/", "\\").rstrip("\\") or path
    return folded.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans({chr(c): chr(c + 32) for c in range(ord("A"), ord("Z") + 1)})


def preferred(spellings: Iterable[str]) -> str:
    """The spelling to keep among several of one project: the most capitals (Gemini lower-cases its copy),
    Windows' own separators, no trailing one, then the smallest string: the choice does not depend on which
    log was read first."""
    return min(spellings, key=lambda s: (-sum(c.isupper() for c in s), "/" in s, s.endswith(("/", "\\")), s))


def fold_worktree(path: str) -> str:
    """``<repo>/.claude/worktrees/<name>[/…]`` (Claude Code's worktrees, any separator) → ``<repo>``."""
    match = _WORKTREE.match(path)
    return match.group("repo") if match else path


@functools.lru_cache(maxsize=4096)
def project_root(path: str) -> str:
    """The project a logged directory belongs to.

    A Claude Code worktree belongs to its repository. A directory that exists on this machine belongs to
    the git work tree containing it, and a git worktree (``.git`` is a file naming ``<repo>/.git/worktrees/
    <name>``) to its main repository. Logs may come from another machine (or a deleted checkout): a
    missing path is kept as recorded.
    """
    path = fold_worktree(path)
    try:
        current = Path(path)
        if not current.is_absolute() or not current.exists():
            return path
        for folder in (current, *current.parents):
            marker = folder / ".git"
            if marker.is_file():
                return _main_worktree(marker) or str(folder)
            if marker.exists():
                return str(folder)
    except OSError:
        return path
    return path


def _main_worktree(marker: Path) -> str | None:
    """The main repository of a git worktree, from its ``.git`` file (``gitdir: <repo>/.git/worktrees/<n>``)."""
    try:
        with marker.open("rb") as handle:
            text = handle.read(4096).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    gitdir = Path(text.removeprefix("gitdir:").strip())
    if not gitdir.is_absolute():
        gitdir = (marker.parent / gitdir).resolve()
    if gitdir.parent.name == "worktrees" and gitdir.parent.parent.name == ".git":
        return str(gitdir.parent.parent.parent)
    return None


def project_of(cwd: str | None) -> str:
    """The project a working directory belongs to ("" for none), ``~`` expanded."""
    if not cwd:
        return ""
    return project_root(os.path.expanduser(cwd))


def hash_candidates(path: str) -> set[str]:
    """Spellings of a known root whose sha256 may name a legacy Gemini folder.

    gemini-cli hashed the root exactly as the process saw it; on Windows the drive letter's case and the
    rest vary between launches (``C:\\Users\\me\\VAULT``, ``c:\\Users\\me\\VAULT``), and every other spelling
    of it may be all we know (Gemini's own registry lower-cases it).
    """
    spellings = {path, path.rstrip("/\\") or path}
    if is_windows(path):
        for text in list(spellings):
            spellings |= {text.lower(), text.upper()}
        for text in list(spellings):
            if text[1:2] == ":":
                spellings |= {text[0].upper() + text[1:], text[0].lower() + text[1:]}
    return spellings


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def hashed_name(path: str) -> str:
    """How a project known only by its hash (a legacy Gemini folder no known root matches) is shown: the
    hash's first 8 hex digits, marked unresolved, instead of 71 characters of ``sha256:…``."""
    return f"(unresolved {path.removeprefix(HASH_PREFIX)[:8]})"


def display_names(paths: Iterable[str | None]) -> dict[str, str]:
    """Each project's shortest trailing path that no other project of ``paths`` ends with.

    ``/a/calc`` and ``/b/calc`` become ``a/calc`` and ``b/calc``; a unique basename stays a basename.
    A project known only by its hash reads ``(unresolved <8 hex>)``.
    """
    unique = {p for p in paths if p}
    parts = {p: [part for part in _SEPARATORS.split(p) if part] or [p] for p in unique}
    names: dict[str, str] = {}
    for path in unique:
        if path.startswith(HASH_PREFIX):
            names[path] = hashed_name(path)
            continue
        mine = parts[path]
        others = [parts[other] for other in unique if other != path and not other.startswith(HASH_PREFIX)]
        for length in range(1, len(mine) + 1):
            tail = [part.lower() for part in mine[-length:]]
            if not any([part.lower() for part in other[-length:]] == tail for other in others):
                break
        sep = "\\" if is_windows(path) else "/"
        names[path] = sep.join(mine[-length:]) if length < len(mine) else path
    return names


#: The prefix of a project named by its repository (``git:github.com/acme/shop``).
REPO_PREFIX = "git:"
_SECTION = re.compile(r'^\s*\[\s*remote\s+"(?P<name>[^"]*)"\s*\]')
_ANY_SECTION = re.compile(r"^\s*\[")
_URL = re.compile(r"^\s*url\s*=\s*(?P<url>.+?)\s*$")
_SCP = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>(?!//).+)$")  # git@host:owner/repo.git


def normalize_remote(url: str) -> str | None:
    """A git remote URL as one name for every way of writing it: ``host/path``, no scheme, user, password,
    port or ``.git`` (``git@github.com:acme/shop.git`` and ``https://me:tok@GitHub.com/acme/shop`` are both
    ``github.com/acme/shop``). A local path remote stays a path. None for an empty URL."""
    url = url.strip().strip('"')
    if not url:
        return None
    match = re.match(r"^(?P<scheme>[a-zA-Z][\w+.-]*)://(?P<rest>.*)$", url)
    if match and match.group("scheme").lower() != "file":
        rest = match.group("rest")
        authority, _, path = rest.partition("/")
        host = authority.rpartition("@")[2].split(":")[0].lower()
    elif match:
        host, path = "", match.group("rest")
    else:
        scp = _SCP.match(url)
        if scp and not is_windows(url):
            host, path = scp.group("host").lower(), scp.group("path")
        else:
            host, path = "", url
    path = path.strip("/")
    path = path.removesuffix(".git").rstrip("/")
    return f"{host}/{path}" if host else f"/{path}"


def _git_dir(root: Path) -> Path | None:
    """The folder holding the repository's ``config`` for the work tree at ``root`` (a worktree: the main one's)."""
    marker = root / ".git"
    if marker.is_dir():
        return marker
    main = _main_worktree(marker) if marker.is_file() else None
    return Path(main) / ".git" if main else None


def _remote_url(config: Path) -> str | None:
    """``remote.origin.url`` of a git config file, else the first remote's URL."""
    try:
        text = config.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    urls: dict[str, str] = {}
    section: str | None = None
    for line in text.splitlines():
        found = _SECTION.match(line)
        if found:
            section = found.group("name")
            continue
        if _ANY_SECTION.match(line):
            section = None
            continue
        url = _URL.match(line)
        if section is not None and url and section not in urls:
            urls[section] = url.group("url")
    return urls.get("origin") or next(iter(urls.values()), None)


@functools.lru_cache(maxsize=4096)
def repository_of(path: str) -> str | None:
    """The repository a project directory on this machine belongs to: ``git:<remote>`` (plus ``#<sub/dir>``
    when the project is a folder inside the work tree), or None (not here, not a git work tree, no remote)."""
    try:
        current = Path(path)
        if not current.is_absolute() or not current.is_dir():
            return None
        for folder in (current, *current.parents):
            if (folder / ".git").exists():
                git_dir = _git_dir(folder)
                url = _remote_url(git_dir / "config") if git_dir is not None else None
                remote = normalize_remote(url) if url else None
                if remote is None:
                    return None
                inside = current.relative_to(folder).as_posix()
                return REPO_PREFIX + remote + (f"#{inside}" if inside != "." else "")
    except (OSError, ValueError):
        return None
    return None


def identities(project: str) -> set[str]:
    """The names a project on this machine is known by, as stored: its folder, and its repository when it has
    one (so that a lesson of the repository, mined on another machine from another checkout, is this one's too).

    Raw names, not keys: a caller compares them in its own key (learn's, :func:`~headroom.learn.failures.
    project_keys`; stored rows, as they are), so that one project is never two keys."""
    names = {project}
    repository = repository_of(project) if project else None
    if repository:
        names.add(repository)
    return names


def repository_name(key: str) -> str:
    """How a repository key reads in a summary (``github.com/acme/shop``)."""
    return key.removeprefix(REPO_PREFIX)
