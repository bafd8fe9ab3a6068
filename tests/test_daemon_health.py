"""The daemon's health (``Service.health``, ``/healthz``, ``headroom daemon status``) and SIGHUP config reloads."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from headroom.daemon.cli.daemon_cmd import daemon_health
from headroom.daemon.config import load_config
from headroom.daemon.paths import paths
from headroom.daemon.proxy.server import build_app
from headroom.daemon.service import Service
from headroom.memory import identity
from tests.helpers import claude_session_lines, claude_tree
from tests.test_service import DAEMON, _daemon, wait_for

COMPONENTS = {"ingest", "memory", "learn", "scheduler", "proxy", "hooks"}
STATES = {"running", "stopped", "disabled", "failed"}


def _started(service: Service) -> bool:
    return service.proxy is not None and service.watcher is not None and service.learn is not None


def test_health_names_every_component(running_service: Service) -> None:
    wait_for(lambda: _started(running_service))
    health = running_service.health()
    assert health["pid"] == os.getpid() and health["uptime_s"] >= 0
    assert set(health["components"]) == COMPONENTS
    for name, component in health["components"].items():
        assert component["state"] == "running", (name, component)
        assert "last_error" in component
    ingest = health["components"]["ingest"]
    assert ingest["pending_paths"] >= 0 and ingest["lag_s"] >= 0
    assert "embed_backlog" in health["components"]["memory"]
    jobs = health["components"]["scheduler"]["jobs"]
    assert set(jobs) == {"learn-idle", "learn-nightly", "memory-backlog", "memory-prune", "ccr-expiry", "db-compact"}
    assert all(job["next_run"] and job["failures"] == 0 for job in jobs.values())
    proxy = health["components"]["proxy"]
    assert running_service.proxy is not None and proxy["url"] == running_service.proxy.url
    assert proxy["stats_queue"] == 0 and proxy["stats_dropped"] == 0
    assert health["database"]["size_bytes"] > 0
    process = health["process"]
    assert process["rss_bytes"] > 10e6 and process["open_fds"] > 3 and process["threads"] >= 4
    assert process["sqlite_heap_bytes"] > 0 and process["python_heap_bytes"] is None  # not tracing
    assert proxy["prefix_cache"] == {"entries": 0, "bytes": 0}
    cache = running_service.proxy.app.rewriter.prefix
    assert cache.max_bytes == running_service.config.proxy.prefix_cache_mb * (1 << 20)  # the configured cap


def test_reload_applies_live_settings_to_the_running_components(running_service: Service) -> None:
    wait_for(lambda: _started(running_service))
    paths().config_file.write_text(
        '[engine]\nmin_tokens = 300\n[watcher]\ndebounce_ms = 100\n[learn]\nnightly_at = "04:15"\n'
        "[proxy]\nread_timeout = 30\n",
        encoding="utf-8",
    )
    running_service.reload()
    assert running_service.proxy is not None and running_service.watcher is not None
    assert running_service.proxy.app.rewriter.configs["ccr"].min_tokens == 300
    assert running_service.watcher.debounce == 0.1
    assert running_service.learn is not None and running_service.learn.config.learn.nightly_at == "04:15"
    nightly = running_service.health()["components"]["scheduler"]["jobs"]["learn-nightly"]["next_run"]
    assert nightly[11:16] == "04:15"
    assert running_service.config.proxy.read_timeout != 30  # needs a restart: not claimed as applied
    paths().config_file.write_text("[engine]\nmin_tokens = 0\n", encoding="utf-8")
    running_service.reload()
    assert running_service.config.engine.min_tokens == 300
    assert "engine.min_tokens" in running_service.health()["config"]["last_error"]


def test_a_team_change_waits_for_a_restart(running_service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a config sets the process's identity; a reload must not switch a running daemon to another user
    or machine (its cursors, jobs and leadership were taken under the first), as its warning says."""
    monkeypatch.delenv("HEADROOM_USER", raising=False)
    monkeypatch.delenv("HEADROOM_MACHINE", raising=False)
    wait_for(lambda: _started(running_service))
    before = identity.current()
    paths().config_file.write_text('[team]\nuser = "someone-else"\nmachine = "another-box"\n', encoding="utf-8")
    running_service.reload()
    assert identity.current() == before != identity.resolve("someone-else", "another-box")
    assert running_service.config.team.user != "someone-else"


def test_health_says_disabled(claude_root: Path) -> None:
    config = load_config()
    config.learn.enabled = config.memory.enabled = config.proxy.enabled = False
    components = Service(config).health()["components"]
    assert {name: c["state"] for name, c in components.items()} == {
        "ingest": "stopped",
        "memory": "disabled",
        "learn": "disabled",
        "scheduler": "stopped",
        "proxy": "disabled",
        "hooks": "stopped",
    }


def test_healthz_of_the_daemon_includes_it(running_service: Service) -> None:
    wait_for(lambda: _started(running_service))
    assert running_service.proxy is not None
    payload = httpx.get(f"{running_service.proxy.url}/healthz", timeout=5).json()
    assert payload["status"] == "ok" and set(payload["daemon"]["components"]) == COMPONENTS


def test_healthz_of_the_standalone_proxy_is_unchanged() -> None:
    async def get(health: Any) -> dict[str, Any]:
        app = build_app(load_config(), None, health=health)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8787") as client:
            return dict((await client.get("/healthz")).json())

    assert "daemon" not in asyncio.run(get(None))
    assert asyncio.run(get(lambda: {"components": {}}))["daemon"] == {"components": {}}


def _status(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DAEMON, "daemon", "status", *args], env=env, capture_output=True, text=True, timeout=60)


def test_status_and_sighup_reload_of_a_running_daemon(claude_root: Path, isolated_home: Path, tmp_path: Path) -> None:
    claude_tree(claude_root).write_bytes(b"".join(claude_session_lines(2)))
    config_file = paths().config_file
    config_file.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    output = tmp_path / "daemon.out"
    proc = _daemon(env, output)

    def logged(text: str) -> bool:
        return text in output.read_text(encoding="utf-8")

    try:
        wait_for(lambda: logged("started in"), 60)
        status = _status(env, "--json")
        assert status.returncode == 0, status.stderr
        answer = json.loads(status.stdout)
        assert answer["running"] and answer["pid"] == proc.pid
        components = answer["health"]["components"]
        assert set(components) == COMPONENTS and {c["state"] for c in components.values()} <= STATES
        assert components["ingest"]["state"] == "running" and components["proxy"]["state"] == "running"
        text = _status(env)
        assert text.returncode == 0 and "  ingest: running" in text.stdout and "  proxy: running" in text.stdout

        # A valid change: engine and debounce are applied, a proxy setting needs a restart.
        config_file.write_text(
            "[engine]\nmin_tokens = 300\n[watcher]\ndebounce_ms = 100\n[proxy]\nread_timeout = 30\n", encoding="utf-8"
        )
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: logged("reloaded config from"))
        out = output.read_text(encoding="utf-8")
        assert "applied watcher.debounce_ms, engine" in out
        assert "proxy.read_timeout changed; needs a restart" in out

        # A broken file: logged with its file and key; the daemon keeps running on the old config.
        config_file.write_text('[engine]\nmin_tokens = "lots"\n', encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: logged("config not reloaded"))
        assert f"{config_file}:2: 'engine.min_tokens' must be" in output.read_text(encoding="utf-8")
        health = daemon_health(paths().proxy_state)
        assert health is not None
        assert "engine.min_tokens" in health["config"]["last_error"]
        assert health["components"]["ingest"]["state"] == "running"
        broken = json.loads(_status(env, "--json").stdout)  # `daemon status` works with the broken file too
        assert broken["running"] and f"{config_file}:2:" in broken["config_error"]

        config_file.write_text("", encoding="utf-8")  # for the `daemon status` below

        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        assert proc.returncode == 0, output.read_text(encoding="utf-8")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stopped = _status(env, "--json")
    assert stopped.returncode == 3 and json.loads(stopped.stdout) == {
        "running": False,
        "pid": None,
        "health": None,
        "service": json.loads(stopped.stdout)["service"],
        "config_error": None,
    }
