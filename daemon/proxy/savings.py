"""Which conversations the proxy compresses, and the watchdog that stops it where compression costs money.

Three decisions per conversation, all keyed by a stable conversation id (:func:`conversation_key`: the
agent's own session id when the request carries one, else a hash of the first user message):

* **holdout**: a share ``[proxy] holdout`` of conversations, chosen by a hash of the key (so a resumed or
  restarted conversation lands in the same group), is sent untouched. Their rows are marked and
  ``stats --proxy`` compares their cost per turn with the treated ones (:mod:`.savings_report`).
* **cache watchdog**: the cache-read share of input (what the provider reported) is followed per
  conversation and per agent and project. When a conversation's share drops after its compression started,
  against its own turns before compression or, without those, the agent/project baseline, the drop is
  logged once and the conversation falls back to lossless with its sent prefix frozen.
* **cost guard**: once a compressed conversation has a few turns, its input bill is compared with what the
  same tokens (plus the removed ones) would have cost at the effective per-token rate of uncompressed turns
  of the same agent and project (held-out conversations first); a conversation that costs more falls back.

The watchdog learns from the statistics writer's rows (:meth:`SavingsPolicy.observe`, on the writer
thread, after the token counts): it needs the removed-token counts, and the hot path stays free of it. A
decision therefore takes effect from the next request that follows the row, a fraction of a second later.
Everything is in memory and bounded (an LRU of conversations); the rows in the database keep the history.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from headroom.daemon.providers import SESSION_HEADERS, body_session, cache_ratios

log = logging.getLogger("headroom.proxy")

#: A conversation is sent untouched when the hash of its key falls below the holdout share.
_HOLDOUT_SALT = b"headroom-holdout-v1"
#: Conversations remembered at once (least recently seen go first).
MAX_CONVERSATIONS = 10_000
#: Below this many input tokens a provider does not cache at all (Anthropic's minimum is 1,024).
MIN_CACHEABLE = 1024
#: A turn's cache-read share below this fraction of the reference is a drop.
DROP_RATIO = 0.5
#: The reference share must be at least this for a drop to mean anything.
MIN_REFERENCE = 0.2
#: Turns (cache-eligible, after the first) an agent/project baseline needs before it is trusted.
MIN_BASELINE_TURNS = 3
#: Compressed turns a conversation needs before the cost guard judges it.
MIN_COST_TURNS = 3

#: What a cache read and a cache write cost relative to an uncached input token, per provider (each provider's
#: ``cache_ratios``, from its list prices). The cost guard compares turns of one agent and project, so ratios
#: are all it needs, and the daemon does not load the full price table for it.
CACHE_RATIOS: dict[str, tuple[float, float, float]] = cache_ratios()
#: A row of no known provider is weighed like the first registered one (Anthropic's: the dearest cache writes).
_UNKNOWN_RATIOS = next(iter(CACHE_RATIOS.values()))


def _digest(text: str | bytes) -> str:
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _first_user(messages: Any) -> Any:
    if not isinstance(messages, list):
        return None
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "user":
            return message.get("content", message.get("parts"))
    return None


def conversation_key(agent: str, headers: Mapping[str, str], body: Mapping[str, Any], key: str | None) -> str | None:
    """A stable hash naming the conversation of a request (None when nothing in it is stable).

    The agent's own session id wins (a header, Claude's ``metadata.user_id`` JSON, Codex's
    ``prompt_cache_key``); otherwise the first user message of the conversation, which every later turn repeats.
    """
    for name in SESSION_HEADERS:
        value = headers.get(name, "").strip()
        if value:
            return _digest(f"{agent}\0session\0{value}")
    session = body_session(body)
    if session is not None:
        return _digest(f"{agent}\0session\0{session}")
    first = _first_user(body.get(key or ""))
    if first is None:
        return None
    try:
        encoded = orjson.dumps(first)
    except (TypeError, orjson.JSONEncodeError):
        return None
    return _digest(f"{agent}\0first\0".encode() + encoded)


def held_out(conversation: str | None, share: float) -> bool:
    """Whether ``conversation`` belongs to the holdout: a deterministic draw, the same in every process."""
    if conversation is None or share <= 0.0:
        return False
    if share >= 1.0:
        return True
    draw = int.from_bytes(hashlib.blake2b(_HOLDOUT_SALT + conversation.encode(), digest_size=8).digest(), "big")
    return draw / 2**64 < share


@dataclass
class Decision:
    """What the proxy does with one request of a conversation."""

    conversation: str | None
    holdout: bool = False
    fallback: str | None = None  # "cache" or "cost": compress losslessly, the sent prefix frozen


def cache_share(row: Mapping[str, Any]) -> tuple[float, int] | None:
    """(cache reads / all input, all input) of a row, None when the provider reported no input."""
    parts = [row.get("input_tokens"), row.get("cache_read_tokens"), row.get("cache_write_tokens")]
    if parts[0] is None and parts[1] is None:
        return None
    total = sum(int(p or 0) for p in parts)
    if total <= 0:
        return None
    return int(parts[1] or 0) / total, total


@dataclass
class _Conversation:
    agent: str
    project: str | None
    turns: int = 0
    compressed: bool = False  # some request of it was changed by the proxy
    before: list[float] = field(default_factory=list)  # cache shares of uncompressed turns after the first
    fallback: str | None = None
    messages: int = 0  # how many messages its previous request had
    cost: float = 0.0  # input cost of its compressed turns, as billed
    counterfactual: float = 0.0  # the same turns' input (plus what was removed) at the baseline rate
    cost_turns: int = 0


@dataclass
class _Baseline:
    """Uncompressed turns of one agent and project: cache shares, and input cost per input token."""

    shares: deque[float] = field(default_factory=lambda: deque(maxlen=200))
    held_cost: float = 0.0
    held_tokens: int = 0
    held_turns: int = 0
    plain_cost: float = 0.0
    plain_tokens: int = 0
    plain_turns: int = 0

    def share(self) -> float | None:
        if len(self.shares) < MIN_BASELINE_TURNS:
            return None
        return sum(self.shares) / len(self.shares)

    def rate(self) -> float | None:
        """Input cost per input token of uncompressed turns: held-out ones when there are enough."""
        if self.held_turns >= MIN_BASELINE_TURNS and self.held_tokens:
            return self.held_cost / self.held_tokens
        if self.plain_turns >= MIN_BASELINE_TURNS and self.plain_tokens:
            return self.plain_cost / self.plain_tokens
        return None


class SavingsPolicy:
    """Holdout draws and the cache/cost watchdog, shared by every request (thread-safe).

    The cost guard weighs input tokens by the provider's :data:`CACHE_RATIOS` (input-token equivalents).
    """

    def __init__(self, holdout: float = 0.0) -> None:
        self.holdout = holdout
        self._conversations: OrderedDict[str, _Conversation] = OrderedDict()
        self._baselines: dict[tuple[str, str | None], _Baseline] = {}
        self._lock = threading.Lock()
        self.events: deque[dict[str, Any]] = deque(maxlen=20)
        self.fallbacks = {"cache": 0, "cost": 0}
        self.held_out_requests = 0
        self.drops_not_ours = 0  # cache drops seen while the proxy had re-sent the prefix byte for byte

    def decide(self, agent: str, conversation: str | None, project: str | None) -> Decision:
        """Holdout or not, and whether the conversation was switched to lossless by the watchdog."""
        if held_out(conversation, self.holdout):
            with self._lock:
                self.held_out_requests += 1
            return Decision(conversation, holdout=True)
        if conversation is None:
            return Decision(None)
        with self._lock:
            state = self._conversations.get(conversation)
            if state is None:
                return Decision(conversation)
            self._conversations.move_to_end(conversation)
            return Decision(conversation, fallback=state.fallback)

    def _state(self, conversation: str, agent: str, project: str | None) -> _Conversation:
        state = self._conversations.get(conversation)
        if state is None:
            state = self._conversations[conversation] = _Conversation(agent, project)
            while len(self._conversations) > MAX_CONVERSATIONS:
                self._conversations.popitem(last=False)
        else:
            self._conversations.move_to_end(conversation)
        return state

    def _input_cost(self, row: Mapping[str, Any]) -> tuple[float, int]:
        """(input cost in input-token equivalents, input tokens) of a row."""
        plain, read, write = CACHE_RATIOS.get(str(row.get("provider") or ""), _UNKNOWN_RATIOS)
        tokens = (int(row.get("input_tokens") or 0), int(row.get("cache_read_tokens") or 0))
        written = int(row.get("cache_write_tokens") or 0)
        cost = tokens[0] * plain + tokens[1] * read + written * write
        return cost, tokens[0] + tokens[1] + written

    def observe(self, row: Mapping[str, Any]) -> None:
        """Learn from one written row (the writer thread): baselines, drops, and the cost guard."""
        conversation = row.get("conversation")
        measured = cache_share(row)
        if not conversation or measured is None or (row.get("status") or 0) >= 400:
            return
        share, total = measured
        agent, project = str(row.get("agent") or ""), row.get("project")
        changed = int(row.get("tokens_before") or 0) > int(row.get("tokens_after") or 0)
        with self._lock:
            state = self._state(conversation, agent, project)
            state.turns += 1
            # The proxy re-sent every earlier message exactly as before when its frozen prefix covers the
            # previous request (all but its last message, where Claude Code moves its cache mark each turn): a
            # cache drop then is not the proxy's doing (an expired cache, the agent's own edit).
            intact = state.messages > 0 and int(row.get("frozen_messages") or 0) >= state.messages - 1
            state.messages = int(row.get("messages") or 0)
            baseline = self._baselines.setdefault((agent, project), _Baseline())
            eligible = state.turns > 1 and total >= MIN_CACHEABLE
            cost, tokens = self._input_cost(row)
            if row.get("holdout") or not (state.compressed or changed):
                if eligible:
                    baseline.shares.append(share)
                    if row.get("holdout"):
                        baseline.held_cost += cost
                        baseline.held_tokens += tokens
                        baseline.held_turns += 1
                    else:
                        state.before.append(share)
                        baseline.plain_cost += cost
                        baseline.plain_tokens += tokens
                        baseline.plain_turns += 1
                return
            state.compressed = True
            if state.fallback is not None or not eligible:
                return
            reference = sum(state.before) / len(state.before) if state.before else baseline.share()
            basis = "its turns before compression" if state.before else "the agent/project baseline"
            if reference is not None and reference >= MIN_REFERENCE and share < DROP_RATIO * reference:
                if intact:
                    self.drops_not_ours += 1
                    log.debug("cache share %.2f vs %.2f with the sent prefix intact: not the proxy's", share, reference)
                    return
                detail = f"cache-read share {share:.2f} vs {reference:.2f} ({basis})"
                self._fall_back(state, conversation, "cache", detail)
                return
            rate = baseline.rate()
            if rate is None:
                return
            removed = int(row.get("tokens_before") or 0) - int(row.get("tokens_after") or 0)
            state.cost += cost
            state.counterfactual += (tokens + max(0, removed)) * rate
            state.cost_turns += 1
            if state.cost_turns >= MIN_COST_TURNS and state.cost > state.counterfactual:
                detail = f"input cost {state.cost:.6g} in {state.cost_turns} turns, {state.counterfactual:.6g} without"
                self._fall_back(state, conversation, "cost", detail)

    def _fall_back(self, state: _Conversation, conversation: str, reason: str, detail: str) -> None:
        state.fallback = reason
        self.fallbacks[reason] += 1
        event = {
            "at": datetime.now(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds"),
            "agent": state.agent,
            "project": state.project,
            "conversation": conversation,
            "reason": reason,
            "detail": detail,
        }
        self.events.append(event)
        log.warning(
            "cache watchdog: %s conversation %s (%s) falls back to lossless: %s",
            state.agent,
            conversation[:12],
            state.project or "no project",
            detail,
        )

    def health(self) -> dict[str, Any]:
        """For ``daemon status`` and ``/healthz``: the holdout share, fallbacks and the latest events."""
        with self._lock:
            return {
                "holdout": self.holdout,
                "conversations": len(self._conversations),
                "held_out_requests": self.held_out_requests,
                "fallbacks": dict(self.fallbacks),
                "drops_not_ours": self.drops_not_ours,
                "events": list(self.events)[-5:],
            }
