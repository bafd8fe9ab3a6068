"""Request bodies in, smaller request bodies out: decoding, the frozen prefix, the engine, re-encoding.

Fail open everywhere: a body that is not JSON, an encoding we cannot read, a conversation in a shape the
engine does not know, an exception inside the engine: the original bytes go upstream untouched and the
reason is logged and counted. A body the proxy did not change is forwarded as the very bytes it received.

Cache safety has two layers. The engine is deterministic, and :class:`~headroom.engine.cache.PrefixCache`
remembers what was sent for every message seen: the leading messages of a request that were seen before are
replaced by exactly what went upstream then (frozen), and only the rest is compressed.

Across agents, the block memo (:class:`~headroom.memory.memo_store.DBBlockMemo`) makes a content that any
agent of the same project sent before come out as the same bytes with the same CCR ids; the project is read
from the request itself (:mod:`headroom.daemon.proxy.project`).
"""

from __future__ import annotations

import json
import logging
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import orjson
import zstandard

from headroom.daemon.providers import Route
from headroom.daemon.proxy.project import request_project
from headroom.daemon.proxy.savings import SavingsPolicy, conversation_key
from headroom.engine import CCRStore, EngineConfig, TokenCounter, compress, count_messages
from headroom.engine.cache import PrefixCache, chain_keys
from headroom.engine.memo import BlockMemo
from headroom.memory.ccr_store import FileCCRStore

if TYPE_CHECKING:
    from headroom.memory.memo_store import DBBlockMemo

log = logging.getLogger("headroom.proxy")


@dataclass
class Rewritten:
    """One request body after the proxy looked at it."""

    body: bytes
    changed: bool = False
    decoded: bool = False  # the body was sent decoded (its content-encoding must be dropped)
    model: str | None = None
    stream: bool = False
    blocks: int = 0
    frozen: int = 0
    tokens: Callable[[], tuple[int, int, int]] | None = None  # see Counts
    skipped: str | None = None  # why nothing was compressed, when it was not the normal case
    size: int = 0  # the decoded body's length: what the parsed request (held by ``tokens``) weighs, roughly
    conversation: str | None = None  # the conversation's hash (see savings.conversation_key)
    project: str | None = None
    holdout: bool = False  # sent untouched on purpose (the holdout group)
    messages: int = 0  # the conversation's length in this request (the watchdog compares it with ``frozen``)
    fallback: str | None = None  # the watchdog switched this conversation to lossless ("cache" or "cost")


#: Output is produced this much at a time, so a body over its cap is refused after at most one step past it.
_DECODE_STEP = 1 << 20
#: The largest zstd window a body may ask for (every level but --ultra fits); a bigger one is refused, not allocated.
_ZSTD_MAX_WINDOW = 1 << 24


class BodyTooLarge(Exception):
    """A request body that decodes to more than the proxy's cap (answered 413, never forwarded)."""


def decode_body(raw: bytes, encoding: str, limit: int | None = None) -> bytes | bytearray:
    """The request body without its content-encoding (zstd, gzip, deflate); ValueError when unreadable.

    Decoding streams, a step at a time, and stops with :class:`BodyTooLarge` as soon as the output passes
    ``limit``: a 30 KB zstd body can decode to a gigabyte, and the cap on plain bodies must hold for decoded
    ones too (the memory, and the CPU spent before refusing, stay bounded by the cap).
    """
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    cap = limit if limit is not None else 1 << 62
    try:
        if encoding == "zstd":
            return _unzstd(raw, cap)
        if encoding in ("gzip", "x-gzip"):
            return _inflate(raw, lambda: zlib.decompressobj(wbits=31), cap, members=True)
        if encoding == "deflate":
            return _inflate(raw, zlib.decompressobj, cap, members=False)
    except BodyTooLarge:
        raise
    except Exception as exc:
        raise ValueError(f"cannot decode a {encoding} body: {exc}") from exc
    raise ValueError(f"unsupported content-encoding {encoding!r}")


def _too_large(cap: int) -> BodyTooLarge:
    return BodyTooLarge(f"request body over {cap / (1 << 20):g} MB once decoded")


def _unzstd(raw: bytes, cap: int) -> bytearray:
    out = bytearray()
    # Streamed zstd frames carry no content size, so the reader never relies on it; several frames are one body.
    dctx = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
    with dctx.stream_reader(raw, read_across_frames=True) as reader:
        while chunk := reader.read(_DECODE_STEP):
            out += chunk
            if len(out) > cap:
                raise _too_large(cap)
    return out


def _inflate(raw: bytes, make: Callable[[], Any], cap: int, *, members: bool) -> bytearray:
    """zlib/gzip output ``_DECODE_STEP`` at a time; gzip bodies may hold several members (like gzip.decompress)."""
    out = bytearray()
    data = raw
    while True:
        inflater = make()
        pending = data
        while True:
            chunk = inflater.decompress(pending, _DECODE_STEP)
            out += chunk
            if len(out) > cap:
                raise _too_large(cap)
            pending = inflater.unconsumed_tail
            if inflater.eof or (not pending and not chunk):
                break
        if not inflater.eof:
            raise ValueError("the compressed data ends early")
        data = inflater.unused_data
        if not members or not data.strip(b"\0"):
            return out


def encode_json(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):  # integers beyond 64 bits: the stdlib keeps them exact
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")


#: (tokens of the whole request, tokens after compression, removed tokens in messages sent before)
Counts = tuple[int, int, int]


def _tokens(
    model: str | None,
    factor: float,
    before: Sequence[Any],
    after: Sequence[Any],
    rest: dict[str, Any] | None = None,
    frozen: int = 0,
) -> Callable[[], Counts]:
    """Token counts for the stats thread: the whole request once, then only the messages that changed.

    ``rest`` is the body without its messages (system prompt, tool declarations...): counted as its JSON
    text, so "tokens sent" is the whole request the provider bills, not only the conversation. Removed
    tokens in the first ``frozen`` messages (sent before, so cached upstream) are counted apart.
    """

    def count() -> Counts:
        counter = TokenCounter(model, factor)
        total = count_messages(before, counter)
        if rest:
            total += counter.count(encode_json(rest).decode("utf-8", "replace"))
        saved = prefix = 0
        for n, (b, a) in enumerate(zip(before, after)):
            if a is not b:
                removed = count_messages([b], counter) - count_messages([a], counter)
                saved += removed
                if n < frozen:
                    prefix += removed
        return total, total - saved, max(0, min(prefix, saved))

    return count


class Rewriter:
    """Compresses the conversation in request bodies; shared by every request (thread-safe)."""

    def __init__(
        self,
        config: EngineConfig,
        store: CCRStore | None,
        prefix: PrefixCache | None = None,
        memo: DBBlockMemo | None = None,
        policy: SavingsPolicy | None = None,
    ) -> None:
        self.configs = {"ccr": config, "lossless": replace(config, lossless=True)}
        self.store = store
        self.memo = memo
        self.prefix = prefix if prefix is not None else PrefixCache()  # an empty cache is falsy (len 0)
        self._lock = threading.Lock()
        self.failures = 0
        self.policy = policy if policy is not None else SavingsPolicy()

    def rewrite(
        self,
        route: Route,
        raw: bytes,
        content_encoding: str,
        mode: str,
        *,
        max_bytes: int | None = None,
        headers: Mapping[str, str] | None = None,
        agent: str = "",
    ) -> Rewritten:
        """``raw`` compressed (or as it was, with the reason); :class:`BodyTooLarge` past ``max_bytes`` decoded."""
        try:
            text = decode_body(raw, content_encoding, max_bytes)
            body = orjson.loads(text)
        except (ValueError, orjson.JSONDecodeError) as exc:
            return Rewritten(raw, skipped=f"body not readable: {str(exc)[:200]}")
        size = len(text)
        del text  # the parsed body is what is needed from here: the decoded bytes go before the engine runs
        out = self._rewrite(route, raw, body, mode, headers or {}, agent)
        out.size = size
        return out

    def _rewrite(
        self, route: Route, raw: bytes, body: Any, mode: str, headers: Mapping[str, str], agent: str
    ) -> Rewritten:
        if not isinstance(body, dict):
            return Rewritten(raw, skipped="body is not a JSON object")
        model = body.get("model") if isinstance(body.get("model"), str) else route.model
        stream = body.get("stream") is True or route.endpoint == "stream_generate"
        messages = body.get(route.key or "")
        if not isinstance(messages, list) or not messages:
            return Rewritten(raw, model=model, stream=stream)
        config = self.configs[mode]
        rest = {k: v for k, v in body.items() if k != route.key}
        try:
            project = request_project(body, route.key)
            decision = self.policy.decide(agent, conversation_key(agent, headers, body, route.key), project)
            marks: dict[str, Any] = {
                "conversation": decision.conversation,
                "project": project,
                "messages": len(messages),
            }
            if decision.holdout:  # sent as received; counted all the same, for the comparison
                tokens = _tokens(model, config.claude_token_factor, messages, messages, rest)
                return Rewritten(raw, model=model, stream=stream, tokens=tokens, holdout=True, **marks)
            root = f"{route.key}:{mode}"  # a fallback keeps the root: the prefix sent so far stays as sent
            if decision.fallback is not None:
                config = self.configs["lossless"]
                marks["fallback"] = decision.fallback
            memo = self.memo_for(project)
            out, frozen, blocks = self.compress_list(root, messages, model, config, memo, project)
        except Exception as exc:  # fail open: the original goes upstream
            self.failures += 1
            log.warning("compression failed, forwarding the original: %s: %s", type(exc).__name__, exc)
            return Rewritten(raw, model=model, stream=stream, skipped=f"compression failed: {type(exc).__name__}")
        tokens = _tokens(model, config.claude_token_factor, messages, out, rest, frozen)
        if all(a is b for a, b in zip(out, messages)):
            return Rewritten(raw, model=model, stream=stream, frozen=frozen, tokens=tokens, **marks)
        new_body = dict(body)
        new_body[route.key or ""] = out
        return Rewritten(
            encode_json(new_body),
            changed=True,
            decoded=True,
            model=model,
            stream=stream,
            blocks=blocks,
            frozen=frozen,
            tokens=tokens,
            **marks,
        )

    def reconfigure(self, config: EngineConfig) -> None:
        """New engine settings (a config reload): new content follows them; what was sent stays as sent."""
        self.configs = {"ccr": config, "lossless": replace(config, lossless=True)}

    def memo_for(self, project: str | None) -> BlockMemo | None:
        """The memo view of ``project`` (None without a memo or a known project: no sharing across agents)."""
        if self.memo is None or not project:
            return None
        return self.memo.scoped(project)

    def store_for(self, project: str | None) -> CCRStore | None:
        """The CCR store as ``project`` uses it: originals recorded as that project's (for headroom_retrieve's
        scope); the plain store when the request did not say its project."""
        if project and isinstance(self.store, FileCCRStore):
            return self.store.scoped(project)
        return self.store

    def compress_list(
        self,
        root: str,
        messages: list[Any],
        model: str | None,
        config: EngineConfig,
        memo: BlockMemo | None = None,
        project: str | None = None,
    ) -> tuple[list[Any], int, int]:
        """``messages`` with the seen prefix as sent before and the rest compressed: (out, frozen, blocks)."""
        keys = chain_keys(root, messages)
        with self._lock:
            frozen, sent = self.prefix.frozen(keys, messages)
        blocks = 0
        if frozen < len(messages):
            store = self.store_for(project)
            result = compress(messages, model, store=store, frozen=frozen, config=config, memo=memo)
            out = sent + result.messages[frozen:]
            blocks = sum(1 for d in result.decisions if d.compressor)
        else:
            out = sent
        with self._lock:
            self.prefix.remember(keys, messages, out)
        return out, frozen, blocks

    def count_items(self, items: list[Any], model: str | None, mode: str) -> Callable[[], Counts]:
        """Token counts of items sent as they are (a held-out WebSocket turn)."""
        return _tokens(model, self.configs[mode].claude_token_factor, items, items)

    def rewrite_items(
        self, items: list[Any], context: list[Any], model: str | None, mode: str, project: str | None = None
    ) -> tuple[list[Any], int, Callable[[], Counts]]:
        """New Responses input items of an incremental (WebSocket) turn; ``context`` holds earlier user turns
        so a tool output is compressed with the question that preceded it, as it would be over HTTP."""
        config = self.configs[mode]
        result = compress(
            context + items,
            model,
            store=self.store_for(project),
            frozen=len(context),
            config=config,
            memo=self.memo_for(project),
        )
        out = result.messages[len(context) :]
        blocks = sum(1 for d in result.decisions if d.compressor)
        return out, blocks, _tokens(model, config.claude_token_factor, items, out)
