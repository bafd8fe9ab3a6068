"""Who may talk to the proxy: the Host and Origin rules every request passes before anything else is done.

The proxy has no authentication of its own (the agents send their provider keys, which it passes on), so
what keeps a web page out is the browser's own behaviour. A page may send a "simple" cross-origin request
(a ``text/plain`` POST, no preflight) to ``http://127.0.0.1:8787``: the browser then adds an ``Origin``
header naming the page's site, which no agent sends, so a foreign ``Origin`` is refused. A page may also
make its own name resolve to 127.0.0.1 (DNS rebinding) and then talk to the proxy as a same-origin page:
the ``Host`` header then names the page's site, never a loopback name, so a foreign ``Host`` is refused.
Hosts the user names in ``[proxy] allowed_hosts`` (and the address of a non-loopback bind) pass both checks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

#: Request headers a browser adds that no provider needs: never sent upstream.
BROWSER_HEADERS = frozenset({"cookie", "origin"})


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.x.y.z`` or ``::1`` (no port, no brackets)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name in a Host header, without its port or IPv6 brackets, lower-cased (``[::1]:8787`` → ``::1``)."""
    header = header.strip()
    if header.startswith("["):
        return header[1:].split("]", 1)[0].lower()
    if header.count(":") > 1:  # a bare IPv6 address (not valid in Host, but unambiguous)
        return header.lower()
    return header.rsplit(":", 1)[0].lower() if ":" in header else header.lower()


@dataclass(frozen=True)
class Guard:
    """The Host and Origin rules of one proxy: loopback names always, plus ``allowed`` (lower-case names)."""

    allowed: frozenset[str] = frozenset()

    @classmethod
    def for_bind(cls, bind_host: str, allowed_hosts: Iterable[str] = ()) -> Guard:
        """The rules for a proxy bound to ``bind_host``: a specific non-loopback address is allowed by itself."""
        names = {h.strip().lower().strip("[]") for h in allowed_hosts if h.strip()}
        if bind_host not in ("", "0.0.0.0", "::") and not is_loopback(bind_host):
            names.add(bind_host.lower().strip("[]"))
        return cls(frozenset(names))

    def host_ok(self, header: str) -> bool:
        name = host_name(header)
        return bool(name) and (is_loopback(name) or name in self.allowed)

    def origin_ok(self, origin: str | None) -> bool:
        """No Origin (not a browser, or a same-origin GET) or one whose host passes :meth:`host_ok`."""
        if origin is None:
            return True
        try:
            parts = urlsplit(origin.strip())
            name = (parts.hostname or "").lower()
        except ValueError:
            return False
        return parts.scheme in ("http", "https") and bool(name) and (is_loopback(name) or name in self.allowed)

    def refusal(self, headers: Mapping[str, str]) -> str | None:
        """Why a request with these (lower-cased) headers is refused, or None when it may go on."""
        if not self.host_ok(headers.get("host", "")):
            return (
                f"headroom proxy: Host {headers.get('host', '')!r} is not this machine "
                "(add it to [proxy] allowed_hosts to use that name)"
            )
        if not self.origin_ok(headers.get("origin")):
            return f"headroom proxy: requests from web pages ({headers.get('origin')!r}) are refused"
        return None


def local_client(client: Sequence[object] | None, host_header: str) -> bool:
    """A peer on this machine that named this machine: what the proxy's own data (health, statistics,
    the dashboard's figures) is served to, even when the proxy listens on a public address."""
    return bool(client) and is_loopback(str(client[0])) and is_loopback(host_name(host_header))  # type: ignore[index]
