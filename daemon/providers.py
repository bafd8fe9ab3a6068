"""The model providers headroom stands in front of, and where each one's API lives by default.

A fact the configuration (default ``[proxy]`` upstreams) and the proxy (routing) both need: it lives here, below
both, so loading the configuration does not import the proxy.
"""

from __future__ import annotations

from typing import Literal

Provider = Literal["anthropic", "openai", "gemini"]

DEFAULT_UPSTREAMS: dict[Provider, str] = {
    "anthropic": "https://api.anthropic.com",
    "openai": "https://api.openai.com",
    "gemini": "https://generativelanguage.googleapis.com",
}

__all__ = ["DEFAULT_UPSTREAMS", "Provider"]
