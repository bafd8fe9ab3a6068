"""The provider-reported usage (input, output, cache reads and writes) read off a response as it streams by.

The bytes go to the client untouched; this only looks at a copy. SSE is scanned line by line and only lines
that mention usage are parsed, so a long stream costs a substring search per line. A plain JSON answer is
kept (up to a cap) and parsed at the end. What the usage looks like is each provider's own knowledge
(:func:`headroom.daemon.providers.usage_of`). Compressed answers (gzip, deflate, zstd) are inflated on the side;
an encoding we cannot read simply yields no usage.
"""

from __future__ import annotations

import contextlib
import zlib
from typing import Any

import orjson
import zstandard

from headroom.daemon.providers import usage_of

_MAX_JSON = 8 << 20
_MAX_LINE = 1 << 20


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
