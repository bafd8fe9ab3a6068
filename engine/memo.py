"""The block memo: a content the store already holds is served the same way to every agent.

Claude Code, Codex and Gemini working on one project read the same files and run the same commands. Without
a memo each request compresses such a block on its own, and the result depends on that request's question
and tool call, so the same file reaches each agent (and each new conversation) in a different shape. With a
memo, the first compression of a content is remembered under :func:`memo_key` and every later request that
carries the same text under the same settings is given that very text.

The memo is an interface the caller passes to ``compress`` per request (the daemon scopes it to a project);
the engine only reads and writes through it and never keeps one itself. :class:`MemoryBlockMemo` is the
dict-backed implementation for tests and the CLI.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import fields
from typing import Protocol, runtime_checkable

from headroom.engine.config import EngineConfig

#: Bumped when the key's layout changes, so an old persisted memo is missed rather than misread.
_KEY_VERSION = "headroom-memo-1"
#: Config fields that never change how one block is compressed: leaving them out of the key lets a memo
#: serve requests that differ only in them (token accounting; repeats are decided per request, not per block).
_NEUTRAL_FIELDS = frozenset({"claude_token_factor", "dedup_repeats"})


@runtime_checkable
class BlockMemo(Protocol):
    """Compressed texts by :func:`memo_key`.

    ``put`` replaces what a key held: ``compress`` calls it only on a miss, or when the text held no longer
    redeems (its original expired from the CCR store), and then the fresh compression must take its place.
    """

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, text: str, entry_ids: Sequence[str]) -> None: ...


def _canonical(value: object) -> str:
    # A frozenset's repr follows string hashing, which changes between processes; a persisted memo must not.
    if isinstance(value, frozenset | set):
        return repr(sorted(value))
    return repr(value)


def memo_key(text: str, config: EngineConfig) -> str:
    """SHA-256 (hex) of the block text and every config field that can change its compressed form.

    Fields are included by default (a new knob is assumed to matter until it is listed as neutral), and
    serialised the same way in every process, so a memo kept in a database stays valid across restarts.
    """
    h = hashlib.sha256()
    h.update(_KEY_VERSION.encode())
    h.update(b"\x00")
    for f in sorted(fields(config), key=lambda f: f.name):
        if f.name in _NEUTRAL_FIELDS:
            continue
        h.update(f"{f.name}={_canonical(getattr(config, f.name))}".encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


class MemoryBlockMemo:
    """A dict-backed memo for one process (tests, the CLI).

    ``max_entries`` bounds memory: the least recently used key is dropped first.
    """

    def __init__(self, max_entries: int | None = None) -> None:
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._entry_ids: dict[str, tuple[str, ...]] = {}
        self._max = max_entries

    def get(self, key: str) -> str | None:
        text = self._texts.get(key)
        if text is not None:
            self._texts.move_to_end(key)
        return text

    def put(self, key: str, text: str, entry_ids: Sequence[str]) -> None:
        self._texts[key] = text
        self._texts.move_to_end(key)
        self._entry_ids[key] = tuple(entry_ids)
        if self._max is not None:
            while len(self._texts) > self._max:
                old, _ = self._texts.popitem(last=False)
                del self._entry_ids[old]

    def entry_ids(self, key: str) -> tuple[str, ...]:
        """The CCR ids the text for ``key`` points into (empty when the key is unknown)."""
        return self._entry_ids.get(key, ())

    def __len__(self) -> int:
        return len(self._texts)
