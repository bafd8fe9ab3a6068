"""The proxy's paths: which provider route a request takes (:mod:`headroom.daemon.providers` decides), the
lossless prefix, the memory search path, and the upstream URL a request goes to.

The proxy serves every provider on one port, so the path (and, for paths no provider owns, the auth header)
decides. Only the endpoints that carry a conversation are rewritten; every other path is passed through
untouched to the provider it belongs to.
"""

from __future__ import annotations

from urllib.parse import quote

from headroom.daemon.providers import Route, match

#: A path prefix that asks for lossless compression (clients that cannot call headroom_retrieve).
LOSSLESS_PREFIX = "/lossless"
#: The daemon's memory search for the MCP servers (local, token-protected).
MEMORY_SEARCH_PATH = "/memory/search"


def upstream_url(base: str, path: str, query: str) -> str:
    """``base`` (which may carry a path prefix, e.g. a gateway's ``/anthropic``) plus the received path."""
    url = base.rstrip("/") + quote(path, safe="/:@!$&'()*+,;=-._~%")
    return f"{url}?{query}" if query else url


__all__ = ["LOSSLESS_PREFIX", "MEMORY_SEARCH_PATH", "Route", "match", "upstream_url"]
