"""The seams between packages, read from the source: which module may import which.

Imports are read with :mod:`ast` (every ``import`` statement, at the top or inside a function), so a lazy import
inside a function counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Directory -> dotted package, as pyproject's ``package-dir`` installs them.
PACKAGES = {
    "engine": "headroom.engine",
    "memory": "headroom.memory",
    "learn": "headroom.learn",
    "daemon": "headroom.daemon",
}
#: engine ← memory ← learn ← daemon: a package may import only those before it.
ORDER = ["headroom.engine", "headroom.memory", "headroom.learn", "headroom.daemon"]


def _modules() -> Iterator[tuple[str, Path]]:
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            yield ".".join((package, *parts)), path


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports (``from a.b import c`` names ``a.b`` and ``a.b.c``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


MODULES = dict(_modules())


def test_the_walk_finds_the_packages() -> None:
    assert "headroom.daemon.cli.compress_cmd" in MODULES
    assert "headroom.engine.text" in MODULES
    assert "headroom.daemon.cli" in imported(ROOT / "tests" / "test_cli.py")  # the reader sees a real import


def test_no_module_outside_the_cli_imports_the_cli() -> None:
    """The CLI is an entry point: library code it needs (compress one text, parse a line range) lives below it.

    ``headroom.daemon.entry`` is the console script itself (it sends a bare ``headroom statusline`` past the
    CLI's imports and everything else to the CLI): an entry point above the CLI, not library code.
    """
    offenders = {
        module: sorted(n for n in imported(path) if _within(n, "headroom.daemon.cli"))
        for module, path in MODULES.items()
        if not _within(module, "headroom.daemon.cli") and module != "headroom.daemon.entry"
    }
    assert {m: names for m, names in offenders.items() if names} == {}


def test_loading_the_configuration_does_not_import_the_proxy() -> None:
    names = imported(MODULES["headroom.daemon.config"])
    assert not [n for n in names if _within(n, "headroom.daemon.proxy")]


@pytest.mark.parametrize("package", ORDER)
def test_imports_point_one_way(package: str) -> None:
    """engine ← memory ← learn ← daemon: nothing imports a package after its own in that order."""
    later = ORDER[ORDER.index(package) + 1 :]
    offenders = {
        module: sorted(n for n in imported(path) if any(_within(n, p) for p in later))
        for module, path in MODULES.items()
        if _within(module, package)
    }
    assert {m: names for m, names in offenders.items() if names} == {}


#: What finds an agent's home: its variables and its default folders. Agent knowledge, so learn's alone.
_AGENT_HOME_NAMES = {"CLAUDE_CONFIG_DIR", "CODEX_HOME", "GEMINI_CLI_HOME", ".claude", ".codex", ".gemini"}


def agent_home_names(path: Path) -> set[str]:
    """The agents' home variables and folder names ``path`` spells out in code (docstrings aside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in _AGENT_HOME_NAMES and id(node) not in docstrings
    }


def test_no_module_outside_learn_finds_the_agent_homes() -> None:
    """Where each agent keeps its home (``~/.claude``, ``$CODEX_HOME``, …) is decided in learn.homes: the
    installers, ingestion and the service ask it (a second copy in the hooks installer had missed
    ``CLAUDE_CONFIG_DIR``'s comma-separated form)."""
    offenders = {
        module: sorted(found)
        for module, path in MODULES.items()
        if not _within(module, "headroom.learn") and (found := agent_home_names(path))
    }
    assert offenders == {}
    assert agent_home_names(MODULES["headroom.learn.homes"]) == _AGENT_HOME_NAMES  # the check reads real code


#: Renames that move a file the code did not just write (a SQLite database and its side files), not file writes.
_RENAMES_NOT_WRITES = {"headroom.memory.db", "headroom.memory.dbguard"}


def _calls(path: Path) -> set[str]:
    """``module.function`` for every call of an attribute of a name (``os.replace(...)``, ``tempfile.mkstemp()``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
        ):
            found.add(f"{node.func.value.id}.{node.func.attr}")
    return found


def test_one_function_writes_files_atomically() -> None:
    """Temp file + rename is done in :func:`headroom.memory.files.write_atomic` only, with one set of guarantees."""
    atomic = {"os.replace", "os.rename", "tempfile.mkstemp", "tempfile.NamedTemporaryFile"}
    offenders = {
        module: sorted(_calls(path) & atomic)
        for module, path in MODULES.items()
        if module not in {"headroom.memory.files", *_RENAMES_NOT_WRITES}
    }
    assert {m: calls for m, calls in offenders.items() if calls} == {}
    assert "os.replace" in _calls(MODULES["headroom.memory.files"])  # the scan sees the one that remains


#: Entry points, where imports inside functions keep start-up fast: the CLI (each command loads its own
#: modules), the MCP server, the console script, the status line (run on every redraw) and the hook client
#: (run by the agents, with ``-I -S``, on every hook event).
ENTRY_POINTS = ("headroom.daemon.cli", "headroom.daemon.mcp", "headroom.daemon.entry", "headroom.daemon.statusline")
ENTRY_POINTS += ("headroom.daemon.hooks.client",)


def lazy_imports_without_reason(path: Path) -> list[str]:
    """Imports inside functions of ``path`` with no ``# lazy: why`` comment above them (or above the run of
    imports they belong to)."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found = []
    for fn in ast.walk(ast.parse(source, str(path))):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            above = node.lineno - 2
            while above >= 0 and not lines[above].lstrip().startswith("# lazy:"):
                stripped = lines[above].strip()
                # the lines of the imports just above (and the try: / except that hold a fallback import)
                if (
                    not stripped
                    or stripped.startswith(("from ", "import ", ")", "try:", "except"))
                    or (stripped.endswith(",") and lines[above].startswith("        "))
                ):
                    above -= 1
                    continue
                break
            if above < 0 or not lines[above].lstrip().startswith("# lazy:"):
                found.append(f"{path.name}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return found


def test_imports_are_at_the_top_of_modules_or_say_why_not() -> None:
    """An import inside a function hides a dependency and costs a lookup per call: outside the entry points each
    one names its reason (a cycle, an optional or heavy library, a fast path that imports the module)."""
    offenders = {
        module: found
        for module, path in MODULES.items()
        if not any(_within(module, entry) for entry in ENTRY_POINTS) and (found := lazy_imports_without_reason(path))
    }
    assert offenders == {}


def test_the_lazy_import_check_can_fail(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import json\n\n    return json\n\n\ndef g():\n    # lazy: why\n    import os\n")
    assert lazy_imports_without_reason(module) == ["m.py:2: import json"]
