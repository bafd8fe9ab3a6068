"""JSON tool output as compact tables: the schema once, one line per record, the bulk one retrieve away.

API responses spend most of their tokens on structure and on fields no answer needs: the same keys repeated
per record, URLs derivable from the record's number, opaque node ids, avatar links, nulls. An array of
records therefore becomes a table (nested objects flattened to dotted columns, label objects to their
names) after the columns that say nothing per row are taken out and said once: always-empty, constant,
id/hash noise, and URL fields that follow ``template{column}``. Identifying fields (number, name, title,
state, labels) always stay verbatim so a filter question is answered from the table alone; long free text
(issue bodies, tracebacks) shrinks to a preview line plus a stash marker, except on rows that look like
trouble (error status, warning type), which stay whole. Prometheus range queries become one summary line
per series (stats, level changes, spikes) because 60 raw samples per series are rarely read one by one.

Everything is deterministic (insertion order only) and the header always carries a marker for the exact
original. Parsing is bounded: orjson refuses deep nesting, the fallback's RecursionError is caught, and the
walk below never recurses deeper than :data:`MAX_DEPTH`.

This module parses, checks the limits and dispatches; the work lives in private modules, one concern each:
:mod:`._json_values` (a value's cell text), :mod:`._json_render` (the generic object walk),
:mod:`._json_columns` (which columns of a record array carry nothing per row), :mod:`._json_table` (the
table's notes and rows) and :mod:`._json_series` (Prometheus series summaries).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import orjson

from headroom.engine.compressors._json_render import Renderer
from headroom.engine.compressors._json_series import prometheus, prometheus_lines
from headroom.engine.compressors._json_values import is_scalar
from headroom.engine.compressors.base import Block, Context, Skip
from headroom.engine.compressors.search import is_ripgrep_json

#: Smaller documents are cheaper verbatim than as a table plus markers.
MIN_CHARS = 400
#: Nesting deeper than this is not walked (the renderer recurses once per level).
MAX_DEPTH = 60
#: Output must be at most this fraction of the input, or the block passes through.
MAX_RATIO = 0.9


class JsonCompressor:
    """Tables for arrays of records, summaries for metric series, the exact original behind one marker."""

    kind: ClassVar[str] = "json"

    def sniff(self, block: Block) -> bool:
        head = block.text[:200].lstrip()
        if head.startswith("{"):
            return not is_ripgrep_json(block.text)  # a search result first: the search compressor renders it
        if head.startswith("["):
            # "[Sun Dec 04 ...] [notice]" is a log line, not an array.
            rest = head[1:].lstrip()
            return not rest or rest[0] in '{["]-0123456789tfn'
        return False

    def compress(self, block: Block, ctx: Context) -> str:
        try:
            return _compress(block, ctx)
        except Skip:
            raise
        except RecursionError as exc:
            raise Skip("json nesting too deep") from exc
        except Exception as exc:  # the contract: a compressor only ever raises Skip
            raise Skip(f"json compressor failed: {type(exc).__name__}: {exc}") from exc


# -- parsing ---------------------------------------------------------------------------------------------


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "recursion" in str(exc).lower():
            raise Skip("json nesting too deep") from exc
        first_error = str(exc)
    except (TypeError, ValueError) as exc:  # lone surrogates are refused by orjson, accepted by json
        first_error = str(exc)
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise Skip("json nesting too deep") from exc
    except ValueError:
        raise Skip(f"invalid json: {first_error}") from None


def _parse(text: str) -> tuple[Any, bool]:
    """The document and whether it was JSON lines."""
    stripped = text.strip()
    try:
        return _loads(stripped), False
    except Skip as whole_error:
        if "too deep" in str(whole_error):
            raise
        lines = [ln for ln in stripped.splitlines() if ln.strip()]
        if len(lines) < 2 or not all(ln.lstrip().startswith(("{", "[")) for ln in lines):
            raise
        try:
            return [_loads(ln) for ln in lines], True
        except Skip:
            raise whole_error from None


def _depth_exceeds(doc: Any, limit: int) -> bool:
    """Iterative depth check, so the recursive renderer below can never overflow the stack."""
    level: list[Any] = [doc]
    depth = 1
    while level:
        if depth > limit:
            return True
        below: list[Any] = []
        for node in level:
            children = node.values() if isinstance(node, dict) else node
            below.extend([v for v in children if isinstance(v, (dict, list))])
        level = below
        depth += 1
    return False


# -- the walk ---------------------------------------------------------------------------------------------


def _compress(block: Block, ctx: Context) -> str:
    text = block.text
    if len(text) < MIN_CHARS:
        raise Skip("json too small to pay for a marker")
    doc, ndjson = _parse(text)
    if is_scalar(doc):
        raise Skip("json scalar")
    if _depth_exceeds(doc, MAX_DEPTH):
        raise Skip(f"json nesting deeper than {MAX_DEPTH}")
    renderer = Renderer(ctx)
    prom = prometheus(doc)
    if prom is not None:
        body = prometheus_lines(ctx, doc, prom)
        what = f"original JSON, prometheus {prom[0]}, {len(prom[1])} series"
    elif isinstance(doc, list):
        body = renderer.top_list(doc)
        noun = "line" if ndjson else ("record" if any(isinstance(x, dict) for x in doc) else "item")
        what = f"original {'NDJSON' if ndjson else 'JSON'}, {len(doc)} {noun}{'' if len(doc) == 1 else 's'}"
    else:
        body = renderer.dict_lines(doc, 0)
        what = f"original JSON object, {len(doc)} keys"
    out = "\n".join([ctx.whole_marker(what), *body])
    if len(out) > len(text) * MAX_RATIO:
        raise Skip("json restructuring saves too little")
    return out
