"""Cache safety through the proxy: a follow-up request re-sends the earlier messages byte for byte."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from proxy_helpers import fixture_requests, proxy_rig
from websockets.sync.client import connect

from headroom.daemon.providers import match
from headroom.daemon.proxy.rewrite import Rewriter
from headroom.engine import EngineConfig, MemoryCCRStore


def _common_prefix(a: list[Any], b: list[Any]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _send_all(url: str, bodies: list[dict[str, Any]]) -> None:
    with httpx.Client(timeout=60) as http:
        for body in bodies:
            assert http.post(f"{url}/v1/messages", json=body).status_code == 200


@pytest.mark.parametrize("scenario", ["big-output", "test-fix-correction"])
def test_follow_up_requests_start_with_the_bytes_sent_before(shared: Path, scenario: str) -> None:
    """Claude Code's real requests of a session (big outputs; failures, a resume and a second prompt), in order."""
    bodies = fixture_requests(shared, "claude", scenario, "anthropic-main")
    assert len(bodies) >= 5
    with proxy_rig() as rig:
        _send_all(rig.url, bodies)
        upstream = rig.bodies("/v1/messages")
    frozen = 0
    for (prev_in, prev_out), (cur_in, cur_out) in zip(zip(bodies, upstream), zip(bodies[1:], upstream[1:])):
        same = _common_prefix(prev_in["messages"], cur_in["messages"])  # Claude moves cache_control each turn
        frozen += same
        for i in range(same):
            assert orjson.dumps(cur_out["messages"][i]) == orjson.dumps(prev_out["messages"][i])
        assert cur_out["tools"] == cur_in["tools"] and cur_out["system"] == cur_in["system"]
    assert frozen >= 2 * len(bodies)
    total_in = sum(len(json.dumps(b["messages"])) for b in bodies)
    total_out = sum(len(json.dumps(b["messages"])) for b in upstream)
    assert total_out < total_in * (0.6 if scenario == "big-output" else 1.01)


def test_a_restarted_proxy_sends_the_same_bytes(shared: Path) -> None:
    bodies = fixture_requests(shared, "codex", "big-output", "openai-responses-main")
    outs = []
    for _ in range(2):
        with proxy_rig() as rig, httpx.Client(timeout=60) as http:
            for body in bodies:
                http.post(f"{rig.url}/v1/responses", json=body)
            outs.append([r.body for r in rig.fake.received])
    assert outs[0] == outs[1]
    assert len(outs[0][-1]) < len(orjson.dumps(bodies[-1])) * 0.6


def test_a_config_reload_never_changes_what_was_sent() -> None:
    log_text = "\n".join(f"INFO request {i} served in {i % 13} ms" for i in range(800))
    first = [
        {"role": "user", "content": "check the log"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "cat log"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": log_text}]},
    ]
    second = [*first, {"role": "assistant", "content": "seen"}, {"role": "user", "content": "and now?"}]
    route = match("POST", "/v1/messages", {})
    rewriter = Rewriter(EngineConfig(), MemoryCCRStore())
    sent_first = orjson.loads(rewriter.rewrite(route, orjson.dumps({"messages": first}), "", "ccr").body)
    rewriter.reconfigure(replace(EngineConfig(), disabled=frozenset({"logs", "text"}), min_tokens=10_000))
    sent_second = orjson.loads(rewriter.rewrite(route, orjson.dumps({"messages": second}), "", "ccr").body)
    assert sent_second["messages"][:3] == sent_first["messages"]
    assert "retrieve hr:" in json.dumps(sent_first["messages"][2])


def _tool_output_bytes(frame: dict[str, Any]) -> int:
    items = frame.get("input") or []
    return sum(len(str(i.get("output", ""))) for i in items if str(i.get("type", "")).endswith("_output"))


def test_codex_websocket_turns_are_compressed_and_relayed(shared: Path) -> None:
    folder = shared / "fixtures" / "requests" / "codex" / "big-output.websocket"
    frames = [p.read_text() for p in sorted(folder.glob("*-openai-responses-ws-*.json")) if ".meta." not in p.name]
    turns = [f for f in frames if json.loads(f).get("generate") is not False and json.loads(f).get("input")]
    meta = json.loads(next(folder.glob("*-ws-upgrade.meta.json")).read_text())
    headers = {k: v for k, v in meta["headers"].items() if k.lower() in ("authorization", "openai-beta", "user-agent")}
    with proxy_rig() as rig:
        ws_url = rig.url.replace("http://", "ws://") + "/v1/responses"
        with connect(ws_url, additional_headers=headers, compression=None, max_size=None) as ws:
            for frame in frames:
                ws.send(frame)
                while True:
                    event = json.loads(ws.recv(timeout=30))
                    if event["type"] == "response.completed":
                        break
        received = rig.fake.ws_frames
        assert len(received) == len(frames)
        before = sum(_tool_output_bytes(json.loads(f)) for f in frames)
        after = sum(_tool_output_bytes(f) for f in received)
        assert after < before * 0.5
        for sent, got in zip(frames, received):
            original = json.loads(sent)
            assert {k: v for k, v in got.items() if k != "input"} == {k: v for k, v in original.items() if k != "input"}
        rows = rig.stats_rows(len(turns))
        assert len(rows) == len(turns) >= 3  # a prewarm is not a turn
        assert all(
            r["endpoint"] == "responses_ws" and r["agent"] == "codex" and r["cache_read_tokens"] == 13 for r in rows
        )
        assert sum(r["tokens_before"] - r["tokens_after"] for r in rows) > 0
