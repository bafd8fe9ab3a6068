"""What tokens cost in USD, from the offline price table the ``genai-prices`` package ships.

Why a module of our own around the package: headroom must price thousands of rows per ``stats`` run without a
lookup each, must never fetch prices at run time (the package can auto-update; we never let it: the bundled
snapshot is loaded directly), must say *which* table priced a figure (the package version and a hash of its data
file), and must keep "we do not know this model" apart from "$0". So:

- :func:`rates` resolves a model name as the agents log it (``claude-sonnet-4-5-20250929``, ``gpt-5.1-codex-max``,
  ``gemini-2.5-pro``, ``anthropic/claude-…``, ``claude-opus-4-6[1m]``) to per-million-token :class:`Rates`
  (input, output, cache read, cache write, and the long-context tiers where the table has them), cached per
  (model, provider, day) because prices can change on a date.
- :func:`price` prices one call (or any sum of calls that share a tier) and returns a :class:`Cost` with its parts,
  or ``None`` when the model is unpriced.
- :class:`Rates` is plain data (``to_json``/``from_json``), so a caller that must not import the 30,000-line price
  table (the statusline, under 50 ms) can price from a small cached rate card: :func:`write_rate_card` and
  :func:`read_rate_card`.

Token conventions are ccusage's and the ``usage`` table's: ``input_tokens`` excludes cache reads and writes, and
``output_tokens`` is the billed output (for Gemini, whose logs keep thoughts apart, the caller adds them). A tier
("cliff" pricing, as the providers bill it) applies to *all* tokens of a request whose whole prompt (input + cache
read + cache write) is above its threshold, so a long-context request must be priced on its own, not summed with
short ones; analytics groups rows by tier before summing (:func:`tier_thresholds` lists the thresholds in use).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from headroom.memory.files import write_atomic

PACKAGE = "genai-prices"
PARTS = ("input", "output", "cache_read", "cache_write")
Tuple5 = tuple[float, float, float, float, float]
# Provider names headroom uses (agents, proxy routes) → the table's provider ids.
PROVIDER_ALIASES = {
    "claude": "anthropic",
    "anthropic": "anthropic",
    "codex": "openai",
    "openai": "openai",
    "gemini": "google",
    "google": "google",
}
# Names that are not models: Claude Code writes "<synthetic>" for messages it made up itself (no API call).
NOT_MODELS = frozenset({"<synthetic>", "", "unknown"})
_SUFFIX = re.compile(r"\[[^\]]*\]$")  # "claude-opus-4-6[1m]": Claude Code's context-window tag
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens for one model on one day; ``tiers`` are (prompt-size threshold, rates above it).

    ``cache_write_1h`` is Anthropic's 1-hour cache write (2x input, against 1.25x for the 5-minute one); a
    model without it in the table has it equal to ``cache_write``. Rates tuples are (input, output, cache
    read, cache write, 1-hour cache write).
    """

    model: str  # the table's model id (e.g. "claude-sonnet-4-5")
    provider: str  # the table's provider id (e.g. "anthropic")
    input: float
    output: float
    cache_read: float
    cache_write: float
    cache_write_1h: float
    tiers: tuple[tuple[int, Tuple5], ...] = ()

    def at(self, prompt_tokens: int) -> Tuple5:
        """The rates that apply to a request whose whole prompt is ``prompt_tokens`` long (cliff tiers)."""
        chosen = (self.input, self.output, self.cache_read, self.cache_write, self.cache_write_1h)
        for start, tier_rates in self.tiers:
            if prompt_tokens > start:
                chosen = tier_rates
        return chosen

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "provider": self.provider,
            "rates": [self.input, self.output, self.cache_read, self.cache_write, self.cache_write_1h],
            "tiers": [[start, list(r)] for start, r in self.tiers],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rates:
        i, o, cr, cw, cw1h = (float(x) for x in data["rates"])
        tiers = tuple((int(start), _five(r)) for start, r in data.get("tiers", ()))
        return cls(str(data["model"]), str(data["provider"]), i, o, cr, cw, cw1h, tiers)


def _five(values: Any) -> Tuple5:
    a, b, c, d, e = (float(x) for x in values)
    return a, b, c, d, e


@dataclass(frozen=True, slots=True)
class Cost:
    """The price of some tokens: ``usd`` and its ``parts`` (input, output, cache_read, cache_write)."""

    usd: float
    parts: dict[str, float] = field(default_factory=dict)
    model: str = ""  # the table's model id that priced it
    provider: str = ""
    tier: int | None = None  # the long-context threshold that applied, if any


def cost_from_rates(
    rates: Rates,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    prompt_tokens: int | None = None,
    cache_write_1h_tokens: int = 0,
) -> Cost:
    """Price tokens with known ``rates``; ``prompt_tokens`` picks the tier (default: this call's whole prompt).

    ``cache_write_1h_tokens`` is the part of ``cache_write_tokens`` written to the 1-hour cache.
    """
    prompt = input_tokens + cache_read_tokens + cache_write_tokens if prompt_tokens is None else prompt_tokens
    r_in, r_out, r_read, r_write, r_write_1h = rates.at(prompt)
    hour = min(cache_write_1h_tokens, cache_write_tokens)
    parts = {
        "input": input_tokens * r_in / 1e6,
        "output": output_tokens * r_out / 1e6,
        "cache_read": cache_read_tokens * r_read / 1e6,
        "cache_write": ((cache_write_tokens - hour) * r_write + hour * r_write_1h) / 1e6,
    }
    tier = next((start for start, _ in reversed(rates.tiers) if prompt > start), None)
    return Cost(sum(parts.values()), parts, rates.model, rates.provider, tier)


def price(
    model: str | None,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    provider: str | None = None,
    when: datetime | date | None = None,
    prompt_tokens: int | None = None,
    cache_write_1h_tokens: int = 0,
) -> Cost | None:
    """The USD cost of one model call (or of calls that share a tier), ``None`` when the model is unpriced.

    ``input_tokens`` excludes the cache reads and writes (ccusage's convention). ``when`` picks the prices in force
    that day (default: today, UTC). ``prompt_tokens`` overrides the size that picks a long-context tier, for a
    caller that sums several calls known to be on the same side of every threshold. ``cache_write_1h_tokens``
    is the part of ``cache_write_tokens`` written to Anthropic's 1-hour cache (priced at its own rate).
    """
    found = rates(model, provider=provider, when=when)
    if found is None:
        return None
    return cost_from_rates(
        found,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        cache_write_tokens=cache_write_tokens,
        prompt_tokens=prompt_tokens,
        cache_write_1h_tokens=cache_write_1h_tokens,
    )


def rates(model: str | None, *, provider: str | None = None, when: datetime | date | None = None) -> Rates | None:
    """The per-million-token rates of ``model`` on the day of ``when``; ``None`` if the table does not price it."""
    if model is None:
        return None
    if when is None:
        day = datetime.now(UTC).date()
    elif isinstance(when, datetime):
        day = (when.astimezone(UTC) if when.tzinfo else when).date()
    else:
        day = when
    return _rates(model, PROVIDER_ALIASES.get((provider or "").lower(), provider), day)


@lru_cache(maxsize=4096)
def _rates(model: str, provider: str | None, day: date) -> Rates | None:
    # The provider hint first (an agent's own provider); then any provider: Codex and Claude Code run other
    # vendors' models too (``kimi-k2.5:cloud`` through Ollama, Bedrock/Vertex ids).
    for hint in (provider, None) if provider else (None,):
        for candidate in _candidates(model):
            found = _lookup(candidate, hint, day)
            if found is not None:
                return found
    return None


def _candidates(model: str) -> list[str]:
    """The names to try for a logged model name, most specific first."""
    name = _SUFFIX.sub("", model.strip())
    if name.lower() in NOT_MODELS:
        return []
    out = [name]
    if "/" in name:  # "anthropic/claude-…", "models/gemini-…", "openrouter/google/gemini-…"
        out.append(name.rsplit("/", 1)[1])
    if ":" in name:  # "kimi-k2.5:cloud", "qwen3.5:cloud" (ollama tags)
        out.append(name.split(":", 1)[0])
    return out


def _lookup(model: str, provider: str | None, day: date) -> Rates | None:
    snap = _snapshot()
    try:
        with _lock:  # the package's lookup caches are plain dicts
            prov, info = snap.find_provider_model(model, None, provider, None)
    except LookupError:
        return None
    prices = info.get_prices(datetime.combine(day, time(12), tzinfo=UTC))
    base, tiers = _split(prices)
    if base is None:
        return None
    return Rates(info.id, prov.id, *base, tiers=tiers)


def _split(prices: Any) -> tuple[Tuple5 | None, tuple[tuple[int, Any], ...]]:
    """Base rates and tiers of a ``ModelPrice``; a missing cache rate falls back as the providers bill it."""
    # lazy: the price table takes ~0.2 s to load; warm runs read the rate card instead
    from genai_prices.types import TieredPrices

    def value(name: str) -> Any:
        return getattr(prices, name, None)

    raw_in, raw_out = value("input_mtok"), value("output_mtok")
    if raw_in is None and raw_out is None:
        return None, ()
    raw = [raw_in, raw_out, value("cache_read_mtok"), value("cache_write_mtok"), value("cache_write_1h_mtok")]
    # No cache-read price: cached input is billed as input. No cache-write price: writes are billed as input.
    # No 1-hour write price: those writes are billed as the other writes.
    if raw[2] is None:
        raw[2] = raw_in
    if raw[3] is None:
        raw[3] = raw_in
    if raw[4] is None:
        raw[4] = raw[3]
    starts = sorted({t.start for r in raw if isinstance(r, TieredPrices) for t in r.tiers})

    def at(r: Any, start: int | None) -> float:
        if r is None:
            return 0.0
        if not isinstance(r, TieredPrices):
            return float(r)
        chosen = r.base
        for tier in r.tiers:
            if start is not None and start >= tier.start:
                chosen = tier.price
        return float(chosen)

    base = tuple(at(r, None) for r in raw)
    tiers = tuple((start, tuple(at(r, start) for r in raw)) for start in starts)
    return base, tiers  # type: ignore[return-value]


@lru_cache(maxsize=1)
def _snapshot() -> Any:
    """The bundled snapshot, loaded directly: the package's auto-update (a network fetch) is never started."""
    # lazy: the price table takes ~0.2 s to load; warm runs read the rate card instead
    from genai_prices import data as price_data
    from genai_prices.data_snapshot import DataSnapshot

    return DataSnapshot(providers=price_data.providers, from_auto_update=False)


@lru_cache(maxsize=1)
def table_version() -> dict[str, str]:
    """Which table priced the figures: the package, its version and its data file's hash and modification date."""
    try:
        ver = version(PACKAGE)
    except PackageNotFoundError:  # pragma: no cover - a hard dependency
        ver = "missing"
    info = {"package": PACKAGE, "version": ver}
    try:
        # lazy: the price table takes ~0.2 s to load; warm runs read the rate card instead
        from genai_prices import data as price_data

        path = Path(str(price_data.__file__))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        info["data_sha256"] = digest
        info["snapshot"] = _latest_price_date(price_data.providers)
    except (ImportError, OSError):  # pragma: no cover
        pass
    return info


def _latest_price_date(providers: Any) -> str:
    """The latest price start date on or before today in the table: the newest price change it knows of."""
    today = datetime.now(UTC).date()
    latest = date(1970, 1, 1)
    for prov in providers:
        for model in prov.models:
            if isinstance(model.prices, list):
                for conditional in model.prices:
                    start = getattr(conditional.constraint, "start_date", None)
                    if isinstance(start, datetime):
                        start = start.date()
                    if isinstance(start, date) and latest < start <= today:
                        latest = start
    return latest.isoformat()


def tier_thresholds() -> tuple[int, ...]:
    """Every long-context threshold the table has: analytics buckets rows by these before summing."""
    return _thresholds()


@lru_cache(maxsize=1)
def _thresholds() -> tuple[int, ...]:
    # lazy: the price table takes ~0.2 s to load; warm runs read the rate card instead
    from genai_prices.types import TieredPrices

    found: set[int] = set()
    for prov in _snapshot().providers:
        for model in prov.models:
            prices = model.prices if isinstance(model.prices, list) else [model.prices]
            for entry in prices:
                mp = getattr(entry, "prices", entry)
                for value in vars(mp).values():
                    if isinstance(value, TieredPrices):
                        found.update(t.start for t in value.tiers)
    return tuple(sorted(found))


# --- a small rate card for callers that must not import the table (the statusline) ---------------------------


def write_rate_card(path: Path, models: list[str], *, when: date | None = None) -> dict[str, Any]:
    """Write the rates of ``models`` (as logged) for ``when`` to ``path`` (JSON, owner-only); returns the card."""
    day = when or datetime.now(UTC).date()
    card: dict[str, Any] = {
        "day": day.isoformat(),
        "table": table_version(),
        "thresholds": list(tier_thresholds()),
        "models": {},
        "unpriced": [],
    }
    for model in sorted(set(models)):
        found = rates(model, when=day)
        if found is None:
            card["unpriced"].append(model)
        else:
            card["models"][model] = found.to_json()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(card).encode(), fsync=False)
    return card


def read_rate_card(path: Path) -> tuple[dict[str, Rates], set[str]]:
    """The rates and the known-unpriced names in a card; empty when the card is missing or unreadable."""
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
        models = {name: Rates.from_json(data) for name, data in card.get("models", {}).items()}
        return models, set(card.get("unpriced", []))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}, set()


def format_usd(value: float | None, unpriced: int = 0) -> str:
    """``$12.34``; ``—`` when nothing could be priced; the count of unpriced calls when some could not be."""
    if value is None:
        return f"— ({unpriced} unpriced)" if unpriced else "—"
    shown = f"${value:,.2f}" if value >= 0.995 or value == 0 else f"${value:.4f}".rstrip("0")
    return f"{shown} +{unpriced} unpriced" if unpriced else shown
