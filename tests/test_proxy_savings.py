"""Savings you can check: holdout, the measured comparison, the cache watchdog, and savings from reported usage.

The real ``anthropic`` and ``openai`` SDK clients talk to the proxy, which talks to the fake provider; the fake
simulates the providers' prompt caches (``prompt_cache=True``: the longest prefix seen before is reported as
cache reads, the rest as cache writes), so cache figures move the way a provider's would when a prefix changes.
"""

from __future__ import annotations

import logging
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from click.testing import CliRunner
from proxy_helpers import Rig, proxy_rig

from headroom.daemon.cli import cli
from headroom.daemon.cli.daemon_cmd import health_lines, watchdog_details
from headroom.daemon.dashboard import dashboard_data
from headroom.daemon.pricing import price, rates
from headroom.daemon.proxy.savings import (
    MIN_BASELINE_TURNS,
    SavingsPolicy,
    cache_share,
    conversation_key,
    held_out,
)
from headroom.daemon.proxy.savings_report import (
    MIN_CONVERSATIONS,
    bootstrap_ci,
    holdout_comparison,
    row_savings,
    savings_summary,
)
from headroom.engine.cache import PrefixCache

MODEL = "claude-sonnet-4-5"
SYSTEM = "You are a careful coding agent. " * 200  # ~6 KB: every request is well over the cacheable minimum
TOOLS: list[Any] = [
    {"name": "Bash", "description": "Run a shell command", "input_schema": {"type": "object", "properties": {}}}
]


def _log(seed: int, lines: int = 700) -> str:
    """A server log the engine compresses well (repetitive lines, a few distinct ones)."""
    return "\n".join(
        f"2026-12-06T10:{i // 60 % 60:02d}:{i % 60:02d} INFO worker-{seed} request {i} served in {i % 13} ms"
        for i in range(lines)
    )


def _turn(messages: list[Any], n: int, output: str) -> list[Any]:
    """The conversation plus one tool call (``Bash``) and its result; the last block carries cache_control."""
    for message in messages:  # Claude Code moves its cache mark to the newest message each turn
        if isinstance(message["content"], list):
            message["content"] = [{k: v for k, v in b.items() if k != "cache_control"} for b in message["content"]]
    return [
        *messages,
        {"role": "assistant", "content": [{"type": "tool_use", "id": f"t{n}", "name": "Bash", "input": {"n": n}}]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": f"t{n}",
                    "content": output,
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        },
    ]


def _client(rig: Rig, session: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=rig.url, api_key="sk-ant-test", max_retries=0, default_headers={"x-claude-code-session-id": session}
    )


def _converse(rig: Rig, session: str, outputs: list[str]) -> None:
    with _client(rig, session) as client:
        messages: list[Any] = [{"role": "user", "content": f"look at the logs ({session})"}]
        for n, output in enumerate(outputs):
            messages = _turn(messages, n, output)
            client.messages.create(model=MODEL, max_tokens=64, system=SYSTEM, tools=TOOLS, messages=messages)


# -- conversation keys and the holdout draw ------------------------------------------------------------------


def test_the_conversation_key_is_the_agents_session_id_or_its_first_user_message() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    by_header = conversation_key("claude", {"x-claude-code-session-id": "s-1"}, body, "messages")
    meta = {"metadata": {"user_id": '{"device_id":"d","session_id":"s-1"}'}, **body}
    assert conversation_key("claude", {}, meta, "messages") == by_header  # the same session, however it is said
    codex = conversation_key("codex", {}, {"prompt_cache_key": "abc", "input": []}, "input")
    assert codex == conversation_key("codex", {"session-id": "abc"}, {}, "input")
    first = conversation_key("gemini", {}, {"contents": [{"role": "user", "parts": [{"text": "q"}]}]}, "contents")
    later = {"contents": [{"role": "user", "parts": [{"text": "q"}]}, {"role": "model", "parts": [{"text": "a"}]}]}
    assert first is not None and first == conversation_key("gemini", {}, later, "contents")
    assert conversation_key("claude", {}, {"messages": []}, "messages") is None
    assert by_header != conversation_key("codex", {"x-claude-code-session-id": "s-1"}, body, "messages")


def test_the_holdout_draw_is_deterministic_and_takes_the_configured_share() -> None:
    keys = [f"{n:032x}" for n in range(4000)]
    drawn = [held_out(k, 0.05) for k in keys]
    assert drawn == [held_out(k, 0.05) for k in keys]  # the same answer every time, in every process
    assert 0.035 < sum(drawn) / len(keys) < 0.065
    assert not any(held_out(k, 0.0) for k in keys) and all(held_out(k, 1.0) for k in keys)
    assert held_out(None, 0.5) is False
    assert all(held_out(k, 0.5) for k, d in zip(keys, drawn) if d)  # a larger share keeps the smaller one's picks


def test_a_held_out_conversation_goes_upstream_untouched_and_marked() -> None:
    log = _log(1)
    with proxy_rig(holdout=1.0) as rig:
        _converse(rig, "held-session", ["ok", log])
        rows = rig.stats_rows(expected=2)
        sent = rig.bodies("/v1/messages")
    assert [r["holdout"] for r in rows] == [True, True]
    assert rows[0]["conversation"] == rows[1]["conversation"] is not None
    assert all(r["tokens_before"] == r["tokens_after"] for r in rows)
    assert sent[-1]["messages"][-1]["content"][0]["content"] == log  # not a byte removed


def test_holdout_marks_are_the_same_in_two_proxies() -> None:
    sessions = [f"session-{n}" for n in range(12)]
    marks = []
    for _ in range(2):
        with proxy_rig(holdout=0.5) as rig:
            for session in sessions:
                with _client(rig, session) as client:
                    client.messages.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": session}])
            # both proxies share the test's database: the second one's rows are the last twelve
            rows = sorted(rig.stats_rows(expected=len(sessions) * (len(marks) + 1)), key=lambda r: r["id"])
            marks.append([(r["conversation"], r["holdout"]) for r in rows[-len(sessions) :]])
    assert marks[0] == marks[1]
    assert {m for _, m in marks[0]} == {True, False}


# -- savings from the provider's reported usage -------------------------------------------------------------


def test_savings_are_priced_from_the_reported_usage_and_cache_aware() -> None:
    """OpenAI Responses through the proxy: the removed tokens of a re-sent (cached) turn cost the cache-read rate."""
    log = _log(2)
    with proxy_rig(prompt_cache=True) as rig:
        client = openai.OpenAI(base_url=f"{rig.url}/v1", api_key="sk-test", max_retries=0)
        items: list[Any] = [
            {"role": "user", "content": "read the log"},
            {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": log},
        ]
        client.responses.create(model="gpt-5.5", input=items, prompt_cache_key="conv-1")
        items += [{"role": "user", "content": "and the errors?"}]
        client.responses.create(model="gpt-5.5", input=items, prompt_cache_key="conv-1")
        client.close()
        rows = sorted(rig.stats_rows(expected=2), key=lambda r: r["id"])
        summary = savings_summary(rig.db)
    first, second = rows
    assert first["conversation"] == second["conversation"] and first["tokens_removed_prefix"] == 0
    assert second["tokens_removed_prefix"] == second["tokens_before"] - second["tokens_after"] > 0
    assert second["cache_read_tokens"] > 0  # the fake's cache saw the first request's (compressed) prefix
    found = rates("gpt-5.5", provider="openai")
    assert found is not None
    for row in rows:
        figures = row_savings(row)
        billed = price(
            "gpt-5.5",
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            cache_read_tokens=row["cache_read_tokens"],
            provider="openai",
        )
        assert billed is not None and figures["cost_usd"] == pytest.approx(billed.usd)
        reported = row["input_tokens"] + row["cache_read_tokens"]
        scale = reported / row["tokens_after"]
        assert figures["removed"] == round((row["tokens_before"] - row["tokens_after"]) * scale)
    # new content removed in turn 1 would have been uncached input; in turn 2 it sat in the cached prefix
    assert row_savings(first)["saved_usd"] == pytest.approx(row_savings(first)["removed"] * found.input / 1e6)
    assert row_savings(second)["saved_usd"] == pytest.approx(row_savings(second)["removed"] * found.cache_read / 1e6)
    total = summary["total"]
    assert total["requests"] == 2 and total["basis"] == "estimated"
    assert total["saved_usd"] == pytest.approx(sum(row_savings(r)["saved_usd"] for r in rows))
    assert total["tokens_sent"] == first["tokens_before"] + second["tokens_before"]


def test_tokens_sent_count_the_whole_request_not_only_the_messages() -> None:
    with proxy_rig() as rig:
        _converse(rig, "whole", ["ok"])
        with _client(rig, "whole") as client:  # a token count: free, so no saving (and no turn) of its own
            counted = _turn([{"role": "user", "content": "count"}], 0, _log(3))
            client.messages.count_tokens(model=MODEL, messages=counted)
        rows = sorted(rig.stats_rows(expected=2), key=lambda r: r["id"])
        summary = savings_summary(rig.db)
    assert rows[0]["tokens_before"] > len(SYSTEM) // 6  # the system prompt alone is ~1,200 tokens
    assert rows[1]["endpoint"] == "count_tokens" and rows[1]["tokens_before"] > rows[1]["tokens_after"]
    assert summary["total"]["requests"] == 1 and summary["total"]["tokens_sent"] == rows[0]["tokens_before"]


def test_an_unpriced_model_is_unpriced_not_free() -> None:
    row = {
        "model": "no-such-model-x",
        "provider": "anthropic",
        "tokens_before": 900,
        "tokens_after": 300,
        "input_tokens": 310,
        "output_tokens": 5,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
    }
    figures = row_savings(row)
    assert figures["cost_usd"] is None and figures["saved_usd"] is None
    assert figures["removed"] == round(600 * 310 / 300)  # scaled to the provider's count of the request
    no_usage = {**row, "model": MODEL, "input_tokens": None, "cache_read_tokens": None}
    assert row_savings(no_usage)["cost_usd"] is None


# -- the measured comparison -------------------------------------------------------------------------------


def test_the_bootstrap_interval_covers_the_true_saving_and_excludes_zero() -> None:
    rng = random.Random(7)
    held = [rng.gauss(10.0, 1.5) for _ in range(30)]
    treated = [rng.gauss(8.0, 1.5) for _ in range(30)]
    point, low, high = bootstrap_ci([(held, treated)])
    assert low < point < high and low > 0 and low < 0.2 < high
    same = [rng.gauss(10.0, 1.5) for _ in range(30)]
    _, low, high = bootstrap_ci([(held, same)])
    assert low < 0 < high
    assert bootstrap_ci([(held, treated)]) == bootstrap_ci([(held, treated)])  # a fixed seed: stable output


def test_held_out_and_compressed_conversations_are_compared_with_an_interval() -> None:
    """Ten Claude-style conversations with holdout 0.5; the held-out ones send their logs whole."""
    sessions = [f"cmp-{n}" for n in range(14)]
    with proxy_rig(holdout=0.5) as rig:
        for session in sessions[:2]:
            _converse(rig, session, [_log(n) for n in range(4)])
        rig.stats_rows(expected=8)
        early = holdout_comparison(savings_summary_rows(rig))
        runner = CliRunner()
        few = runner.invoke(cli, ["stats", "--proxy"])
        for session in sessions[2:]:
            _converse(rig, session, [_log(n) for n in range(4)])
        rig.stats_rows(expected=4 * len(sessions))
        result = runner.invoke(cli, ["stats", "--proxy"])
        as_json = runner.invoke(cli, ["stats", "--proxy", "--json"])
    assert few.exit_code == 0, few.output
    assert early == [] or "not enough data" in early[0]["result"]
    assert "measured" in few.output and ("not enough data" in few.output or "no held-out" in few.output)
    assert result.exit_code == 0, result.output
    import json

    comparison = json.loads(as_json.output)["savings"]["comparison"]
    (entry,) = comparison
    assert entry["result"] == "ok" and entry["unit"] == "usd" and entry["method"] == "bootstrap"
    assert entry["held_out"]["conversations"] >= MIN_CONVERSATIONS and entry["treated"]["conversations"] >= 3
    low, high = entry["ci95"]
    assert low <= entry["saved"] <= high and low > 0  # compressed logs cost measurably less per turn
    assert entry["held_out"]["per_turn"] > entry["treated"]["per_turn"]
    assert "95% CI" in result.output and "bootstrap" in result.output and "saved $ (est.)" in result.output


def savings_summary_rows(rig: Rig) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from headroom.memory.models import ProxyRequestRow

    with rig.db.sessions() as s:
        return [dict(r._mapping) for r in s.execute(select(ProxyRequestRow.__table__))]


# -- the cache watchdog -------------------------------------------------------------------------------------


def test_the_watchdog_catches_a_cache_drop_and_the_conversation_goes_lossless(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="headroom.proxy")
    with proxy_rig(prompt_cache=True) as rig:
        client = _client(rig, "watched")
        messages: list[Any] = [{"role": "user", "content": "look at the logs"}]

        def turn(n: int, output: str) -> dict[str, Any]:
            nonlocal messages
            messages = _turn(messages, n, output)
            client.messages.create(model=MODEL, max_tokens=64, system=SYSTEM, tools=TOOLS, messages=messages)
            return sorted(rig.stats_rows(expected=n + 1), key=lambda r: r["id"])[-1]

        for n in range(4):  # short outputs: nothing to compress, the cache share settles high
            row = turn(n, f"ok {n}")
            assert row["tokens_before"] == row["tokens_after"]
        assert cache_share(row) is not None and cache_share(row)[0] > 0.8  # type: ignore[index]
        row = turn(4, _log(4))  # compression starts; the sent prefix is unchanged, the share stays high
        assert row["tokens_before"] > row["tokens_after"] and row["fallback"] is None
        row = turn(5, "ok 5")
        assert cache_share(row)[0] > 0.8  # type: ignore[index]
        rig.fake._prefixes.clear()  # the provider's cache expired (an idle agent): a drop that is not the proxy's
        expired = turn(6, "ok 6")
        assert cache_share(expired)[0] < 0.1 and expired["frozen_messages"] >= 2 * 6  # type: ignore[index]
        assert rig.app.rewriter.policy.health()["drops_not_ours"] == 1
        assert rig.app.rewriter.policy.health()["fallbacks"] == {"cache": 0, "cost": 0}
        row = turn(7, "ok 7")
        # A restart with another engine config (nothing compressed any more) and an empty prefix cache: the
        # compressed log of turn 4 is sent whole now, so everything after it is a cache write again.
        rig.app.rewriter.prefix = PrefixCache()
        rig.app.rewriter.reconfigure(replace(rig.config.engine, min_tokens=10**9))
        dropped = turn(8, "ok 8")
        assert cache_share(dropped)[0] < 0.5  # type: ignore[index]
        health = rig.app.rewriter.policy.health()
        assert health["fallbacks"] == {"cache": 1, "cost": 0}
        (event,) = health["events"]
        assert event["reason"] == "cache" and event["conversation"] == dropped["conversation"]
        after = turn(9, _log(9))
        later = turn(10, "ok 10")
        sent = rig.bodies("/v1/messages")
        client.close()
        listed = CliRunner().invoke(cli, ["stats", "--proxy"])
        board = dashboard_data(rig.db)["proxy_savings"]
    assert after["fallback"] == "cache" and later["fallback"] == "cache"
    assert cache_share(later)[0] > 0.8  # type: ignore[index]  # the prefix is stable again
    # lossless: the new log went out without a retrieval marker (nothing hidden that could not be got back)
    assert "headroom_retrieve" not in str(sent[-2]["messages"][-1]["content"])
    warnings = [r for r in caplog.records if "cache watchdog" in r.getMessage()]
    assert len(warnings) == 1 and "falls back to lossless" in warnings[0].getMessage()
    line = watchdog_details(health)
    assert line and "cache watchdog: 1 conversations fell back to lossless" in line[-1]
    status = health_lines({"components": {"proxy": {"state": "running", "url": rig.url, "savings": health}}})
    assert "cache watchdog: 1 conversations fell back to lossless" in status[0] and "cache-read share" in status[0]
    assert listed.exit_code == 0 and "fell back to lossless (cache)" in listed.output
    assert board["fallbacks"] == [
        {"conversation": dropped["conversation"], "agent": dropped["agent"], "project": None, "reason": "cache"}
    ]


def test_the_cost_guard_falls_back_when_compression_costs_more() -> None:
    """A compressed conversation billed more per input token than held-out ones of the same agent and project."""
    policy = SavingsPolicy(holdout=0.0)

    def row(conversation: str, n: int, **usage: Any) -> dict[str, Any]:
        base = {
            "conversation": conversation,
            "agent": "claude",
            "project": "/p",
            "provider": "anthropic",
            "status": 200,
            "holdout": False,
            "tokens_before": 10_000,
            "tokens_after": 10_000,
        }
        return {**base, **usage, "turn": n}

    for c in range(2):  # held-out conversations: mostly cache reads
        for n in range(MIN_BASELINE_TURNS + 1):
            policy.observe(
                row(f"held{c}", n, holdout=True, input_tokens=10, cache_read_tokens=9000, cache_write_tokens=1000)
            )
    # treated: compression removes 1,000 tokens a turn, but every turn is written again (a cache that never hits)
    for n in range(6):
        policy.observe(
            row("bad", n, tokens_before=11_000, input_tokens=10, cache_read_tokens=4000, cache_write_tokens=5000)
        )
    assert policy.decide("claude", "bad", "/p").fallback in ("cache", "cost")
    # the same figures without a cache-share drop but still above the uncompressed bill: the cost guard
    policy2 = SavingsPolicy()
    for c in range(2):
        for n in range(MIN_BASELINE_TURNS + 1):
            policy2.observe(
                row(f"held{c}", n, holdout=True, input_tokens=10, cache_read_tokens=5000, cache_write_tokens=5000)
            )
    for n in range(6):
        policy2.observe(
            row("pricey", n, tokens_before=10_500, input_tokens=10, cache_read_tokens=4000, cache_write_tokens=6000)
        )
    assert policy2.decide("claude", "pricey", "/p").fallback == "cost"
    assert policy2.health()["fallbacks"]["cost"] == 1
    # and a conversation that costs less stays compressed
    for n in range(6):
        policy2.observe(
            row("fine", n, tokens_before=12_000, input_tokens=10, cache_read_tokens=5000, cache_write_tokens=5000)
        )
    assert policy2.decide("claude", "fine", "/p").fallback is None


def test_healthz_reports_the_holdout_and_the_watchdog() -> None:
    import httpx

    with proxy_rig(holdout=0.25) as rig:
        answer = httpx.get(f"{rig.url}/healthz", timeout=10).json()
    assert answer["savings"]["holdout"] == 0.25 and answer["savings"]["fallbacks"] == {"cache": 0, "cost": 0}
    assert watchdog_details(answer["savings"]) == ["holdout 25% (0 requests)"]


def test_a_held_out_codex_websocket_session_is_relayed_untouched(shared: Path) -> None:
    """Codex's own frames (Responses over WebSocket) with holdout 1: every turn marked, no byte changed."""
    import json

    from websockets.sync.client import connect

    folder = shared / "fixtures" / "requests" / "codex" / "big-output.websocket"
    frames = [p.read_text() for p in sorted(folder.glob("*-openai-responses-ws-*.json")) if ".meta." not in p.name]
    meta = json.loads(next(folder.glob("*-ws-upgrade.meta.json")).read_text())
    keep = ("authorization", "openai-beta", "user-agent", "session_id", "session-id")
    headers = {k: v for k, v in meta["headers"].items() if k.lower() in keep}
    with proxy_rig(holdout=1.0) as rig:
        ws_url = rig.url.replace("http://", "ws://") + "/v1/responses"
        with connect(ws_url, additional_headers=headers, compression=None, max_size=None) as ws:
            for frame in frames:
                ws.send(frame)
                while json.loads(frame).get("generate") is not False:
                    if json.loads(ws.recv(timeout=30))["type"] == "response.completed":
                        break
        received = rig.fake.ws_frames
        turns = [f for f in frames if json.loads(f).get("generate") is not False and json.loads(f).get("input")]
        rows = rig.stats_rows(len(turns))
    assert [json.loads(f) for f in frames] == received  # every frame as Codex sent it
    assert len(rows) == len(turns) >= 3 and all(r["holdout"] and r["endpoint"] == "responses_ws" for r in rows)
    assert len({r["conversation"] for r in rows}) == 1 and rows[0]["conversation"] is not None
    assert all(r["tokens_before"] == r["tokens_after"] > 0 for r in rows)


@pytest.mark.pg
@pytest.mark.slow
def test_the_savings_summary_on_postgresql(pg_db: Any) -> None:
    """The same rows through the statistics writer into PostgreSQL: the summary and the comparison read them."""
    from headroom.daemon.proxy.stats import RequestRecord, StatsWriter

    writer = StatsWriter(pg_db)
    for c in range(8):
        held = c % 2 == 0
        for _ in range(4):
            record = RequestRecord("claude", "anthropic", "messages", MODEL, True, "ccr", 4000, 4000)
            record.conversation, record.project, record.holdout = f"conv{c}", "/src/shop_50%", held
            record.tokens = lambda h=held: (1000, 1000 if h else 700, 0 if h else 100)
            record.usage = {"input": 10, "output": 5, "cache_read": 800, "cache_write": 200 if held else 100}
            writer.submit(record)
        writer.submit(RequestRecord("claude", "anthropic", "count_tokens", MODEL, False, "ccr", 10, 10))
    writer.close()
    summary = savings_summary(pg_db, project="shop_50%")  # a LIKE wildcard in the name is matched literally
    assert summary["total"]["requests"] == 32 and summary["total"]["held_out_requests"] == 16
    assert summary["total"]["tokens_removed"] > 0 and summary["total"]["saved_usd"] > 0
    (entry,) = summary["comparison"]
    assert entry["result"] == "ok" and entry["held_out"]["turns"] == entry["treated"]["turns"] == 16
    assert entry["saved"] > 0 and entry["ci95"][0] <= entry["saved"] <= entry["ci95"][1]
    assert savings_summary(pg_db, project="sho_")["total"]["requests"] == 0  # "_" is no wildcard either
