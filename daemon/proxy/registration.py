"""Where a running proxy says it listens, and how a client makes sure it talks to that proxy and no other.

Each proxy process writes one owner-only registration file: the daemon's is ``state/proxy.json`` (``daemon
status``, the MCP servers' memory search and ``wrap`` read it), a standalone ``headroom proxy`` writes
``state/proxy-<pid>.json``, so neither ever overwrites the other, and each removes only its own file when
it stops.

A registration holds a random secret. Anything can listen on a port and answer ``/healthz`` like a proxy,
so before ``headroom wrap`` hands an agent (and its API key) to a URL, it sends a fresh nonce and the proxy
must answer with an HMAC of it under that secret: only the process that wrote the owner-only file can.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

import httpx
import orjson

from headroom.daemon.install import pid_alive
from headroom.daemon.paths import Paths
from headroom.memory.files import write_atomic

#: The longest nonce ``/healthz`` answers for (a client's nonce is 32 hex digits).
MAX_NONCE = 128


def proof(token: str, nonce: str) -> str:
    """What the proxy holding ``token`` answers for ``nonce``; keyed for this use only (the token also guards
    the memory search)."""
    return hmac.new(token.encode(), b"headroom-proxy-proof:" + nonce.encode(), hashlib.sha256).hexdigest()


def write(path: Path, *, url: str, mode: str, token: str) -> None:
    """This process's registration, owner-only from the first byte, replaced in one rename."""
    state = {"url": url, "pid": os.getpid(), "mode": mode, "token": token}
    write_atomic(path, orjson.dumps(state), mode=0o600, fsync=False)  # gone with the process


def remove(path: Path) -> None:
    """Remove ``path`` if it is still this process's registration (never another proxy's)."""
    state = read(path)
    if state is not None and state.get("pid") == os.getpid():
        with contextlib.suppress(OSError):
            path.unlink()


def read(path: Path) -> dict[str, Any] | None:
    try:
        state = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return state if isinstance(state, dict) and isinstance(state.get("url"), str) else None


def standalone_file(paths: Paths, pid: int | None = None) -> Path:
    """The registration of a standalone ``headroom proxy`` (this process's by default)."""
    return paths.state_dir / f"proxy-{pid if pid is not None else os.getpid()}.json"


def candidates(paths: Paths) -> list[Path]:
    """Every registration file: the daemon's first, then standalone proxies' newest first."""
    others = [p for p in paths.state_dir.glob("proxy-*.json") if p.name[6:-5].isdigit()]
    with_times = []
    for p in others:
        with contextlib.suppress(OSError):
            with_times.append((p.stat().st_mtime, p))
    return [paths.proxy_state, *(p for _, p in sorted(with_times, reverse=True))]


def verify(url: str, token: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """The health answer of the proxy at ``url`` if it proves it holds ``token``; None otherwise."""
    nonce = secrets.token_hex(16)
    try:
        response = httpx.get(f"{url}/healthz", params={"nonce": nonce}, timeout=timeout, trust_env=False)
        data = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("service") != "headroom-proxy":
        return None
    answer = data.get("proof")
    if not isinstance(answer, str) or not hmac.compare_digest(answer, proof(token, nonce)):
        return None
    return data


def find(paths: Paths, timeout: float = 1.0) -> tuple[str, dict[str, Any]] | None:
    """(URL, health) of the first registered proxy that proves it wrote its registration; None if none does."""
    for path in candidates(paths):
        state = read(path)
        token = state.get("token") if state else None
        if state is None or not isinstance(token, str) or not token:
            continue
        health = verify(state["url"], token, timeout)
        if health is not None:
            return state["url"], health
    return None


def prune(paths: Paths) -> None:
    """Remove standalone registrations whose process is gone (a proxy killed with -9 leaves its file)."""
    for path in candidates(paths)[1:]:
        state = read(path)
        pid = state.get("pid") if state else None
        if not isinstance(pid, int) or not pid_alive(pid):
            with contextlib.suppress(OSError):
                path.unlink()
