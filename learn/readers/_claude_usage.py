"""Token usage from Claude Code records, counted exactly as ccusage counts it.

ccusage is what users compare our numbers with, so per UTC day our totals must equal
``ccusage daily`` (verified against ccusage 20.0.24). That means copying its rules, quirks included:

* **Which lines count.** Any record (whatever its ``type``) whose ``message.usage`` has integer
  ``input_tokens`` and ``output_tokens``; or a ``progress`` record that nests a sub-agent's assistant
  message under ``data.message.message`` (v2.1.x mirrors every sub-agent response into the parent log
  this way). The line must contain the compact marker ``"usage":{``; it is dropped whole when any of a
  few fields is JSON ``null`` anywhere in it (``id``, ``model``, ``cwd``, ``version``, ...), when a
  typed field has the wrong type, when ``version`` is not semver-like, or when an id is an empty string.
* **Cache writes** are the ``cache_creation{ephemeral_5m, ephemeral_1h}`` split when that object is
  present (even if it sums to less than the flat field), else ``cache_creation_input_tokens``.
* **Dedup key.** With a ``requestId``: ``(message.id, requestId)``; streamed copies of one response
  (one line per content block, partial ``output_tokens`` on all but the last) share it. Without one
  (proxies; their ids are reused across responses): ``(message.id, sessionId, timestamp to the ms)``,
  which only collapses lines copied verbatim by ``--resume``; but a *sidechain* line without one (Bedrock
  sub-agent files: ``msg_bdrk_…`` ids, one line per streamed content block) merges with every other line
  of its ``message.id``, so ``message.id`` alone is its key. Without ``message.id``: every line counts.
* **Which copy wins** (done by ingestion, see :class:`~headroom.learn.model.Usage`): a non-sidechain
  copy beats a sidechain one, then the larger total wins. That is why the ``progress`` copy (not a
  sidechain, but holding the *first* streamed line's partial ``output_tokens``) beats the sub-agent
  file's own final line, and why we must emit it.

One ccusage rule has no key-based equivalent: a sidechain line also merges with any line that has the
same ``message.id`` and a different ``requestId`` (``/btw`` side questions replay the parent's messages).
The replays in real logs (``agent-aside_question-*``, ``agent-acompact-*``) repeat the parent's
``requestId`` too, so they share its key; only the no-``requestId`` sidechain case needs the rule above.
``<synthetic>`` error placeholders are counted by ccusage but always carry zero tokens; we skip those.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard

from headroom.learn.model import parse_ts

USAGE_MARKER = b'"usage":{'
_NULLABLE_REJECTED = frozenset(
    {
        b"id",
        b"cwd",
        b"model",
        b"speed",
        b"costUSD",
        b"version",
        b"sessionId",
        b"requestId",
        b"isApiErrorMessage",
        b"cache_read_input_tokens",
        b"cache_creation_input_tokens",
    }
)
_SEMVER_PREFIX = re.compile(r"\d+\.\d+\.\d")
_U64_MAX = 2**64 - 1
_MAX_KEY = 255  # the usage.key column


@dataclass(slots=True)
class UsageLine:
    """One countable usage copy, before dedup."""

    key: str
    ts: datetime
    model: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    sidechain: bool
    cache_write_1h_tokens: int = 0  # the part of cache_creation_tokens written for an hour (priced higher)


def usage_line(
    record: dict[str, Any], raw: bytes, file_id: str, offset: int, record_ts: datetime | None
) -> UsageLine | None:
    """The usage this record contributes to ccusage's totals, or None when ccusage would skip it.

    ``record_ts`` is the record's own ``timestamp``, already parsed by the caller.
    """
    located = _locate(record)
    if located is None:
        return None
    envelope, message, direct = located
    if USAGE_MARKER not in raw or _has_rejected_null(raw):
        return None
    tokens = _tokens(message.get("usage"))
    ts_text = envelope.get("timestamp")
    if not isinstance(ts_text, str):  # ccusage wants an ISO string, never epoch numbers
        return None
    ts = record_ts if direct else parse_ts(ts_text)
    if tokens is None or ts is None:
        return None
    # The progress wrapper carries no version or sessionId of its own (ccusage treats them as absent).
    version = envelope.get("version") if direct else None
    session_id = envelope.get("sessionId") if direct else None
    request_id = envelope.get("requestId")
    message_id = message.get("id")
    model = message.get("model")
    sidechain = envelope.get("isSidechain")
    cost = envelope.get("costUSD")
    if not (
        _opt_str(version)
        and _opt_str(session_id)
        and _opt_str(request_id)
        and _opt_str(message_id)
        and _opt_str(model)
        and (sidechain is None or isinstance(sidechain, bool))
        and (cost is None or (isinstance(cost, (int, float)) and not isinstance(cost, bool)))
    ):
        return None
    if version is not None and not _SEMVER_PREFIX.match(version):
        return None
    if "" in (session_id, request_id, message_id, model):
        return None
    if model == "<synthetic>":
        if not any(tokens):
            return None  # an error placeholder: nothing was billed
        model = None
    if message_id is None:
        key = "l:" + file_id + ":" + str(offset)  # ccusage never dedupes these: one row per line
    elif request_id is not None:
        key = "r:" + message_id + "|" + request_id
    elif sidechain is True:
        key = "m:" + message_id  # a sub-agent's streamed lines (Bedrock): one message, one call
    else:
        key = "t:" + message_id + "|" + (session_id or "") + "|" + _ms(ts)
    if len(key) > _MAX_KEY:
        key = "h:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    inp, out, read, creation, hour = tokens
    return UsageLine(key, ts, model, inp, out, read, creation, sidechain=sidechain is True, cache_write_1h_tokens=hour)


def _locate(record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], bool] | None:
    """(envelope, message, direct): a record's own message, or a sub-agent's nested in ``progress``."""
    message = record.get("message")
    if isinstance(message, dict) and "usage" in message:
        return record, message, True
    data = record.get("data")
    nested = data.get("message") if isinstance(data, dict) else None
    inner = nested.get("message") if isinstance(nested, dict) else None
    if isinstance(nested, dict) and isinstance(inner, dict) and "usage" in inner:
        return nested, inner, False
    return None


def _tokens(usage: Any) -> tuple[int, int, int, int, int] | None:
    """(input, output, cache read, cache creation, its 1-hour part), or None where ccusage's decoder fails."""
    if not isinstance(usage, dict):
        return None
    inp, out = usage.get("input_tokens"), usage.get("output_tokens")
    read = usage.get("cache_read_input_tokens", 0)
    flat = usage.get("cache_creation_input_tokens", 0)
    if not (_u64(inp) and _u64(out) and _u64(read) and _u64(flat)):
        return None
    speed = usage.get("speed")
    if speed is not None and speed not in ("standard", "fast"):
        return None
    split = usage.get("cache_creation")
    hour = 0
    if split is None:
        creation = flat
    elif isinstance(split, dict):
        five, hour = split.get("ephemeral_5m_input_tokens", 0), split.get("ephemeral_1h_input_tokens", 0)
        if not (_u64(five) and _u64(hour)):
            return None
        creation = five + hour
    else:
        return None
    return inp, out, read, creation, hour


def _u64(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _U64_MAX


def _opt_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _ms(ts: datetime) -> str:
    """The timestamp at millisecond precision, the way ccusage compares them."""
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}"


def _has_rejected_null(raw: bytes) -> bool:
    """ccusage's byte scan: is some ``"<field>":null`` present for a field it refuses to see null?

    It looks at the quoted name just before each ``:null`` anywhere in the line, nested or not.
    """
    start = raw.find(b":null")
    while start != -1:
        end = start - 1
        if end >= 0 and raw[end : end + 1] != b'"':
            end = raw.rfind(b'"', 0, end + 1)
        if end > 0:
            begin = raw.rfind(b'"', 0, end)
            if begin >= 0 and raw[begin + 1 : end] in _NULLABLE_REJECTED:
                return True
        start = raw.find(b":null", start + 5)
    return False


def file_id(relative_path: str) -> str:
    """A short, stable stand-in for a log's path inside usage keys (paths can exceed the key column)."""
    return hashlib.sha1(relative_path.encode("utf-8", "surrogatepass")).hexdigest()[:16]
