"""Codex token accounting, bug-for-bug with ccusage 20.0.24 so our daily totals equal its report.

Codex logs no per-request usage that a reader can simply sum. Each ``event_msg``/``token_count`` line has a
cumulative ``total_token_usage`` and usually a per-call ``last_token_usage``; ccusage turns them into calls:

* a call is ``last_token_usage``, unless the cumulative total did not move since the previous line (Codex
  repeats a token_count after a tool call or an interrupt: counting ``last`` again would bill it twice);
  then, or without ``last``, it is the saturating difference of the totals. Calls with no input, cached,
  cache-write, output or reasoning token are dropped; a line without a timestamp is ignored entirely;
* ``input_tokens`` includes the cached and cache-write tokens (clamped so the parts never exceed the
  whole), and ``output_tokens`` includes reasoning;
* the model is the latest ``turn_context`` (or one named on the token_count), ``gpt-5`` when none was seen,
  and ``codex-auto-review`` is priced as the model current on the call's date;
* across every file, calls with the same millisecond, model and token counts are one call (forks, archived
  copies and replays repeat lines). Our :class:`Usage` key is exactly that tuple, so ingestion's upsert
  dedups the way ccusage does, whatever file it reads first. An ``archived_sessions/`` file whose relative
  path also exists under ``sessions/`` is ignored whole, as ccusage does;
* a fork or spawned sub-agent (``forked_from_id`` / ``thread_spawn.parent_thread_id`` on its *first* line)
  starts by replaying its parent's history. Its leading calls that equal the parent's calls up to the fork
  instant, in order, are not its own (the parent's log is found by its thread id and read from disk once,
  when the child's first line arrives, since ingestion order between the two files is arbitrary). If the
  very first one does not match (parent log gone, or a rewritten history), a burst of calls written within
  1 s of each other at the head of the file is skipped when its first two token_count lines are at most
  1000 ms apart.

That last rule needs the second token_count line to judge the first call, which an incremental reader may
not have yet. Such a call is emitted at once and *retracted* (same key, zero tokens) if the burst is
confirmed later; Codex usage therefore uses :attr:`Merge.LAST`, which is harmless elsewhere because every
copy of a content key carries the same numbers.
"""

from __future__ import annotations

import contextlib
import os
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from headroom.learn.model import Batch, Merge, Usage, parse_ts
from headroom.learn.readers.base import State

# (input, cached, cache_write, output, reasoning, total) as ccusage compares them.
Raw = list[int]

BURST_MS = 1000
FALLBACK_MODEL = "gpt-5"
# ccusage's embedded snapshot: the model "codex-auto-review" stood for on and after each release date.
_AUTO_REVIEW = (
    ("2026-07-30", "gpt-5.6-luna"),
    ("2026-03-05", "gpt-5.4"),
    ("2026-02-05", "gpt-5.3-codex"),
    ("2025-12-11", "gpt-5.2-codex"),
    ("2025-11-13", "gpt-5.1-codex"),
    ("2025-09-15", "gpt-5-codex"),
    ("2025-08-07", "gpt-5"),
)
_EPOCH = datetime(1970, 1, 1)


def new_state(path: Path, root: Path) -> State:
    """Per-file accounting state; ``off`` when ccusage would skip the file as a shadowed copy."""
    state: State = {"prev": None, "model": None, "rp": None}
    # ccusage reads sessions/ before archived_sessions/ and drops an archived file whose relative path
    # also exists under sessions/ (events and tool calls still dedup by key; only usage needs this).
    if root.name == "archived_sessions":
        with contextlib.suppress(OSError, ValueError):
            state["off"] = (root.parent / "sessions" / path.relative_to(root)).is_file()
    return state


def u64(value: object) -> int | None:
    """serde's lossy unsigned integer: ints >= 0 and numeric strings; anything else is missing."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str):
        text = value.strip()
        return int(text) if text.isdigit() else None
    return None


def _first(obj: dict[str, Any], *names: str) -> int | None:
    for name in names:
        found = u64(obj.get(name))
        if found is not None:
            return found
    return None


def raw_usage(obj: object) -> Raw | None:
    """A usage object as ccusage reads it (field aliases included); None unless it is an object."""
    if not isinstance(obj, dict):
        return None
    inp = _first(obj, "input_tokens", "prompt_tokens", "input") or 0
    out = _first(obj, "output_tokens", "completion_tokens", "output") or 0
    reasoning = _first(obj, "reasoning_output_tokens", "reasoning_tokens") or 0
    cached = _first(obj, "cached_input_tokens", "cache_read_input_tokens", "cached_tokens") or 0
    write = _first(obj, "cache_write_input_tokens", "cache_creation_input_tokens") or 0
    total = u64(obj.get("total_tokens"))
    if total is None or (total == 0 and inp + out + reasoning > 0):
        total = inp + out + reasoning
    return [inp, cached, write, out, reasoning, total]


def _normalize(raw: Raw) -> Raw:
    inp, cached, write, out, reasoning, total = raw
    cached = min(cached, inp)
    return [inp, cached, min(write, inp - cached), out, reasoning, total]


def ts_ms(value: object) -> int | None:
    """A Codex line timestamp (RFC 3339 text or epoch s/ms number) in epoch milliseconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if value < 0 else value if value > 10_000_000_000 else value * 1000
    if not isinstance(value, str):
        return None
    parsed = parse_ts(value)
    return None if parsed is None else (parsed - _EPOCH) // timedelta(milliseconds=1)


def _model(*objs: object) -> str | None:
    for obj in objs:
        if isinstance(obj, dict):
            meta = obj.get("metadata")
            for value in (
                obj.get("model"),
                obj.get("model_name"),
                meta.get("model") if isinstance(meta, dict) else None,
            ):
                if isinstance(value, str) and value.strip():
                    return value.strip()
    return None


def on_turn_context(payload: object, state: State) -> None:
    """``turn_context`` sets the model of the calls that follow."""
    model = _model(payload)
    if model is not None:
        state["model"] = model


def token_call(
    record: dict[str, Any], payload: dict[str, Any], state: State
) -> tuple[str, int, Raw, dict[str, Any]] | None:
    """Advance the cumulative-total state by one token_count line; the call it bills, if any.

    Returns (timestamp text, epoch ms, normalized raw usage, info). Shared by the reader and the scan of a
    parent log, so a child's replay is compared with exactly what the parent's own read produced.
    """
    stamp = record.get("timestamp")
    if isinstance(stamp, str):
        stamp = stamp.strip()
    # serde rejects the whole line for a timestamp that is neither text nor an unsigned integer.
    if (
        isinstance(stamp, bool)
        or not isinstance(stamp, (str, int))
        or stamp == ""
        or (isinstance(stamp, int) and stamp < 0)
    ):
        return None
    info = payload.get("info")
    if not isinstance(info, dict):
        info = {}
    total = raw_usage(info.get("total_token_usage"))
    prev = state.get("prev")
    advanced = total is None or total != prev
    last = raw_usage(info.get("last_token_usage")) if advanced else None
    if last is not None:
        raw: Raw | None = last
    elif total is not None:
        base = prev or [0] * 6
        raw = [max(0, now - before) for now, before in zip(total, base)]
    else:
        raw = None
    if total is not None:
        state["prev"] = total
    if raw is None:
        return None
    raw = _normalize(raw)
    if not any(raw[:5]):
        return None
    millis = ts_ms(stamp)
    if millis is None:
        return None
    return str(stamp), millis, raw, info


def _resolve_model(payload: dict[str, Any], info: dict[str, Any], stamp: str, state: State) -> str:
    model = _model(payload, info)
    if model is not None:
        state["model"] = model
    elif state.get("model") is None:
        state["model"] = FALLBACK_MODEL  # sticky until a turn_context names one, as in ccusage
    model = str(state["model"])
    if model == "codex-auto-review":
        day = stamp[:10]
        model = next((name for since, name in _AUTO_REVIEW if day >= since), FALLBACK_MODEL)
    return model


def _qualifies(record: dict[str, Any], payload: dict[str, Any]) -> int | None:
    """The ms timestamp of a token_count line that ccusage's burst detection looks at."""
    info = payload.get("info")
    if not isinstance(info, dict):
        return None
    if not isinstance(info.get("last_token_usage"), dict) and not isinstance(info.get("total_token_usage"), dict):
        return None
    stamp = record.get("timestamp")
    return ts_ms(stamp.strip() if isinstance(stamp, str) else stamp)


def start_replay(state: State, parent_id: str, forked_at: int | None, path: object, root: object) -> None:
    """Called on a child's first line: load the parent's calls up to the fork as the replay prefix."""
    parent = None
    if isinstance(path, str) and isinstance(root, str):
        parent = find_session_file(Path(root).parent, parent_id, Path(path))
    prefix = parent_calls(parent, forked_at) if parent is not None else []
    state.update(rp="match", prefix=prefix, idx=0, t1=None, t2=None)


def on_token_count(record: dict[str, Any], payload: dict[str, Any], sid: str, state: State, out: Batch) -> None:
    """Translate one token_count line into at most one :class:`Usage` (plus a retraction)."""
    if state.get("off"):
        return
    mode = state.get("rp")
    if mode is not None and state.get("t2") is None:
        millis = _qualifies(record, payload)
        if millis is not None:
            if state.get("t1") is None:
                state["t1"] = millis
            else:
                state["t2"] = millis
                if mode == "wait":
                    _settle(state, sid, out)
    call = token_call(record, payload, state)
    if call is None:
        return
    stamp, millis, raw, info = call
    model = _resolve_model(payload, info, stamp, state)
    if state.get("rp") is not None and _replayed(millis, raw, state):
        return
    usage = _usage(sid, millis, model, raw)
    out.usage.append(usage)
    if state.get("rp") == "wait":
        state["pend"] = [usage.key, millis, model]


def _replayed(millis: int, raw: Raw, state: State) -> bool:
    """ccusage's replay filter for a child's call; True when the call is the parent's, not the child's."""
    while True:
        mode = state["rp"]
        if mode == "match":
            prefix, idx = state["prefix"], state["idx"]
            if idx < len(prefix) and prefix[idx] == raw:
                state["idx"] = idx + 1
                return True
            state.pop("prefix", None)  # never needed again; keep the persisted state small
            if idx > 0:
                state["rp"] = "done"
            elif state.get("t2") is None:
                state["rp"] = "wait"  # the burst test needs the second token_count line: emit, maybe retract
                return False
            else:
                _burst_or_done(state)
        elif mode == "skip":
            if 0 <= millis - state["last"] <= BURST_MS:
                state["last"] = millis
                return True
            state["rp"] = "done"
        else:
            return False


def _burst_or_done(state: State) -> None:
    t1, t2 = state["t1"], state["t2"]
    if t1 is not None and t2 is not None and 0 <= t2 - t1 <= BURST_MS:
        state.update(rp="skip", last=t1)
    else:
        state["rp"] = "done"


def _settle(state: State, sid: str, out: Batch) -> None:
    """The second token_count arrived: keep the provisional call, or retract it as part of a burst."""
    _burst_or_done(state)
    pend = state.pop("pend", None)
    if state["rp"] == "skip" and pend is not None:
        # The provisional call came from the first token_count line, so it opens the burst.
        key, millis, model = pend
        out.usage.append(Usage(sid, key, _EPOCH + timedelta(milliseconds=millis), model, merge=Merge.LAST))


def _usage(sid: str, millis: int, model: str, raw: Raw) -> Usage:
    inp, cached, write, out, reasoning, total = raw
    return Usage(
        session_key=sid,
        key=f"{millis}|{model}|{inp}|{cached}|{write}|{out}|{reasoning}|{total}",
        ts=_EPOCH + timedelta(milliseconds=millis),
        model=model,
        input_tokens=inp - cached - write,
        output_tokens=out,
        cache_read_tokens=cached,
        cache_creation_tokens=write,
        reasoning_tokens=reasoning,
        merge=Merge.LAST,
    )


def parent_calls(path: Path, forked_at: int | None) -> list[Raw]:
    """The calls a parent log billed up to ``forked_at``, read the way the reader reads them."""
    state: State = {"prev": None}
    calls: list[Raw] = []
    try:
        with path.open("rb") as handle:
            for line in handle:
                if b'"token_count"' not in line:
                    continue
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(record, dict) or record.get("type") != "event_msg":
                    continue
                payload = record.get("payload")
                if not isinstance(payload, dict) or payload.get("type") != "token_count":
                    continue
                call = token_call(record, payload, state)
                if call is None:
                    continue
                if forked_at is not None and call[1] > forked_at:
                    break
                calls.append(call[2])
    except OSError:
        return []
    return calls


def find_session_file(home: Path, session_id: str, exclude: Path) -> Path | None:
    """The log whose first line is ``session_id``'s session_meta, searched as ccusage orders its files.

    Codex names a rollout after its thread id, a UUIDv7 whose first 48 bits are the creation time: the
    local-date folder is at most a day away from that UTC date, so a few folders are listed before
    falling back to walking the whole tree.
    """
    suffix = f"{session_id}.jsonl"
    sessions, archived = home / "sessions", home / "archived_sessions"
    found: list[Path] = []
    day = _uuid7_day(session_id)
    if day is not None:
        for delta in (-1, 0, 1):
            d = day + timedelta(days=delta)
            found += _matching(sessions / f"{d:%Y}" / f"{d:%m}" / f"{d:%d}", suffix)
    found += _matching(sessions, suffix)
    if not found:
        for dirpath, _dirs, files in os.walk(sessions, onerror=lambda _exc: None):
            found += [Path(dirpath) / name for name in files if name.endswith(suffix)]
    found = sorted(set(found)) + _matching(archived, suffix)
    for candidate in found:
        if candidate != exclude and _first_line_id(candidate) == session_id:
            return candidate
    return None


def _matching(folder: Path, suffix: str) -> list[Path]:
    try:
        return sorted(entry for entry in folder.iterdir() if entry.name.endswith(suffix))
    except OSError:
        return []


def _uuid7_day(session_id: str) -> date | None:
    digits = session_id.replace("-", "")
    if len(digits) != 32 or digits[12] != "7":
        return None
    try:
        millis = int(digits[:12], 16)
        return datetime.fromtimestamp(millis / 1000, tz=timezone.utc).date()
    except (ValueError, OverflowError, OSError):
        return None


def _first_line_id(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            record = orjson.loads(handle.readline())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(record, dict) or record.get("type") != "session_meta":
        return None
    payload = record.get("payload")
    sid = payload.get("id") if isinstance(payload, dict) else None
    return sid if isinstance(sid, str) else None
