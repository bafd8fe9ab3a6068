"""Which provider a request is for, what part of its body holds the conversation, and errors in its dialect.

The proxy serves all three providers on one port, so the path (and, for paths no provider owns, the auth
header) decides. Only the endpoints that carry a conversation are rewritten; every other path is passed
through untouched to the provider it belongs to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import orjson

from headroom.daemon.providers import Provider

#: A path prefix that asks for lossless compression (clients that cannot call headroom_retrieve).
LOSSLESS_PREFIX = "/lossless"
#: The daemon's memory search for the MCP servers (local, token-protected).
MEMORY_SEARCH_PATH = "/memory/search"

_GEMINI_RE = re.compile(r"^/(?:v1|v1beta|v1alpha)/(?:tunedModels|models)/(?P<model>[^/:]+):(?P<verb>[A-Za-z]+)$")


@dataclass(frozen=True)
class Route:
    """What the proxy does with one request path."""

    provider: Provider
    endpoint: str  # messages, count_tokens, chat, responses, generate, stream_generate, gemini_count, other
    key: str | None = None  # the body key holding the conversation; None: pass the body through
    model: str | None = None  # from the path (Gemini)

    @property
    def compresses(self) -> bool:
        return self.key is not None


def match(method: str, path: str, headers: Mapping[str, str]) -> Route:
    """The route for ``path`` (without the lossless prefix or query)."""
    if method == "POST":
        if path == "/v1/messages":
            return Route("anthropic", "messages", "messages")
        if path == "/v1/messages/count_tokens":
            return Route("anthropic", "count_tokens", "messages")
        if path == "/v1/chat/completions":
            return Route("openai", "chat", "messages")
        if path == "/v1/responses":
            return Route("openai", "responses", "input")
        found = _GEMINI_RE.match(path)
        if found:
            verb = found["verb"]
            endpoint = {
                "generateContent": "generate",
                "streamGenerateContent": "stream_generate",
                "countTokens": "gemini_count",
            }.get(verb)
            if endpoint:
                return Route("gemini", endpoint, "contents", found["model"])
    return Route(provider_of(path, headers), "other")


def provider_of(path: str, headers: Mapping[str, str]) -> Provider:
    """The provider a path no route names belongs to (``/v1/models``, ``HEAD /``, files, batches …)."""
    if path.startswith(("/v1beta", "/v1alpha", "/upload/")) or "x-goog-api-key" in headers or ":" in path:
        return "gemini"
    if path.startswith("/v1/messages") or "anthropic-version" in headers or "x-api-key" in headers:
        return "anthropic"
    return "openai"


def upstream_url(base: str, path: str, query: str) -> str:
    """``base`` (which may carry a path prefix, e.g. a gateway's ``/anthropic``) plus the received path."""
    url = base.rstrip("/") + quote(path, safe="/:@!$&'()*+,;=-._~%")
    return f"{url}?{query}" if query else url


def agent_of(headers: Mapping[str, str]) -> str:
    """Which agent sent a request, from its user agent (``claude-cli/…``, ``codex_exec/…``, ``GeminiCLI/…``)."""
    ua = headers.get("user-agent", "").lower()
    if ua.startswith("claude-cli") or "claude-code" in ua:
        return "claude"
    if ua.startswith("codex") or headers.get("originator", "").startswith("codex"):
        return "codex"
    if ua.startswith("geminicli") or "gemini-cli" in ua:
        return "gemini"
    return "other"


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    403: "permission_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    408: "DEADLINE_EXCEEDED",
    413: "INVALID_ARGUMENT",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
}


def error_body(provider: Provider, status: int, message: str) -> bytes:
    """An error the provider's own SDK parses (so the agent shows ``message`` and applies its retry policy)."""
    if provider == "anthropic":
        kind = _ANTHROPIC_TYPES.get(status, "api_error")
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    if provider == "gemini":
        state = _GEMINI_STATUS.get(status, "DEADLINE_EXCEEDED" if status == 504 else "INTERNAL")
        return orjson.dumps({"error": {"code": status, "message": message, "status": state}})
    kind = "invalid_request_error" if status < 500 else "server_error"
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}})
