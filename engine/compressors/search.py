"""Search results (grep, ripgrep, git grep): what matched, where, and where the searched name is defined.

An agent greps to find a definition and its callers. The answer lives in the match lines; the ``-C 8``
context around them is most of the tokens and rarely needed, so each file keeps its match lines verbatim and
its context goes behind one marker per file (the file's full grep output, one retrieve away). Files are ranked
by relevance to the question, source before tests, and a file that defines the searched name always comes
first with the definition's signature, wherever grep put it. When the matches alone are too many (hundreds),
the top files keep all of theirs and the rest keep a count and their first match.

ripgrep ``--json`` is rendered as ``path:line:text`` (its records are mostly bookkeeping); the raw JSON stays
retrievable through one whole-block marker.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from headroom.engine.compressors.base import Block, Context, Skip, estimate_tokens


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_PATHISH_RE = re.compile(r"^[^\s:][^:]*$")
_EXT_RE = re.compile(r"\.[A-Za-z0-9_+-]{1,12}$")
_PREFIX_RE = re.compile(r"([:-])(\d+)\1")
_NUM_RE = re.compile(r"^(\d+)([:-])(.*)$")
_PLAIN_RE = re.compile(r"^([^\s:]+):(.*)$")
_COMPILER_RE = re.compile(r"^[^\s:]+:\d+:\d+: (?:fatal )?(?:error|warning|note)\b")
_JSON_TYPE_RE = re.compile(r'^\{.*"type"\s*:\s*"(?:begin|match|context|end|summary)"')
_TEST_PATH_RE = re.compile(
    r"(?:^|/)(?:tests?|testing|__tests__|spec)/|(?:^|/)test_[^/]*$|_test\.\w+$|\.(?:test|spec)\."
)
_IDENT_RE = re.compile(r"[A-Za-z_$][\w$]*")
_DOC_EXT_RE = re.compile(r"\.(?:md|rst|txt|adoc|html?|json|csv|log|po)$", re.IGNORECASE)
#: Words a pattern or a line of code is full of that are never the name being searched for.
_NOT_NAMES = _words("""def class function func fn fun const let var val type interface struct enum trait impl import
    from return new async await public private protected static export default self this none null true false and not
    assert print echo del with yield raise throw else elif case while for if""")
_FILE_EXTS = _words("py pyi js jsx ts tsx go rs java kt c h cc cpp hpp rb sh md txt json yaml yml toml")
#: Short options that take a value, per program (grep's -E is a flag, ripgrep's is an encoding).
_VALUE_OPTS = {"rg": "efgtTABCmMjrEd", "ag": "ABCmGgf", "ack": "ABCmg"}
_GREP_VALUE_OPTS = "efABCmdD"
_VALUE_LONG = _words("""--regexp --file --glob --iglob --type --type-not --context --after-context --before-context
    --max-count --include --exclude --exclude-dir --max-depth --max-filesize --sort --sortr --encoding --replace
    --engine
    --context-separator --pre --label""")
_SEARCH_PROGRAMS = frozenset({"grep", "egrep", "fgrep", "rg", "ag", "ack", "ugrep"})
_LEADERS = r"(?:(?:export|default|pub(?:\([\w:]+\))?|async|static|public|private|protected|internal|abstract|final|"
_LEADERS += r"override|virtual|inline|extern|unsafe|open|data|sealed|partial|declare|local)\s+)*"
_KEYWORDS = r"(?:def|class|function\*?|func(?:\s*\([^)]*\))?|fn|fun|interface|type|struct|enum|trait|const|let|var|"
_KEYWORDS += r"val|module|record|object|protocol|typedef|macro|union|namespace|alias|sub|proc|defn|defmacro)"
_CALL_WORDS = _words("return assert if while for else elif case yield await raise throw new not print echo")


@dataclass(slots=True)
class _Rec:
    kind: str  # match, context, sep, head, blank, meta, other
    path: str | None
    ln: int | None
    text: str
    display: str
    raw: str


@dataclass(slots=True)
class _File:
    path: str
    order: int
    recs: list[int] = field(default_factory=list)
    matches: list[int] = field(default_factory=list)
    keep: set[int] = field(default_factory=set)
    defines: bool = False


def is_ripgrep_json(text: str) -> bool:
    """``rg --json`` output: its first three records are ripgrep's begin/match/context/end/summary messages.

    It is valid NDJSON too, but a search result first: the JSON compressor leaves it to this one.
    """
    lines = [ln for ln in text[:16384].splitlines()[:60] if ln.strip()][:3]
    return len(lines) >= 2 and all(_JSON_TYPE_RE.match(ln.strip()) for ln in lines)


@functools.lru_cache(maxsize=4096)  # grep output repeats each path on every line: decide it once
def _looks_path(p: str) -> bool:
    return bool(_PATHISH_RE.match(p)) and ("/" in p or "\\" in p or _has_ext(p)) and not p.isdigit()


@functools.lru_cache(maxsize=4096)
def _has_ext(p: str) -> bool:
    return _EXT_RE.search(p) is not None


_Prefixed = tuple[str, str, int, str]


def _prefixed(line: str) -> tuple[Sequence[_Prefixed], _Prefixed | None]:
    """Every (kind, path, line, text) reading of ``path:N:text`` / ``path-N-text`` (the path may itself hold
    ``-N-``), in order, and the one to take when no path is known: the last path-like one, preferring one
    with a file extension.

    Most lines have one reading: after a ``:N:`` any later one's path would hold a colon, and after a
    ``-N-`` there is usually no other. That case is one regex match (grep output is thousands of lines);
    the rest go through :func:`_all_prefixed`, which this must always agree with.
    """
    m = _PREFIX_RE.search(line)
    if m is None or ":" in line[: m.start()]:
        return (), None
    sep, number = m.group(1, 2)
    if sep == "-":
        after = _PREFIX_RE.search(line, m.end())
        if after is not None and ":" not in line[m.end() : after.start()]:
            return _all_prefixed(line)
    path = line[: m.start()]
    got = ("match" if sep == ":" else "context", path, int(number), line[m.end() :])
    return (got,), (got if _looks_path(path) else None)


def _all_prefixed(line: str) -> tuple[list[_Prefixed], _Prefixed | None]:
    """:func:`_prefixed`, reading by reading."""
    readings: list[_Prefixed] = []
    fallback: _Prefixed | None = None
    for m in _PREFIX_RE.finditer(line):
        path = line[: m.start()]
        if ":" in path:
            break
        sep, number = m.groups()
        got = ("match" if sep == ":" else "context", path, int(number), line[m.end() :])
        readings.append(got)
        if fallback is None:
            if _looks_path(path):
                fallback = got
        elif not _has_ext(fallback[1]) and _has_ext(path) and _looks_path(path):
            fallback = got
    return readings, fallback


def _classify(line: str, known: Mapping[str, object], hit: _Prefixed | None) -> tuple[str, str | None, int | None, str]:
    """What one line is; ``hit`` is its ``path:N:`` reading (the first one with a known path, else the fallback)."""
    if not line.strip():
        return "blank", None, None, ""
    if line == "--":
        return "sep", None, None, ""
    if hit is not None:
        return hit
    m = _NUM_RE.match(line)
    if m is not None:
        return ("match" if m.group(2) == ":" else "context"), None, int(m.group(1)), m.group(3)
    m = _PLAIN_RE.match(line)
    if m is not None and _looks_path(m.group(1)):
        return "match", m.group(1), None, m.group(2)
    dash = line.find("-")
    while dash > 0:  # ``path-text``: context without line numbers, only for a path that also matched
        if line[:dash] in known:
            return "context", line[:dash], None, line[dash + 1 :]
        dash = line.find("-", dash + 1)
    if _looks_path(line) and not any(c.isspace() for c in line):
        return "head", line, None, ""
    return "other", None, None, ""


def _parse_text(text: str) -> list[_Rec]:
    raws = text.splitlines(keepends=True)
    lines = [r.rstrip("\r\n") for r in raws]
    # Two passes: the paths of match lines first, so a context line is split at a path that matched. Each
    # line's readings are found once and reused by the second pass.
    readings = list(map(_prefixed, lines))
    known: dict[str, None] = {}
    first: list[tuple[str, str | None, int | None, str]] = []
    for line, (_, fallback) in zip(lines, readings, strict=True):
        # A line with a path-like reading is never blank nor ``--``: that reading is what _classify gives.
        got = fallback or _classify(line, {}, None)
        first.append(got)
        if got[0] == "match" and got[1] is not None:
            known.setdefault(got[1], None)
    recs: list[_Rec] = []
    heading: str | None = None
    for i, line in enumerate(lines):
        cands, fallback = readings[i]
        if fallback is not None and len(cands) == 1:
            kind, path, ln, body = first[i]  # one reading: the known paths cannot change it
        else:
            hit = next((c for c in cands if c[1] in known), fallback)
            kind, path, ln, body = _classify(line, known, hit)
        if kind == "head":
            if _NUM_RE.match(lines[i + 1] if i + 1 < len(lines) else "") is None:
                kind = "other"
            else:
                heading = line
        if kind in ("match", "context") and path is None:
            path = heading
        recs.append(_Rec(kind, path, ln, body, line, raws[i]))
    return recs


def _first_lines(text: str, n: int) -> list[str]:
    """``text.splitlines()[:n]``, without splitting a large text into all its lines: a head of the text holds
    them once it splits into more than ``n`` (the last may be cut short; those before it are whole)."""
    width = 128 * n
    while True:
        lines = text[:width].splitlines()
        if len(lines) > n or width >= len(text):
            return lines[:n]
        width *= 8


def _first_line(text: str) -> str:
    """``text.splitlines()[0]``, ``""`` for no text."""
    return next(iter(_first_lines(text, 1)), "")


def _json_text(obj: Any) -> str:
    """ripgrep's ``{"text": ...}``, or ``{"bytes": base64}`` for what is not UTF-8."""
    if not isinstance(obj, dict) or isinstance(obj.get("text"), str):
        return str(obj["text"]) if isinstance(obj, dict) else ""
    try:
        return base64.b64decode(str(obj.get("bytes", ""))).decode("utf-8", "replace")
    except ValueError:
        return ""


def _parse_json(text: str) -> list[_Rec]:
    recs: list[_Rec] = []
    for raw in text.splitlines(keepends=True):
        line = raw.strip()
        try:
            obj = json.loads(line) if line else None
        except ValueError:
            obj = None
        if not isinstance(obj, dict) or not isinstance(obj.get("data"), dict):
            recs.append(_Rec("blank" if not line else "other", None, None, "", raw.rstrip("\r\n"), raw))
            continue
        data = obj["data"]
        kind = obj.get("type")
        path = _json_text(data.get("path")) or None
        if kind not in ("match", "context") or not isinstance(data.get("line_number"), int):
            recs.append(_Rec("meta", path, None, "", "", ""))
            continue
        ln = int(data["line_number"])
        body = _json_text(data.get("lines")).rstrip("\r\n")
        sep = ":" if kind == "match" else "-"
        shown = "\n".join(f"{path or ''}{sep}{ln + k}{sep}{part}" for k, part in enumerate(body.split("\n")))
        recs.append(_Rec(str(kind), path, ln, body, shown, shown + "\n"))
    return recs


def _shell_words(command: Any) -> list[str]:
    if isinstance(command, list | tuple):
        parts = [str(p) for p in command]
        if len(parts) >= 3 and parts[1] in ("-c", "-lc"):
            return _shell_words(parts[2])
        return parts
    lex = shlex.shlex(str(command), posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    try:
        return list(lex)
    except ValueError:
        return str(command).split()


def _pattern_of_command(command: Any) -> str | None:
    """The pattern of the first grep/rg/git grep in a shell command (``-e`` wins over the first operand)."""
    words = _shell_words(command)
    for i, w in enumerate(words):
        name = w.rsplit("/", 1)[-1]
        if name in _SEARCH_PROGRAMS or (name == "git" and i + 1 < len(words) and words[i + 1] == "grep"):
            break
    else:
        return None
    start = i + (2 if name == "git" else 1)
    positional: list[str] = []
    j = start
    while j < len(words) and words[j] not in ("|", "||", "&&", ";", "&", ">", "<"):
        w = words[j]
        j += 1
        if w.startswith("--regexp="):
            return w.split("=", 1)[1]
        if w.startswith("--") and "=" not in w:
            if w == "--regexp" and j < len(words):
                return words[j]
            j += 1 if w in _VALUE_LONG else 0
        elif w.startswith("-") and len(w) > 1 and not w.startswith("--"):
            for k, letter in enumerate(w[1:], start=1):
                if letter in _VALUE_OPTS.get(name, _GREP_VALUE_OPTS):
                    value = w[k + 1 :] or (words[j] if j < len(words) else "")
                    j += 0 if w[k + 1 :] else 1
                    if letter == "e":
                        return value
                    break
        elif not w.startswith("--"):
            positional.append(w)
    return positional[0] if positional else None


def searched_names(block: Block, ctx: Context) -> list[str]:
    """Names the search is about: identifiers of the tool's pattern, then code names of the question."""
    inp = block.tool_input
    pattern = next((str(inp[k]) for k in ("pattern", "query", "regex", "search") if inp.get(k)), None)
    if pattern is None:
        for key in ("command", "cmd"):
            if inp.get(key):
                pattern = _pattern_of_command(inp[key])
                break
    names: list[str] = []
    if pattern:
        cleaned = re.sub(r"\\[bBwWsSdDAzZ<>]|\(\?\w+\)", " ", pattern)
        cleaned = re.sub(r"\\(.)", r"\1", cleaned)
        names += [w for w in _IDENT_RE.findall(cleaned) if len(w) > 1 and w.lower() not in _NOT_NAMES]
    for sym in ctx.symbols:
        last = sym.strip(".").rsplit(".", 1)[-1]
        if "." in sym.strip(".") and last.lower() in _FILE_EXTS:
            continue
        if _IDENT_RE.fullmatch(last) and len(last) > 1 and last.lower() not in _NOT_NAMES:
            names.append(last)
    return list(dict.fromkeys(names))


def _common_name(texts: list[str]) -> list[str]:
    """The longest identifier every match line shares: the likely pattern when the tool input is unknown."""
    if len(texts) < 2:
        return []
    shared = set(_IDENT_RE.findall(texts[0]))
    for t in texts[1:]:
        shared &= set(_IDENT_RE.findall(t))
    best = sorted((w for w in shared if len(w) > 2 and w.lower() not in _NOT_NAMES), key=lambda w: (-len(w), w))
    return best[:1]


def definition_re(names: list[str]) -> re.Pattern[str] | None:
    """Lines that define one of ``names`` in the common languages (the name's own line, not a use of it)."""
    if not names:
        return None
    n = "(?:" + "|".join(re.escape(x) for x in names) + ")"
    forms = [
        rf"^\s*{_LEADERS}{_KEYWORDS}\s+(?:self\.)?\*?{n}\b",
        rf"^{n}\s*(?::[^=\n]+)?:?=(?!=)",
        rf"^\s*#\s*define\s+{n}\b",
        rf"^[A-Za-z_][\w \t*&:<>,]*?[\s*&]{n}\s*\([^;]*$",
        rf"^\s*(?:(?:public|private|protected|internal|static|final|abstract|override|virtual|async|synchronized)\s+)+"
        rf"[\w<>\[\],.?]+\s+{n}\s*\(",
        rf"^\s*(?:static\s+|async\s+|get\s+|set\s+)*{n}\s*\([^)]*\)\s*(?::\s*[^{{]+)?\{{\s*$",
    ]
    return re.compile("|".join(f"(?:{f})" for f in forms))


def _is_definition(text: str, def_re: re.Pattern[str]) -> bool:
    return def_re.search(text) is not None and text.split(None, 1)[0] not in _CALL_WORDS


class SearchCompressor:
    """grep / ripgrep / git grep output: match lines kept, context behind one marker per file."""

    kind: ClassVar[str] = "search"

    def sniff(self, block: Block) -> bool:
        lines = [ln for ln in _first_lines(block.text, 60) if ln.strip()][:40]
        if len(lines) < 2 or sum(1 for ln in lines if _COMPILER_RE.match(ln)) > len(lines) // 4:
            return False
        if is_ripgrep_json(block.text):
            return True
        recs = _parse_text("\n".join(lines))
        shaped = sum(1 for r in recs if r.kind in ("match", "context", "head", "sep"))
        numbered = sum(1 for r in recs if r.ln is not None)
        return shaped >= 0.6 * len(lines) and (numbered > 0 or shaped >= 0.9 * len(lines))

    def compress(self, block: Block, ctx: Context) -> str:
        try:
            return self._compress(block, ctx)
        except Skip:
            raise
        except Exception as exc:  # a parser corner case must fall back to the next compressor, not crash
            raise Skip(f"unparsable search output ({type(exc).__name__})") from exc

    def _compress(self, block: Block, ctx: Context) -> str:
        text = block.text
        is_json = bool(_JSON_TYPE_RE.match(_first_line(text.lstrip()).strip()))
        recs = _parse_json(text) if is_json else _parse_text(text)
        files = _group(recs, block.path)
        n_matches = sum(len(f.matches) for f in files.values())
        if n_matches == 0:
            raise Skip("no match lines")
        names = searched_names(block, ctx)
        if not names:
            names = _common_name([recs[i].text for f in files.values() for i in f.matches])
        def_re = definition_re(names)
        if def_re is not None:
            mentions = _mention_test(names)
            for f in files.values():
                _keep_definitions(f, recs, def_re, mentions)
        ranked = _rank(list(files.values()), recs, ctx)
        return _render(ranked, recs, ctx, text, n_matches, is_json)


def _group(recs: list[_Rec], default_path: str | None) -> dict[str, _File]:
    files: dict[str, _File] = {}
    current: _File | None = None
    for i, r in enumerate(recs):
        if r.kind in ("match", "context", "head", "meta") and (r.path is not None or r.kind != "meta"):
            key = r.path if r.path is not None else (default_path or "")
            current = files.get(key)
            if current is None:
                current = files[key] = _File(key, len(files))
        if current is None or r.kind == "other":
            continue
        current.recs.append(i)
        if r.kind == "match":
            current.matches.append(i)
        elif r.kind == "head":
            current.keep.add(i)
    return files


def _mention_test(names: list[str]) -> Callable[[str], object]:
    """A test for a line that holds any of ``names`` (a plain substring test for one, one regex for several)."""
    if len(names) == 1:
        name = names[0]
        return lambda text: name in text
    return re.compile("|".join(map(re.escape, names))).search


def _keep_definitions(f: _File, recs: list[_Rec], def_re: re.Pattern[str], mentions: Callable[[str], object]) -> None:
    """Keep each definition line with its decorators and the rest of a signature that spans lines.

    A definition of a name holds the name: the ``mentions`` test (:func:`_mention_test`) skips most lines
    before the large regex runs.
    """
    if _DOC_EXT_RE.search(f.path):
        return
    body = [i for i in f.recs if recs[i].kind in ("match", "context")]
    for pos, i in enumerate(body):
        text = recs[i].text
        if not mentions(text) or not _is_definition(text, def_re):
            continue
        f.defines = True
        f.keep.add(i)
        back = pos - 1
        while back >= 0 and pos - back <= 3 and recs[body[back]].text.strip().startswith(("@", "#[")):
            f.keep.add(body[back])
            back -= 1
        depth = _depth(recs[i].text)
        after = 0
        prev = recs[i]
        for j in body[pos + 1 : pos + 12]:
            r = recs[j]
            if (prev.ln is not None and r.ln is not None and r.ln != prev.ln + 1) or after >= 2:
                break
            f.keep.add(j)
            if depth > 0:
                depth += _depth(r.text)
            else:
                after += 1
            prev = r


def _depth(text: str) -> int:
    return text.count("(") + text.count("[") - text.count(")") - text.count("]")


def _rank(files: list[_File], recs: list[_Rec], ctx: Context) -> list[_File]:
    """Definitions first, then source before tests (unless the question is about tests), then relevance."""
    wants_tests = "test" in (ctx.question or "").lower()

    def key(f: _File) -> tuple[int, int, int, int]:
        is_test = bool(_TEST_PATH_RE.search(f.path.replace("\\", "/"))) and not wants_tests
        found = ctx.relevance(f.path) * 2 + ctx.relevance(" ".join(recs[i].text for i in f.matches[:50]))
        return (0 if f.defines else 1, int(is_test), -found, f.order)

    return sorted(files, key=key)


def _render(files: list[_File], recs: list[_Rec], ctx: Context, text: str, n_matches: int, is_json: bool) -> str:
    """Whole files while the match budget lasts, then first matches, then one marker for the long tail."""
    total = estimate_tokens(text)
    full_budget = max(1500, total // 10)
    list_budget = max(600, total // 30)
    out: list[str] = []
    if is_json:
        out.append(ctx.whole_marker("ripgrep --json output, rendered below as path:line:text"))
    out.append(f"[{n_matches} matches in {len(files)} files, most relevant first; context lines are behind markers]")
    out += [r.display for r in recs if r.kind == "other"]
    listed: list[_File] = []
    tail: list[_File] = []
    for f in files:
        cost = sum(estimate_tokens(recs[i].display) for i in f.matches)
        if cost <= full_budget or f.defines:
            # A defining file is never demoted below the fold; when it is too big it keeps its first match.
            if cost <= full_budget:
                f.keep.update(f.matches)
                full_budget -= cost
            else:
                f.keep.add(f.matches[0])
            out += [recs[i].display for i in sorted(f.keep)]
            out += _marker([f], recs, ctx)
        elif list_budget > 0:
            f.keep.add(f.matches[0])
            list_budget -= estimate_tokens(recs[f.matches[0]].display)
            listed.append(f)
        else:
            tail.append(f)
    for f in listed:
        out += [recs[i].display for i in sorted(f.keep)]
    out += _marker(listed, recs, ctx)
    if tail:
        n_tail = sum(len(f.matches) for f in tail)
        ctx.count("lines", sum(1 for f in tail for i in f.recs if recs[i].kind in ("match", "context")))
        out.append(
            ctx.stash("".join(recs[i].raw for f in tail for i in f.recs), f"{len(tail)} more files, {n_tail} matches")
        )
    if not ctx.entries or len("\n".join(out)) >= len(text) * 0.9:
        raise Skip("nothing worth eliding")
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def _marker(group: list[_File], recs: list[_Rec], ctx: Context) -> list[str]:
    """One marker for what ``group`` left out: one file's grep output, or the listed files' together."""
    hidden = [i for f in group for i in f.recs if i not in f.keep and recs[i].kind in ("match", "context")]
    if not hidden:
        return []
    more = sum(1 for i in hidden if recs[i].kind == "match")
    parts = ([f"{more} more matches"] if more else []) + (
        [f"{len(hidden) - more} context lines"] if more < len(hidden) else []
    )
    ctx.count("lines", len(hidden))
    stashed = "".join(recs[i].raw for f in group for i in f.recs)
    if len(group) == 1:
        return [ctx.stash(stashed, f"{group[0].path}: {', '.join(parts)}")]
    counts = [(len(f.matches) - 1, f.path) for f in group if len(f.matches) > 1]
    counts.sort(key=lambda c: -c[0])
    top = ", ".join(f"{p} +{n}" for n, p in counts[:5]) + (", ..." if len(counts) > 5 else "")
    return [ctx.stash(stashed, f"{len(group)} files above: {', '.join(parts)}" + (f" ({top})" if top else ""))]
