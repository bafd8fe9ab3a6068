"""Which language a code block is in, and what its syntax tree calls a function, a class or an import.

The code outline is one algorithm over every grammar; what differs between languages is only the names of
node types, so they live here as data. Grammars are imported on first use and cached: a session that only
ever sees Python never loads the C++ grammar, and a missing grammar package makes the language unknown
(the compressor skips) instead of breaking the import of the engine.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

try:
    import tree_sitter
except ImportError:  # pragma: no cover - the engine stays importable without the parser
    tree_sitter = None  # type: ignore[assignment]


@dataclass(frozen=True)
class LangSpec:
    """Node types of one grammar, by the role they play in an outline."""

    name: str
    module: str
    attr: str
    #: Definitions with a ``body`` field that the outline elides.
    functions: frozenset[str]
    #: Declarations whose members are outlined one by one (classes, impls, namespaces).
    containers: frozenset[str]
    #: Type declarations, kept whole up to a cap (they are the shape of the data).
    types: frozenset[str] = frozenset()
    #: Kept whatever their length (imports, decorators, attributes).
    keep: frozenset[str] = frozenset()
    comments: frozenset[str] = frozenset({"comment"})
    #: Python: string statements that open a body are docstrings.
    docstrings: bool = False


_JS_FUNCS = frozenset(
    {
        "function_declaration",
        "generator_function_declaration",
        "function_expression",
        "generator_function",
        "arrow_function",
        "method_definition",
    }
)
_TS_TYPES = frozenset({"interface_declaration", "type_alias_declaration", "enum_declaration"})
_TS_CONTAINERS = frozenset({"class_declaration", "abstract_class_declaration", "class", "internal_module", "module"})
_CPP_CONTAINERS = frozenset({"class_specifier", "struct_specifier", "namespace_definition", "linkage_specification"})

SPECS: dict[str, LangSpec] = {
    spec.name: spec
    for spec in (
        LangSpec(
            "python",
            "tree_sitter_python",
            "language",
            functions=frozenset({"function_definition"}),
            containers=frozenset({"class_definition"}),
            keep=frozenset({"import_statement", "import_from_statement", "future_import_statement", "decorator"}),
            docstrings=True,
        ),
        LangSpec(
            "javascript",
            "tree_sitter_javascript",
            "language",
            functions=_JS_FUNCS,
            containers=frozenset({"class_declaration", "class"}),
            keep=frozenset({"import_statement"}),
        ),
        LangSpec(
            "typescript",
            "tree_sitter_typescript",
            "language_typescript",
            functions=_JS_FUNCS,
            containers=_TS_CONTAINERS,
            types=_TS_TYPES,
            keep=frozenset({"import_statement"}),
        ),
        LangSpec(
            "tsx",
            "tree_sitter_typescript",
            "language_tsx",
            functions=_JS_FUNCS,
            containers=_TS_CONTAINERS,
            types=_TS_TYPES,
            keep=frozenset({"import_statement"}),
        ),
        LangSpec(
            "go",
            "tree_sitter_go",
            "language",
            functions=frozenset({"function_declaration", "method_declaration", "func_literal"}),
            containers=frozenset(),
            types=frozenset({"type_declaration"}),
            keep=frozenset({"import_declaration", "package_clause"}),
        ),
        LangSpec(
            "rust",
            "tree_sitter_rust",
            "language",
            functions=frozenset({"function_item"}),
            containers=frozenset({"impl_item", "trait_item", "mod_item"}),
            types=frozenset({"struct_item", "enum_item", "union_item", "type_item"}),
            keep=frozenset({"use_declaration", "attribute_item", "inner_attribute_item"}),
            comments=frozenset({"line_comment", "block_comment"}),
        ),
        LangSpec(
            "java",
            "tree_sitter_java",
            "language",
            functions=frozenset({"method_declaration", "constructor_declaration", "compact_constructor_declaration"}),
            containers=frozenset(
                {
                    "class_declaration",
                    "interface_declaration",
                    "enum_declaration",
                    "record_declaration",
                    "annotation_type_declaration",
                }
            ),
            keep=frozenset({"import_declaration", "package_declaration"}),
            comments=frozenset({"line_comment", "block_comment"}),
        ),
        LangSpec(
            "c",
            "tree_sitter_c",
            "language",
            functions=frozenset({"function_definition"}),
            containers=frozenset(),
            types=frozenset({"struct_specifier", "type_definition", "enum_specifier", "union_specifier"}),
            keep=frozenset({"preproc_include"}),
        ),
        LangSpec(
            "cpp",
            "tree_sitter_cpp",
            "language",
            functions=frozenset({"function_definition"}),
            containers=_CPP_CONTAINERS,
            types=frozenset({"enum_specifier", "union_specifier", "alias_declaration", "type_definition"}),
            keep=frozenset({"preproc_include", "using_declaration"}),
        ),
    )
}

#: Extension → languages to try in order (a ``.h`` header is C unless only the C++ grammar parses it).
EXTENSIONS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("py", "pyi", "pyw"), ("python",)),
    **dict.fromkeys(("js", "mjs", "cjs", "jsx"), ("javascript",)),
    **dict.fromkeys(("ts", "mts", "cts"), ("typescript",)),
    "tsx": ("tsx",),
    "go": ("go",),
    "rs": ("rust",),
    "java": ("java",),
    "c": ("c",),
    "h": ("c", "cpp"),
    **dict.fromkeys(("cc", "cpp", "cxx", "c++", "hpp", "hh", "hxx", "h++", "ipp", "inl", "tpp"), ("cpp",)),
}

_SHEBANGS = (("python", "python"), ("node", "javascript"), ("deno", "typescript"), ("ts-node", "typescript"))

#: Line patterns that are typical of one language; the language with the most matching lines wins.
_CUE_TEXT: dict[str, str] = {
    "python": (
        r"^\s*(?:(?:async\s+)?def \w+\(|class \w+[(:]|from [\w.]+ import |import [\w.]+$|@\w|if __name__ ==)"
        r"|^\s*(?:elif|else|try|except|finally)\b.*:\s*$|\bself\.\w"
    ),
    "javascript": (
        r"^\s*(?:(?:export\s+)?(?:const|let|var) \w+ = |(?:export\s+)?(?:async\s+)?function\b|module\.exports"
        r"|import .* from ['\"])|\brequire\(['\"]|=>\s*\{|===|console\.log"
    ),
    "typescript": (
        r"^\s*(?:export\s+)?(?:interface \w+|type \w+\s*=|enum \w+|declare |abstract class )"
        r"|:\s*(?:string|number|boolean|void|any|unknown)\b|\b(?:private|public|readonly) \w+:"
    ),
    "go": (r"^package \w+$|^func |^\s*\w+(?:, \w+)* := |^type \w+ (?:struct|interface)\b|\bfmt\.|\berr != nil"),
    "rust": (
        r"^\s*(?:pub(?:\(\w+\))? )?(?:fn|struct|enum|impl|trait|mod|use) \w|\blet (?:mut )?\w+|#\[\w|\w+::\w+|->\s*\w"
        r"|\bSelf\b"
    ),
    "java": (
        r"^\s*(?:public|private|protected)\s+(?:static\s+)?(?:final\s+)?[\w<>\[\], ]+\s+\w+\s*[({=;]"
        r"|^package [\w.]+;|^import [\w.]+(?:\.\*)?;|@Override|System\.out\."
    ),
    "c": (r"^#include [<\"]|^#define |^#if|^\s*(?:typedef |struct \w+ \{|static \w+)|->\w+|\bNULL\b"),
    "cpp": (
        r"^#include <\w+>$|\bstd::|^\s*namespace \w+|^\s*template\s*<|^\s*(?:public|private|protected):|::\w+\("
        r"|\bnullptr\b|\bauto\b"
    ),
}
_CUES: dict[str, re.Pattern[str]] = {lang: re.compile(text, re.M) for lang, text in _CUE_TEXT.items()}

#: Grammars and queries by language, loaded on first use. ``Language`` and ``Query`` objects are immutable
#: and safe to share; parsers are not, so each parse gets its own (creating one is cheap).
_LANGUAGES: dict[str, Any] = {}
_QUERIES: dict[str, Any] = {}


def languages_for_path(path: str | None) -> tuple[str, ...]:
    """The languages a file's extension says it is in (empty when the extension is unknown)."""
    if not path:
        return ()
    base = path.replace("\\", "/").rsplit("/", 1)[-1]
    if "." not in base:
        return ()
    return EXTENSIONS.get(base.rsplit(".", 1)[1].lower(), ())


def _lines_matching(pattern: re.Pattern[str], sample: str) -> int:
    """How many lines of ``sample`` the pattern matches: one C-level scan instead of one search per line."""
    count = 0
    last_start = -2
    for m in pattern.finditer(sample):
        start = sample.rfind("\n", 0, m.start())
        if start != last_start:
            count += 1
            last_start = start
    return count


def detect_languages(text: str, max_lines: int = 60) -> tuple[str, ...]:
    """Candidate languages for unlabelled code, most likely first; empty when nothing looks like code.

    Only the head of the block is sampled (3 KB, ``max_lines``): the router asks this of every block, and
    a language shows itself in the first few hundred lines or not at all.
    """
    lines = text[:3072].splitlines()[:max_lines]
    if lines and lines[0].startswith("#!"):
        for cue, lang in _SHEBANGS:
            if cue in lines[0]:
                return (lang,)
    nonblank = [ln for ln in lines if ln.strip()]
    if not nonblank:
        return ()
    sample = "\n".join(nonblank)
    scores = {lang: _lines_matching(pat, sample) for lang, pat in _CUES.items()}
    # TypeScript is a superset of JavaScript and C++ of C: their own cues only add to the base score.
    scores["typescript"] += scores["javascript"] if scores["typescript"] else 0
    scores["cpp"] += scores["c"] if scores["cpp"] else 0
    need = max(2, len(nonblank) // 10)
    ranked = sorted((lang for lang, s in scores.items() if s >= need), key=lambda lang: (-scores[lang], lang))
    return tuple(ranked[:2])


def language_for(lang: str) -> Any | None:
    """The cached tree-sitter ``Language`` of ``lang``, or ``None`` when its grammar is not installed."""
    if lang in _LANGUAGES:
        return _LANGUAGES[lang]
    language: Any | None = None
    spec = SPECS.get(lang)
    if spec is not None and tree_sitter is not None:
        try:
            module = importlib.import_module(spec.module)
            language = tree_sitter.Language(getattr(module, spec.attr)())
        except (ImportError, AttributeError, ValueError):
            language = None
    _LANGUAGES[lang] = language
    return language


def parse(lang: str, source: bytes) -> Any | None:
    """The syntax tree of ``source`` in ``lang``, or ``None`` when the grammar is missing."""
    language = language_for(lang)
    if language is None:
        return None
    return tree_sitter.Parser(language).parse(source)


def definitions(lang: str, root: Any) -> list[Any]:
    """Every function and container node under ``root``, found by one query (fast, in C)."""
    if lang not in _QUERIES:
        language = language_for(lang)
        query: Any | None = None
        if language is not None:
            spec = SPECS[lang]
            kinds = sorted(k for k in spec.functions | spec.containers if language.id_for_node_kind(k, True))
            if kinds:
                query = tree_sitter.Query(language, "[" + " ".join(f"({k})" for k in kinds) + "] @d")
        _QUERIES[lang] = query
    query = _QUERIES[lang]
    if query is None:
        return []
    found: list[Any] = tree_sitter.QueryCursor(query).captures(root).get("d", [])
    return found
