"""Rank corrections after fusion: the item a query is about comes before the items that mention it.

Rank fusion scores an item by how well its text and its vector match the query. A short prompt such as "fix
the retry in src/http/retry.py, it gives up too early" is dense in the query's words, so it outranked the file
it names: in a shared project the file three agents had read came 7th for its own topic, below the prompts that
mention it (bench/README.md, Memory search quality). Two corrections, applied to the fused front runners:

1. **Named.** An item whose path the query names (the path, its file name, or every word of its file name's
   stem, e.g. "retry" and "http" for ``src/http/retry.py``) gets one extra first-place vote, ``1 / (k + 1)``:
   enough to lead an otherwise close race, not to lift an item that matched nothing else.
2. **Source before mention.** When a front runner's text names another front runner's path (a prompt, a command
   output, a note about a file), the named item is placed just above the best item that mentions it: the
   mention was found because of what it says about the source, and the source is what holds it in full.

Both are pure functions of the query, the items and their scores, so they hold on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath

from headroom.memory.records import Item

#: Kinds whose title is a path the item holds in full (a fetched page's title is often a page title, not a URL).
SOURCE_KINDS = frozenset({"file_read"})
#: How much of a mention's text is searched for the sources' names (a command output may be a megabyte).
MENTION_CHARS = 20_000
_WORD = re.compile(r"[a-z0-9]+")
#: A nudge above the mention (scores are sums of 1/(60+rank): ~0.016 at best).
_ABOVE = 1e-6


def _name_words(path: str) -> tuple[str, str, set[str]]:
    """(the path lowercased, its file name, the words of the file name's stem and of its folder's name)."""
    lowered = path.lower().rstrip("/")
    pure = PurePosixPath(lowered)
    words = set(_WORD.findall(pure.stem))
    if pure.parent.name:
        words |= set(_WORD.findall(pure.parent.name))
    return lowered, pure.name, {w for w in words if len(w) > 1}


def named(query: str, item: Item) -> bool:
    """Whether ``query`` names ``item``'s path: the path, its file name, or all of its stem's words."""
    if item.kind not in SOURCE_KINDS or not item.title:
        return False
    path, name, _ = _name_words(item.title)
    q = query.lower()
    if path in q or (len(name) > 4 and name in q):
        return True
    stem_words = set(_WORD.findall(PurePosixPath(path).stem)) - {""}
    return bool(stem_words) and stem_words <= set(_WORD.findall(q)) and len("".join(stem_words)) > 3


def rerank(query: str, items: Mapping[int, Item], scores: dict[int, float], rrf_k: int) -> None:
    """Apply both corrections to ``scores`` (in place) for the loaded front runners ``items``."""
    bonus = 1 / (rrf_k + 1)
    sources: dict[int, tuple[str, str]] = {}
    for item_id, item in items.items():
        if item.kind in SOURCE_KINDS and item.title:
            path, name, _ = _name_words(item.title)
            sources[item_id] = (path, name)
            if named(query, item):
                scores[item_id] += bonus
    if not sources:
        return
    # Best mentions first, so a source is lifted above the strongest item that names it.
    for mention_id in sorted(items, key=lambda i: -scores[i]):
        mention = items[mention_id]
        if mention.kind in SOURCE_KINDS:
            continue
        text = mention.content[:MENTION_CHARS].lower()
        for source_id, (path, name) in sources.items():
            if scores[source_id] <= scores[mention_id] and (path in text or (len(name) > 4 and name in text)):
                scores[source_id] = scores[mention_id] + _ABOVE
