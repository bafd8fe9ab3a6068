"""Time zones for ``-z/--timezone``: an IANA name, UTC, or the local zone; standard library only.

Kept apart from :mod:`headroom.daemon.costs` so that the statusline (which must start in a few milliseconds)
can find the local day without importing SQLAlchemy.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class BadTimezone(ValueError):
    """``--timezone`` named no zone this machine knows."""


def zone(name: str | None) -> tzinfo:
    """The zone called ``name`` (IANA, or UTC); ``None``: the local zone (``TZ``, else /etc/localtime)."""
    if name:
        if name.upper() in ("UTC", "Z", "GMT"):
            return UTC
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise BadTimezone(f"unknown time zone {name!r} (use an IANA name such as Europe/Paris, or UTC)") from exc
    env = os.environ.get("TZ", "").lstrip(":")
    if env:
        try:
            return zone(env)
        except BadTimezone:
            pass
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            return ZoneInfo(target.split("zoneinfo/", 1)[1])
    except (OSError, ZoneInfoNotFoundError, ValueError):
        pass
    local = datetime.now().astimezone().tzinfo
    return local if local is not None else UTC


def is_utc(tz: tzinfo) -> bool:
    """Whether ``tz`` is UTC all year (so the stored UTC ``day`` is the local day)."""
    probe = (datetime(2026, 1, 15, tzinfo=UTC), datetime(2026, 7, 15, tzinfo=UTC))
    return all(moment.astimezone(tz).utcoffset() == timedelta(0) for moment in probe)
