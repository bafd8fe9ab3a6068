"""What Codex needs in ``config.toml`` before it runs headroom's hooks: the feature flag, and their trust.

1. ``[features] codex_hooks = true``: set only when neither ``codex_hooks`` nor ``hooks`` is there (a value
   the user chose, even ``false``, is theirs), marked ``# added by headroom hooks install`` so that uninstall
   takes away only a flag headroom added, and only when no other hook is left that needs it.
2. Trust. Codex runs a user hook only when ``[hooks.state."<hooks.json path>:<event>:<group>:<handler>"]``
   holds its ``trusted_hash``; otherwise it skips it silently (``codex exec``) or asks for a review under
   ``/hooks`` (the TUI). Running ``headroom hooks install codex`` is that review, so the install records the
   hash Codex computes (``hook_hash`` in codex-rs/hooks/src/engine/discovery.rs and ``version_for_toml`` in
   codex-rs/config/src/fingerprint.rs): sha256 of the compact, key-sorted JSON of the event's snake_case
   label plus the group with just this handler, normalized the way Codex normalizes it (timeout always
   present, ``async`` false, unset fields left out). The tables sit in one block between two marker
   comments at the end of the file, so uninstall cuts exactly that block. A Codex whose hash differs (a
   newer scheme) just lists the hooks as needing review: nothing breaks.

Every result is parsed again and compared with the intended data; the edit is refused otherwise.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import tomlkit

from headroom.daemon.mcp.install import Change, InstallError, backup_file, config_file, read_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

FEATURE = "codex_hooks"
_FLAG_NOTE = "added by headroom hooks install"
_FEATURE_BLOCK = f"[features]\n{FEATURE} = true  # {_FLAG_NOTE}\n"
_OUR_FLAG = re.compile(rf"^[ \t]*{FEATURE}[ \t]*=[ \t]*true[ \t]*#[ \t]*{_FLAG_NOTE}[ \t]*$", re.MULTILINE)
_TRUST_BEGIN = "# >>> headroom hooks: trusted by `headroom hooks install codex` (uninstall removes this block)\n"
_TRUST_END = "# <<< headroom hooks\n"
_TRUST_BLOCK = re.compile(r"\n?" + re.escape(_TRUST_BEGIN) + r".*?" + re.escape(_TRUST_END), re.DOTALL)
_LABELS = {"SessionStart": "session_start", "UserPromptSubmit": "user_prompt_submit", "PostToolUse": "post_tool_use"}


def parse(text: str | None, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text or "")
    except tomllib.TOMLDecodeError as exc:
        raise InstallError(f"{path} cannot be parsed ({exc}); fix it or move it away, then run this again") from None


def flag() -> bool | None:
    """``[features] codex_hooks`` (or ``hooks``) in Codex's config.toml: True, False, or None when unset."""
    path = config_file("codex")
    features = parse(read_config(path), path).get("features", {})
    if not isinstance(features, dict):
        return None
    for key in (FEATURE, "hooks"):
        if isinstance(features.get(key), bool):
            return bool(features[key])
    return None


def trust_hash(event: str, grp: dict[str, Any]) -> str:
    """The ``trusted_hash`` Codex computes for the one command handler of ``grp`` under ``event``."""
    (hook,) = grp["hooks"]
    handler = {"type": "command", "command": hook["command"], "timeout": max(1, int(hook.get("timeout", 600)))}
    handler["async"] = bool(hook.get("async", False))
    identity: dict[str, Any] = {"event_name": _LABELS[event], "hooks": [handler]}
    if grp.get("matcher") is not None and event != "UserPromptSubmit":
        identity["matcher"] = grp["matcher"]
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def trust_entries(hooks_json: Path, data: dict[str, Any], is_ours: Any) -> dict[str, str]:
    """``{state key: trusted_hash}`` for headroom's groups in the parsed ``hooks.json`` ``data``."""
    entries: dict[str, str] = {}
    hooks = data.get("hooks", {})
    for event, label in _LABELS.items():
        for index, grp in enumerate(hooks.get(event, []) if isinstance(hooks, dict) else []):
            if is_ours("codex", event, grp):
                entries[f"{hooks_json}:{label}:{index}:0"] = trust_hash(event, grp)
    return entries


def _trust_block(entries: dict[str, str]) -> str:
    tables = "".join(
        f"[hooks.state.{json.dumps(key)}]\ntrusted_hash = {json.dumps(value)}\n" for key, value in entries.items()
    )
    return _TRUST_BEGIN + tables + _TRUST_END


def _state(data: dict[str, Any]) -> dict[str, Any]:
    hooks = data.get("hooks")
    state = hooks.get("state") if isinstance(hooks, dict) else None
    return dict(state) if isinstance(state, dict) else {}


def _without(data: dict[str, Any], keys: set[str], *, drop_flag: bool) -> dict[str, Any]:
    """``data`` without headroom's trust entries (and flag), and without tables that this leaves empty."""
    data = copy.deepcopy(data)
    hooks = data.get("hooks")
    if isinstance(hooks, dict) and isinstance(hooks.get("state"), dict):
        for key in keys:
            hooks["state"].pop(key, None)
        if not hooks["state"]:
            del hooks["state"]
        if not hooks:
            del data["hooks"]
    features = data.get("features")
    if drop_flag and isinstance(features, dict):
        features.pop(FEATURE, None)
        if not features:
            del data["features"]
    return data


def plan(entries: dict[str, str]) -> Change:
    """config.toml with the flag (unless set) and exactly ``entries`` as headroom's trust block."""
    path = config_file("codex")
    before = read_config(path)
    data = parse(before, path)
    features = data.get("features")
    if features is not None and not isinstance(features, dict):
        raise InstallError(f"{path}: 'features' is not a table; refusing to edit it")
    text = _TRUST_BLOCK.sub("", before or "", count=1)
    set_flag = flag() is None
    if set_flag:
        if features is None:
            text = text + ("\n" if text else "") + _FEATURE_BLOCK
        else:
            doc = tomlkit.parse(text)
            item = tomlkit.item(True)
            item.comment(_FLAG_NOTE)
            doc["features"][FEATURE] = item
            text = doc.as_string()
    ours = set(_state(data)) & set(entries) | _block_keys(before or "")
    if entries:
        text = text + ("\n" if text else "") + _trust_block(entries)
    after = parse(text, path)
    expected_state = {
        **{k: v for k, v in _state(data).items() if k not in ours},
        **{k: {"trusted_hash": v} for k, v in entries.items()},
    }
    if _state(after) != expected_state or _without(after, set(entries), drop_flag=set_flag) != _without(
        data, ours, drop_flag=False
    ):
        raise InstallError(f"{path}: Codex's hook settings could not be written safely; nothing was written")
    if text == (before or ""):
        return Change("codex", path, "unchanged", before, before)
    return Change("codex", path, "install" if before is None or set_flag else "update", before, text)


def _block_keys(text: str) -> set[str]:
    match = _TRUST_BLOCK.search(text)
    return set(_state(tomllib.loads(match.group().strip("\n")))) if match else set()


def plan_removal(still_used: bool) -> Change:
    """config.toml without headroom's trust block, and without the flag headroom set if nothing needs it."""
    path = config_file("codex")
    before = read_config(path)
    if before is None:
        return Change("codex", path, "absent", before, before)
    data = parse(before, path)
    keys = _block_keys(before)
    text = _TRUST_BLOCK.sub("", before, count=1)
    drop_flag = not still_used and bool(_OUR_FLAG.search(text))
    if drop_flag:
        features = parse(text, path).get("features")
        if text.endswith(_FEATURE_BLOCK) and features == {FEATURE: True}:
            start = len(text) - len(_FEATURE_BLOCK)
            text = text[: start - 1] if start and text[start - 1] == "\n" else text[:start]
        else:
            doc = tomlkit.parse(text)
            del doc["features"][FEATURE]
            if not doc["features"]:
                del doc["features"]
            text = doc.as_string()
    if text == before:
        return Change("codex", path, "absent", before, before)
    try:
        original = read_config(backup_file(path))
    except InstallError:
        original = ""
    after: str | None = None if original is None and not text.strip() else text
    if _without(parse(after, path), set(), drop_flag=False) != _without(data, keys, drop_flag=drop_flag):
        raise InstallError(f"{path}: Codex's hook settings could not be removed safely; nothing was written")
    return Change("codex", path, "uninstall", before, after)


__all__ = ["FEATURE", "flag", "parse", "plan", "plan_removal", "trust_entries", "trust_hash"]
