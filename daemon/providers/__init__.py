"""The model providers headroom stands in front of: one :class:`ProviderSpec` each, registered here.

Like the log readers (:data:`headroom.learn.readers.READERS`), adding a provider is one class in its own module
and one line in :data:`PROVIDERS` (plus its ``Provider`` name and, for a new conversation shape, a walker in
:mod:`headroom.engine.messages`). The functions below are what the proxy asks: which route a request takes, whose
pass-through path it is, which agent sent it, the error its SDK reads, the usage in an answer, where an agent
announces its working directory and its session.

Light on purpose (``re`` and ``orjson``): the configuration reads :data:`DEFAULT_UPSTREAMS` from here without
importing the proxy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from headroom.daemon.providers.anthropic import Anthropic
from headroom.daemon.providers.base import Endpoint, Provider, ProviderSpec, Route, UsageInto
from headroom.daemon.providers.gemini import Gemini
from headroom.daemon.providers.openai import OpenAI

#: Every provider, by name; the order is the order agents are recognised in and cwd patterns are tried.
PROVIDERS: dict[Provider, ProviderSpec] = {spec.name: spec for spec in (Anthropic(), OpenAI(), Gemini())}

DEFAULT_UPSTREAMS: dict[Provider, str] = {name: spec.default_upstream for name, spec in PROVIDERS.items()}

_BY_CLAIM = sorted(PROVIDERS.values(), key=lambda spec: spec.claim_rank)
_BY_USAGE = sorted(PROVIDERS.values(), key=lambda spec: spec.usage_rank)
#: Every working-directory announcement, current ones first, then the older forms.
CWD_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    [p for spec in PROVIDERS.values() for p in spec.cwd_patterns]
    + [p for spec in PROVIDERS.values() for p in spec.legacy_cwd_patterns]
)
#: Body fields that hold a system prompt, in any provider's dialect.
SYSTEM_FIELDS: tuple[str, ...] = tuple(f for spec in PROVIDERS.values() for f in spec.system_fields)
#: Headers that carry an API key, any provider's.
CREDENTIAL_HEADERS: frozenset[str] = frozenset(h for spec in PROVIDERS.values() for h in spec.credential_headers)
#: Headers that carry an agent's own session id, in the order they are trusted.
SESSION_HEADERS: tuple[str, ...] = tuple(h for spec in PROVIDERS.values() for h in spec.session_headers)


def spec(provider: Provider) -> ProviderSpec:
    """The registered spec of ``provider``."""
    return PROVIDERS[provider]


def match(method: str, path: str, headers: Mapping[str, str]) -> Route:
    """The route for ``path`` (without the lossless prefix or query): a conversation endpoint, else pass-through."""
    for provider in PROVIDERS.values():
        route = provider.route(method, path)
        if route is not None:
            return route
    return Route(provider_of(path, headers), "other")


def provider_of(path: str, headers: Mapping[str, str]) -> Provider:
    """The provider a path no route names belongs to (``/v1/models``, ``HEAD /``, files, batches …)."""
    return next((p.name for p in _BY_CLAIM if p.claims(path, headers)), _BY_CLAIM[-1].name)


def websocket_endpoint() -> tuple[ProviderSpec, Endpoint]:
    """The provider and endpoint served over WebSocket (OpenAI Responses: every upgrade goes there)."""
    return next((p, e) for p in PROVIDERS.values() if (e := p.websocket) is not None)


def agent_of(headers: Mapping[str, str]) -> str:
    """Which agent sent a request, from its user agent (``claude-cli/…``, ``codex_exec/…``, ``GeminiCLI/…``)."""
    return next((p.agent for p in PROVIDERS.values() if p.sent_by_agent(headers)), "other")


def error_body(provider: Provider, status: int, message: str) -> bytes:
    """An error the provider's own SDK parses (so the agent shows ``message`` and applies its retry policy)."""
    return PROVIDERS[provider].error_body(status, message)


def usage_of(obj: Any, into: UsageInto) -> None:
    """Merge the usage fields of one event or answer (any provider's) into ``into``."""
    if not isinstance(obj, dict):
        return
    for provider in _BY_USAGE:
        if provider.read_usage(obj, into):
            return


def body_session(body: Mapping[str, Any]) -> str | None:
    """An agent's own session id carried in a request body (the first provider that finds one), or None."""
    return next((s for p in PROVIDERS.values() if (s := p.session_of(body)) is not None), None)


def cache_ratios() -> dict[str, tuple[float, float, float]]:
    """(uncached input, cache read, cache write) cost ratios by provider."""
    return {name: p.cache_ratios for name, p in PROVIDERS.items()}


__all__ = [
    "CREDENTIAL_HEADERS",
    "CWD_PATTERNS",
    "DEFAULT_UPSTREAMS",
    "PROVIDERS",
    "SESSION_HEADERS",
    "SYSTEM_FIELDS",
    "Endpoint",
    "Provider",
    "ProviderSpec",
    "Route",
    "agent_of",
    "body_session",
    "cache_ratios",
    "error_body",
    "match",
    "provider_of",
    "spec",
    "usage_of",
    "websocket_endpoint",
]
