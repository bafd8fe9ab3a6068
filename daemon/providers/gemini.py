"""Google Gemini (Gemini CLI): ``models/<model>:generateContent`` and its streaming and counting verbs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from headroom.daemon.providers.base import Endpoint, ProviderSpec, Route, UsageInto, as_int

_PATH = re.compile(r"^/(?:v1|v1beta|v1alpha)/(?:tunedModels|models)/(?P<model>[^/:]+):(?P<verb>[A-Za-z]+)$")
_STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    408: "DEADLINE_EXCEEDED",
    413: "INVALID_ARGUMENT",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
}


class Gemini(ProviderSpec):
    name = "gemini"
    default_upstream = "https://generativelanguage.googleapis.com"
    agent = "gemini"
    # ``path`` is the verb: the model is part of the path (``/v1beta/models/<model>:<verb>``).
    endpoints = (
        Endpoint("generate", "generateContent", "contents", "gemini"),
        Endpoint("stream_generate", "streamGenerateContent", "contents", "gemini"),
        Endpoint("gemini_count", "countTokens", "contents", "gemini"),
    )
    claim_rank = 1
    usage_rank = 3
    credential_headers = ("x-goog-api-key",)
    system_fields = ("systemInstruction",)
    # Gemini CLI lists "Workspace Directories:" followed by "  - /path".
    cwd_patterns = (re.compile(r"Workspace Directories:\*{0,2}\s*\n\s*- (/[^\n\r]+)"),)
    list_input_price = 1.25
    cache_ratios = (1.0, 0.25, 1.0)  # the implicit cache reads at 0.25x

    def route(self, method: str, path: str) -> Route | None:
        found = _PATH.match(path) if method == "POST" else None
        if found is None:
            return None
        endpoint = next((e for e in self.endpoints if e.path == found["verb"]), None)
        return Route(self.name, endpoint.name, endpoint.key, found["model"]) if endpoint else None

    def claims(self, path: str, headers: Mapping[str, str]) -> bool:
        return path.startswith(("/v1beta", "/v1alpha", "/upload/")) or "x-goog-api-key" in headers or ":" in path

    def sent_by_agent(self, headers: Mapping[str, str]) -> bool:
        ua = headers.get("user-agent", "").lower()
        return ua.startswith("geminicli") or "gemini-cli" in ua

    def error_body(self, status: int, message: str) -> bytes:
        state = _STATUS.get(status, "DEADLINE_EXCEEDED" if status == 504 else "INTERNAL")
        return orjson.dumps({"error": {"code": status, "message": message, "status": state}})

    def read_usage(self, obj: dict[str, Any], into: UsageInto) -> bool:
        """``usageMetadata``: cumulative in every chunk, so the last one wins."""
        meta = obj.get("usageMetadata")
        if not isinstance(meta, dict):
            return False
        cached = as_int(meta.get("cachedContentTokenCount")) or 0
        if (prompt := as_int(meta.get("promptTokenCount"))) is not None:
            into["input"] = prompt - cached
            into["cache_read"] = cached
        out = (as_int(meta.get("candidatesTokenCount")) or 0) + (as_int(meta.get("thoughtsTokenCount")) or 0)
        if out:
            into["output"] = out
        return True
