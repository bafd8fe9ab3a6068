"""The proxy when things go wrong: a dead or slow upstream, cut streams, bad bodies, a broken engine, leaks.

Each failure must reach the agent in a shape its SDK understands (the provider's own error format, or a
connection that breaks instead of a stream that looks complete), and must leave the proxy serving the next
request. The clients are the real ``anthropic``/``openai`` SDKs, or raw ``httpx`` where the SDK would hide
the bytes.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import time
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import zstandard
from fake_provider import Served, anthropic_events
from proxy_helpers import Rig, proxy_rig

import headroom.daemon.proxy.rewrite as rewrite_module

SECRETS = {
    "anthropic": "sk-ant-api03-LEAKCHECK-anthropic-0123456789abcdef",
    "openai": "sk-proj-LEAKCHECK-openai-0123456789abcdef",
    "gemini": "AIzaLEAKCHECK-gemini-0123456789abcdef",
}
HI = [{"role": "user", "content": "hi"}]
#: What an SDK raises when the proxy aborts a stream (the connection closes before the last chunk).
CUT = r"incomplete chunked read|peer closed"


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {seconds}s")


def closed_port() -> int:
    """A port nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def big_log(lines: int) -> str:
    return "\n".join(
        f"2026-11-20T10:{i // 60 % 60:02d}:{i % 60:02d}Z INFO worker-{i % 7} processed batch {i} of job {i % 13} ok"
        for i in range(lines)
    )


def tool_conversation(output: str) -> list[dict[str, Any]]:
    """An Anthropic conversation whose last message is a (big) tool result."""
    call = {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "cat app.log"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": output}
    return [
        {"role": "user", "content": "why does the worker stall?"},
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": [result]},
    ]


def health(rig: Rig) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(f"{rig.url}/healthz").json()
    return data


_CLIENTS: list[anthropic.Anthropic | openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    """Close the SDK clients a test made before the leak check looks: their pooled sockets otherwise wait for
    the garbage collector, which a loaded machine runs late (a ResourceWarning at teardown)."""
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def sdk_clients(rig: Rig) -> tuple[anthropic.Anthropic, openai.OpenAI]:
    claude = anthropic.Anthropic(base_url=rig.url, api_key=SECRETS["anthropic"], max_retries=0)
    gpt = openai.OpenAI(base_url=f"{rig.url}/v1", api_key=SECRETS["openai"], max_retries=0)
    _CLIENTS.extend((claude, gpt))
    return claude, gpt


async def _disconnect_within(receive: Any, seconds: float) -> bool:
    """Wait up to ``seconds`` for the client (here: the proxy) to go away; True when it did."""
    try:
        await asyncio.wait_for(_disconnect(receive), seconds)
    except asyncio.TimeoutError:
        return False
    return True


async def _disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class Drip:
    """An upstream that answers slowly and notices (through ASGI ``receive``) when the proxy hangs up.

    ``head_delay``: seconds before any header (a slow non-streaming answer); ``interval``: seconds between
    the events of an Anthropic stream. ``FakeProvider`` cannot tell a hang-up from a slow reader under
    uvicorn's h11 protocol (``send`` after a disconnect is silently dropped), so these tests use this.
    """

    def __init__(self, *, head_delay: float = 0.0, interval: float = 0.0) -> None:
        self.head_delay = head_delay
        self.interval = interval
        self.hung_up: list[float] = []  # when each request saw the proxy hang up
        self.finished = 0

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        if await _disconnect_within(receive, self.head_delay):
            self.hung_up.append(time.monotonic())
            return
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for event in anthropic_events("drip", "one two three four five six", {"input_tokens": 3}):
            await send({"type": "http.response.body", "body": event, "more_body": True})
            if await _disconnect_within(receive, self.interval):
                self.hung_up.append(time.monotonic())
                return
        await send({"type": "http.response.body", "body": b""})
        self.finished += 1


def test_unreachable_upstream_is_a_502_in_each_providers_error_shape() -> None:
    with proxy_rig() as rig:
        dead = f"http://127.0.0.1:{closed_port()}"
        rig.app.settings.upstreams.update(anthropic=dead, openai=dead, gemini=dead)
        claude, gpt = sdk_clients(rig)

        with pytest.raises(anthropic.APIStatusError) as caught:
            claude.messages.create(model="claude-x", max_tokens=5, messages=HI)  # type: ignore[arg-type]
        assert caught.value.status_code == 502
        body = caught.value.body
        assert isinstance(body, dict) and body["type"] == "error" and body["error"]["type"] == "api_error"
        assert "headroom proxy: upstream 127.0.0.1" in body["error"]["message"]
        assert "unreachable" in body["error"]["message"]

        with pytest.raises(openai.APIStatusError) as oai:
            gpt.chat.completions.create(model="gpt-x", messages=HI)  # type: ignore[arg-type]
        assert oai.value.status_code == 502
        assert oai.value.message.startswith("Error code: 502 - headroom proxy: upstream 127.0.0.1")
        assert isinstance(oai.value.body, dict) and oai.value.body["type"] == "server_error"

        gemini = httpx.post(f"{rig.url}/v1beta/models/gemini-x:generateContent", json={"contents": []})
        assert gemini.status_code == 502
        assert gemini.json()["error"]["status"] == "UNAVAILABLE" and gemini.json()["error"]["code"] == 502

        assert health(rig)["upstream_errors"] == 3
        rows = rig.stats_rows(3)
        assert [r["status"] for r in rows] == [502, 502, 502]
        assert all("unreachable" in r["error"] for r in rows)


def test_an_upstream_that_does_not_answer_in_time_is_a_504() -> None:
    drip = Drip(head_delay=2.0)
    with proxy_rig(read_timeout=0.5) as rig, Served(drip) as slow:
        rig.app.settings.upstreams.update(anthropic=slow.url, gemini=slow.url)
        claude, _ = sdk_clients(rig)
        started = time.monotonic()
        with pytest.raises(anthropic.APIStatusError) as caught:
            claude.messages.create(model="claude-x", max_tokens=5, messages=HI)  # type: ignore[arg-type]
        assert time.monotonic() - started < 1.8
        assert caught.value.status_code == 504
        body = caught.value.body
        assert isinstance(body, dict) and body["type"] == "error"
        assert body["error"]["message"].endswith("timed out")
        gemini = httpx.post(f"{rig.url}/v1beta/models/gemini-x:generateContent", json={"contents": []})
        assert gemini.status_code == 504 and gemini.json()["error"]["status"] == "DEADLINE_EXCEEDED"
        rows = rig.stats_rows(2)
        assert [r["status"] for r in rows] == [504, 504]
        wait_for(lambda: len(drip.hung_up) == 2)  # the proxy did not leave the upstream call open


def test_a_stream_that_stalls_past_the_read_timeout_breaks_the_clients_stream() -> None:
    drip = Drip(interval=2.0)
    with proxy_rig(read_timeout=0.5) as rig, Served(drip) as slow:
        rig.app.settings.upstreams["anthropic"] = slow.url
        claude, _ = sdk_clients(rig)
        started = time.monotonic()
        with (
            pytest.raises(Exception, match=CUT),
            claude.messages.stream(model="claude-x", max_tokens=5, messages=HI) as stream,  # type: ignore[arg-type]
        ):
            list(stream.text_stream)
        assert time.monotonic() - started < 1.8
        wait_for(lambda: len(drip.hung_up) == 1)
        (row,) = rig.stats_rows(1)
        assert row["status"] == 200 and row["error"].startswith("upstream stream cut: ReadTimeout")


def test_an_overloaded_upstream_passes_through_byte_identical() -> None:
    body = {"model": "overload", "max_tokens": 5, "messages": HI}
    with proxy_rig() as rig:
        direct = httpx.post(f"{rig.upstream}/v1/messages", json=body)
        via = httpx.post(f"{rig.url}/v1/messages", json=body)
        assert direct.status_code == via.status_code == 529
        assert via.content == direct.content
        assert via.headers["content-type"] == direct.headers["content-type"]
        claude, gpt = sdk_clients(rig)
        with claude, gpt, pytest.raises(anthropic.APIStatusError) as caught:  # closed: the SDK retries 529s
            claude.messages.create(model="overload", max_tokens=5, messages=HI)  # type: ignore[arg-type]
        assert caught.value.status_code == 529 and "Overloaded" in caught.value.message
        assert health(rig)["upstream_errors"] == 0  # the upstream answered: not the proxy's error


def test_a_cut_stream_is_an_error_for_the_client_and_the_proxy_stays_healthy() -> None:
    with proxy_rig() as rig:
        claude, gpt = sdk_clients(rig)
        seen: list[str] = []
        with (
            pytest.raises(Exception, match=CUT),
            claude.messages.stream(model="cut", max_tokens=5, messages=HI) as stream,  # type: ignore[arg-type]
        ):
            seen.extend(stream.text_stream)
        assert "".join(seen) != rig.fake.reply + " "  # never a clean, complete-looking end

        reply = claude.messages.create(model="claude-x", max_tokens=5, messages=HI)  # type: ignore[arg-type]
        assert reply.content[0].text == rig.fake.reply  # type: ignore[union-attr]
        chunks = gpt.chat.completions.create(model="gpt-x", messages=HI, stream=True)  # type: ignore[arg-type]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)  # type: ignore[union-attr]
        assert text.strip() == rig.fake.reply

        state = health(rig)
        assert state["status"] == "ok" and state["upstream_errors"] == 1 and state["requests"] == 3
        rows = rig.stats_rows(3)
        assert rows[0]["status"] == 200 and rows[0]["error"].startswith("upstream stream cut: RemoteProtocolError")
        assert [r["error"] for r in rows[1:]] == [None, None]


def test_malformed_json_is_forwarded_untouched_and_the_upstreams_400_comes_back() -> None:
    raw = b'{"model": "claude-x",  "max_tokens": 5, "messages": [{"role": "user", "content": "hi"'
    headers = {"content-type": "application/json", "x-api-key": "k"}
    with proxy_rig() as rig:
        direct = httpx.post(f"{rig.upstream}/v1/messages", content=raw, headers=headers)
        via = httpx.post(f"{rig.url}/v1/messages", content=raw, headers=headers)
        assert direct.status_code == via.status_code == 400
        assert via.content == direct.content
        assert rig.fake.received[-1].body == raw
        assert health(rig)["compression_failures"] == 0  # not readable is not an engine failure
        rows = rig.stats_rows(1)
        assert rows[-1]["status"] == 400 and rows[-1]["bytes_before"] == rows[-1]["bytes_after"] == len(raw)


@pytest.mark.slow
def test_a_20_mb_tool_result_is_accepted_and_compressed() -> None:
    output = big_log(300_000)
    assert len(output) > 20_000_000
    with proxy_rig() as rig:
        claude, _ = sdk_clients(rig)
        reply = claude.with_options(timeout=120).messages.create(
            model="claude-x",
            max_tokens=5,
            messages=tool_conversation(output),  # type: ignore[arg-type]
        )
        assert reply.content[0].text == rig.fake.reply  # type: ignore[union-attr]
        sent = rig.fake.received[-1]
        assert len(sent.body) < 1_000_000
        assert sent.json()["messages"][:2] == tool_conversation(output)[:2]
        (row,) = rig.stats_rows(1)
        assert row["bytes_before"] > 20_000_000 and row["bytes_after"] == len(sent.body)
        assert row["blocks_compressed"] == 1 and row["tokens_after"] < row["tokens_before"] / 100


def test_a_body_over_the_limit_is_a_413_in_the_providers_format() -> None:
    too_big = "x" * (2 << 20)
    with proxy_rig(max_body_mb=1) as rig:
        claude, gpt = sdk_clients(rig)
        with pytest.raises(anthropic.APIStatusError) as caught:
            claude.messages.create(model="claude-x", max_tokens=5, messages=[{"role": "user", "content": too_big}])
        assert caught.value.status_code == 413
        assert caught.value.body == {
            "type": "error",
            "error": {"type": "request_too_large", "message": "request body over 1 MB"},
        }
        with pytest.raises(openai.APIStatusError) as oai:
            gpt.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": too_big}])
        assert oai.value.status_code == 413 and oai.value.message == "Error code: 413 - request body over 1 MB"
        gemini = httpx.post(f"{rig.url}/v1beta/models/g:generateContent", content=too_big.encode())
        assert gemini.status_code == 413
        assert gemini.json() == {
            "error": {"code": 413, "message": "request body over 1 MB", "status": "INVALID_ARGUMENT"}
        }
        assert rig.fake.received == []  # nothing of it went upstream
        assert claude.messages.create(model="claude-x", max_tokens=5, messages=HI)  # type: ignore[arg-type]


def test_a_client_that_leaves_mid_stream_cancels_the_upstream_call() -> None:
    body = {"model": "claude-x", "max_tokens": 5, "stream": True, "messages": HI}
    drip = Drip(interval=0.2)
    with proxy_rig() as rig, Served(drip) as slow:
        rig.app.settings.upstreams["anthropic"] = slow.url
        with httpx.Client() as client, client.stream("POST", f"{rig.url}/v1/messages", json=body) as response:
            assert response.status_code == 200
            first = next(response.iter_raw())
            assert first.startswith(b"event: message_start")
        left = time.monotonic()
        wait_for(lambda: len(drip.hung_up) == 1, 2.0)
        assert drip.hung_up[0] - left < 2.0 and drip.finished == 0
        (row,) = rig.stats_rows(1)
        assert row["error"] == "client disconnected"


def test_an_engine_exception_forwards_the_original_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("engine bug")

    monkeypatch.setattr(rewrite_module, "compress", broken)
    small = json.dumps({"model": "claude-x", "max_tokens": 5, "messages": tool_conversation(big_log(300))})
    large = json.dumps({"model": "claude-x", "max_tokens": 5, "messages": tool_conversation(big_log(3000))})
    with proxy_rig() as rig:
        for text in (small, large):  # compressed on the event loop, then on a worker thread
            raw = text.replace('"role"', ' "role"').encode()  # bytes no JSON encoder would produce
            via = httpx.post(f"{rig.url}/v1/messages", content=raw, headers={"content-type": "application/json"})
            assert via.status_code == 200
            assert rig.fake.received[-1].body == raw
        assert len(large) > rig.app.settings.inline_bytes > len(small)
        assert health(rig)["compression_failures"] == 2
        rows = rig.stats_rows(2)
        assert [r["error"] for r in rows] == ["compression failed: RuntimeError"] * 2
        assert all(r["status"] == 200 and r["bytes_after"] == r["bytes_before"] for r in rows)


def _zstd_frame(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def _zstd_streamed(data: bytes) -> bytes:
    """A frame without a content size, as a client compressing on the fly writes it."""
    compressor = zstandard.ZstdCompressor().compressobj()
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [("zstd", _zstd_frame), ("zstd", _zstd_streamed), ("gzip", gzip.compress)],
    ids=["zstd", "zstd-streamed", "gzip"],
)
def test_an_encoded_body_is_decoded_compressed_and_sent_as_json(
    encoding: str, encode: Callable[[bytes], bytes]
) -> None:
    output = big_log(2000)
    body: dict[str, Any] = {"model": "claude-x", "max_tokens": 5, "messages": tool_conversation(output)}
    raw = encode(json.dumps(body).encode())
    headers = {"content-type": "application/json", "content-encoding": encoding}
    with proxy_rig() as rig:
        via = httpx.post(f"{rig.url}/v1/messages", content=raw, headers=headers)
        assert via.status_code == 200, via.text
        sent = rig.fake.received[-1]
        assert "content-encoding" not in sent.headers
        assert int(sent.headers["content-length"]) == len(sent.body)
        upstream = sent.json()
        assert upstream["messages"][:2] == body["messages"][:2]
        assert len(upstream["messages"][2]["content"][0]["content"]) < len(output) / 3
        (row,) = rig.stats_rows(1)
        assert row["bytes_before"] == len(raw) and row["blocks_compressed"] == 1


def test_an_encoded_body_that_cannot_be_read_goes_upstream_as_it_came() -> None:
    raw = b"\x28\xb5\x2f\xfd this is not really zstd"
    headers = {"content-type": "application/json", "content-encoding": "zstd"}
    with proxy_rig() as rig:
        httpx.post(f"{rig.url}/v1/messages", content=raw, headers=headers)
        sent = rig.fake.received[-1]
        assert sent.body == raw and sent.headers["content-encoding"] == "zstd"
        assert health(rig)["compression_failures"] == 0


def test_api_keys_are_never_logged_nor_stored(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="headroom")
    conversation = tool_conversation(big_log(1500))
    with proxy_rig(read_timeout=0.5) as rig:
        claude, gpt = sdk_clients(rig)
        claude.messages.create(model="claude-x", max_tokens=5, messages=conversation)  # type: ignore[arg-type]
        with (
            pytest.raises(Exception, match=CUT),
            claude.messages.stream(model="cut", max_tokens=5, messages=conversation) as stream,  # type: ignore[arg-type]
        ):
            list(stream.text_stream)
        gpt.chat.completions.create(model="gpt-x", messages=HI)  # type: ignore[arg-type]
        gemini_headers = {"x-goog-api-key": SECRETS["gemini"]}
        contents = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        httpx.post(f"{rig.url}/v1beta/models/g:generateContent", json=contents, headers=gemini_headers)
        httpx.post(f"{rig.url}/v1beta/models/g:generateContent?key={SECRETS['gemini']}", json=contents)
        httpx.post(f"{rig.url}/v1/messages", content=b"{not json", headers={"x-api-key": SECRETS["anthropic"]})
        dead = f"http://127.0.0.1:{closed_port()}"
        rig.app.settings.upstreams.update(anthropic=dead, openai=dead)
        with pytest.raises(anthropic.APIStatusError):
            claude.messages.create(model="claude-x", max_tokens=5, messages=HI)  # type: ignore[arg-type]
        with pytest.raises(openai.APIStatusError):
            gpt.chat.completions.create(model="gpt-x", messages=HI)  # type: ignore[arg-type]
        rows = rig.stats_rows(8)
        assert len(rows) == 8
        assert any(r["blocks_compressed"] for r in rows)  # the secrets rode along real work
        first = rig.fake.received[0].headers
        assert SECRETS["anthropic"] in first.get("x-api-key", "") + first.get("authorization", "")  # it did reach them
        home = rig.config.paths.data_dir
    files = [p for p in Path(home).rglob("*") if p.is_file()]
    assert any(p.name.startswith("headroom.db") for p in files)
    # The SDKs' and httpx's own DEBUG/INFO lines (the test's clients share this process) are not the proxy's
    # log; ``headroom proxy`` as a subprocess is checked whole in test_proxy_server.py.
    ours = [r for r in caplog.records if r.name.startswith(("headroom", "uvicorn"))]
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in ours) + "".join(capfd.readouterr())
    assert "stream cut" in logged and "unreachable" in logged  # the failures were logged ...
    for secret in SECRETS.values():
        assert secret not in logged  # ... without the keys
        for path in files:
            assert secret.encode() not in path.read_bytes(), path
