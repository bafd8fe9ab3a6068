"""The local dashboard: a static page (``static/``) that draws its own SVG charts from ``/dashboard/data.json``.

The proxy serves it (see :mod:`headroom.daemon.proxy.app`): the page, its script and its stylesheet to any
client, the data only to loopback clients. Everything ships as package data with no external URL anywhere,
so the page works on a machine without network access and leaks nothing to a CDN.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from headroom.daemon.dashboard.data import PRICES, dashboard_data, price_per_million

__all__ = ["PRICES", "STATIC", "dashboard_data", "price_per_million", "static_file"]

#: The files the page is made of: URL name → (package file, content type). A fixed map rather than a lookup
#: by path, so no request path ever reaches the file system.
STATIC: dict[str, tuple[str, str]] = {
    "": ("index.html", "text/html; charset=utf-8"),
    "index.html": ("index.html", "text/html; charset=utf-8"),
    "dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}


@cache
def static_file(name: str) -> tuple[bytes, str] | None:
    """(bytes, content type) of a page file by its URL name, or None when the page has no such file."""
    entry = STATIC.get(name)
    if entry is None:
        return None
    filename, content_type = entry
    return resources.files("headroom.daemon.dashboard").joinpath("static", filename).read_bytes(), content_type
