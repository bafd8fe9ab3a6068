"""headroom.engine: the compression pipeline, a pure library (no DB, no network, no threads).

``compress(messages, model=...)`` routes every tool result to the compressor for its kind (JSON, code,
numbered file listings, logs, search results, diffs, test output, stack traces, HTML, prose) and returns the
compressed messages with per-block decisions and the CCR entries that keep every original retrievable;
``compress_text(text, path=...)`` compresses one text as a tool result; ``retrieve(ref, store)`` gives an
original back. Output is a pure function of input and config.
``EngineConfig(lossless=True)`` applies only transforms that drop nothing (for clients that cannot retrieve);
``compress_lossless``/``expand_lossless`` are those transforms and their exact inverse. A tool result that
repeats an earlier one becomes a marker naming it; a :class:`BlockMemo` given to ``compress`` serves a content
the way it was first compressed (one project, every agent).
"""

from headroom.engine.api import BlockDecision, CompressResult, compress, count_messages, retrieve
from headroom.engine.ccr import (
    CCRCollision,
    CCREntry,
    CCRStore,
    MemoryCCRStore,
    RetrievalError,
    expand,
    find_refs,
    parse_line_range,
)
from headroom.engine.config import EngineConfig
from headroom.engine.errors import HeadroomError
from headroom.engine.lossless import compress_lossless, expand_lossless
from headroom.engine.memo import BlockMemo, MemoryBlockMemo, memo_key
from headroom.engine.text import compress_text, summary_line
from headroom.engine.tokens import TokenCounter, count_tokens

__all__ = [
    "BlockDecision",
    "BlockMemo",
    "CCRCollision",
    "CCREntry",
    "CCRStore",
    "CompressResult",
    "EngineConfig",
    "HeadroomError",
    "MemoryBlockMemo",
    "MemoryCCRStore",
    "RetrievalError",
    "TokenCounter",
    "compress",
    "compress_lossless",
    "compress_text",
    "count_messages",
    "count_tokens",
    "expand",
    "expand_lossless",
    "find_refs",
    "memo_key",
    "parse_line_range",
    "retrieve",
    "summary_line",
]
