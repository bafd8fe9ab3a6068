"""Adapter for the shared compression benchmark (../shared/bench/run.py).

    python ../shared/bench/run.py --adapter bench/headroom_adapter.py:compress

``compress`` runs headroom's engine with one in-process CCR store; ``retrieve`` returns the originals
behind every marker left in the compressed messages, which is what the model gets by calling
``headroom_retrieve`` on each of them. ``compress_cold`` empties the outline cache before every call: the
harness's "fresh" input differs from the last only by trailing blanks after each tool result, which a
listing's outline cache does not see, so this is the figure for a file never read before.
"""

from __future__ import annotations

import json
from typing import Any

from headroom.engine import CompressResult, MemoryCCRStore, expand
from headroom.engine import compress as _compress
from headroom.engine.compressors import _outline_cache

STORE = MemoryCCRStore()


def compress(messages: list[dict[str, Any]], model: str, **kwargs: Any) -> CompressResult:
    return _compress(messages, model, store=STORE, **kwargs)


def compress_cold(messages: list[dict[str, Any]], model: str, **kwargs: Any) -> CompressResult:
    _outline_cache.clear()
    return _compress(messages, model, store=STORE, **kwargs)


def retrieve(compressed_messages: list[dict[str, Any]]) -> str:
    return expand(STORE, json.dumps(compressed_messages, ensure_ascii=False))
