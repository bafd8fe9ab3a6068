"""The outline walk behind the code and listing compressors: which line ranges of a parsed file to elide.

One walk serves every grammar (node-type names come from :mod:`._languages`). Everything is decided as
ranges of lines, never by rewriting text, so kept lines stay byte-exact and every elided range is one
retrievable marker. Two levels of detail: a file the question names keeps every signature and loses only
long bodies; any other file keeps its interface (public top-level and class-level signatures, types,
constants, docstring first lines) and folds private helpers and comments into the neighbouring markers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from headroom.engine.compressors import _languages as langs
from headroom.engine.compressors.base import Context

#: Fewer lines than this are never elided.
MIN_ELIDE = 2
#: What a marker line costs in tokens: a span that costs less stays.
MARKER_TOKENS = 22
_IDENT_RE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_ALNUM_RE = re.compile(r"[A-Za-z0-9]")
_PUBLIC_DUNDERS = frozenset({"__init__", "__new__", "__call__"})
_ASSIGNED_RE = re.compile(r"([A-Za-z_]\w*)\s*(?::[^=]*)?=(?!=)")
_EXPORTED_RE = re.compile(r"""["']([A-Za-z_]\w*)["']""")


@dataclass(frozen=True)
class Detail:
    """How much of a file the outline keeps."""

    #: Bodies with at most this many lines (after the docstring's first line) and ...
    short_body: int
    #: ... at most this many tokens (estimated) stay: a marker costs about 20.
    body_tokens: int
    #: Other statements longer than this keep only their first line.
    stmt_lines: int
    #: Comment runs longer than this keep only their first line.
    comment_lines: int
    #: Type declarations keep this many lines.
    type_lines: int
    #: Keep the signatures of functions and classes nested in elided bodies.
    nested: bool
    #: Comment lines and private statements next to an elided span join its marker, and private
    #: definitions (``_helper``, ``private void``) are elided whole: they are not the file's interface.
    hide_private: bool


#: A file the question does not name: top-level and class-level signatures only.
OUTLINE = Detail(
    short_body=2, body_tokens=24, stmt_lines=3, comment_lines=1, type_lines=30, nested=False, hide_private=True
)
#: A file the question names: every signature, nested ones too; only long bodies go.
DETAILED = Detail(
    short_body=3, body_tokens=36, stmt_lines=4, comment_lines=3, type_lines=80, nested=True, hide_private=False
)


def _last_row(node: Any) -> int:
    """The last row holding text of ``node`` (a node that ends at column 0 ends on the previous row)."""
    end = node.end_point
    if end.column == 0 and end.row > node.start_point.row:
        return int(end.row) - 1
    return int(end.row)


def _text(node: Any) -> str:
    raw: bytes = node.text or b""
    return raw.decode("utf-8", "replace")


def _node_name(node: Any) -> str:
    """The declared name of a definition (``""`` when it has none, e.g. an anonymous callback)."""
    named = node.child_by_field_name("name")
    if named is None and node.type == "impl_item":
        named = node.child_by_field_name("type")
    if named is None:
        decl = node.child_by_field_name("declarator")
        while decl is not None and named is None:
            if decl.type.endswith(("identifier", "_name")):
                named = decl
            decl = decl.child_by_field_name("declarator")
    if named is None and node.parent is not None:
        parent = node.parent
        for field in ("name", "key", "left", "property"):
            named = parent.child_by_field_name(field)
            if named is not None:
                break
    if named is None:
        return ""
    idents = _IDENT_RE.findall(_text(named))
    return idents[-1] if idents else ""


def wanted(ctx: Context, name: str) -> bool:
    """Does the question or the tool input point at this name? (:meth:`Context.wants`.)"""
    return ctx.wants(name)


class Outliner:
    """Walks one syntax tree and collects the 0-based inclusive row ranges to elide."""

    def __init__(
        self, spec: langs.LangSpec, lines: Sequence[str], defs: set[int], ctx: Context, detail: Detail, line_cost: int
    ) -> None:
        self.spec = spec
        self.lines = lines
        self.defs = defs
        self.ctx = ctx
        self.detail = detail
        self.line_cost = line_cost
        self.ranges: list[tuple[int, int]] = []
        #: Rows an outline may fold into a neighbouring marker (comments, private statements).
        self.foldable: set[int] = set()
        #: Python's ``__all__``: when present, other module-level names are not the interface.
        self.exported: frozenset[str] | None = None
        #: Every ``wanted`` question the walk asked, with its answer, in order: the walk's only dependence on
        #: the question, so an outline cached with these answers is valid for any context that gives the same.
        self.asked: list[tuple[str, bool]] = []

    def elide(self, first: int, last: int) -> None:
        if last - first + 1 >= MIN_ELIDE and self._tokens(first, last) > MARKER_TOKENS:
            self.ranges.append((first, last))

    def wanted(self, name: str) -> bool:
        """Does the question or the tool input point at this name? (Each answer is recorded: see ``asked``.)"""
        answer = wanted(self.ctx, name)
        self.asked.append((name, answer))
        return answer

    def _is_docstring(self, node: Any) -> bool:
        return (
            self.spec.docstrings
            and node.type == "expression_statement"
            and node.named_child_count == 1
            and node.named_children[0].type in ("string", "concatenated_string")
        )

    def _doc_head_end(self, node: Any) -> int:
        """The row of a docstring's first line with words (``\"\"\"`` alone on a line says nothing)."""
        for row in range(node.start_point.row, _last_row(node) + 1):
            if _ALNUM_RE.search(self.lines[row]):
                return row
        return _last_row(node)

    def seq(self, nodes: Sequence[Any], doc: bool = False) -> None:
        i = 0
        if doc and nodes and self._is_docstring(nodes[0]):
            self.elide(self._doc_head_end(nodes[0]) + 1, _last_row(nodes[0]))
            i = 1
        while i < len(nodes):
            node = nodes[i]
            if node.type in self.spec.comments:
                j = i
                # Blank lines between comments do not end a run: a banner and its notes go together.
                while j + 1 < len(nodes) and nodes[j + 1].type in self.spec.comments:
                    j += 1
                self.comments(node.start_point.row, _last_row(nodes[j]))
                for k in range(i, j + 1):
                    row = nodes[k].start_point.row
                    if not self.lines[row][: nodes[k].start_point.column].strip():
                        self.foldable.update(range(row, _last_row(nodes[k]) + 1))
                i = j + 1
                continue
            self.visit(node)
            i += 1

    def comments(self, first: int, last: int) -> None:
        if last - first + 1 <= self.detail.comment_lines:
            return
        # "/**" or "#" alone says nothing; a first line with words is a summary worth keeping.
        keep_first = len(_ALNUM_RE.findall(self.lines[first])) >= 3
        self.elide(first + 1 if keep_first else first, last)

    def visit(self, node: Any) -> None:
        kind = node.type
        if self.detail.hide_private:
            target = node.child_by_field_name("definition") if kind == "decorated_definition" else node
            if target is not None and self._private(target):
                self.elide(node.start_point.row, _last_row(node))
                self.foldable.update(range(node.start_point.row, _last_row(node) + 1))
                return
        if kind in self.spec.functions:
            self.function(node)
        elif kind in self.spec.containers:
            self.container(node)
        elif node.id in self.defs:
            self.seq(node.named_children)
        elif kind in self.spec.keep:
            return
        elif kind in self.spec.comments:
            self.comments(node.start_point.row, _last_row(node))
        else:
            first, last = node.start_point.row, _last_row(node)
            head = self.lines[first].lstrip()
            if self.spec.docstrings and head.startswith("__all__"):
                return  # the public API of a Python module, whatever its length
            if self.detail.hide_private and self.spec.docstrings:
                target = _ASSIGNED_RE.match(head)
                if self.exported is not None and target and self._top_level(node):
                    if target.group(1) not in self.exported:
                        self.elide(first, last)
                        self.foldable.update(range(first, last + 1))
                        return
                elif head.startswith("_") and "__" not in head[:2]:
                    self.foldable.update(range(first, last + 1))
            # ``export interface``, ``typedef struct``: the wrapper is a type declaration too.
            is_type = kind in self.spec.types or any(c.type in self.spec.types for c in node.named_children)
            keep = self.detail.type_lines if is_type else 1
            limit = self.detail.type_lines if is_type else self.detail.stmt_lines
            if last - first + 1 > limit:
                self.elide(first + keep, last)

    def container(self, node: Any) -> None:
        if self.wanted(_node_name(node)):
            return
        body = node.child_by_field_name("body")
        if body is not None:
            self.seq(body.named_children, doc=True)

    def function(self, node: Any) -> None:
        if self.wanted(_node_name(node)):
            return
        body = node.child_by_field_name("body")
        if body is None:
            return
        start, last = body.start_point.row, _last_row(body)
        if (body.text or b"").startswith(b"{"):
            first = start + 1
            if self.lines[last].lstrip().startswith("}"):
                last -= 1  # the closing brace stays: the outline remains balanced
        else:
            # Comments before the first statement sit outside the body node: start after the signature.
            prev = body.prev_sibling
            while prev is not None and prev.type in self.spec.comments:
                prev = prev.prev_sibling
            first = _last_row(prev) + 1 if prev is not None else start + 1
        children = body.named_children
        if children and self._is_docstring(children[0]):
            first = max(first, self._doc_head_end(children[0]) + 1)
        if last - first + 1 <= self.detail.short_body and self._tokens(first, last) <= self.detail.body_tokens:
            return
        if not self.detail.nested:
            self.elide(first, last)
            return
        cur = first
        for inner in self._nested(body):
            top = inner.parent.start_point.row if inner.parent.type == "decorated_definition" else inner.start_point.row
            if top > cur:
                self.elide(cur, min(top - 1, last))
            self.visit(inner)
            cur = max(cur, _last_row(inner) + 1)
        if cur <= last:
            self.elide(cur, last)

    def _private(self, node: Any) -> bool:
        """A definition outside the file's interface: ``_name`` in Python, ``private``/``#name`` elsewhere."""
        if node.type not in self.spec.functions and node.type not in self.spec.containers:
            return False
        name = _node_name(node)
        # A question names a private definition as written (`_wrap_chunks`) or as a word (wrap_chunks).
        if not name or self.wanted(name) or self.wanted(name.lstrip("_#")):
            return False
        if self.spec.docstrings:
            if self.exported is not None and self._top_level(node):
                return name not in self.exported
            if name.startswith("__") and name.endswith("__"):
                # Protocol methods (``__repr__``, ``__iter__``, ``__enter__``) follow from what the class is
                # (its docstring says); how it is constructed or called does not.
                return name not in _PUBLIC_DUNDERS
            return name.startswith("_")
        if node.child_by_field_name("name") is not None and _text(node.child_by_field_name("name")).startswith("#"):
            return True
        return any(
            c.type in ("modifiers", "accessibility_modifier") and b"private" in (c.text or b"") for c in node.children
        )

    @staticmethod
    def _top_level(node: Any) -> bool:
        parent = node.parent
        if parent is not None and parent.type == "decorated_definition":
            parent = parent.parent
        return parent is not None and parent.parent is None

    def _tokens(self, first: int, last: int) -> int:
        return sum(len(self.lines[r]) // 4 + self.line_cost for r in range(first, last + 1))

    def _nested(self, node: Any) -> list[Any]:
        """Definitions inside ``node`` that are not inside another definition, in source order."""
        out: list[Any] = []
        for child in node.named_children:
            if child.type in self.spec.functions or child.type in self.spec.containers:
                out.append(child)
            elif child.id in self.defs:
                out.extend(self._nested(child))
        return out


def error_rows(root: Any) -> int:
    """How many rows parse errors cover (a missing token counts as one row)."""
    rows = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            rows += _last_row(node) - node.start_point.row + 1
        elif node.has_error:
            stack.extend(node.children)
    return rows


def gaps(lines: Sequence[str], keep: set[int], min_chars: int = 0) -> list[tuple[int, int]]:
    """The runs of rows outside ``keep`` (0-based, inclusive) of at least ``MIN_ELIDE`` rows and more than
    ``min_chars`` characters: what a head/tail/structure summary leaves out."""
    ranges: list[tuple[int, int]] = []
    start: int | None = None
    for i in range(len(lines) + 1):
        if i < len(lines) and i not in keep:
            if start is None:
                start = i
        elif start is not None:
            if i - start >= MIN_ELIDE and sum(len(lines[r]) + 1 for r in range(start, i)) > min_chars:
                ranges.append((start, i - 1))
            start = None
    return ranges


def normalize(
    ranges: Sequence[tuple[int, int]], lines: Sequence[str], foldable: frozenset[int] = frozenset()
) -> list[tuple[int, int]]:
    """Sorted, disjoint ranges; each swallows the blank and ``foldable`` lines around it: one marker, not two."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        first, last = start, end
        while first > 0 and (first - 1 in foldable or not lines[first - 1].strip()):
            first -= 1
        while last + 1 < len(lines) and (not lines[last + 1].strip() or last + 1 in foldable):
            last += 1
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def outline_tree(
    lang: str, root: Any, lines: Sequence[str], ctx: Context, detail: Detail, line_cost: int
) -> tuple[list[tuple[int, int]], list[tuple[str, bool]]]:
    """Row ranges (0-based, inclusive, sorted, disjoint) to elide from the parsed ``lines``, and every
    ``wanted`` question the walk asked of ``ctx`` with its answer (what a cached outline must match)."""
    defs: set[int] = set()
    for node in langs.definitions(lang, root):
        parent = node.parent
        while parent is not None and parent.id not in defs:
            defs.add(parent.id)
            parent = parent.parent
    walker = Outliner(langs.SPECS[lang], lines, defs, ctx, detail, line_cost)
    if walker.spec.docstrings:
        # ``__all__ = [...]``, ``__all__ += [...]``, ``__all__.extend(...)``; a computed one names nothing.
        exported = [
            n
            for node in root.named_children
            if _text(node).startswith("__all__")
            for n in _EXPORTED_RE.findall(_text(node))
        ]
        walker.exported = frozenset(exported) if exported else None
    walker.seq(root.named_children, doc=True)
    foldable = frozenset(walker.foldable) if detail.hide_private else frozenset()
    return normalize(walker.ranges, lines, foldable), walker.asked
