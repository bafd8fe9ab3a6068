"""The requests the proxy benchmark (``proxy_bench.py``) sends: small requests of every API (Anthropic Messages,
OpenAI Chat and Responses, Gemini; streaming or not; count_tokens), each made new by a counter, and the large
Claude Code request of the big-output fixtures, made new by a nonce so that no cache can answer it.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("HEADROOM_SHARED", REPO.parent / "shared"))
BIG_REQUESTS = SHARED / "fixtures" / "requests" / "claude" / "big-output"
ANTHROPIC_HEADERS = {"x-api-key": "dummy", "anthropic-version": "2023-06-01", "user-agent": "proxy-bench/1"}
OPENAI_HEADERS = {"authorization": "Bearer dummy", "user-agent": "proxy-bench/1"}
GEMINI_HEADERS = {"x-goog-api-key": "dummy", "user-agent": "proxy-bench/1"}


@dataclass(frozen=True)
class Call:
    """One request: method path, headers and JSON body."""

    kind: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    def content(self) -> bytes:
        return json.dumps(self.body).encode()


def anthropic(i: int, *, stream: bool = False, model: str = "claude-sonnet-4-5") -> Call:
    body = {
        "model": model,
        "max_tokens": 512,
        "stream": stream,
        "system": "You are a careful assistant for a small web service.",
        "messages": [{"role": "user", "content": f"Request {i}: what does an HTTP 404 from /items/{i} mean?"}],
    }
    return Call("anthropic" + ("-stream" if stream else ""), "/v1/messages", ANTHROPIC_HEADERS, body)


def chat(i: int, *, stream: bool = False, model: str = "gpt-5.5") -> Call:
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": f"Question {i}: which status code means 'not found'?"},
        ],
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return Call("chat" + ("-stream" if stream else ""), "/v1/chat/completions", OPENAI_HEADERS, body)


def responses(i: int, *, stream: bool = False, model: str = "gpt-5.5") -> Call:
    body = {
        "model": model,
        "stream": stream,
        "instructions": "You are terse.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": f"Task {i}: list three HTTP verbs."}]}],
    }
    return Call("responses" + ("-stream" if stream else ""), "/v1/responses", OPENAI_HEADERS, body)


def gemini(i: int, *, stream: bool = False, model: str = "gemini-3.8-flash") -> Call:
    verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": f"Prompt {i}: name a prime above {i}."}]}]}
    return Call("gemini" + ("-stream" if stream else ""), f"/v1beta/models/{model}:{verb}", GEMINI_HEADERS, body)


def count_tokens(i: int) -> Call:
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": f"Count {i} tokens, please."}]}
    return Call("count_tokens", "/v1/messages/count_tokens", ANTHROPIC_HEADERS, body)


MIXED: list[Callable[[int], Call]] = [
    anthropic,
    lambda i: anthropic(i, stream=True),
    chat,
    lambda i: chat(i, stream=True),
    responses,
    lambda i: responses(i, stream=True),
    gemini,
    lambda i: gemini(i, stream=True),
    count_tokens,
]


def big_body() -> dict[str, Any]:
    """The largest request Claude Code sent in the big-output scenario (a 35 KB JSON read among others)."""
    paths = list(BIG_REQUESTS.glob("*-anthropic-main.json"))
    if not paths:
        raise SystemExit(f"no request fixtures under {BIG_REQUESTS} (set HEADROOM_SHARED)")
    body: dict[str, Any] = json.loads(max(paths, key=lambda p: p.stat().st_size).read_bytes())
    body["stream"] = True
    return body


def with_nonce(body: dict[str, Any], nonce: str) -> dict[str, Any]:
    """``body`` with ``nonce`` in the first user message and at the end of every tool output: a request that
    no cache has seen and that compresses like the original."""
    out = copy.deepcopy(body)
    for n, message in enumerate(out["messages"]):
        content = message.get("content")
        if n == 0 and isinstance(content, list):
            content.insert(0, {"type": "text", "text": f"[bench run {nonce}]"})
        if not isinstance(content, list):
            continue
        for block in content:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            inner = block.get("content")
            if isinstance(inner, str):
                block["content"] = f"{inner}\n[run {nonce}]"
            elif isinstance(inner, list) and inner and isinstance(inner[-1], dict) and "text" in inner[-1]:
                inner[-1]["text"] = f"{inner[-1]['text']}\n[run {nonce}]"
    return out
