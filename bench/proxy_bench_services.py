"""The server processes of the proxy benchmark (``proxy_bench.py``): headroom's proxy and the peer's, started
fresh in front of an upstream, each its own OS process, optionally pinned to its own CPUs (``taskset``), with their
resident memory read from ``/proc``. The fake upstream is started by ``proxy_bench.py`` itself (``--serve-fake``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class Service:
    """A server process started by the benchmark."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    home: Path | None = None  # headroom's HEADROOM_HOME (its stats database)

    def rss_mb(self) -> float:
        """Resident memory of the process and its descendants."""
        return sum(_rss_kb(pid) for pid in [self.proc.pid, *_descendants(self.proc.pid)]) / 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


#: CPUs for the proxies and for the rest (fake upstream, load generator); empty: no pinning.
PIN: dict[str, set[int]] = {}


def _pinned(role: str, cmd: list[str]) -> list[str]:
    """``cmd`` confined, with every thread it starts, to its role's CPUs (``taskset``)."""
    cpus = PIN.get(role)
    return ["taskset", "-c", ",".join(map(str, sorted(cpus))), *cmd] if cpus else cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url} exited with {proc.returncode} at start:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def start_headroom(work: Path, name: str, binary: str, upstream: str, *, stats: bool = True) -> Service:
    home = work / f"home-{name}"
    with contextlib.suppress(FileNotFoundError):
        for p in sorted(home.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
    home.mkdir(parents=True, exist_ok=True)
    log = work / f"{name}.log"
    cmd = [binary, "proxy", "--host", "127.0.0.1", "--port", "0"]
    cmd += ["--anthropic-upstream", upstream, "--openai-upstream", upstream, "--gemini-upstream", upstream]
    if not stats:
        cmd.append("--no-stats")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADROOM_")} | {"HEADROOM_HOME": str(home)}
    proc = subprocess.Popen(
        _pinned("proxy", cmd),
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    state = home / "state" / f"proxy-{proc.pid}.json"  # a standalone proxy's own registration
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            url = str(json.loads(state.read_text())["url"])
            _wait_http(url + "/healthz", proc, log)
            return Service(name, url, proc, home)
        time.sleep(0.05)
    raise SystemExit(f"headroom proxy did not start:\n{log.read_text()[-3000:]}")


def start_proxy(name: str, work: Path, tag: str, headroom_bin: str, peer_bin: Path | None, upstream: str) -> Service:
    """A fresh ``headroom`` or ``peer`` proxy in front of ``upstream``."""
    if name == "headroom":
        return start_headroom(work, f"headroom-{tag}", headroom_bin, upstream)
    if peer_bin is None:
        raise ValueError("the peer needs --peer-bin")
    return start_peer(work, peer_bin, upstream)


def start_peer(work: Path, peer_bin: Path, upstream: str) -> Service:
    home = work / "home-peer"
    home.mkdir(parents=True, exist_ok=True)
    log = work / "peer.log"
    port = _free_port()
    cmd = [str(peer_bin / "headroom"), "proxy", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--anthropic-api-url", upstream, "--openai-api-url", upstream + "/v1", "--gemini-api-url", upstream]
    cmd += ["--no-rate-limit", "--no-cache", "--no-subscription-tracking"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADROOM_")}
    env |= {"HOME": str(home), "HEADROOM_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(
        _pinned("proxy", cmd),
        env=env,
        cwd=home,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    _wait_http(url + "/livez", proc, log, timeout=180)
    return Service("peer", url, proc, None)
