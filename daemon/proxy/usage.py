"""The provider-reported usage (input, output, cache reads and writes) read off a response as it streams by.

The bytes go to the client untouched; this only looks at a copy. SSE is scanned line by line and only lines
that mention usage are parsed, so a long stream costs a substring search per line. A plain JSON answer is
kept (up to a cap) and parsed at the end. Compressed answers (gzip, deflate, zstd) are inflated on the side;
an encoding we cannot read simply yields no usage.
"""

from __future__ import annotations

import contextlib
import zlib
from typing import Any

import orjson

_MAX_JSON = 8 << 20
_MAX_LINE = 1 << 20


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def usage_of(obj: Any, into: dict[str, int]) -> None:
    """Merge the usage fields of one event or answer (any of the three providers) into ``into``."""
    if not isinstance(obj, dict):
        return
    kind = obj.get("type")
    if kind == "message_start" and isinstance(obj.get("message"), dict):
        obj = obj["message"]
    elif kind in ("response.completed", "response.incomplete", "response.failed", "response.done") and isinstance(
        obj.get("response"), dict
    ):
        obj = obj["response"]
    usage = obj.get("usage")
    if isinstance(usage, dict):
        if "prompt_tokens" in usage or "completion_tokens" in usage:  # OpenAI chat
            cached = _int((usage.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0
            prompt = _int(usage.get("prompt_tokens"))
            if prompt is not None:
                into["input"] = prompt - cached
                into["cache_read"] = cached
            if (out := _int(usage.get("completion_tokens"))) is not None:
                into["output"] = out
        elif "input_tokens_details" in usage or "output_tokens_details" in usage:  # OpenAI Responses
            cached = _int((usage.get("input_tokens_details") or {}).get("cached_tokens")) or 0
            if (prompt := _int(usage.get("input_tokens"))) is not None:
                into["input"] = prompt - cached
                into["cache_read"] = cached
            if (out := _int(usage.get("output_tokens"))) is not None:
                into["output"] = out
        else:  # Anthropic: input excludes cache reads and writes; message_delta repeats or completes them
            for src, dst in (
                ("input_tokens", "input"),
                ("output_tokens", "output"),
                ("cache_read_input_tokens", "cache_read"),
                ("cache_creation_input_tokens", "cache_write"),
            ):
                if (value := _int(usage.get(src))) is not None:
                    into[dst] = value
    meta = obj.get("usageMetadata")
    if isinstance(meta, dict):  # Gemini: cumulative in every chunk, so the last one wins
        cached = _int(meta.get("cachedContentTokenCount")) or 0
        if (prompt := _int(meta.get("promptTokenCount"))) is not None:
            into["input"] = prompt - cached
            into["cache_read"] = cached
        out = (_int(meta.get("candidatesTokenCount")) or 0) + (_int(meta.get("thoughtsTokenCount")) or 0)
        if out:
            into["output"] = out


class UsageSniffer:
    """Feed it the raw response bytes; ``usage`` holds what the provider reported so far."""

    def __init__(self, content_type: str, content_encoding: str) -> None:
        self.sse = "event-stream" in content_type
        self.usage: dict[str, int] = {}
        self._inflate: Any = None
        self._broken = False
        encoding = content_encoding.strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._inflate = zlib.decompressobj(wbits=31)
        elif encoding == "deflate":
            self._inflate = zlib.decompressobj()
        elif encoding == "zstd":
            import zstandard

            self._inflate = zstandard.ZstdDecompressor().decompressobj()
        elif encoding not in ("", "identity"):
            self.sse = False
            self._broken = True
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> None:
        if self._broken or not chunk:
            return
        try:
            if self._inflate is not None:
                chunk = self._inflate.decompress(chunk)
        except Exception:  # a body we cannot inflate: usage unknown, bytes still relayed
            self._broken = True
            return
        self._buffer += chunk
        if self.sse:
            self._scan_lines()
        elif len(self._buffer) > _MAX_JSON:
            self._broken = True
            self._buffer.clear()

    def _scan_lines(self) -> None:
        start = 0
        while (end := self._buffer.find(b"\n", start)) != -1:
            line = bytes(self._buffer[start:end])
            start = end + 1
            if line.startswith(b"data:") and (b"sage" in line):  # usage / usageMetadata
                with contextlib.suppress(orjson.JSONDecodeError):
                    usage_of(orjson.loads(line[5:]), self.usage)
        del self._buffer[:start]
        if len(self._buffer) > _MAX_LINE:  # a line with no end in sight: skip it
            self._buffer.clear()

    def finish(self) -> dict[str, int]:
        if not self._broken and not self.sse and self._buffer:
            with contextlib.suppress(orjson.JSONDecodeError):
                usage_of(orjson.loads(bytes(self._buffer)), self.usage)
        elif self.sse and self._buffer:
            self._buffer += b"\n"
            self._scan_lines()
        self._buffer.clear()
        return self.usage
