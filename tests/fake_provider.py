"""A fake LLM provider that speaks the exact wire formats of Anthropic, OpenAI (Chat, Responses, Responses
over WebSocket) and Gemini, streaming and not. The provider APIs are the one thing that cannot run here.

It records every request it receives (path, headers, body) and answers deterministically, so a test can
compare what reached the "provider" with what the client sent. Fault switches ride on the model name:
``overload`` (Anthropic 529), ``cut`` (the stream breaks after a few events), ``slow-N`` (N ms per event).
The benchmark (bench/proxy_bench.py) serves the same app.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _sse(event: str | None, data: Any) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def anthropic_events(model: str, text: str, usage: dict[str, int]) -> list[bytes]:
    msg = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    events = [
        _sse("message_start", {"type": "message_start", "message": msg}),
        _sse(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
    ]
    for word in text.split(" "):
        events.append(
            _sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word + " "}},
            )
        )
    events += [
        _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(text.split(" "))},
            },
        ),
        _sse("message_stop", {"type": "message_stop"}),
    ]
    return events


def responses_events(model: str, text: str, usage: dict[str, int]) -> list[dict[str, Any]]:
    base = {
        "id": "resp_fake",
        "object": "response",
        "created_at": 1,
        "model": model,
        "status": "in_progress",
        "output": [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }
    item = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    done = {
        **base,
        "status": "completed",
        "output": [item],
        "usage": {
            "input_tokens": usage["input"],
            "input_tokens_details": {"cached_tokens": usage["cached"]},
            "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage["input"] + 5,
        },
    }
    events: list[dict[str, Any]] = [{"type": "response.created", "response": base, "sequence_number": 0}]
    for n, word in enumerate(text.split(" ")):
        events.append(
            {
                "type": "response.output_text.delta",
                "item_id": "msg_fake",
                "output_index": 0,
                "content_index": 0,
                "delta": word + " ",
                "sequence_number": n + 1,
            }
        )
    events.append(
        {"type": "response.output_item.done", "output_index": 0, "item": item, "sequence_number": len(events)}
    )
    events.append({"type": "response.completed", "response": done, "sequence_number": len(events)})
    return events


@dataclass
class FakeProvider:
    """The ASGI app. ``received`` lists every request; ``reply`` is the assistant text every answer carries."""

    reply: str = "All done here."
    received: list[Received] = field(default_factory=list)
    ws_frames: list[Any] = field(default_factory=list)
    streams_finished: int = 0
    streams_cancelled: int = 0
    #: Simulate the providers' prompt caches: usage reports the longest prefix (system, tools, then whole
    #: messages) already seen in an earlier request as cached; Anthropic caches only when the body has a
    #: ``cache_control`` mark (read: that prefix, write: the rest), OpenAI always (``cached_tokens``).
    prompt_cache: bool = False
    _prefixes: set[str] = field(default_factory=set)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        _RECEIVE.set(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        req = Received(scope["method"], scope["path"], scope["query_string"].decode(), headers, bytes(body))
        self.received.append(req)
        await self._answer(req, send)

    def _usage(self, body: bytes) -> int:
        return max(1, len(body) // 4)

    def cached(self, body: dict[str, Any]) -> tuple[int, int]:
        """(tokens of the request's parts, tokens of its longest prefix seen before), ~4 bytes a token."""
        import hashlib

        items = body.get("messages", body.get("input"))
        parts = [body.get(k) for k in ("system", "instructions", "tools")]
        parts += items if isinstance(items, list) else [items]
        total = cached = 0
        chain = hashlib.sha256()
        hit = True
        for part in parts:
            text = json.dumps(_unmarked(part), sort_keys=True)  # where the cache mark sits is not content
            chain.update(text.encode())
            key = chain.hexdigest()
            size = len(text) // 4
            total += size
            if hit and key in self._prefixes:
                cached += size
            else:
                hit = False
            self._prefixes.add(key)
        return total, cached

    async def _answer(self, req: Received, send: Send) -> None:
        path = req.path.rsplit("/v1", 1)[-1] if "/v1/" in req.path else req.path
        if req.method == "HEAD":
            await _json(send, 200, {})
            return
        try:
            body = req.json() if req.body else {}
        except json.JSONDecodeError:
            await _json(
                send, 400, {"type": "error", "error": {"type": "invalid_request_error", "message": "malformed JSON"}}
            )
            return
        model = str(body.get("model", "")) or req.path.rsplit("/", 1)[-1].split(":")[0]
        delay = int(model.rsplit("slow-", 1)[1]) / 1000 if "slow-" in model else 0.0
        tokens = self._usage(req.body)
        if "overload" in model:
            await _json(send, 529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            return
        if path == "/messages/count_tokens":
            await _json(send, 200, {"input_tokens": tokens})
        elif path == "/messages":
            usage = {"input_tokens": tokens, "cache_read_input_tokens": 7, "cache_creation_input_tokens": 3}
            if self.prompt_cache:
                total, hit = self.cached(body)
                caching = b"cache_control" in req.body
                usage = {
                    "input_tokens": 0 if caching else total,
                    "cache_read_input_tokens": hit if caching else 0,
                    "cache_creation_input_tokens": total - hit if caching else 0,
                }
            if body.get("stream"):
                await self._stream(send, anthropic_events(model, self.reply, usage), model, delay)
            else:
                await _json(
                    send,
                    200,
                    {
                        "id": "msg_fake",
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [{"type": "text", "text": self.reply}],
                        "stop_reason": "end_turn",
                        "stop_sequence": None,
                        "usage": {**usage, "output_tokens": 4},
                    },
                )
        elif path == "/chat/completions":
            await self._chat(send, body, model, tokens, delay)
        elif path == "/responses":
            cached = 11
            if self.prompt_cache:
                tokens, cached = self.cached(body)
            events = responses_events(model, self.reply, {"input": tokens, "cached": cached})
            if body.get("stream"):
                await self._stream(send, [_sse(e["type"], e) for e in events], model, delay)
            else:
                await _json(send, 200, events[-1]["response"])
        elif ":generateContent" in req.path or ":streamGenerateContent" in req.path:
            chunk = {
                "candidates": [
                    {"content": {"role": "model", "parts": [{"text": self.reply}]}, "finishReason": "STOP", "index": 0}
                ],
                "usageMetadata": {
                    "promptTokenCount": tokens,
                    "candidatesTokenCount": 4,
                    "cachedContentTokenCount": 5,
                    "totalTokenCount": tokens + 4,
                },
                "modelVersion": model,
            }
            if ":stream" in req.path:
                await self._stream(send, [_sse(None, chunk)], model, delay)
            else:
                await _json(send, 200, chunk)
        elif ":countTokens" in req.path:
            await _json(send, 200, {"totalTokens": tokens})
        else:
            await _json(send, 200, {"object": "list", "data": [], "path": req.path})

    async def _chat(self, send: Send, body: dict[str, Any], model: str, tokens: int, delay: float) -> None:
        usage = {
            "prompt_tokens": tokens,
            "completion_tokens": 4,
            "total_tokens": tokens + 4,
            "prompt_tokens_details": {"cached_tokens": 9},
        }
        if not body.get("stream"):
            await _json(
                send,
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 1,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": self.reply},
                            "finish_reason": "stop",
                            "logprobs": None,
                        }
                    ],
                    "usage": usage,
                },
            )
            return
        chunks = []
        for word in self.reply.split(" "):
            chunks.append(
                _sse(
                    None,
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion.chunk",
                        "created": 1,
                        "model": model,
                        "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}],
                    },
                )
            )
        final = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
        chunks.append(_sse(None, final))
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append(_sse(None, {**final, "choices": [], "usage": usage}))
        chunks.append(b"data: [DONE]\n\n")
        await self._stream(send, chunks, model, delay)

    async def _stream(self, send: Send, events: list[bytes], model: str, delay: float) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
            }
        )
        receive = _RECEIVE.get()
        gone = asyncio.ensure_future(_disconnect(receive))  # h11 drops sends to a closed peer silently
        try:
            for n, event in enumerate(events):
                if "cut" in model and n == 3:
                    raise ConnectionAbortedError("fake provider cut the stream")
                if delay:
                    await asyncio.sleep(delay)
                if gone.done():
                    self.streams_cancelled += 1
                    return
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            self.streams_finished += 1
        except asyncio.CancelledError:
            self.streams_cancelled += 1
            raise
        finally:
            gone.cancel()

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            frame = json.loads(message.get("text") or message.get("bytes") or b"{}")
            self.ws_frames.append(frame)
            if frame.get("generate") is False:
                events = [
                    {"type": "response.created", "response": {"id": "resp_prewarm"}},
                    {"type": "response.completed", "response": {"id": "resp_prewarm", "output": [], "usage": None}},
                ]
            else:
                size = len(message.get("text") or "")
                events = responses_events(frame.get("model", ""), self.reply, {"input": size // 4, "cached": 13})
            for event in events:
                await send({"type": "websocket.send", "text": json.dumps(event)})


def _unmarked(value: Any) -> Any:
    """``value`` without its ``cache_control`` marks (the agents move them to the newest message each turn)."""
    if isinstance(value, dict):
        return {k: _unmarked(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_unmarked(v) for v in value]
    return value


_RECEIVE: contextvars.ContextVar[Receive] = contextvars.ContextVar("receive")


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _json(send: Send, status: int, payload: Any) -> None:
    data = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


class Served:
    """An ASGI app served by uvicorn on 127.0.0.1 (a free port) on a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(512)
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="error", lifespan="on", ws_per_message_deflate=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self.socket])), daemon=True
        )

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()
