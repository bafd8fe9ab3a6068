"""The price table: every figure agrees with genai-prices' own calculation, unpriced stays ``None``, never $0."""

from __future__ import annotations

import json
import re
import stat
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price
from genai_prices import data as price_data
from genai_prices.types import TieredPrices

from headroom.daemon import pricing

# Model names exactly as the agents logged them in the shared fixtures (claude-*, gpt-5*, gemini-*).
LOGGED = [
    "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5-20251001",
    "claude-sonnet-4-6",
    "claude-opus-4-6",
    "claude-opus-4-7",
    "claude-sonnet-4-20250514",
    "gpt-5-codex",
    "gpt-5.1-codex-max",
    "gpt-5.2-codex",
    "gpt-5.4",
    "gpt-5.4-mini",
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-3-flash-preview",
    "gemini-3.1-pro-preview",
]
MIXES = [(1_000, 2_000, 3_000, 5_000), (10, 50_000, 300_000, 4_000), (250_000, 100, 30_000, 0), (0, 0, 0, 0)]


def _reference(model: str, mix: tuple[int, int, int, int], when: datetime) -> float:
    inp, out, read, write = mix
    usage = Usage(input_tokens=inp + read + write, output_tokens=out, cache_read_tokens=read, cache_write_tokens=write)
    return float(calc_price(usage, model, genai_request_timestamp=when).total_price)


@pytest.mark.parametrize("model", LOGGED)
@pytest.mark.parametrize("mix", MIXES)
def test_price_equals_the_packages_own_calculation(model: str, mix: tuple[int, int, int, int]) -> None:
    when = datetime(2026, 11, 20, 15, tzinfo=UTC)
    cost = pricing.price(
        model,
        input_tokens=mix[0],
        output_tokens=mix[1],
        cache_read_tokens=mix[2],
        cache_write_tokens=mix[3],
        when=when,
    )
    assert cost is not None
    assert cost.usd == pytest.approx(_reference(model, mix, when), rel=1e-9, abs=1e-12)
    assert cost.usd == pytest.approx(sum(cost.parts.values()))
    assert set(cost.parts) == set(pricing.PARTS)


def test_long_context_tier_applies_to_the_whole_request() -> None:
    model = "claude-sonnet-4-5-20250929"
    found = pricing.rates(model, when=date(2026, 11, 20))
    assert found is not None and found.tiers, "the table prices Sonnet 4.5 above 200k tokens"
    threshold = found.tiers[0][0]
    below = pricing.price(model, input_tokens=0, output_tokens=1_000, cache_read_tokens=threshold)
    above = pricing.price(model, input_tokens=0, output_tokens=1_000, cache_read_tokens=threshold + 1)
    assert below is not None and above is not None
    assert below.tier is None and above.tier == threshold
    # every token of the long request pays the higher rate, output included
    assert above.parts["output"] > below.parts["output"]


@pytest.mark.parametrize("name", ["<synthetic>", "", "mistral:7b-instruct-q4_K_M", "no-such-model-xyz", "sonnet"])
def test_unknown_models_are_unpriced_not_free(name: str) -> None:
    assert pricing.price(name, input_tokens=1_000_000, output_tokens=1_000_000) is None
    assert pricing.rates(None) is None


@pytest.mark.parametrize(
    ("logged", "plain"),
    [
        ("claude-opus-4-6[1m]", "claude-opus-4-6"),
        ("anthropic/claude-sonnet-4-6", "claude-sonnet-4-6"),
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("kimi-k2.5:cloud", "kimi-k2.5"),
    ],
)
def test_decorated_names_resolve_like_the_plain_name(logged: str, plain: str) -> None:
    a, b = pricing.rates(logged), pricing.rates(plain)
    assert a is not None and a == b


def test_provider_aliases_pick_the_providers_table() -> None:
    by_agent = pricing.rates("claude-sonnet-4-6", provider="claude")
    by_id = pricing.rates("claude-sonnet-4-6", provider="anthropic")
    assert by_agent is not None and by_agent == by_id and by_agent.provider == "anthropic"


def test_prices_follow_the_day_a_model_changed_price() -> None:
    """A model whose price changed on a date in the table is priced with the rate in force each day."""
    for prov in price_data.providers:
        for model in prov.models:
            if not isinstance(model.prices, list) or len(model.prices) < 2:
                continue
            first, second = model.prices[0], model.prices[1]
            start = getattr(second.constraint, "start_date", None)
            a, b = first.prices, second.prices
            old, new = getattr(a, "input_mtok", None), getattr(b, "input_mtok", None)
            if not isinstance(start, date) or isinstance(old, TieredPrices) or old in (None, new):
                continue
            before = pricing.rates(model.id, provider=prov.id, when=date.fromordinal(start.toordinal() - 1))
            after = pricing.rates(model.id, provider=prov.id, when=start)
            assert before is not None and after is not None
            assert before.input == float(old)
            assert after.input != before.input
            return
    pytest.skip("this table has no dated price change on a flat-priced model")


def test_lookups_are_cached_per_model_and_day() -> None:
    day = date(2026, 11, 2)
    first = pricing.rates("gpt-5.2-codex", when=day)
    assert pricing.rates("gpt-5.2-codex", when=datetime(2026, 11, 2, 23, tzinfo=UTC)) is first


def test_the_bundled_table_is_used_and_never_updated() -> None:
    assert pricing._snapshot().from_auto_update is False
    info = pricing.table_version()
    assert info["package"] == "genai-prices"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", info["version"])
    assert re.fullmatch(r"[0-9a-f]{12}", info["data_sha256"])
    assert date.fromisoformat(info["snapshot"]) <= datetime.now(UTC).date()


def test_tier_thresholds_cover_every_tiered_model() -> None:
    thresholds = set(pricing.tier_thresholds())
    for model in LOGGED:
        found = pricing.rates(model)
        assert found is not None
        assert {start for start, _ in found.tiers} <= thresholds


def test_rate_card_round_trips_and_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "state" / "rates.json"
    card = pricing.write_rate_card(path, ["claude-sonnet-4-5-20250929", "gpt-5.4", "<synthetic>"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert card["unpriced"] == ["<synthetic>"]
    rates, unpriced = pricing.read_rate_card(path)
    assert unpriced == {"<synthetic>"}
    assert rates["gpt-5.4"] == pricing.rates("gpt-5.4")
    mix = {"input_tokens": 10, "output_tokens": 20, "cache_read_tokens": 300_000}
    from_card = pricing.cost_from_rates(rates["gpt-5.4"], **mix)
    direct = pricing.price("gpt-5.4", **mix)
    assert direct is not None and from_card.usd == direct.usd and from_card.tier == direct.tier


@pytest.mark.parametrize("content", ["", "{not json", json.dumps({"models": {"x": {"rates": [1]}}}), "[]"])
def test_a_broken_rate_card_reads_as_empty(tmp_path: Path, content: str) -> None:
    path = tmp_path / "rates.json"
    path.write_text(content)
    assert pricing.read_rate_card(path) == ({}, set())
    assert pricing.read_rate_card(tmp_path / "missing.json") == ({}, set())
