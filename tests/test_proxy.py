"""The proxy with the real ``anthropic`` and ``openai`` SDK clients, against a fake provider on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import anthropic
import httpx
import openai
from proxy_helpers import fixture_requests, proxy_rig


def test_anthropic_stream_is_compressed_and_relayed(shared: Path) -> None:
    body = max(fixture_requests(shared, "claude", "big-output", "anthropic-main"), key=lambda b: len(json.dumps(b)))
    with (
        proxy_rig() as rig,
        anthropic.Anthropic(base_url=rig.url, api_key="sk-ant-test-secret-key", max_retries=0) as client,
    ):
        with client.messages.stream(
            model=body["model"], max_tokens=64, messages=body["messages"], system=body["system"], tools=body["tools"]
        ) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert text == rig.fake.reply + " " and final.usage.cache_read_input_tokens == 7
        sent = rig.fake.received[-1]
        assert "sk-ant-test-secret-key" in (sent.headers.get("x-api-key", "") + sent.headers.get("authorization", ""))
        upstream = sent.json()
        assert upstream["tools"] == body["tools"] and upstream["system"] == body["system"]
        direct = len(json.dumps(body["messages"]).encode())
        assert len(json.dumps(upstream["messages"]).encode()) < direct * 0.5
        assert "retrieve hr:" in json.dumps(upstream["messages"])
        (row,) = rig.stats_rows(1)
        assert row["agent"] == "other" and row["provider"] == "anthropic" and row["stream"]
        assert row["tokens_after"] < row["tokens_before"] and row["cache_read_tokens"] == 7
        assert row["input_tokens"] is not None and row["output_tokens"] == 3
        summary = httpx.get(f"{rig.url}/stats").json()
        assert summary["total"]["requests"] == 1 and summary["total"]["tokens_saved"] > 0


def _big_tool_log(lines: int = 1500) -> str:
    return "\n".join(
        f"2026-11-20T10:{i // 60:02d}:{i % 60:02d}Z INFO worker-{i % 7} processed batch {i} ok" for i in range(lines)
    )


def test_openai_chat_and_responses_through_the_sdk() -> None:
    log_text = _big_tool_log()
    chat_messages = [
        {"role": "user", "content": "why does the worker stall?"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "shell", "arguments": '{"cmd": "cat app.log"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": log_text},
    ]
    with (
        proxy_rig() as rig,
        openai.OpenAI(base_url=f"{rig.url}/v1", api_key="sk-test-openai-secret", max_retries=0) as client,
    ):
        chunks = client.chat.completions.create(
            model="gpt-5.5",
            messages=chat_messages,
            stream=True,
            stream_options={"include_usage": True},  # type: ignore[arg-type]
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.strip() == rig.fake.reply
        reply = client.chat.completions.create(model="gpt-5.5", messages=chat_messages)  # type: ignore[arg-type]
        assert reply.choices[0].message.content == rig.fake.reply
        for body in rig.bodies("/chat/completions"):
            assert len(body["messages"][2]["content"]) < len(log_text) / 3
        items = [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "why does it stall?"}]},
            {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": '{"cmd": "cat app.log"}'},
            {"type": "function_call_output", "call_id": "c1", "output": log_text},
        ]
        streamed = client.responses.create(model="gpt-5.5", input=items, stream=True)  # type: ignore[arg-type]
        events = [e.type for e in streamed]
        assert events[0] == "response.created" and events[-1] == "response.completed"
        plain = client.responses.create(model="gpt-5.5", input=items)  # type: ignore[arg-type]
        assert plain.output_text == rig.fake.reply
        for body in rig.bodies("/responses"):
            assert len(body["input"][2]["output"]) < len(log_text) / 3
        rows = rig.stats_rows(4)
        assert [r["endpoint"] for r in rows] == ["chat", "chat", "responses", "responses"]
        assert all(r["cache_read_tokens"] in (9, 11) and r["tokens_after"] < r["tokens_before"] for r in rows)


def test_gemini_generate_stream_and_count_tokens() -> None:
    contents = [
        {"role": "user", "parts": [{"text": "summarise the log"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "run_shell_command", "args": {"command": "cat a.log"}}}]},
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "run_shell_command", "response": {"output": _big_tool_log()}}}],
        },
    ]
    with proxy_rig() as rig, httpx.Client(base_url=rig.url, headers={"x-goog-api-key": "AIza-test"}) as http:
        stream = http.post("/v1beta/models/gemini-3.8-flash:streamGenerateContent?alt=sse", json={"contents": contents})
        assert stream.status_code == 200 and stream.text.startswith("data: ")
        plain = http.post("/v1beta/models/gemini-3.8-flash:generateContent", json={"contents": contents})
        assert plain.json()["candidates"][0]["content"]["parts"][0]["text"] == rig.fake.reply
        counted = http.post("/v1beta/models/gemini-3.8-flash:countTokens", json={"contents": contents})
        assert counted.json()["totalTokens"] > 0
        sent = rig.fake.received
        assert sent[0].query == "alt=sse" and sent[0].headers["x-goog-api-key"] == "AIza-test"
        for r in sent:
            output = r.json()["contents"][2]["parts"][0]["functionResponse"]["response"]["output"]
            assert len(output) < len(_big_tool_log()) / 3
        rows = rig.stats_rows(3)
        assert {r["model"] for r in rows} == {"gemini-3.8-flash"} and rows[0]["stream"]
        assert [r["cache_read_tokens"] for r in rows[:2]] == [5, 5]


def test_other_paths_pass_through_untouched_with_a_gateway_prefix() -> None:
    with proxy_rig(prefix="/gateway/anthropic") as rig:
        got = httpx.get(f"{rig.url}/v1/models?limit=5", headers={"x-api-key": "k", "anthropic-version": "2023-06-01"})
        assert got.status_code == 200 and got.json()["path"] == "/gateway/anthropic/v1/models"
        assert rig.fake.received[-1].query == "limit=5"
        raw = b'{"model": "m",  "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}'
        httpx.post(f"{rig.url}/v1/messages?beta=true", content=raw, headers={"content-type": "application/json"})
        sent = rig.fake.received[-1]
        assert sent.path == "/gateway/anthropic/v1/messages" and sent.query == "beta=true"
        assert sent.body == raw  # nothing to compress: the very bytes the client sent
        head = httpx.head(f"{rig.url}/", headers={"x-api-key": "k"})
        assert head.status_code == 200


def test_a_stream_arrives_byte_identical_to_the_upstreams() -> None:
    body = {"model": "claude-x", "max_tokens": 20, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with proxy_rig() as rig:
        direct = httpx.post(f"{rig.upstream}/v1/messages", json=body).content
        via = httpx.post(f"{rig.url}/v1/messages", json=body)
        assert via.content == direct and via.headers["content-type"] == "text/event-stream"


def test_lossless_prefix_leaves_no_markers(shared: Path) -> None:
    body = max(fixture_requests(shared, "claude", "big-output", "anthropic-main"), key=lambda b: len(json.dumps(b)))
    with proxy_rig() as rig:
        httpx.post(f"{rig.url}/lossless/v1/messages", json=body, timeout=30)
        sent = rig.fake.received[-1]
        assert sent.path == "/v1/messages" and "retrieve hr:" not in sent.body.decode()
        (row,) = rig.stats_rows(1)
        assert row["mode"] == "lossless"


def test_anthropic_count_tokens_sees_the_compressed_conversation(shared: Path) -> None:
    body = max(fixture_requests(shared, "claude", "big-output", "anthropic-main"), key=lambda b: len(json.dumps(b)))
    with proxy_rig() as rig, anthropic.Anthropic(base_url=rig.url, api_key="k", max_retries=0) as client:
        counted = client.messages.count_tokens(model=body["model"], messages=body["messages"])
        direct = httpx.post(
            f"{rig.upstream}/v1/messages/count_tokens", json={"model": "m", "messages": body["messages"]}
        )
        assert counted.input_tokens < direct.json()["input_tokens"] / 2
