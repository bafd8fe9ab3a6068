"""The content router: which compressor gets a block, and what happens when it cannot cope.

Detection asks each compressor's cheap ``sniff`` in a fixed priority order (structured formats before loose
ones: JSON, numbered listings, diffs, test output, search results, stack traces, logs, HTML, code); prose is
the fallback. A block a harness wrapped in a few lines of preamble (Codex's ``Chunk ID: … Output:``, Gemini's
``<untrusted_context>``) is split: the preamble stays verbatim and the rest is routed on its own.

Each kind has a chain: when a compressor raises :class:`Skip`, or fails in any way, or saves too little, the
next one is tried; when none fits, the block passes through unchanged with the reason recorded. The router
never raises into the caller and rejects any output that shrank without leaving a retrieval marker.

In lossless mode (``EngineConfig.lossless``, for clients that cannot call the retrieval tool) no compressor
runs: a block is rewritten only by a transform of :mod:`headroom.engine.lossless`, which drops nothing and
leaves no marker, and only when that saves at least :data:`MIN_SAVING`.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import cast

from headroom.engine.ccr import ID_HEX, REF_RE, CCREntry, text_digest
from headroom.engine.compressors.base import Block, Compressor, Context, Skip, estimate_tokens, looks_binary
from headroom.engine.config import EngineConfig
from headroom.engine.lossless import lossless_transform

log = logging.getLogger(__name__)

_MODULES: dict[str, tuple[str, str]] = {
    "json": ("jsonc", "JsonCompressor"),
    "listing": ("listing", "ListingCompressor"),
    "diff": ("diff", "DiffCompressor"),
    "tests": ("testout", "TestOutputCompressor"),
    "search": ("search", "SearchCompressor"),
    "trace": ("traces", "TraceCompressor"),
    "logs": ("logs", "LogCompressor"),
    "html": ("html", "HtmlCompressor"),
    "code": ("code", "CodeCompressor"),
    "text-model": ("text_model", "ModelTextCompressor"),
    "text": ("text", "TextCompressor"),
}
#: Sniff order: the first compressor whose ``sniff`` says yes owns the block.
SNIFF_ORDER = ("json", "listing", "diff", "tests", "search", "trace", "logs", "html", "code")
#: What to try after the owner gives up (prose always comes last).
_FALLBACKS: dict[str, tuple[str, ...]] = {"tests": ("logs",), "trace": ("logs",), "search": ("json", "logs")}
#: Kinds whose every line may matter: when their own compressor passes, the block stays as it is rather
#: than being thinned as prose (a diff's changed lines are the point of it).
_NO_PROSE_FALLBACK = frozenset({"diff"})
#: A compression must save at least this fraction, or the original is cheaper to keep than to explain.
MIN_SAVING = 0.1
_PREAMBLE_LINES = 8
_PREAMBLE_WIDTH = 300
#: Kinds a preamble may hide (code is not one: prose with a preamble is still prose).
_STRUCTURED = tuple(k for k in SNIFF_ORDER if k != "code")

_instances: dict[str, Compressor | None] = {}
_lock = threading.Lock()


def compressor(kind: str) -> Compressor | None:
    """The compressor for ``kind`` (imported on first use; ``None`` when its module is unavailable)."""
    if kind in _instances:
        return _instances[kind]
    with _lock:
        if kind not in _instances:
            module_name, class_name = _MODULES[kind]
            try:
                module = importlib.import_module(f"headroom.engine.compressors.{module_name}")
                _instances[kind] = cast(Compressor, getattr(module, class_name)())
            except (ImportError, AttributeError) as exc:  # a missing optional piece must not break the engine
                log.warning("compressor %s unavailable: %s", kind, exc)
                _instances[kind] = None
    return _instances[kind]


def _sniff(kind: str, block: Block) -> bool:
    comp = compressor(kind)
    if comp is None:
        return False
    try:
        return bool(comp.sniff(block))
    except Exception:  # a sniffer bug must not take the block down with it
        log.debug("sniff %s failed", kind, exc_info=True)
        return False


def detect(block: Block, config: EngineConfig | None = None, kinds: tuple[str, ...] = SNIFF_ORDER) -> str:
    """The content kind of ``block`` (``text`` when nothing more specific fits), asking only ``kinds``."""
    disabled = config.disabled if config else frozenset()
    if block.path is not None and "code" in kinds and "code" not in disabled:
        # A file the tool names by path is what its extension says, whatever its text mentions (a Python
        # module whose docstrings quote a traceback is still code).
        if "listing" not in disabled and _sniff("listing", block):
            return "listing"
        if _sniff("code", block):
            return "code"
    for kind in kinds:
        if kind not in disabled and _sniff(kind, block):
            return kind
    return "text"


@dataclass
class Outcome:
    """What became of one block: its new text, the kind, the compressor that won, and why."""

    text: str
    kind: str
    compressor: str | None
    entries: list[CCREntry] = field(default_factory=list)
    reason: str | None = None
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.compressor is not None

    def copy(self) -> Outcome:
        """A copy whose lists a caller may change without touching the cached one."""
        return Outcome(self.text, self.kind, self.compressor, list(self.entries), self.reason, dict(self.dropped))


def _chain(kind: str, config: EngineConfig) -> list[str]:
    chain = [kind, *_FALLBACKS.get(kind, ())]
    if kind in _NO_PROSE_FALLBACK:
        return [k for k in chain if k not in config.disabled]
    if config.text_model:
        chain.append("text-model")
    chain.append("text")
    out: list[str] = []
    for k in chain:
        base = "text" if k == "text-model" else k
        if k not in out and base not in config.disabled:
            out.append(k)
    return out


def _attempt(
    kind: str, block: Block, question: str | None, hints: str, config: EngineConfig, block_id: str | None
) -> Outcome | str:
    """Run one compressor; an :class:`Outcome` on success, else the reason it was not used."""
    comp = compressor(kind)
    if comp is None:
        return f"{kind}: unavailable"
    name = "text" if kind == "text-model" else kind
    ctx = Context(block.text, question=question, hints=hints, config=config, kind=name, original_id=block_id)
    try:
        out: object = comp.compress(block, ctx)
    except Skip as exc:
        return f"{kind}: {exc}"
    except RecursionError:
        return f"{kind}: nesting too deep"
    except Exception as exc:  # never raise into the caller: record and fall back
        log.debug("compressor %s failed", kind, exc_info=True)
        return f"{kind}: failed ({type(exc).__name__}: {exc})"
    if not isinstance(out, str):  # guards compressors that break the protocol
        return f"{kind}: returned {type(out).__name__}"
    if len(out) >= len(block.text) * (1 - MIN_SAVING):
        return f"{kind}: saved too little"
    if not ctx.entries or REF_RE.search(out) is None:
        return f"{kind}: dropped content without a retrieval marker"
    return Outcome(out, name, kind, list(ctx.entries), None, dict(ctx.dropped))


def _head_tail(block: Block, config: EngineConfig, block_id: str | None) -> Outcome:
    """A block too large to parse: keep the head and the tail, one marker for the middle."""
    ctx = Context(block.text, config=config, kind="text", original_id=block_id)
    lines = block.text.splitlines(keepends=True)
    head, tail = 200, 100
    if len(lines) <= head + tail + 1:  # a few giant lines: cut by characters instead
        budget = 20_000
        marker = ctx.stash(block.text[budget:-budget], f"{len(block.text) - 2 * budget} characters elided")
        text = block.text[:budget] + "\n" + marker + "\n" + block.text[-budget:]
    else:
        marker = ctx.elide_lines(head + 1, len(lines) - tail)
        text = "".join(lines[:head]) + marker + "\n" + "".join(lines[-tail:])
    return Outcome(text, "text", "head-tail", list(ctx.entries), f"larger than {config.max_block_bytes} bytes")


def _split_preamble(block: Block, config: EngineConfig) -> tuple[str, Block, str, str] | None:
    """(preamble, rest, postamble, kind) when a short preamble hides a structured block."""
    lines = block.text.splitlines(keepends=True)
    for k in range(1, min(_PREAMBLE_LINES, len(lines) - 3) + 1):
        if len(lines[k - 1]) > _PREAMBLE_WIDTH:  # a preamble is a few short lines, not content
            break
        rest_lines = lines[k:]
        post = ""
        if rest_lines and rest_lines[0].lstrip().startswith(("[", "{")):
            # JSON followed by a harness trailer: cut after the last line that closes a bracket.
            end = len(rest_lines)
            while end > 1 and not rest_lines[end - 1].rstrip().endswith(("]", "}")):
                end -= 1
            post = "".join(rest_lines[end:])
            rest_lines = rest_lines[:end]
        rest = Block("".join(rest_lines), block.tool_name, block.tool_input, block.path)
        kind = detect(rest, config, _STRUCTURED)
        if kind != "text":
            return "".join(lines[:k]), rest, post, kind
    return None


_READ_TOOLS = ("read", "view", "cat", "open")


def is_file_read(block: Block, kind: str) -> bool:
    """A file the agent read (and may edit next by exact text): a numbered listing or a read tool's result."""
    if kind == "listing":
        return True
    name = (block.tool_name or "").lower()
    return block.path is not None and any(word in name for word in _READ_TOOLS)


def _route_lossless(block: Block, config: EngineConfig) -> Outcome:
    """Lossless mode: the shortest lossless transform when it saves enough, else the block as it is."""
    text = block.text
    if len(text) > config.max_block_bytes:
        return Outcome(text, "text", None, reason=f"lossless mode: larger than {config.max_block_bytes} bytes")
    kind = detect(block, config)
    file_read = is_file_read(block, kind)
    if config.file_read_policy == "exact" and file_read:
        return Outcome(text, kind, None, reason="lossless mode: file_read_policy=exact")
    try:
        # A file the agent may edit next by exact text gets only transforms that give its bytes back.
        got = lossless_transform(text, byte_exact=file_read, skip=config.disabled)
    except Exception as exc:  # never raise into the caller
        log.debug("lossless transform failed", exc_info=True)
        return Outcome(text, kind, None, reason=f"lossless mode: failed ({type(exc).__name__}: {exc})")
    if got is None:
        return Outcome(text, kind, None, reason="lossless mode: no lossless transform fits")
    name, out = got
    if len(out) >= len(text) * (1 - MIN_SAVING):
        return Outcome(text, kind, None, reason=f"lossless mode: {name} saved too little")
    return Outcome(out, kind, f"lossless-{name}", reason="lossless mode")


def route(block: Block, question: str | None, hints: str, config: EngineConfig, block_id: str | None = None) -> Outcome:
    """Compress one block with the best compressor that fits (never raises).

    ``block_id`` is ``content_id(block.text)`` when the caller has computed it (saves hashing the text again).
    """
    text = block.text
    if estimate_tokens(text) < config.min_tokens:
        return Outcome(text, "text", None, reason="below min_tokens")
    if looks_binary(text):
        return Outcome(text, "binary", None, reason="binary data")
    if config.lossless:
        return _route_lossless(block, config)
    if len(text) > config.max_block_bytes:
        return _head_tail(block, config, block_id)
    kind = detect(block, config)
    if config.file_read_policy == "exact" and is_file_read(block, kind):
        return Outcome(text, kind, None, reason="file_read_policy=exact")
    pre, post = "", ""
    if kind in ("text", "code") and block.path is None:
        split = _split_preamble(block, config)
        if split is not None:
            pre, block, post, kind = split
            block_id = None  # the section is an original of its own
    reasons: list[str] = []
    for k in _chain(kind, config):
        got = _attempt(k, block, question, hints, config, block_id)
        if isinstance(got, Outcome):
            got.text = pre + got.text + post
            got.reason = "; ".join(reasons) or None
            return got
        reasons.append(got)
    return Outcome(text, kind, None, reason="; ".join(reasons))


_CACHE_SIZE = 512
_CacheKey = tuple[str, str | None, str, str | None, str | None, EngineConfig]
_cache: OrderedDict[_CacheKey, Outcome] = OrderedDict()


def route_cached(block: Block, question: str | None, hints: str, config: EngineConfig) -> Outcome:
    """:func:`route` behind a small LRU keyed on everything the result depends on.

    Output is a pure function of the key, so the cache changes speed only: an agent re-sends its whole
    history every turn and the same tool results come back again and again. The text enters the key as its
    whole SHA-256 digest, whose first digits are the content id a compression needs anyway (that of the
    original its markers point at): one pass over the text serves both.
    """
    digest = text_digest(block.text)
    key = (digest, question, hints, block.path, block.tool_name, config)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
    if hit is not None:
        return hit.copy()
    outcome = route(block, question, hints, config, digest[:ID_HEX])
    with _lock:
        _cache[key] = outcome
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return outcome.copy()
