"""The proxy's pure parts: usage sniffing in every dialect and encoding, the prefix memory, routes and errors."""

from __future__ import annotations

import gzip

import orjson
import pytest
import zstandard

from headroom.daemon.providers import agent_of, error_body, match
from headroom.daemon.proxy.rewrite import Rewriter, decode_body
from headroom.daemon.proxy.routes import upstream_url
from headroom.daemon.proxy.usage import UsageSniffer
from headroom.engine import EngineConfig, MemoryCCRStore
from headroom.engine.cache import PrefixCache, chain_keys

ANTHROPIC_SSE = (
    b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":12,'
    b'"cache_read_input_tokens":900,"cache_creation_input_tokens":40,"output_tokens":1}}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"usage is fine"}}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":77}}\n\n'
)


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_usage_from_an_anthropic_stream_in_any_chunking(chunk: int) -> None:
    sniffer = UsageSniffer("text/event-stream; charset=utf-8", "")
    for i in range(0, len(ANTHROPIC_SSE), chunk):
        sniffer.feed(ANTHROPIC_SSE[i : i + chunk])
    assert sniffer.finish() == {"input": 12, "cache_read": 900, "cache_write": 40, "output": 77}


def test_usage_from_compressed_answers() -> None:
    body = orjson.dumps(
        {"usage": {"prompt_tokens": 100, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 60}}}
    )
    for encoding, data in (("gzip", gzip.compress(body)), ("zstd", zstandard.ZstdCompressor().compress(body))):
        sniffer = UsageSniffer("application/json", encoding)
        sniffer.feed(data[:10])
        sniffer.feed(data[10:])
        assert sniffer.finish() == {"input": 40, "cache_read": 60, "output": 5}
    unknown = UsageSniffer("application/json", "br")
    unknown.feed(b"\x00\x01garbage")
    assert unknown.finish() == {}


def test_usage_from_responses_and_gemini_events() -> None:
    responses = UsageSniffer("text/event-stream", "")
    responses.feed(
        b'event: response.completed\ndata: {"type":"response.completed","response":{"usage":{"input_tokens":50,'
        b'"input_tokens_details":{"cached_tokens":20},"output_tokens":9,"output_tokens_details":{}}}}\n\n'
    )
    assert responses.finish() == {"input": 30, "cache_read": 20, "output": 9}
    gemini = UsageSniffer("text/event-stream", "")
    for n in (10, 20):  # cumulative: the last chunk wins
        gemini.feed(b'data: {"usageMetadata":{"promptTokenCount":%d,"candidatesTokenCount":3}}\r\n\r\n' % n)
    assert gemini.finish() == {"input": 20, "cache_read": 0, "output": 3}


def test_a_huge_line_without_end_is_dropped_not_kept() -> None:
    sniffer = UsageSniffer("text/event-stream", "")
    sniffer.feed(b"data: " + b"x" * (3 << 20))
    assert len(sniffer._buffer) == 0 and sniffer.finish() == {}


def test_prefix_cache_replays_what_was_sent_and_stops_at_the_first_difference() -> None:
    cache = PrefixCache(max_entries=10)
    a, b, c = {"m": 1}, {"m": 2}, {"m": 3}
    keys = chain_keys("root", [a, b, c])
    sent_b = {"m": "2 (compressed)"}
    cache.remember(keys, [a, b, c], [a, sent_b, c])
    frozen, sent = cache.frozen(chain_keys("root", [a, b, {"m": 4}]), [a, b, {"m": 4}])
    assert frozen == 2 and sent == [a, sent_b]
    assert cache.frozen(chain_keys("other", [a]), [a]) == (0, [])
    assert cache.frozen(chain_keys("root", [b, a]), [b, a]) == (0, [])  # same message, other history
    for i in range(20):
        cache.remember(chain_keys(f"r{i}", [a]), [a], [a])
    assert len(cache) == 10


def test_routes_upstream_urls_agents_and_error_dialects() -> None:
    assert match("POST", "/v1/messages", {}).key == "messages"
    assert match("POST", "/v1/responses", {}).key == "input"
    gemini = match("POST", "/v1beta/models/gemini-3.8-flash:streamGenerateContent", {})
    assert (gemini.provider, gemini.endpoint, gemini.model) == ("gemini", "stream_generate", "gemini-3.8-flash")
    assert match("GET", "/v1/models", {"x-api-key": "k"}).provider == "anthropic"
    assert match("GET", "/v1/models", {"authorization": "Bearer k"}).provider == "openai"
    assert not match("GET", "/v1/messages", {}).compresses
    assert upstream_url("https://gw.example/anthropic/", "/v1/messages", "beta=true") == (
        "https://gw.example/anthropic/v1/messages?beta=true"
    )
    assert agent_of({"user-agent": "claude-cli/2.1.197 (external, sdk-cli)"}) == "claude"
    assert agent_of({"user-agent": "codex_exec/0.169.0 (Debian)"}) == "codex"
    assert agent_of({"user-agent": "GeminiCLI-tui/0.61.0/gemini-3.1-pro-preview"}) == "gemini"
    assert orjson.loads(error_body("anthropic", 529, "busy"))["error"]["type"] == "overloaded_error"
    assert orjson.loads(error_body("gemini", 502, "down"))["error"]["status"] == "UNAVAILABLE"
    assert orjson.loads(error_body("openai", 502, "down"))["error"]["message"] == "down"


def test_request_bodies_fail_open() -> None:
    route = match("POST", "/v1/messages", {})
    rewriter = Rewriter(EngineConfig(), MemoryCCRStore())
    for raw, why in ((b"{not json", "not readable"), (b"[1, 2]", "not a JSON object")):
        out = rewriter.rewrite(route, raw, "", "ccr")
        assert out.body == raw and not out.changed and why in (out.skipped or "")
    broken = rewriter.rewrite(route, b"\x28\xb5\x2f\xfd garbage", "zstd", "ccr")
    assert broken.body == b"\x28\xb5\x2f\xfd garbage" and "zstd" in (broken.skipped or "")
    with pytest.raises(ValueError, match="unsupported"):
        decode_body(b"x", "br")
    small = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    out = rewriter.rewrite(route, small, "", "ccr")
    assert out.body is small and out.model == "m"


def test_prefix_cache_is_bounded_by_the_bytes_it_keeps() -> None:
    cache = PrefixCache(max_bytes=10_000)
    for i in range(100):
        original = {"i": i}
        cache.remember(chain_keys(f"c{i}", [original]), [original], [{"i": i, "text": "x" * 1000}])
    assert cache.bytes <= 10_000 and 5 <= len(cache) <= 10


def test_prefix_cache_bytes_bound_the_memory_it_really_holds() -> None:
    import tracemalloc

    cap = 2 << 20
    cache = PrefixCache(max_bytes=cap)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(3000):  # compressed tool results as parsed JSON (nested dicts and lists), far past the cap
            original = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": "x"}]}
            lines = [f"line {j} of {i}" for j in range(60)]
            out = {**original, "content": [{**original["content"][0], "content": lines}]}
            cache.remember(chain_keys(f"c{i}", [original]), [original], [out])
            if i % 3 == 0:  # and messages the proxy forwarded unchanged
                cache.remember(chain_keys(f"u{i}", [original]), [original], [original])
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert cache.bytes <= cap and held <= 1.25 * cap, f"{held / 1e6:.2f} MB held for a {cap / 1e6:.2f} MB cap"
    key = chain_keys("c2999", [original])
    assert cache.frozen(key, [original]) == (1, [out])  # a hit gives back an equal message


def test_the_proxys_own_endpoints_are_one_table() -> None:
    from headroom.daemon.proxy.app import LOCAL_ROUTES, is_local_path, local_route

    for route in LOCAL_ROUTES:
        assert local_route(route.path) is route
    assert local_route("/dashboard/app.js") is local_route("/dashboard")
    for provider_path in ("/dashboardx", "/v1/messages", "/v1/chat/completions", "/healthz/x", "/statsx"):
        assert not is_local_path(provider_path), provider_path
    assert {r.path for r in LOCAL_ROUTES if r.local_only} == {"/healthz", "/stats"}
