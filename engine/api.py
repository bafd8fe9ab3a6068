"""``compress`` and ``retrieve``: the engine's two verbs.

``compress`` walks the request's text slots (``messages``), sends each tool result through the router and
rebuilds only the messages it changed (the input is never mutated; untouched messages are returned as the
same objects, so the first ``frozen`` messages, which the provider has already cached, are byte-identical).

Before routing, a tool result is checked twice. A *repeat* (the same text as an earlier tool result of this
request: a file read again, a command re-run) becomes a marker naming the first occurrence; it looks only
backwards, so a message's output never depends on what comes after it. Then the caller's *block memo*
(:mod:`headroom.engine.memo`) may serve the text this content was compressed to before, so every agent of
a project sees one content the same way.

Token counts are computed lazily, on first access to a count: the proxy's hot path needs the compressed
messages, not the arithmetic, and counting a 300 KB request costs more than compressing it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from headroom.engine.ccr import CCREntry, CCRStore, content_id, entry_marker, find_refs, join_entries, put_all
from headroom.engine.ccr import retrieve as _retrieve
from headroom.engine.compressors.base import Block, estimate_tokens, looks_binary
from headroom.engine.config import EngineConfig
from headroom.engine.memo import BlockMemo, memo_key
from headroom.engine.messages import Path, Slot, iter_slots, set_path, tool_hints, tool_path
from headroom.engine.router import Outcome, detect, is_file_read, route_cached
from headroom.engine.tokens import TokenCounter

_PER_MESSAGE = 3
_REPLY = 3
#: Keys whose values the model never reads as text (ids, signatures, opaque blobs).
_UNCOUNTED = frozenset(
    {
        "signature",
        "data",
        "id",
        "tool_use_id",
        "tool_call_id",
        "call_id",
        "type",
        "cache_control",
        "thoughtSignature",
        "encrypted_content",
        "role",
    }
)


@dataclass
class BlockDecision:
    """What happened to one text slot: kind, the compressor that won (``None``: left as is) and why."""

    message: int
    path: Path
    kind: str
    compressor: str | None
    reason: str | None
    dropped: Mapping[str, int]
    original: str = field(repr=False)
    text: str = field(repr=False)
    counter: TokenCounter = field(repr=False)

    @cached_property
    def tokens_in(self) -> int:
        return self.counter.count(self.original)

    @cached_property
    def tokens_out(self) -> int:
        return self.counter.count(self.text) if self.compressor else self.tokens_in

    def as_dict(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "path": list(self.path),
            "kind": self.kind,
            "compressor": self.compressor,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "reason": self.reason,
            "dropped": dict(self.dropped),
        }


def _count_value(value: Any, counter: TokenCounter) -> int:
    if isinstance(value, str):
        return counter.count(value)
    if isinstance(value, Mapping):
        return sum(_count_value(v, counter) for k, v in value.items() if k not in _UNCOUNTED)
    if isinstance(value, list):
        return sum(_count_value(v, counter) for v in value)
    return 0


def count_messages(messages: Sequence[Any], counter: TokenCounter) -> int:
    """Tokens of a message list: every text the model reads, plus a small per-message overhead."""
    total = _REPLY
    for msg in messages:
        total += _PER_MESSAGE + _count_value(msg, counter)
    return total


class CompressResult:
    """The compressed messages, per-slot decisions and CCR entries; token counts on demand."""

    def __init__(
        self,
        original: Sequence[Any],
        messages: list[Any],
        decisions: list[BlockDecision],
        entries: list[CCREntry],
        counter: TokenCounter,
    ) -> None:
        self.original = original
        self.messages = messages
        self.decisions = decisions
        self.ccr_entries = entries
        self.counter = counter

    @cached_property
    def tokens_before(self) -> int:
        return count_messages(self.original, self.counter)

    @cached_property
    def tokens_after(self) -> int:
        saved = sum(d.tokens_in - d.tokens_out for d in self.decisions if d.compressor)
        return self.tokens_before - saved

    @property
    def tokens_saved(self) -> int:
        return self.tokens_before - self.tokens_after

    @property
    def ratio(self) -> float:
        """Fraction of tokens saved (0.0 when nothing was compressed)."""
        return self.tokens_saved / self.tokens_before if self.tokens_before else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.counter.model,
            "tokens_before": self.tokens_before,
            "tokens_after": self.tokens_after,
            "saved": round(self.ratio, 4),
            "blocks": [d.as_dict() for d in self.decisions],
            "ccr_ids": [e.id for e in self.ccr_entries],
        }


def _compressible(slot: Slot, config: EngineConfig, last_user_message: int) -> bool:
    if slot.is_tool_result:
        return True
    return config.compress_messages_text and slot.role != "system" and slot.message != last_user_message


def _kind(block: Block, config: EngineConfig) -> str:
    """The content kind, as the router would name it, for a block the router does not see."""
    if looks_binary(block.text):
        return "binary"
    if len(block.text) > config.max_block_bytes:  # too large to sniff, as in the router
        return "text"
    return detect(block, config)


def _exact_file_read(block: Block, config: EngineConfig) -> bool:
    """A file read that ``file_read_policy="exact"`` promises to leave as it is (no repeat, no memo either)."""
    return config.file_read_policy == "exact" and is_file_read(block, detect(block, config))


class _FirstSeen:
    """The first slot with each text, found without hashing whole texts.

    A request re-sends the whole conversation, most of it frozen (the provider's cache): hashing every tool
    result to find repeats cost a pass over megabytes per request. A text's length, head and tail pick the
    few candidates, and only those are compared in full (equal texts are then compared once, byte for byte).
    A crowd of texts alike at both ends (a hostile request) would make that quadratic: past
    :data:`_CROWD` candidates, their group is a dict keyed by the whole text.
    """

    _EDGE = 64
    _CROWD = 8

    def __init__(self) -> None:
        self._slots: dict[tuple[int, str, str], list[Slot] | dict[str, Slot]] = {}

    def first(self, slot: Slot) -> Slot:
        text = slot.text
        key = (len(text), text[: self._EDGE], text[-self._EDGE :])
        group = self._slots.get(key)
        if group is None:
            self._slots[key] = [slot]
            return slot
        if isinstance(group, dict):
            return group.setdefault(text, slot)
        for earlier in group:
            if earlier.text == text:
                return earlier
        group.append(slot)
        if len(group) > self._CROWD:
            self._slots[key] = {s.text: s for s in group}  # distinct texts, in order: each maps to its first
        return slot


def _repeat(block: Block, first: Slot, config: EngineConfig) -> Outcome:
    """The marker for a tool result that repeats ``first``: the original stays one retrieve call away."""
    kind = _kind(block, config)
    entry = CCREntry(content_id(block.text), block.text, kind)
    marker = entry_marker(entry.id, f"same output as an earlier tool result (message {first.message})")
    lines = len(block.text.splitlines())
    return Outcome(marker, kind, "repeat", [entry], f"same as message {first.message}", {"lines": lines})


def _memo_hit(block: Block, key: str, memo: BlockMemo, store: CCRStore | None, config: EngineConfig) -> Outcome | None:
    """The memo's text for ``key``, unless a reference in it no longer redeems from ``store``.

    An original that expired from the store must not leave a dangling marker: the block is then routed
    again, and that compression, whose originals are stored afresh, replaces the memo's text.
    """
    text = memo.get(key)
    if text is None:
        return None
    if store is not None and any(store.get(ref.id) is None for ref in find_refs(text)):
        return None
    return Outcome(text, _kind(block, config), "memo", reason="served from the block memo")


def compress(
    messages: Sequence[Any],
    model: str | None = None,
    *,
    question: str | None = None,
    store: CCRStore | None = None,
    frozen: int = 0,
    config: EngineConfig | None = None,
    memo: BlockMemo | None = None,
) -> CompressResult:
    """Compress a request's messages (Anthropic, OpenAI Chat, OpenAI Responses items or Gemini contents).

    ``question`` overrides the question inferred for each tool result (the user's last words before it);
    ``frozen`` is how many leading messages the provider has cached: they are returned untouched. The
    originals behind every marker are put into ``store`` when one is given, and are always listed in
    ``result.ccr_entries``.

    A tool result identical to an earlier one (the earlier one may be frozen) becomes a marker naming the
    first occurrence (``config.dedup_repeats``; never in lossless mode, whose clients cannot retrieve).

    ``memo`` (given per request by the caller, e.g. one per project) makes the first compression of a content
    win: a block whose text the memo knows is served the memo's text, whatever this request's question and
    tool call are, though the router would weigh them (a grep pattern, a file the question names). That is
    deliberate: Claude and Codex reading the same file get the same bytes, and a conversation that is
    compressed again (a restarted proxy) gets what it got before. A hit adds no CCR entries: its originals
    are already stored, and a hit whose references ``store`` no longer holds is ignored. A miss that the
    router changes is put into the memo. Repeats are decided first and never consult the memo.
    """
    config = config or EngineConfig()
    counter = TokenCounter(model, config.claude_token_factor)
    if not isinstance(messages, Sequence) or isinstance(messages, str | bytes):
        raise TypeError(f"messages must be a list of messages, not {type(messages).__name__}")
    slots = list(iter_slots(messages))
    last_user = max((s.message for s in slots if s.role == "user" and not s.is_tool_result), default=-1)
    dedup = config.dedup_repeats and not config.lossless
    #: The first tool result with each text, frozen ones included: slots come in message order, so a
    #: repeat only ever points backwards and appending messages never changes an earlier one's output.
    seen = _FirstSeen()
    out = list(messages)
    decisions: list[BlockDecision] = []
    entries: list[CCREntry] = []
    for slot in slots:
        first = seen.first(slot) if dedup and slot.is_tool_result else slot
        if slot.message < frozen or not _compressible(slot, config, last_user):
            continue
        block = Block(
            slot.text, slot.tool.name if slot.tool else None, slot.tool.input if slot.tool else {}, tool_path(slot.tool)
        )
        outcome: Outcome | None = None
        key: str | None = None
        # Below min_tokens the router leaves a block alone: a marker or a memo lookup would not pay.
        if (
            (first is not slot or memo is not None)
            and estimate_tokens(slot.text) >= config.min_tokens
            and not _exact_file_read(block, config)
        ):
            if first is not slot:
                outcome = _repeat(block, first, config)
            elif memo is not None:
                key = memo_key(slot.text, config)
                outcome = _memo_hit(block, key, memo, store, config)
        if outcome is None:
            outcome = route_cached(block, question or slot.question, tool_hints(slot.tool), config)
            if memo is not None and key is not None and outcome.changed:
                memo.put(key, outcome.text, [e.id for e in outcome.entries])
        if outcome.changed:
            out[slot.message] = set_path(out[slot.message], slot.path, outcome.text)
            entries.extend(outcome.entries)
        decisions.append(
            BlockDecision(
                slot.message,
                slot.path,
                outcome.kind,
                outcome.compressor,
                outcome.reason,
                outcome.dropped,
                slot.text,
                outcome.text,
                counter,
            )
        )
    unique = list(join_entries(entries).values())
    if store is not None:
        put_all(store, unique)
    return CompressResult(messages, out, decisions, unique, counter)


def retrieve(
    ref: str,
    store: CCRStore,
    *,
    query: str | None = None,
    lines: tuple[int, int] | None = None,
) -> str:
    """The original behind a marker's ``hr:…`` reference: whole and byte-exact, a line range, or a query's hits."""
    return _retrieve(store, ref, query=query, lines=lines)
