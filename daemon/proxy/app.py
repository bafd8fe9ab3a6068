"""The proxy as a plain ASGI application: one request in, the same request (smaller) upstream, the answer back.

Plain ASGI rather than a framework because the proxy's whole job is byte handling: the request body is read
once, the answer is relayed chunk by chunk as ``httpx`` yields it (``aiter_raw``: no decoding, no
re-chunking, no buffering), and a client that goes away cancels the upstream call at once instead of when
the next chunk happens to arrive. The engine runs on a worker thread for large bodies so one big request
never stalls the streams of the others.

Local endpoints: ``GET /healthz``, ``GET /stats``, ``GET /memory/search`` (the daemon's memory search for
the MCP servers, behind a token from the owner-only state file) and the dashboard under ``GET /dashboard``
(the page for anyone, its data only for loopback clients that name a loopback host). A path starting with
``/lossless`` is served in lossless mode (for clients that cannot call ``headroom_retrieve``); every path no
provider route names is passed through untouched.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import os
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from headroom.daemon.proxy.rewrite import Rewriter, Rewritten
from headroom.daemon.proxy.routes import (
    DEFAULT_UPSTREAMS,
    LOSSLESS_PREFIX,
    MEMORY_SEARCH_PATH,
    Provider,
    Route,
    agent_of,
    error_body,
    match,
    upstream_url,
)
from headroom.daemon.proxy.stats import RequestRecord, StatsWriter
from headroom.daemon.proxy.usage import UsageSniffer

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
    inline_bytes: int = 32 << 10  # smaller bodies are compressed on the event loop (a thread hop costs more)


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
        dashboard_data: Callable[[int], dict[str, Any]] | None = None,
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
        self._client: httpx.AsyncClient | None = None

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
            from headroom.daemon.proxy.websocket import relay_websocket

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

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method = scope["method"]
        path, mode, hmap, headers = self.target(scope)
        if method == "GET" and path in ("/healthz", "/stats"):
            await self._local(path, send)
            return
        if method == "GET" and path == MEMORY_SEARCH_PATH:
            await self._memory(scope, hmap, send)
            return
        if method == "GET" and (path == DASHBOARD_PATH or path.startswith(DASHBOARD_PATH + "/")):
            await self._dashboard(scope, path, hmap, send)
            return
        route = match(method, path, hmap)
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.settings.max_body_bytes:
                limit = self.settings.max_body_bytes / (1 << 20)
                await _respond(send, 413, error_body(route.provider, 413, f"request body over {limit:g} MB"))
                return
            if not message.get("more_body", False):
                break
        self.requests += 1
        received = time.perf_counter()  # the proxy's own time starts once the body is in
        raw = bytes(body)
        rewritten = Rewritten(raw)
        if route.compresses and method == "POST":
            encoding = hmap.get("content-encoding", "")
            if len(raw) <= self.settings.inline_bytes:
                rewritten = self.rewriter.rewrite(route, raw, encoding, mode)
            else:
                rewritten = await asyncio.to_thread(self.rewriter.rewrite, route, raw, encoding, mode)
            if rewritten.skipped:
                log.info("%s %s: %s", method, path, rewritten.skipped)
        out_headers = [
            (k, v) for k, v in headers if k not in HOP_BY_HOP and not (rewritten.decoded and k == "content-encoding")
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
            tokens=rw.tokens,
            error=rw.skipped if rw.skipped and rw.skipped.startswith("compression failed") else None,
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

    async def _local(self, path: str, send: Send) -> None:
        if path == "/healthz":
            payload: dict[str, Any] = {
                "status": "ok",
                "service": "headroom-proxy",
                "pid": os.getpid(),
                "mode": self.settings.mode,
                "requests": self.requests,
                "upstream_errors": self.upstream_errors,
                "compression_failures": self.rewriter.failures,
                "stats_dropped": self.stats.dropped if self.stats else 0,
            }
            if self.health is not None:
                payload["daemon"] = await asyncio.to_thread(self.health)  # stats of files: off the event loop
            await _respond(send, 200, orjson.dumps(payload))
        elif self.summary is None:
            await _respond(send, 503, orjson.dumps({"error": "statistics need the database"}))
        else:
            if self.stats is not None:
                await asyncio.to_thread(self.stats.flush, 2.0)
            summary = await asyncio.to_thread(self.summary)
            await _respond(send, 200, orjson.dumps(summary))

    async def _memory(self, scope: Scope, hmap: dict[str, str], send: Send) -> None:
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
        from headroom.daemon.dashboard import static_file

        name = path[len(DASHBOARD_PATH) :].lstrip("/")
        if name != "data.json":
            found = static_file(name)
            if found is None:
                await _respond(send, 404, orjson.dumps({"error": f"no such dashboard file: {name}"}))
                return
            body, content_type = found
            await _respond(send, 200, body, content_type=content_type, extra=_PAGE_HEADERS)
            return
        client = scope.get("client")
        if not client or not _loopback(str(client[0])) or not _loopback_host(hmap.get("host", "")):
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


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loopback_host(host: str) -> bool:
    """Whether a Host header names this machine: ``localhost``, ``127.x.y.z`` or ``[::1]``, any port."""
    name = host.rsplit("]", 1)[0].lstrip("[") if host.startswith("[") else host.rsplit(":", 1)[0]
    return name.lower() == "localhost" or _loopback(name)


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
) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    headers += extra or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
