"""What the proxy saved, in tokens and dollars, with the basis of every figure said out loud.

Two bases, never mixed in one number:

* **estimated** (per request, per agent): the tokens the compressor removed from the whole request (system
  prompt and tool declarations included), counted by headroom's tokenizer and scaled to the provider's own
  count of the request it received (its reported input over headroom's count of the same request), priced at
  the rates the provider would have charged for *those* tokens: removed tokens that sat in messages sent
  before would have been cache reads (when the provider read from its cache for that request), the rest cache
  writes or plain input in the proportion the provider reported for the request.
* **measured** (per agent and project): the cost per turn the provider's usage gives for held-out
  conversations (sent untouched, ``[proxy] holdout``) against treated ones. The unit is the conversation
  (turns of one conversation are not independent): each conversation's mean cost per turn, compared between
  the two groups, with a 95 % percentile bootstrap interval (conversations resampled within each group, a
  fixed seed so the same rows give the same interval). Below :data:`MIN_CONVERSATIONS` conversations or
  :data:`MIN_TURNS` turns on either side the answer is "not enough data", never a number.

Costs are in USD from :mod:`headroom.daemon.pricing`; a model the table does not price is counted as
unpriced (its cost is None, not $0), and a comparison group with an unpriced row is compared in tokens.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import select

from headroom.daemon.pricing import price
from headroom.memory.db import Database
from headroom.memory.models import ProxyRequestRow

ESTIMATED = "estimated"
MEASURED = "measured"
BASIS = {
    ESTIMATED: "tokens the compressor removed (headroom's tokenizer, scaled to the provider's count of the request), "
    "priced at the rate each would have been billed (cache read / cache write / input)",
    MEASURED: "held-out conversations (sent uncompressed) against compressed ones of the same agent and project, "
    "cost per turn from the provider's reported usage, 95% bootstrap interval over conversations",
}
#: Conversations and turns each side of a comparison needs before it is shown as a number.
MIN_CONVERSATIONS = 3
MIN_TURNS = 10
BOOTSTRAP_SAMPLES = 2000
#: Token-count calls: free, no model turn, no usage; compressed like the rest (so the count matches), but
#: what they "save" is not money, so they stay out of the savings and the comparison.
COUNT_ENDPOINTS = ("count_tokens", "gemini_count")
#: headroom's count may differ from the provider's; a scale outside this range means the counts are not
#: of the same thing (an error answer, a count cut short), and the tokenizer's own count stands.
_SCALE_RANGE = (0.5, 2.0)


def _usage(row: Mapping[str, Any]) -> tuple[int, int, int, int] | None:
    """(input, output, cache read, cache write) as reported, None when the provider reported nothing."""
    if row.get("input_tokens") is None and row.get("cache_read_tokens") is None:
        return None
    return (
        int(row.get("input_tokens") or 0),
        int(row.get("output_tokens") or 0),
        int(row.get("cache_read_tokens") or 0),
        int(row.get("cache_write_tokens") or 0),
    )


def row_savings(row: Mapping[str, Any]) -> dict[str, Any]:
    """One request's cost and estimated saving: tokens removed (scaled to the provider's count) and USD.

    ``cost_usd``/``saved_usd`` are None when the model is unpriced or the provider reported no usage.
    """
    before, after = int(row.get("tokens_before") or 0), int(row.get("tokens_after") or 0)
    removed = 0 if row.get("holdout") else max(0, before - after)
    prefix = min(removed, int(row.get("tokens_removed_prefix") or 0))
    usage = _usage(row)
    out: dict[str, Any] = {"removed": removed, "cost_usd": None, "saved_usd": None, "basis": ESTIMATED}
    if usage is None:
        return out
    inp, output, read, write = usage
    reported = inp + read + write
    scale = reported / after if after > 0 and reported > 0 else 1.0
    if not _SCALE_RANGE[0] <= scale <= _SCALE_RANGE[1]:
        scale = 1.0
    removed_s, prefix_s = round(removed * scale), round(prefix * scale)
    out["removed"] = removed_s
    model, provider, when = row.get("model"), str(row.get("provider") or "") or None, row.get("ts")
    cost = price(
        model,
        input_tokens=inp,
        output_tokens=output,
        cache_read_tokens=read,
        cache_write_tokens=write,
        provider=provider,
        when=when,
    )
    if cost is None:
        return out
    out["cost_usd"] = cost.usd
    # Removed tokens of messages sent before were in the cached prefix (when the provider read a cache at all);
    # the rest would have been billed like this request's new part: written to the cache or plain input.
    as_read = prefix_s if read > 0 else 0
    rest = removed_s - as_read
    as_write = round(rest * write / (write + inp)) if write + inp > 0 else 0
    saved = price(
        model,
        input_tokens=rest - as_write,
        output_tokens=0,
        cache_read_tokens=as_read,
        cache_write_tokens=as_write,
        provider=provider,
        when=when,
        prompt_tokens=reported + removed_s,  # the tier the uncompressed request would have been billed at
    )
    out["saved_usd"] = saved.usd if saved is not None else None
    return out


def _turn_cost(row: Mapping[str, Any], priced: bool) -> float | None:
    usage = _usage(row)
    if usage is None:
        return None
    if not priced:
        return float(sum(usage))
    cost: float | None = row_savings(row)["cost_usd"]
    return cost


def bootstrap_ci(
    groups: Sequence[tuple[Sequence[float], Sequence[float]]],
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> tuple[float, float, float]:
    """The relative saving (1 - treated/held-out cost per turn), pooled over ``groups`` of (held, treated)
    conversation means weighted by treated conversations, and its 95 % percentile bootstrap interval."""

    def statistic(pairs: Iterable[tuple[Sequence[float], Sequence[float]]]) -> float:
        total = weight = 0.0
        for held, treated in pairs:
            base = sum(held) / len(held)
            if base <= 0:
                continue
            total += len(treated) * (1 - (sum(treated) / len(treated)) / base)
            weight += len(treated)
        return total / weight if weight else 0.0

    point = statistic(groups)
    rng = random.Random(seed)
    draws = sorted(
        statistic(([rng.choice(h) for _ in h], [rng.choice(t) for _ in t]) for h, t in groups) for _ in range(samples)
    )
    return point, draws[int(0.025 * samples)], draws[min(samples - 1, int(0.975 * samples))]


def holdout_comparison(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per agent and project: held-out against treated cost per turn (``measured``), or why not enough data."""
    by_group: dict[tuple[str, str | None], dict[str, list[Mapping[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row.get("conversation") and _usage(row) is not None and (row.get("status") or 0) < 400:
            by_group[(str(row["agent"]), row.get("project"))][str(row["conversation"])].append(row)
    out = []
    for (agent, project), conversations in sorted(by_group.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        if not any(r.get("holdout") for rs in conversations.values() for r in rs):
            continue  # no holdout in this group: nothing to compare (the holdout is off)
        priced = all(_turn_cost(r, True) is not None for rs in conversations.values() for r in rs)
        unit = "usd" if priced else "tokens"
        sides: dict[bool, list[float]] = {True: [], False: []}
        turns = {True: 0, False: 0}
        for rs in conversations.values():
            costs = [c for r in rs if (c := _turn_cost(r, priced)) is not None]
            held = bool(rs[0].get("holdout"))
            sides[held].append(sum(costs) / len(costs))
            turns[held] += len(costs)
        entry: dict[str, Any] = {
            "agent": agent,
            "project": project,
            "unit": unit,
            "held_out": {"conversations": len(sides[True]), "turns": turns[True]},
            "treated": {"conversations": len(sides[False]), "turns": turns[False]},
            "basis": MEASURED,
            "method": "bootstrap",
        }
        enough = all(len(sides[s]) >= MIN_CONVERSATIONS and turns[s] >= MIN_TURNS for s in (True, False))
        if not enough:
            entry["result"] = (
                f"not enough data: {MIN_CONVERSATIONS} conversations and {MIN_TURNS} turns needed on each side"
            )
        else:
            held_mean = sum(sides[True]) / len(sides[True])
            treated_mean = sum(sides[False]) / len(sides[False])
            point, low, high = bootstrap_ci([(sides[True], sides[False])])
            entry["held_out"]["per_turn"] = held_mean
            entry["treated"]["per_turn"] = treated_mean
            entry.update({"saved": point, "ci95": [low, high], "result": "ok"})
        out.append(entry)
    return out


_COLUMNS = (
    "ts",
    "agent",
    "provider",
    "model",
    "status",
    "tokens_before",
    "tokens_after",
    "tokens_removed_prefix",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "conversation",
    "project",
    "holdout",
    "fallback",
)


def savings_summary(
    db: Database,
    *,
    since: date | None = None,
    until: date | None = None,
    agent: str | None = None,
    project: str | None = None,
) -> dict[str, Any]:
    """Per agent: tokens sent and removed, cost, estimated saving, held-out requests, fallbacks; then the
    measured holdout comparison per agent and project. Token-count calls are left out (:data:`COUNT_ENDPOINTS`)."""
    t = ProxyRequestRow
    query: Any = select(*(getattr(t, c) for c in _COLUMNS)).where(t.endpoint.not_in(COUNT_ENDPOINTS)).order_by(t.id)
    if since is not None:
        query = query.where(t.day >= since)
    if until is not None:
        query = query.where(t.day <= until)
    if agent is not None:
        query = query.where(t.agent == agent)
    if project is not None:
        query = query.where(t.project.contains(project, autoescape=True))
    with db.sessions() as s:
        rows = [dict(r._mapping) for r in s.execute(query)]
    agents: dict[str, dict[str, Any]] = {}
    total = _blank()
    fell_back: dict[str, tuple[str, str | None, str]] = {}
    for row in rows:
        figures = row_savings(row)
        for bucket in (agents.setdefault(str(row["agent"]), _blank()), total):
            bucket["requests"] += 1
            bucket["tokens_sent"] += int(row["tokens_before"] or 0)
            bucket["tokens_removed"] += figures["removed"]
            bucket["held_out_requests"] += 1 if row["holdout"] else 0
            if figures["cost_usd"] is None:
                bucket["unpriced_requests"] += 1 if _usage(row) is not None else 0
            else:
                bucket["cost_usd"] += figures["cost_usd"]
                bucket["saved_usd"] += figures["saved_usd"] or 0.0
        if row["fallback"] and row["conversation"] and row["conversation"] not in fell_back:
            fell_back[row["conversation"]] = (str(row["agent"]), row["project"], str(row["fallback"]))
    for bucket in (*agents.values(), total):
        bucket["saved_ratio"] = (
            round(bucket["tokens_removed"] / bucket["tokens_sent"], 4) if bucket["tokens_sent"] else 0.0
        )
    return {
        "basis": dict(BASIS),
        "total": total,
        "agents": dict(sorted(agents.items())),
        "comparison": holdout_comparison(rows),
        "fallbacks": [
            {"conversation": c, "agent": a, "project": p, "reason": reason} for c, (a, p, reason) in fell_back.items()
        ],
    }


def _blank() -> dict[str, Any]:
    return {
        "requests": 0,
        "tokens_sent": 0,
        "tokens_removed": 0,
        "cost_usd": 0.0,
        "saved_usd": 0.0,
        "unpriced_requests": 0,
        "held_out_requests": 0,
        "basis": ESTIMATED,
    }
