"""What the proxy knows about one model provider, in one record: :class:`ProviderSpec`.

Shaped like the log readers' registry (:mod:`headroom.learn.readers`): one class per upstream, registered in
:data:`headroom.daemon.providers.PROVIDERS`. A spec says which requests are its own (the endpoints that carry a
conversation, and the paths and headers that mark a pass-through request), where the conversation sits in a
request body and in which of the engine's shapes (:data:`headroom.engine.messages.SHAPES`), the error format
its SDK parses, how its answers report usage, how its agent announces its working directory and session, and
which agent sends its requests. The proxy's modules ask the registry; none of them names a provider.

This package sits below both the configuration (default upstreams) and the proxy, and imports neither: loading
the configuration must stay light.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

Provider = Literal["anthropic", "openai", "gemini"]

#: Usage fields as the proxy records them: input (uncached), output, cache_read, cache_write.
UsageInto = dict[str, int]


@dataclass(frozen=True)
class Endpoint:
    """One API endpoint that carries a conversation (the proxy compresses its ``key``)."""

    name: str  # as recorded in the stats (messages, chat, responses, generate, ...)
    path: str  # the exact path (or, for Gemini, the verb after ``models/<model>:``)
    key: str  # the body key holding the conversation
    shape: str  # the engine's name for the shape of that list (engine.messages.SHAPES)
    method: str = "POST"  # "GET" with ``websocket``: an upgrade


@dataclass(frozen=True)
class Route:
    """What the proxy does with one request path."""

    provider: Provider
    endpoint: str  # an Endpoint's name, or "other" (passed through untouched)
    key: str | None = None  # the body key holding the conversation; None: pass the body through
    model: str | None = None  # from the path (Gemini)

    @property
    def compresses(self) -> bool:
        return self.key is not None


def as_int(value: Any) -> int | None:
    """An integer usage field (booleans and anything else: None)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class ProviderSpec:
    """One upstream API. Subclasses set the class attributes and override what differs."""

    name: ClassVar[Provider]
    #: Where its API lives unless ``[proxy] <name>_upstream`` says otherwise.
    default_upstream: ClassVar[str]
    #: The agent that speaks this API first-hand (``agent_of`` names it from the request's headers).
    agent: ClassVar[str]
    #: The endpoints that carry a conversation.
    endpoints: ClassVar[tuple[Endpoint, ...]]
    #: A pass-through path (no endpoint) is the first provider's, by ``claim_rank``, whose ``claims`` is true;
    #: a provider that claims nothing is where the rest goes.
    claim_rank: ClassVar[int] = 100
    #: Usage readers run in this order and the first that recognises an answer reads it (OpenAI's shapes are
    #: recognised by their own keys, Anthropic's is what a ``usage`` object is otherwise).
    usage_rank: ClassVar[int] = 100
    #: Body fields holding the system prompt (scanned for the announced working directory).
    system_fields: ClassVar[tuple[str, ...]] = ()
    #: How its agent announces its working directory (the first group is the path); ``legacy_cwd_patterns``
    #: are tried only after every provider's current patterns.
    cwd_patterns: ClassVar[tuple[re.Pattern[str], ...]] = ()
    legacy_cwd_patterns: ClassVar[tuple[re.Pattern[str], ...]] = ()
    #: Headers that carry its API key (a request to ``/`` with one is an agent's check, not a browser's).
    credential_headers: ClassVar[tuple[str, ...]] = ()
    #: Headers that carry its agent's own session id, in the order they are trusted.
    session_headers: ClassVar[tuple[str, ...]] = ()
    #: Estimate only: USD per million uncached input tokens when the model's family is unknown (the dashboard).
    list_input_price: ClassVar[float] = 3.0
    #: What a cache read and a cache write cost relative to an uncached input token (list prices).
    cache_ratios: ClassVar[tuple[float, float, float]] = (1.0, 0.1, 1.0)

    def route(self, method: str, path: str) -> Route | None:
        """The route when ``path`` is one of its conversation endpoints (HTTP, not WebSocket)."""
        for endpoint in self.endpoints:
            if endpoint.method == method == "POST" and endpoint.path == path:
                return Route(self.name, endpoint.name, endpoint.key)
        return None

    def claims(self, path: str, headers: Mapping[str, str]) -> bool:
        """Whether a path no endpoint names is this provider's (``/v1/models``, files, batches …)."""
        return False

    def sent_by_agent(self, headers: Mapping[str, str]) -> bool:
        """Whether the request comes from this provider's own agent (its user agent, mostly)."""
        return False

    def error_body(self, status: int, message: str) -> bytes:
        """An error its SDK parses (so the agent shows ``message`` and applies its retry policy)."""
        raise NotImplementedError

    def read_usage(self, obj: dict[str, Any], into: UsageInto) -> bool:
        """Merge the usage of one answer or stream event into ``into``; False when the shape is not its own."""
        return False

    def session_of(self, body: Mapping[str, Any]) -> str | None:
        """Its agent's own session id carried in the request body (not a header), or None."""
        return None

    @property
    def websocket(self) -> Endpoint | None:
        """Its WebSocket endpoint, if it has one."""
        return next((e for e in self.endpoints if e.method == "GET"), None)


__all__ = ["Endpoint", "Provider", "ProviderSpec", "Route", "UsageInto", "as_int"]
