"""OpenAI Chat Completions and Responses (Codex), the Responses API over WebSocket included.

Codex's built-in provider opens ``GET /v1/responses`` as a WebSocket and sends one ``response.create`` frame
per turn (:mod:`headroom.daemon.proxy.websocket` relays it); the event names that relay watches are here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from headroom.daemon.providers.base import Endpoint, ProviderSpec, UsageInto, as_int

#: Responses output items that are tool calls (the next turn's tool outputs answer them).
CALL_TYPES = frozenset({"function_call", "custom_tool_call", "local_shell_call"})
#: The Responses stream event that ends a turn well, and every event that ends one (and carries its usage).
COMPLETED = "response.completed"
DONE_EVENTS = (COMPLETED, "response.failed", "response.incomplete", "error")
_RESPONSE_EVENTS = ("response.completed", "response.incomplete", "response.failed", "response.done")


class OpenAI(ProviderSpec):
    name = "openai"
    default_upstream = "https://api.openai.com"
    agent = "codex"
    endpoints = (
        Endpoint("chat", "/v1/chat/completions", "messages", "openai"),
        Endpoint("responses", "/v1/responses", "input", "responses"),
        Endpoint("responses_ws", "/v1/responses", "input", "responses", method="GET"),
    )
    claim_rank = 3  # claims nothing: every path no one else claims is OpenAI's
    usage_rank = 1
    credential_headers = ("authorization",)
    system_fields = ("instructions",)
    # Codex's <environment_context> carries <cwd>/path</cwd>.
    cwd_patterns = (re.compile(r"<cwd>(/[^<\n]+)</cwd>"),)
    session_headers = ("session-id", "session_id", "conversation_id", "thread-id")
    list_input_price = 1.25
    cache_ratios = (1.0, 0.1, 1.0)  # reads at 0.1x, writes at no extra cost

    def sent_by_agent(self, headers: Mapping[str, str]) -> bool:
        ua = headers.get("user-agent", "").lower()
        return ua.startswith("codex") or headers.get("originator", "").startswith("codex")

    def error_body(self, status: int, message: str) -> bytes:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}})

    def read_usage(self, obj: dict[str, Any], into: UsageInto) -> bool:
        """Chat (``prompt_tokens``, cached tokens inside) or Responses (``input_tokens_details``)."""
        enveloped = obj.get("type") in _RESPONSE_EVENTS and isinstance(obj.get("response"), dict)
        if enveloped:
            obj = obj["response"]
        usage = obj.get("usage")
        if not isinstance(usage, dict):
            return False
        if "prompt_tokens" in usage or "completion_tokens" in usage:  # Chat Completions
            prompt_key, details_key, output_key = "prompt_tokens", "prompt_tokens_details", "completion_tokens"
        elif enveloped or "input_tokens_details" in usage or "output_tokens_details" in usage:  # Responses
            prompt_key, details_key, output_key = "input_tokens", "input_tokens_details", "output_tokens"
        else:
            return False
        cached = as_int((usage.get(details_key) or {}).get("cached_tokens")) or 0
        if (prompt := as_int(usage.get(prompt_key))) is not None:
            into["input"] = prompt - cached
            into["cache_read"] = cached
        if (out := as_int(usage.get(output_key))) is not None:
            into["output"] = out
        return True

    def session_of(self, body: Mapping[str, Any]) -> str | None:
        """Codex's ``prompt_cache_key`` (its conversation id)."""
        cache_key = body.get("prompt_cache_key")
        return cache_key if isinstance(cache_key, str) and cache_key else None
