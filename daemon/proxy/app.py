"""The proxy as a plain ASGI application: one request in, the same request (smaller) upstream, the answer back.

Plain ASGI rather than a framework because the proxy's whole job is byte handling: the request body is read
once, the answer is relayed chunk by chunk as ``httpx`` yields it (``aiter_raw``: no decoding, no
re-chunking, no buffering), and a client that goes away cancels the upstream call at once instead of when
the next chunk happens to arrive. The engine runs on a worker thread (a bounded number at a time) for
every encoded body and every body over ``inline_bytes``, so neither a big request nor a small body that
decodes to a big one stalls the streams of the others; small plain bodies, whose work is bounded by their
size, skip the thread hop.

Every request first passes the Host and Origin rules (:mod:`headroom.daemon.proxy.guard`: what a web page
in the user's browser cannot get past) and must name an origin-form path (``/…``: anything else could be
read as an authority when joined to the upstream URL). Bodies are capped, decoded or not, and must arrive
within ``body_timeout``; ``OPTIONS`` (a browser's preflight) is answered here, never forwarded.

Local endpoints, never forwarded: ``GET /healthz`` (with ``?nonce=`` it proves the proxy holds the secret
of its registration, see :mod:`headroom.daemon.proxy.registration`) and ``GET /stats`` (both to local
clients only), ``GET /memory/search`` (the daemon's memory search for the MCP servers, behind a token from
the owner-only state file), the dashboard under ``GET /dashboard`` (the page for anyone, its data only for
local clients), ``/`` (a redirect to the dashboard) and ``/favicon.ico``. A path starting with
``/lossless`` is served in lossless mode (for clients that cannot call ``headroom_retrieve``); every other
path no provider route names is passed through untouched.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from headroom.daemon.dashboard import static_file
from headroom.daemon.providers import (
    CREDENTIAL_HEADERS,
    DEFAULT_UPSTREAMS,
    Provider,
    Route,
    agent_of,
    error_body,
    match,
    provider_of,
)
from headroom.daemon.proxy.guard import BROWSER_HEADERS, Guard, local_client
from headroom.daemon.proxy.registration import MAX_NONCE, proof
from headroom.daemon.proxy.rewrite import BodyTooLarge, Rewriter, Rewritten
from headroom.daemon.proxy.routes import LOSSLESS_PREFIX, MEMORY_SEARCH_PATH, upstream_url
from headroom.daemon.proxy.stats import RequestRecord, StatsWriter
from headroom.daemon.proxy.usage import UsageSniffer
from headroom.daemon.proxy.websocket import relay_websocket

log = logging.getLogger("headroom.proxy")

#: The dashboard's page (``/dashboard``), its files (``/dashboard/<name>``) and data (``/dashboard/data.json``).
DASHBOARD_PATH = "/dashboard"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Headers that describe one hop, not the request (RFC 9110 §7.6.1), plus the ones httpx recomputes.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


@dataclass
class ProxySettings:
    """What the proxy needs besides the engine: where each provider is and how long to wait for it."""

    upstreams: dict[Provider, str] = field(default_factory=lambda: dict(DEFAULT_UPSTREAMS))
    mode: str = "ccr"  # or "lossless" for every request
    max_body_bytes: int = 100 << 20
    connect_timeout: float = 10.0
    read_timeout: float = 600.0  # a model may think for minutes between two stream chunks
    inline_bytes: int = 32 << 10  # smaller plain bodies are compressed on the event loop (a thread hop costs more)
    header_timeout: float = 10.0  # seconds for a request's line and headers (the server closes slower ones)
    body_timeout: float = 60.0  # seconds to receive a whole request body once its headers are in
    max_connections: int = 1000  # open connections the server accepts (lowered to fit the open-file limit)
    guard: Guard = field(default_factory=Guard)  # the Host and Origin rules (loopback only by default)
    workers: int = max(2, min(8, os.cpu_count() or 2))  # bodies rewritten at once on worker threads


class UpstreamCut(Exception):
    """The upstream connection broke mid-answer: the client's connection is closed, not ended cleanly."""


class ProxyApp:
    """The ASGI app. ``transport`` replaces the network (tests); ``summary`` serves ``GET /stats``."""

    def __init__(
        self,
        settings: ProxySettings,
        rewriter: Rewriter,
        stats: StatsWriter | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        summary: Callable[[], dict[str, Any]] | None = None,
        memory_search: Callable[[dict[str, str]], dict[str, Any]] | None = None,
        dashboard_data: Callable[[int], Mapping[str, Any]] | None = None,
        health: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.settings = settings
        self.rewriter = rewriter
        self.stats = stats
        self.summary = summary
        # The daemon's memory search (its embedding model is loaded once, here, instead of in every agent's
        # MCP server). It reads memory, so unlike the rest it needs the token from the owner-only state file.
        self.memory_search = memory_search
        # The dashboard's figures for the last N days (``GET /dashboard/data.json``).
        self.dashboard_data = dashboard_data
        # The daemon's health of every component, under "daemon" in ``GET /healthz`` (the standalone proxy
        # has no daemon around it and keeps the proxy-only answer).
        self.health = health
        self.token = secrets.token_urlsafe(24)
        self.transport = transport
        self.requests = 0
        self.upstream_errors = 0
        self.refused = 0  # requests refused by the Host/Origin rules or the target form
        self._client: httpx.AsyncClient | None = None
        # Rewriting threads in use: a flood of large bodies waits here (on the loop, holding no thread)
        # instead of decoding and parsing all at once. One per event loop (tests run several).
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    async def off_loop(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``func(*args, **kwargs)`` on a worker thread, at most ``settings.workers`` at a time."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.settings.workers))
        async with self._slots[1]:
            return await asyncio.to_thread(func, *args, **kwargs)

    @property
    def client(self) -> httpx.AsyncClient:
        """One pooled client for every upstream (created in the running loop on first use)."""
        if self._client is None:
            s = self.settings
            client = httpx.AsyncClient(
                transport=self.transport,
                timeout=httpx.Timeout(s.read_timeout, connect=s.connect_timeout),
                limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
                follow_redirects=False,
                trust_env=True,  # HTTP(S)_PROXY / NO_PROXY, like the agents themselves
            )
            for name in ("accept", "accept-encoding", "user-agent"):  # send what the agent sent, nothing more
                del client.headers[name]
            self._client = client
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await relay_websocket(self, scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def target(self, scope: Scope) -> tuple[str, str, dict[str, str], list[tuple[str, str]]]:
        """(path without the mode prefix, mode, header map, header list) of a request."""
        path = scope["path"]
        mode = self.settings.mode
        if path == LOSSLESS_PREFIX or path.startswith(LOSSLESS_PREFIX + "/"):
            path, mode = path[len(LOSSLESS_PREFIX) :] or "/", "lossless"
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        return path, mode, dict(headers), headers

    def refusal(self, scope: Scope, hmap: dict[str, str]) -> tuple[int, str] | None:
        """(status, reason) when a request may not go on: a target that is not a path, a foreign Host or Origin."""
        raw = scope.get("path", "")
        if not raw.startswith("/"):
            self.refused += 1
            return 400, f"headroom proxy: the request target must be a path starting with '/', not {raw[:100]!r}"
        reason = self.settings.guard.refusal(hmap)
        if reason is not None:
            self.refused += 1
            return 403, reason
        return None

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method = scope["method"]
        path, mode, hmap, headers = self.target(scope)
        refused = self.refusal(scope, hmap)
        if refused is not None:
            status, reason = refused
            log.debug("%s %.100s refused: %s", method, path, reason)  # counted in /healthz; a page may flood
            await _respond(send, status, error_body(provider_of(path, hmap), status, reason), close=True)
            return
        if method == "OPTIONS":  # a browser's preflight: answered here, with no CORS grant, never forwarded
            await _respond(send, 204, b"", extra=[(b"allow", b"GET, HEAD, POST, PUT, PATCH, DELETE")])
            return
        own = local_route(path)
        if own is not None and not (path == "/" and _CREDENTIALS.intersection(hmap)):
            await self._local(scope, method, own, path, hmap, send)
            return
        route = match(method, path, hmap)
        raw = await self._read_body(route.provider, receive, send)
        if raw is None:
            return
        self.requests += 1
        received = time.perf_counter()  # the proxy's own time starts once the body is in
        rewritten = Rewritten(raw)
        if route.compresses and method == "POST":
            encoding = hmap.get("content-encoding", "")
            limit = self.settings.max_body_bytes
            try:
                agent = agent_of(hmap)
                if len(raw) <= self.settings.inline_bytes and encoding.strip().lower() in ("", "identity"):
                    rewritten = self.rewriter.rewrite(
                        route, raw, encoding, mode, max_bytes=limit, headers=hmap, agent=agent
                    )
                else:  # decoding, parsing and compressing big (or decoding into big) bodies: off the loop
                    rewritten = await self.off_loop(
                        self.rewriter.rewrite, route, raw, encoding, mode, max_bytes=limit, headers=hmap, agent=agent
                    )
            except BodyTooLarge as exc:
                log.warning("%s %s: %s (%d bytes as sent)", method, path, exc, len(raw))
                await _respond(send, 413, error_body(route.provider, 413, f"headroom proxy: {exc}"), close=True)
                return
            if rewritten.skipped:
                log.info("%s %s: %s", method, path, rewritten.skipped)
        out_headers = [
            (k, v)
            for k, v in headers
            if k not in HOP_BY_HOP and k not in BROWSER_HEADERS and not (rewritten.decoded and k == "content-encoding")
        ]
        url = upstream_url(self.settings.upstreams[route.provider], path, scope["query_string"].decode("latin-1"))
        request = self.client.build_request(method, url, headers=out_headers, content=rewritten.body)
        record = self._record(route, hmap, mode, raw, rewritten) if route.compresses else None
        added = time.perf_counter()
        if record is not None:
            record.added_ms = (added - received) * 1000
        try:
            await self._exchange(request, route, receive, send, record)
        finally:
            if record is not None and self.stats is not None:
                record.duration_ms = (time.perf_counter() - started) * 1000
                self.stats.submit(record)

    async def _read_body(self, provider: Provider, receive: Receive, send: Send) -> bytes | None:
        """The whole request body, or None once a 413 (over the cap) or 408 (too slow) was sent instead."""
        body = bytearray()
        timeout = self.settings.body_timeout
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                reason = f"headroom proxy: the request body did not arrive within {timeout:g}s"
                await _respond(send, 408, error_body(provider, 408, reason), close=True)
                return None
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > self.settings.max_body_bytes:
                limit = self.settings.max_body_bytes / (1 << 20)
                await _respond(send, 413, error_body(provider, 413, f"request body over {limit:g} MB"), close=True)
                return None
            if not message.get("more_body", False):
                return bytes(body)

    def _record(self, route: Route, hmap: dict[str, str], mode: str, raw: bytes, rw: Rewritten) -> RequestRecord:
        return RequestRecord(
            agent=agent_of(hmap),
            provider=route.provider,
            endpoint=route.endpoint,
            model=rw.model,
            stream=rw.stream,
            mode=mode,
            bytes_before=len(raw),
            bytes_after=len(rw.body),
            blocks_compressed=rw.blocks,
            frozen_messages=rw.frozen,
            messages=rw.messages,
            tokens=rw.tokens,
            weight=rw.size + (len(rw.body) if rw.changed else 0),
            error=rw.skipped if rw.skipped and rw.skipped.startswith("compression failed") else None,
            conversation=rw.conversation,
            project=rw.project,
            holdout=rw.holdout,
            fallback=rw.fallback,
        )

    async def _exchange(
        self, request: httpx.Request, route: Route, receive: Receive, send: Send, record: RequestRecord | None
    ) -> None:
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            self.upstream_errors += 1
            status = 504 if isinstance(exc, httpx.TimeoutException) else 502
            reason = f"headroom proxy: upstream {request.url.host}:{request.url.port or ''} " + (
                "timed out" if status == 504 else f"unreachable ({type(exc).__name__}: {exc})"
            )
            log.warning("%s %s: %s", request.method, request.url.path, reason)
            if record is not None:
                record.status, record.error = status, reason
            await _respond(send, status, error_body(route.provider, status, reason))
            return
        if record is not None:
            record.status = response.status_code
        try:
            relay = asyncio.ensure_future(self._relay(response, send, record))
            watch = asyncio.ensure_future(_disconnected(receive))
            done, _ = await asyncio.wait({relay, watch}, return_when=asyncio.FIRST_COMPLETED)
            if relay not in done:  # the client left: stop reading from upstream now
                relay.cancel()
                if record is not None:
                    record.error = "client disconnected"
                await asyncio.gather(relay, return_exceptions=True)
                return
            watch.cancel()
            relay.result()
        finally:
            await response.aclose()

    async def _relay(self, response: httpx.Response, send: Send, record: RequestRecord | None) -> None:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.multi_items()]
        headers = [(k, v) for k, v in headers if k.decode("latin-1").lower() not in HOP_BY_HOP - {"content-length"}]
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        sniffer = UsageSniffer(response.headers.get("content-type", ""), response.headers.get("content-encoding", ""))
        try:
            async for chunk in response.aiter_raw():
                sniffer.feed(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.HTTPError as exc:
            self.upstream_errors += 1
            reason = f"upstream stream cut: {type(exc).__name__}" + (f": {exc}" if str(exc) else "")
            log.warning("%s %s: %s", response.request.method, response.request.url.path, reason)
            if record is not None:
                record.error = reason
                record.usage = sniffer.finish()
            raise UpstreamCut(reason) from None
        if record is not None:
            record.usage = sniffer.finish()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _local(
        self, scope: Scope, method: str, route: LocalRoute, path: str, hmap: dict[str, str], send: Send
    ) -> None:
        """The proxy's own paths (``LOCAL_ROUTES``): answered here whatever the method, never sent to a provider."""
        if method not in ("GET", "HEAD"):
            body = orjson.dumps({"error": f"{method} {path} is a local path of the headroom proxy: GET only"})
            await _respond(send, 405, body, extra=[(b"allow", b"GET, HEAD")])
        elif route.local_only and not local_client(scope.get("client"), hmap.get("host", "")):
            await _respond(send, 403, orjson.dumps({"error": f"{path} is served to local clients only"}))
        else:
            await route.handler(self, scope, path, hmap, send)

    async def _root(self, scope: Scope, path: str, hmap: dict[str, str], send: Send) -> None:
        await _respond(send, 302, b"", extra=[(b"location", DASHBOARD_PATH.encode())])

    async def _favicon(self, scope: Scope, path: str, hmap: dict[str, str], send: Send) -> None:
        await _respond(send, 204, b"", extra=[(b"cache-control", b"max-age=86400")])

    async def _stats(self, scope: Scope, path: str, hmap: dict[str, str], send: Send) -> None:
        if self.summary is None:
            await _respond(send, 503, orjson.dumps({"error": "statistics need the database"}))
            return
        if self.stats is not None:
            await asyncio.to_thread(self.stats.flush, 2.0)
        summary = await asyncio.to_thread(self.summary)
        await _respond(send, 200, orjson.dumps(summary))

    async def _healthz(self, scope: Scope, path: str, hmap: dict[str, str], send: Send) -> None:
        params = dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        payload: dict[str, Any] = {
            "status": "ok",
            "service": "headroom-proxy",
            "pid": os.getpid(),
            "mode": self.settings.mode,
            "requests": self.requests,
            "upstream_errors": self.upstream_errors,
            "refused": self.refused,
            "compression_failures": self.rewriter.failures,
            "stats_dropped": self.stats.dropped if self.stats else 0,
            "stats_tokens_skipped": self.stats.tokens_skipped if self.stats else 0,
            "savings": self.rewriter.policy.health(),  # the holdout share and the watchdog's fallbacks
        }
        nonce = params.get("nonce", "")
        if nonce and len(nonce) <= MAX_NONCE:  # the proof that this is the proxy its registration names
            payload["proof"] = proof(self.token, nonce)
        if self.health is not None:
            payload["daemon"] = await asyncio.to_thread(self.health)  # stats of files: off the event loop
        await _respond(send, 200, orjson.dumps(payload))

    async def _memory(self, scope: Scope, path: str, hmap: dict[str, str], send: Send) -> None:
        if self.memory_search is None:
            await _respond(send, 503, orjson.dumps({"error": "memory search runs in the daemon only"}))
            return
        if not hmac.compare_digest(hmap.get("x-headroom-token", "").encode(), self.token.encode()):
            await _respond(send, 403, orjson.dumps({"error": "a token from the daemon's state file is required"}))
            return
        params = dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        try:
            result = await asyncio.to_thread(self.memory_search, params)
        except ValueError as exc:
            await _respond(send, 400, orjson.dumps({"error": str(exc)}))
            return
        await _respond(send, 200, orjson.dumps(result, default=str))

    async def _dashboard(self, scope: Scope, path: str, hmap: dict[str, str], send: Send) -> None:
        """The page's files to anyone; its data only to a loopback client that asked for a loopback host.

        The page holds no data, so it needs no guard. The data has none of the tokens a browser could be
        given, so two checks stand in: the peer address (the proxy may be bound to a public address) and the
        Host header, which a web page's DNS-rebinding trick (evil.example resolving to 127.0.0.1) cannot forge.
        """
        name = path[len(DASHBOARD_PATH) :].lstrip("/")
        if name != "data.json":
            found = static_file(name)
            if found is None:
                await _respond(send, 404, orjson.dumps({"error": f"no such dashboard file: {name}"}))
                return
            body, content_type = found
            await _respond(send, 200, body, content_type=content_type, extra=_PAGE_HEADERS)
            return
        if not local_client(scope.get("client"), hmap.get("host", "")):
            await _respond(send, 403, orjson.dumps({"error": "the dashboard's data is served to local clients only"}))
            return
        if self.dashboard_data is None:
            await _respond(send, 503, orjson.dumps({"error": "the dashboard needs the database"}))
            return
        params = dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        try:
            days = int(params.get("days", "30"))
        except ValueError:
            days = 0
        if not 1 <= days <= 366:
            await _respond(send, 400, orjson.dumps({"error": "days must be a whole number from 1 to 366"}))
            return
        if self.stats is not None:
            await asyncio.to_thread(self.stats.flush, 2.0)
        data = await asyncio.to_thread(self.dashboard_data, days)
        await _respond(send, 200, orjson.dumps(data, default=str), extra=[(b"cache-control", b"no-store")])


#: The page loads only its own files and its own data, and may not be framed by another site.
_PAGE_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        b"base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
]


@dataclass(frozen=True)
class LocalRoute:
    """One of the proxy's own endpoints: a path (or, with ``prefix``, every path under it) and its handler.

    ``local_only``: served to a loopback client that asked for a loopback host only (403 otherwise); the
    dashboard and memory search do their own, finer checks (see their handlers)."""

    path: str
    handler: Callable[[ProxyApp, Scope, str, dict[str, str], Send], Awaitable[None]]
    prefix: bool = False
    local_only: bool = False

    def matches(self, path: str) -> bool:
        return path == self.path or (self.prefix and path.startswith(self.path + "/"))


#: The proxy's own endpoints, in one table: ``is_local_path`` and ``ProxyApp._local`` both read it.
LOCAL_ROUTES = (
    LocalRoute("/", ProxyApp._root),
    LocalRoute("/favicon.ico", ProxyApp._favicon),
    LocalRoute(MEMORY_SEARCH_PATH, ProxyApp._memory),
    LocalRoute(DASHBOARD_PATH, ProxyApp._dashboard, prefix=True),
    LocalRoute("/healthz", ProxyApp._healthz, local_only=True),
    LocalRoute("/stats", ProxyApp._stats, local_only=True),
)


def local_route(path: str) -> LocalRoute | None:
    """The route serving ``path`` (after the lossless prefix is taken off), or None: a provider's path."""
    return next((route for route in LOCAL_ROUTES if route.matches(path)), None)


def is_local_path(path: str) -> bool:
    """The proxy's own paths: never forwarded to a provider."""
    return local_route(path) is not None


#: Headers that make a request to ``/`` an agent's (a connectivity check, passed on) rather than a browser's.
_CREDENTIALS = CREDENTIAL_HEADERS


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: str = "application/json",
    extra: list[tuple[bytes, bytes]] | None = None,
    close: bool = False,
) -> None:
    """A whole answer; ``close`` ends the connection after it (the request's body may still be arriving)."""
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    headers += extra or []
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
