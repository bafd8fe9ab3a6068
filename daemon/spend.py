"""A running USD cost (:class:`Spend`) and the pricing of summed usage rows (:func:`price_sum`), without SQLAlchemy.

Why apart from :mod:`headroom.daemon.costs`: the CLI's SQLite fast path for ``stats --by day``
(:mod:`headroom.daemon.stats_fast`) prices the same sums the same way, and must not import the ORM to do it
(importing it was most of a warm ``stats`` run). ``costs`` re-exports both names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from headroom.daemon import pricing
from headroom.learn.model import REASONING_OUTSIDE_OUTPUT

SUMS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
    "cache_write_1h_tokens",
)

#: ``pricing.rates``' signature: (model, provider=..., when=...) -> Rates | None.
RatesOf = Callable[..., "pricing.Rates | None"]


@dataclass(slots=True)
class Spend:
    """A running cost: what was priced, what could not be, and which models made it."""

    usd: float = 0.0
    priced_calls: int = 0
    unpriced_calls: int = 0
    unpriced_models: set[str] = field(default_factory=set)
    models: dict[str, int] = field(default_factory=dict)  # model -> calls
    by_model: dict[str, float | None] = field(default_factory=dict)  # model -> USD (None: unpriced)
    parts: dict[str, float] = field(default_factory=lambda: dict.fromkeys(pricing.PARTS, 0.0))

    def add(self, other: Spend) -> None:
        self.usd += other.usd
        self.priced_calls += other.priced_calls
        self.unpriced_calls += other.unpriced_calls
        self.unpriced_models |= other.unpriced_models
        for model, calls in other.models.items():
            self.models[model] = self.models.get(model, 0) + calls
        for model, usd in other.by_model.items():
            mine = self.by_model.get(model, 0.0)
            self.by_model[model] = None if usd is None or mine is None else mine + usd
        for part, value in other.parts.items():
            self.parts[part] += value

    def fields(self) -> dict[str, Any]:
        """The row's cost columns: ``cost_usd`` is ``None`` when nothing could be priced but something was used."""
        return {
            "cost_usd": round(self.usd, 9) if self.priced_calls or not self.unpriced_calls else None,
            "cost_parts": {k: round(v, 9) for k, v in self.parts.items()},
            "unpriced_calls": self.unpriced_calls,
            "unpriced_models": sorted(self.unpriced_models),
            "models": sorted(self.models, key=lambda m: (-self.models[m], m)),  # most calls first, any backend
            "model_costs": {m: None if v is None else round(v, 9) for m, v in self.by_model.items()},
        }


def price_sum(
    model: str | None,
    agent: str,
    day: date | None,
    prompt: int,
    calls: int,
    tokens: dict[str, int],
    rates_of: RatesOf = pricing.rates,
) -> Spend:
    """The cost of ``calls`` summed usage rows of one model and day whose prompts all pick the tier ``prompt``
    picks (a call's own prompt size, or a threshold + 1 for rows grouped above it, 0 for rows below all).

    ``rates_of`` finds the rates (default: the price table; the fast path passes its cached lookups)."""
    spend = Spend()
    name = model or "(unknown)"
    used = tokens["input_tokens"] + tokens["output_tokens"] + tokens["cache_read_tokens"]
    used += tokens["cache_creation_tokens"] + tokens["reasoning_tokens"]
    if not used:  # "<synthetic>" messages and the like: nothing was billed, nothing to price
        return spend
    spend.models[name] = calls
    output = tokens["output_tokens"]
    if agent in REASONING_OUTSIDE_OUTPUT:  # Gemini bills its thoughts as output; its logs keep them apart
        output += tokens["reasoning_tokens"]
    found = rates_of(model, provider=agent, when=day)
    cost = (
        None
        if found is None
        else pricing.cost_from_rates(
            found,
            input_tokens=tokens["input_tokens"],
            output_tokens=output,
            cache_read_tokens=tokens["cache_read_tokens"],
            cache_write_tokens=tokens["cache_creation_tokens"],
            cache_write_1h_tokens=tokens.get("cache_write_1h_tokens", 0),
            prompt_tokens=prompt,
        )
    )
    if cost is None:
        spend.unpriced_calls = calls
        spend.unpriced_models.add(name)
        spend.by_model[name] = None
        return spend
    spend.usd = cost.usd
    spend.by_model[name] = cost.usd
    spend.priced_calls = calls
    for part, value in cost.parts.items():
        spend.parts[part] += value
    return spend


def local_day(hour_text: str, tz: tzinfo) -> tuple[date, date]:
    """(local day, UTC day) of an hour given as ``YYYY-MM-DD HH`` in UTC."""
    moment = datetime.strptime(hour_text, "%Y-%m-%d %H").replace(tzinfo=UTC)
    return moment.astimezone(tz).date(), moment.date()
