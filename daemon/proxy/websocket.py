"""OpenAI Responses over WebSocket (Codex's built-in provider): frames relayed both ways, new input compressed.

Codex opens ``GET /v1/responses`` with ``Upgrade: websocket``, sends a prewarm frame, then one
``response.create`` frame per turn that carries ``previous_response_id`` and only the *new* input items
(typically tool outputs whose calls were in the previous response, not in the frame). So the relay keeps,
per connection, the last user message and the tool calls it saw in the upstream's ``response.output_item.done``
events: a tool output is then compressed with the question and the call that produced it, exactly as the
same output would be over HTTP, where the whole history is in the body.

Nothing here buffers: each frame goes on as soon as it is read (after compression, for client frames). A
rejected or unreachable upstream refuses the client's handshake (Codex then falls back to HTTP + SSE).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from headroom.daemon.providers import agent_of, usage_of, websocket_endpoint
from headroom.daemon.providers.openai import CALL_TYPES, COMPLETED, DONE_EVENTS
from headroom.daemon.proxy.guard import BROWSER_HEADERS
from headroom.daemon.proxy.project import request_project
from headroom.daemon.proxy.rewrite import encode_json
from headroom.daemon.proxy.routes import upstream_url
from headroom.daemon.proxy.savings import conversation_key
from headroom.daemon.proxy.stats import RequestRecord

if TYPE_CHECKING:
    from headroom.daemon.proxy.app import ProxyApp, Receive, Scope, Send

log = logging.getLogger("headroom.proxy")

_SKIP_HEADERS = frozenset({"host", "connection", "upgrade", "content-length"})
#: The provider and endpoint served over WebSocket (OpenAI Responses).
_PROVIDER, _ENDPOINT = websocket_endpoint()


class _Turns:
    """Per-connection memory: the last user message, recent tool calls, and the turns awaiting their usage."""

    def __init__(self) -> None:
        self.user: Any = None
        self.calls: deque[Any] = deque(maxlen=64)
        self.pending: deque[RequestRecord] = deque()
        self.project: str | None = None  # announced in the first turn's instructions and environment context
        self.headers: dict[str, str] = {}  # the upgrade request's (the session id for the conversation key)
        self.conversation: str | None = None

    def context(self) -> list[Any]:
        return ([self.user] if self.user is not None else []) + list(self.calls)

    def saw_client_items(self, items: list[Any]) -> None:
        for item in items:
            if isinstance(item, dict) and item.get("role") == "user" and item.get("type", "message") == "message":
                self.user = item
            elif isinstance(item, dict) and item.get("type") in CALL_TYPES:
                self.calls.append(item)


async def relay_websocket(app: ProxyApp, scope: Scope, receive: Receive, send: Send) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    path, mode, hmap, headers = app.target(scope)
    refused = app.refusal(scope, hmap)  # the same Host, Origin and target rules as HTTP
    if refused is not None:
        status, reason = refused
        log.debug("WebSocket %.100s refused: %s", path, reason)
        await _deny(scope, send, status, _PROVIDER.error_body(status, reason))
        return
    url = upstream_url(app.settings.upstreams[_PROVIDER.name], path, scope["query_string"].decode("latin-1"))
    url = "ws" + url[4:] if url.startswith("http") else url
    forward = [
        (k, v)
        for k, v in headers
        if k not in _SKIP_HEADERS and k not in BROWSER_HEADERS and not k.startswith("sec-websocket-")
    ]
    protocols = [p.strip() for p in hmap.get("sec-websocket-protocol", "").split(",") if p.strip()]
    try:
        upstream = await connect(
            url,
            additional_headers=forward,
            user_agent_header=None,
            subprotocols=protocols or None,  # type: ignore[arg-type]
            compression=None,
            max_size=None,
            ping_interval=None,
            open_timeout=app.settings.connect_timeout,
            proxy=None,
        )
    except (OSError, TimeoutError, WebSocketException) as exc:
        status = exc.response.status_code if isinstance(exc, InvalidStatus) else 502
        reason = f"headroom proxy: upstream WebSocket {url.split('?')[0]} refused ({type(exc).__name__}: {exc})"
        log.warning("%s", reason)
        app.upstream_errors += 1
        await _deny(scope, send, status, _PROVIDER.error_body(status, reason))
        return
    app.requests += 1
    await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
    turns = _Turns()
    turns.headers = hmap
    agent = agent_of(hmap)
    to_upstream = asyncio.ensure_future(_client_to_upstream(app, receive, upstream, turns, agent, mode))
    to_client = asyncio.ensure_future(_upstream_to_client(app, upstream, send, turns))
    try:
        done, _ = await asyncio.wait({to_upstream, to_client}, return_when=asyncio.FIRST_COMPLETED)
        for task in (to_upstream, to_client):
            if task not in done:
                task.cancel()
        await asyncio.gather(to_upstream, to_client, return_exceptions=True)
    finally:
        await upstream.close()
        for record in turns.pending:  # turns that never got an answer
            record.error = record.error or "connection closed before the response completed"
            if app.stats is not None:
                app.stats.submit(record)


async def _deny(scope: Scope, send: Send, status: int, body: bytes) -> None:
    if "websocket.http.response" in scope.get("extensions", {}):
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1011})


async def _client_to_upstream(
    app: ProxyApp, receive: Receive, upstream: ClientConnection, turns: _Turns, agent: str, mode: str
) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            await upstream.close(code=message.get("code", 1000))
            return
        if message.get("text") is not None:
            await upstream.send(await _rewrite_frame(app, message["text"], turns, agent, mode))
        elif message.get("bytes") is not None:
            await upstream.send(message["bytes"])


async def _rewrite_frame(app: ProxyApp, text: str, turns: _Turns, agent: str, mode: str) -> str:
    started = time.perf_counter()
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    if not isinstance(frame, dict) or frame.get("type") != "response.create":
        return text
    items = frame.get(_ENDPOINT.key)
    model = frame.get("model") if isinstance(frame.get("model"), str) else None
    record = RequestRecord(agent, _PROVIDER.name, _ENDPOINT.name, model, True, mode, len(text), len(text))
    if frame.get("generate") is False or not isinstance(items, list) or not items:
        return text  # a prewarm: no turn, no usage to wait for
    if turns.project is None:
        turns.project = request_project(frame, _ENDPOINT.key)
    if turns.conversation is None:
        turns.conversation = conversation_key(agent, turns.headers, frame, _ENDPOINT.key)
    decision = app.rewriter.policy.decide(agent, turns.conversation, turns.project)
    record.conversation, record.project = decision.conversation, turns.project
    record.holdout, record.fallback = decision.holdout, decision.fallback
    context = turns.context()
    turns.saw_client_items(items)
    out_text = text
    if decision.fallback is not None:  # the frames carry only new items: lossless is all a fallback needs
        mode = "lossless"
    try:
        if decision.holdout:  # sent as received, counted for the comparison
            out, blocks, tokens = items, 0, app.rewriter.count_items(items, model, mode)
        elif len(text) > app.settings.inline_bytes:
            out, blocks, tokens = await app.off_loop(
                app.rewriter.rewrite_items, items, context, model, mode, turns.project
            )
        else:
            out, blocks, tokens = app.rewriter.rewrite_items(items, context, model, mode, turns.project)
        record.tokens, record.blocks_compressed = tokens, blocks
        if any(a is not b for a, b in zip(out, items)):
            out_text = encode_json({**frame, _ENDPOINT.key: out}).decode("utf-8", "surrogatepass")
    except Exception as exc:  # fail open
        app.rewriter.failures += 1
        record.error = f"compression failed: {type(exc).__name__}"
        log.warning("compression failed, forwarding the original frame: %s: %s", type(exc).__name__, exc)
    record.bytes_after = len(out_text)
    record.added_ms = (time.perf_counter() - started) * 1000
    record.status = 101
    turns.pending.append(record)
    return out_text


async def _upstream_to_client(app: ProxyApp, upstream: ClientConnection, send: Send, turns: _Turns) -> None:
    try:
        async for message in upstream:
            if isinstance(message, str):
                if "output_item.done" in message or any(e in message for e in DONE_EVENTS):
                    _observe(app, message, turns)
                await send({"type": "websocket.send", "text": message})
            else:
                await send({"type": "websocket.send", "bytes": message})
    except ConnectionClosed:
        pass
    code = upstream.close_code or 1000
    await send(
        {"type": "websocket.close", "code": 1000 if code == 1005 else code, "reason": upstream.close_reason or ""}
    )


def _observe(app: ProxyApp, text: str, turns: _Turns) -> None:
    """Note the model's tool calls (for the next turn's context) and the end of a turn (its usage)."""
    try:
        event = orjson.loads(text)
    except orjson.JSONDecodeError:
        return
    if not isinstance(event, dict):
        return
    kind = event.get("type")
    if kind == "response.output_item.done" and isinstance(event.get("item"), dict):
        if event["item"].get("type") in CALL_TYPES:
            turns.calls.append(event["item"])
    elif kind in DONE_EVENTS and turns.pending:
        record = turns.pending.popleft()
        usage_of(event, record.usage)
        if kind != COMPLETED:
            record.error = f"upstream {kind}"
        if app.stats is not None:
            app.stats.submit(record)
