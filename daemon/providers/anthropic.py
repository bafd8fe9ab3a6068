"""Anthropic Messages (Claude Code): ``/v1/messages`` and its token counter."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from headroom.daemon.providers.base import Endpoint, ProviderSpec, UsageInto, as_int

_ERROR_TYPES = {
    400: "invalid_request_error",
    403: "permission_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_USAGE_FIELDS = (
    ("input_tokens", "input"),
    ("output_tokens", "output"),
    ("cache_read_input_tokens", "cache_read"),
    ("cache_creation_input_tokens", "cache_write"),
)


class Anthropic(ProviderSpec):
    name = "anthropic"
    default_upstream = "https://api.anthropic.com"
    agent = "claude"
    endpoints = (
        Endpoint("messages", "/v1/messages", "messages", "anthropic"),
        Endpoint("count_tokens", "/v1/messages/count_tokens", "messages", "anthropic"),
    )
    claim_rank = 2
    usage_rank = 2
    credential_headers = ("x-api-key",)
    system_fields = ("system",)
    # Claude Code's system prompt: "Primary working directory: /path" (older versions "Working directory:").
    cwd_patterns = (re.compile(r"Primary working directory: (/[^\n\r`\"<]+)"),)
    legacy_cwd_patterns = (re.compile(r"[Ww]orking directory: (/[^\n\r`\"<]+)"),)
    session_headers = ("x-claude-code-session-id",)
    list_input_price = 3.0
    cache_ratios = (1.0, 0.1, 1.25)  # reads at 0.1x, writes at 1.25x

    def claims(self, path: str, headers: Mapping[str, str]) -> bool:
        return path.startswith("/v1/messages") or "anthropic-version" in headers or "x-api-key" in headers

    def sent_by_agent(self, headers: Mapping[str, str]) -> bool:
        ua = headers.get("user-agent", "").lower()
        return ua.startswith("claude-cli") or "claude-code" in ua

    def error_body(self, status: int, message: str) -> bytes:
        kind = _ERROR_TYPES.get(status, "api_error")
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})

    def read_usage(self, obj: dict[str, Any], into: UsageInto) -> bool:
        """Input excludes cache reads and writes; ``message_delta`` repeats or completes ``message_start``'s."""
        if obj.get("type") == "message_start" and isinstance(obj.get("message"), dict):
            obj = obj["message"]
        usage = obj.get("usage")
        if not isinstance(usage, dict):
            return False
        for src, dst in _USAGE_FIELDS:
            if (value := as_int(usage.get(src))) is not None:
                into[dst] = value
        return True

    def session_of(self, body: Mapping[str, Any]) -> str | None:
        """Claude Code's session id, inside the JSON text of ``metadata.user_id``."""
        metadata = body.get("metadata")
        user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
        if not isinstance(user_id, str) or "session_id" not in user_id:
            return None
        try:
            session = orjson.loads(user_id).get("session_id")
        except (orjson.JSONDecodeError, AttributeError):
            return None
        return session if isinstance(session, str) and session else None
