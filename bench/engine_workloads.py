"""Extra workloads for the shared harness, built from real material on this machine: large diffs and ``rg --json``.

    python bench/engine_workloads.py OUT_DIR     # writes OUT_DIR/*.json in the harness's workload format

The shared set (../shared/bench/workloads) has no diff and no ripgrep JSON, so ``engine_bench.py --extra``
builds these at run time instead of committing megabytes of generated text:

- ``diff_git_log``: ``git log -p`` of this repository's first commits (an all-new code base: almost every
  line is added), about 9,000 lines. The question names one function added in the middle of it; the needles
  are that function's ``+`` lines, verbatim.
- ``diff_versions``: ``git diff --no-index`` between two releases of a pure-Python package downloaded with
  pip (``attrs`` 22.2.0 and 23.2.0 by default; skipped when pip cannot reach the registry). The question
  names a function a hunk changed; the needles are that hunk's changed lines.
- ``rg_json_search``: ``rg --json -C 8 -w urlparse`` over the standard library (real ripgrep when it is
  installed, else :func:`rg_json`, which writes ripgrep 13's records byte for byte). Needle: the definition.

The builders are also what the diff and search tests use for their inputs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
STDLIB = Path(sysconfig.get_paths()["stdlib"])
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}


def git(args: list[str], cwd: Path, check: bool = True) -> str:
    """Run git with a fixed identity and no user config; stdout as text (``--no-index`` exits 1 on a diff)."""
    env = {**os.environ, **_GIT_ENV}
    cmd = ["git", "-c", "core.quotepath=off", *args]
    proc = subprocess.run(cmd, check=False, cwd=cwd, env=env, capture_output=True)
    if check and proc.returncode not in (0, 1):
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode("utf-8", "replace")


# -- diffs ---------------------------------------------------------------------------------------------


def git_log_diff(max_lines: int = 9_000) -> str | None:
    """``git log -p --reverse`` of this repository's first commits, cut at the commit that passes ``max_lines``."""
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        return None
    commits = git(["rev-list", "--reverse", "HEAD"], REPO).split()
    out: list[str] = []
    total = 0
    for sha in commits:
        text = git(["log", "-p", "-n", "1", "--format=medium", sha], REPO)
        out.append(text if not out else "\n" + text)
        total += text.count("\n")
        if total >= max_lines:
            break
    return "".join(out) if total >= max_lines // 2 else None


def stdlib_added_diff(tmp: Path, modules: tuple[str, ...], edit: tuple[str, ...] = ()) -> str:
    """``git diff`` of a commit that adds real stdlib ``modules`` and edits the ``edit`` ones in place.

    Every 40th line of an edited module gets a trailing comment, so it has ordinary small hunks.
    """
    repo = tmp / "repo"
    repo.mkdir()
    git(["init", "-q"], repo)
    for name in edit:
        (repo / name).write_text((STDLIB / name).read_text(encoding="utf-8"), encoding="utf-8")
    (repo / "README").write_text("stdlib copies\n")
    git(["add", "-A"], repo)
    git(["commit", "-q", "-m", "base"], repo)
    for name in modules:
        (repo / name).write_text((STDLIB / name).read_text(encoding="utf-8"), encoding="utf-8")
    for name in edit:
        lines = (repo / name).read_text(encoding="utf-8").splitlines(keepends=True)
        new = [ln.rstrip("\n") + "  # checked\n" if i % 40 == 20 and ln.strip() else ln for i, ln in enumerate(lines)]
        (repo / name).write_text("".join(new), encoding="utf-8")
    git(["add", "-A"], repo)
    return git(["diff", "--cached"], repo)


def version_diff(package: str, old: str, new: str, cache: Path) -> str | None:
    """``git diff --no-index`` of two releases' wheels (downloaded once into ``cache``); None when pip cannot."""
    trees: list[Path] = []
    for version in (old, new):
        wheel_dir = cache / f"{package}-{version}"
        if not any(wheel_dir.glob("*.whl")):
            wheel_dir.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheel_dir)]
            proc = subprocess.run([*cmd, f"{package}=={version}"], check=False, capture_output=True, timeout=300)
            if proc.returncode != 0 or not any(wheel_dir.glob("*.whl")):
                return None
        tree = cache / f"{package}-{version}-src"
        if not tree.exists():
            with zipfile.ZipFile(next(wheel_dir.glob("*.whl"))) as zf:
                for info in zf.infolist():
                    if info.filename.endswith(".py"):
                        zf.extract(info, tree)
        trees.append(tree)
    return git(["diff", "--no-index", trees[0].name, trees[1].name], cache)


_PLUS_DEF_RE = re.compile(r"^\+def ([A-Za-z_]\w*)\(")


def added_function(diff: str, min_body: int = 6, max_body: int = 30) -> tuple[str, str, list[str]] | None:
    """(path, name, its ``+`` lines) of a top-level function added near the middle of ``diff``."""
    lines = diff.splitlines()
    found: list[tuple[str, str, list[str]]] = []
    path = ""
    for i, line in enumerate(lines):
        if line.startswith("+++ "):
            path = line[6:] if line.startswith("+++ b/") else line[4:]
            continue
        m = _PLUS_DEF_RE.match(line)
        if m is None or not path.endswith(".py"):
            continue
        body = [line]
        for nxt in lines[i + 1 :]:
            if not nxt.startswith("+") or (nxt[1:2].strip() and not nxt.startswith("+ ")):
                break
            body.append(nxt)
        while body and not body[-1][1:].strip():
            body.pop()
        if min_body <= len(body) - 1 <= max_body and not m.group(1).startswith("_"):
            found.append((path, m.group(1), body))
    return found[len(found) // 2] if found else None


_HUNK_FUNC_RE = re.compile(r"^@@ [^@]+ @@ (?:async )?def ([A-Za-z_]\w*)\(")


def changed_function(diff: str, min_changed: int = 4) -> tuple[str, list[str]] | None:
    """(function name, the hunk's changed lines) of a hunk git labels with a ``def``, near the middle."""
    lines = diff.splitlines()
    found: list[tuple[str, list[str]]] = []
    for i, line in enumerate(lines):
        m = _HUNK_FUNC_RE.match(line)
        if m is None or m.group(1).startswith("_"):
            continue
        changed: list[str] = []
        for nxt in lines[i + 1 :]:
            if nxt.startswith(("@@", "diff ")):
                break
            if nxt[:1] in "+-" and nxt[1:].strip():
                changed.append(nxt)
        if min_changed <= len(changed) <= 60:
            found.append((m.group(1), changed))
    return found[len(found) // 2] if found else None


# -- ripgrep --json ------------------------------------------------------------------------------------


def _text(s: str) -> dict[str, str]:
    return {"text": s}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def rg_json(root: Path, pattern: str, context: int = 8, glob: str = "*.py") -> str:
    """What ``rg --json -C context -w pattern -g glob --sort path`` prints in ``root`` (ripgrep 13's records).

    Timing fields are zero so the output is reproducible; every other byte is what ripgrep 13 writes.
    """
    word = re.compile(rf"(?<!\w){re.escape(pattern)}(?!\w)")
    out: list[str] = []
    totals = {"bytes_printed": 0, "bytes_searched": 0, "matched_lines": 0, "matches": 0, "files": 0}
    for path in sorted(_walk(root, glob)):
        rel = "./" + path.relative_to(root).as_posix()
        raw = path.read_bytes()
        lines = raw.decode("utf-8", "replace").splitlines(keepends=True)
        hits = [i for i, ln in enumerate(lines) if word.search(ln)]
        if not hits:
            continue
        show: set[int] = set()
        for i in hits:
            show.update(range(max(0, i - context), min(len(lines), i + context + 1)))
        offsets = [0]
        for ln in lines:
            offsets.append(offsets[-1] + len(ln.encode()))
        recs = [_dumps({"type": "begin", "data": {"path": _text(rel)}})]
        n_matches = 0
        for i in sorted(show):
            subs = []
            for m in word.finditer(lines[i]):
                start = len(lines[i][: m.start()].encode())
                subs.append({"match": _text(m.group(0)), "start": start, "end": start + len(m.group(0).encode())})
            n_matches += len(subs)
            data = {
                "path": _text(rel),
                "lines": _text(lines[i]),
                "line_number": i + 1,
                "absolute_offset": offsets[i],
                "submatches": subs,
            }
            recs.append(_dumps({"type": "match" if subs else "context", "data": data}))
        printed = sum(len(r.encode()) + 1 for r in recs)
        stats = {
            "elapsed": {"secs": 0, "nanos": 0, "human": "0.000000s"},
            "searches": 1,
            "searches_with_match": 1,
            "bytes_searched": len(raw),
            "bytes_printed": printed,
            "matched_lines": len(hits),
            "matches": n_matches,
        }
        recs.append(_dumps({"type": "end", "data": {"path": _text(rel), "binary_offset": None, "stats": stats}}))
        out += recs
        for key, value in (("bytes_printed", printed), ("bytes_searched", len(raw)), ("files", 1)):
            totals[key] += value
        totals["matched_lines"] += len(hits)
        totals["matches"] += n_matches
    zero = {"human": "0.000000s", "nanos": 0, "secs": 0}
    summary = {
        "bytes_printed": totals["bytes_printed"],
        "bytes_searched": totals["bytes_searched"],
        "elapsed": zero,
        "matched_lines": totals["matched_lines"],
        "matches": totals["matches"],
        "searches": totals["files"],
        "searches_with_match": totals["files"],
    }
    out.append(_dumps({"data": {"elapsed_total": zero, "stats": summary}, "type": "summary"}))
    return "\n".join(out) + "\n"


def _walk(root: Path, glob: str) -> Iterator[Path]:
    for path in root.rglob(glob):
        rel = path.relative_to(root).parts
        if path.is_file() and not any(p in ("site-packages", "test", "tests", "idlelib") for p in rel[:-1]):
            yield path


def real_rg_json(root: Path, pattern: str, context: int = 8, glob: str = "*.py") -> str | None:
    """The same search through the installed ``rg`` (None when ripgrep is not installed)."""
    if shutil.which("rg") is None:
        return None
    cmd = ["rg", "--json", "-C", str(context), "-w", pattern, "-g", glob, "--sort", "path"]
    cmd += ["-g", "!site-packages", "-g", "!test", "-g", "!tests", "-g", "!idlelib", "."]
    proc = subprocess.run(cmd, check=False, cwd=root, capture_output=True)
    return proc.stdout.decode("utf-8", "replace")


# -- workload files ------------------------------------------------------------------------------------


def _workload(name: str, question: str, tool_input: dict[str, Any], output: str, needles: list[str]) -> dict[str, Any]:
    return {
        "schema": "headroom-bench/workload@1",
        "name": name,
        "kind": name,
        "description": f"{name} (built by bench/engine_workloads.py from real material on this machine)",
        "shape": "anthropic",
        "model": "claude-sonnet-4-5-20250929",
        "question": question,
        "messages": [
            {"role": "user", "content": question},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": f"toolu_{name}", "name": "Bash", "input": tool_input}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": f"toolu_{name}", "content": output}],
            },
        ],
        "needles": [
            {"text": t, "match": "substring", "role": "answer", "retrievable": False, "id": f"{name}:{k}"}
            for k, t in enumerate(dict.fromkeys(needles))
        ],
    }


def build(out_dir: Path, cache: Path) -> list[str]:
    """Write the workloads that can be built here into ``out_dir``; the notes say what was skipped and why."""
    out_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    made: list[dict[str, Any]] = []
    log = git_log_diff()
    picked = added_function(log) if log else None
    if log and picked:
        path, name, body = picked
        q = f"Review the `{name}` function added in `{path}`: is it correct? Quote the lines you would change."
        made.append(_workload("diff_git_log", q, {"command": "git log -p --reverse"}, log, body))
    else:
        notes.append("diff_git_log skipped: not a git checkout with history")
    ver = version_diff("attrs", "22.2.0", "23.2.0", cache)
    changed = changed_function(ver) if ver else None
    if ver and changed:
        name, lines = changed
        q = f"What changed in `{name}` between attrs 22.2.0 and 23.2.0, and could it break callers?"
        cmd = {"command": "git diff --no-index attrs-22.2.0-src attrs-23.2.0-src"}
        made.append(_workload("diff_versions", q, cmd, ver, lines))
    else:
        notes.append("diff_versions skipped: pip could not download attrs 22.2.0 / 23.2.0")
    rg = real_rg_json(STDLIB, "urlparse") or rg_json(STDLIB, "urlparse")
    q = "Where is `urlparse` defined in the standard library, and what is its exact signature? Which modules call it?"
    needle = "def urlparse(url, scheme='', allow_fragments=True):"
    made.append(_workload("rg_json_search", q, {"command": "rg --json -C 8 -w urlparse -g '*.py'"}, rg, [needle]))
    for w in made:
        (out_dir / f"{w['name']}.json").write_text(json.dumps(w, ensure_ascii=False, indent=1))
    return notes


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.gettempdir()) / "headroom-engine-workloads"
    for note in build(target, Path(tempfile.gettempdir()) / "headroom-bench-pkgs"):
        print(note)
    print(target)
