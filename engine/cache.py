"""The frozen prefix: what was already sent in a conversation is sent again byte for byte.

Providers cache a request's prefix; changing one byte of an earlier message turns every later cache read into
a cache write. The engine is deterministic, so compressing the same message again gives the same bytes, but
a proxy must not depend on that alone (a config reload, a newer engine, a question that only later became
known). :class:`PrefixCache` remembers, for every message the proxy forwarded, what it forwarded instead,
keyed by a hash chain over the conversation so far: the key of message *i* covers messages 0..i, so two
conversations share entries exactly as long as their histories are identical, and no conversation id is
needed (none of the three wire formats carries a reliable one).

A request is then split in two: the leading messages whose chain keys are known (the frozen prefix, replaced
by what was sent before) and the rest (new content, compressed now). Memory is bounded by an LRU over keys
and over the bytes of the stored copies; messages the proxy left unchanged cost a key and no copy. An
evicted entry only means the engine compresses that message again, deterministically.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import orjson

_UNCHANGED = object()


def _canonical(message: Any) -> bytes:
    try:
        return orjson.dumps(message)
    except (TypeError, orjson.JSONEncodeError):  # ints beyond 64 bits and the like
        return repr(message).encode("utf-8", "surrogatepass")


def chain_keys(root: str, messages: Sequence[Any]) -> list[bytes]:
    """Key *i* hashes ``root`` and messages 0..i: equal keys mean equal conversations up to *i*."""
    keys: list[bytes] = []
    state = hashlib.blake2b(root.encode(), digest_size=16).digest()
    for message in messages:
        state = hashlib.blake2b(state + _canonical(message), digest_size=16).digest()
        keys.append(state)
    return keys


#: What one entry costs besides its stored copy (its key, the LRU's node and tuple), measured with tracemalloc:
#: counted in ``bytes`` so that ``max_bytes`` bounds the memory actually held.
ENTRY_OVERHEAD = 160


class PrefixCache:
    """What the proxy sent for each message it has seen, under its conversation-chain key (LRU-bounded).

    A changed message is kept as its serialized JSON, not as the Python object: a parsed message takes several
    times its JSON size in memory, so a cap counted in JSON bytes would not bound the process. A hit parses it
    back (orjson, well under a millisecond for a large tool result); the bytes sent are the same either way.
    """

    def __init__(self, max_entries: int = 200_000, max_bytes: int = 64 << 20) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._sent: OrderedDict[bytes, tuple[Any, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sent)

    def frozen(self, keys: Sequence[bytes], messages: Sequence[Any]) -> tuple[int, list[Any]]:
        """How many leading messages were seen before, and those messages as they were sent then."""
        sent: list[Any] = []
        for key, message in zip(keys, messages):
            entry = self._sent.get(key)
            if entry is None:
                break
            self._sent.move_to_end(key)
            stored = entry[0]
            sent.append(message if stored is _UNCHANGED else orjson.loads(stored) if type(stored) is bytes else stored)
        return len(sent), sent

    def remember(self, keys: Sequence[bytes], originals: Sequence[Any], sent: Sequence[Any]) -> None:
        """Record what was forwarded for each original (the same object means: forwarded unchanged)."""
        for key, original, out in zip(keys, originals, sent):
            old = self._sent.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            if out is original:
                self._sent[key] = (_UNCHANGED, ENTRY_OVERHEAD)
            else:
                try:  # a copy: orjson's result keeps its whole output buffer (16 KiB at least) allocated
                    stored: Any = memoryview(orjson.dumps(out)).tobytes()
                except (TypeError, orjson.JSONEncodeError):  # not JSON-clean: keep the object (rare)
                    stored = out
                    size = len(_canonical(out)) * 4  # objects take several times their JSON size
                else:
                    size = len(stored)
                self._sent[key] = (stored, size + ENTRY_OVERHEAD)
            self.bytes += self._sent[key][1]
        while self._sent and (len(self._sent) > self.max_entries or self.bytes > self.max_bytes):
            self.bytes -= self._sent.popitem(last=False)[1][1]
