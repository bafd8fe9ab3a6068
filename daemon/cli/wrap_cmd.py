"""``headroom wrap claude|codex|gemini [-- ARGS…]``: one run of an agent through the proxy.

It makes sure a proxy is up (the daemon's, a standalone ``headroom proxy``, or a daemon it starts) and that
it is really that proxy (it must prove it knows the secret in its owner-only registration file; an
impostor on the port gets nothing, not even a connection from the agent), then
points only this run of the agent at it: ``ANTHROPIC_BASE_URL`` for Claude Code, ``GOOGLE_GEMINI_BASE_URL``
for Gemini CLI, and ``-c`` overrides for Codex (which ignores ``OPENAI_BASE_URL``). No config file of the
user's is touched. Then it replaces itself with the agent (``exec``), so signals, the terminal and the exit
code are the agent's own.

Without ``headroom_retrieve`` registered for that agent (``headroom mcp install``) the run uses lossless
mode: elided content the agent could not fetch back would be lost to it.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from typing import Any

import click
import httpx

from headroom.daemon.cli.common import App, pass_app
from headroom.daemon.config import Config
from headroom.daemon.errors import DaemonError
from headroom.daemon.paths import agent_config_file
from headroom.daemon.proxy import registration
from headroom.daemon.proxy.routes import LOSSLESS_PREFIX

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")  # a TOML bare key: usable unquoted in a -c override
AGENT_COMMANDS = {"claude": "claude", "codex": "codex", "gemini": "gemini"}
START_TIMEOUT = 30.0


def probe(url: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """The health answer at ``url`` if it claims to be a headroom proxy (unverified: see :func:`find_proxy`)."""
    try:
        response = httpx.get(f"{url}/healthz", timeout=timeout, trust_env=False)
        data = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("service") == "headroom-proxy" else None


def find_proxy(config: Config) -> str | None:
    """The URL of a running headroom proxy of this user's: the daemon's, else a standalone one's, and only
    one that proves it holds the secret of its owner-only registration (anything can answer /healthz)."""
    found = registration.find(config.paths)
    return found[0] if found else None


def _port_taken(config: Config) -> str | None:
    """The configured address, when something (not a verified proxy) already listens there."""
    if not config.proxy.port:
        return None
    host = "127.0.0.1" if config.proxy.host in ("0.0.0.0", "::", "") else config.proxy.host
    try:
        with socket.create_connection((host, config.proxy.port), timeout=1.0):
            return f"{host}:{config.proxy.port}"
    except OSError:
        return None


def ensure_proxy(config: Config, config_path: str | None) -> str:
    """A verified running proxy's URL, starting the daemon in the background when none runs."""
    from headroom.daemon.process import running_daemon_pid

    url = find_proxy(config)
    if url:
        return url
    pid = running_daemon_pid(config.paths)
    if pid is not None:
        raise DaemonError(
            f"the headroom daemon (pid {pid}) runs without a proxy; see {config.paths.log_file} "
            "(is [proxy] enabled = false, or the port taken?)"
        )
    taken = _port_taken(config)
    if taken is not None:
        raise DaemonError(
            f"something else listens on {taken} and cannot prove it is a headroom proxy of yours (no matching "
            f"secret in {config.paths.state_dir}); the agent was not started, so no API key went to it. "
            "Stop that program, or set another port ([proxy] port or HEADROOM_PROXY_PORT)"
        )
    config.paths.ensure()
    command = [sys.executable, "-m", "headroom.daemon.cli"]
    if config_path:
        command += ["--config", config_path]
    with open(os.devnull, "rb") as devnull, open(os.devnull, "wb") as sink:
        # The daemon logs to its own file; detached so it outlives this run of the agent.
        subprocess.Popen([*command, "daemon", "run"], stdin=devnull, stdout=sink, stderr=sink, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        url = find_proxy(config)
        if url:
            return url
        time.sleep(0.2)
    raise DaemonError(
        f"started the daemon, but its proxy did not answer within {START_TIMEOUT:.0f}s; see {config.paths.log_file}"
    )


def _mcp_installed(agent: str) -> bool:
    from headroom.daemon.mcp.install import is_installed

    try:
        return bool(is_installed(agent))  # type: ignore[arg-type]
    except Exception:  # an unreadable agent config: assume no MCP, stay lossless
        return False


def agent_invocation(agent: str, url: str, args: list[str], *, lossless: bool) -> tuple[list[str], dict[str, str]]:
    """The argv and the extra environment that point one run of ``agent`` at the proxy at ``url``."""
    base = url + (LOSSLESS_PREFIX if lossless else "")
    command = AGENT_COMMANDS[agent]
    if agent == "claude":
        return [command, *args], {"ANTHROPIC_BASE_URL": base}
    if agent == "gemini":
        return [command, *args], {"GOOGLE_GEMINI_BASE_URL": base}
    overrides = ["-c", f'openai_base_url="{base}/v1"']
    provider = _codex_provider()
    if provider:  # a custom provider of the user's: send it through the proxy for this run too
        overrides += ["-c", f'model_providers.{provider}.base_url="{base}/v1"']
    return [command, *overrides, *args], {}


def _codex_provider() -> str | None:
    """The custom ``model_provider`` of the user's Codex config, if any (read only)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib

    try:
        data = tomllib.loads(agent_config_file("codex").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    provider = data.get("model_provider")
    if not isinstance(provider, str) or provider in ("openai", "") or not _BARE_KEY.fullmatch(provider):
        return None
    return provider


@click.command("wrap", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("agent", type=click.Choice(sorted(AGENT_COMMANDS)))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--lossless",
    is_flag=True,
    help="Only transforms that drop nothing (default when the MCP tool is not installed for this agent).",
)
@pass_app
def wrap_cmd(app: App, agent: str, args: tuple[str, ...], lossless: bool) -> None:
    """Run AGENT (claude, codex or gemini) with its requests going through the headroom proxy.

    Starts the daemon if no proxy runs; changes no config file; exits with the agent's exit code.
    Arguments after AGENT (or after --) go to the agent: headroom wrap claude -- -p "fix the tests"
    """
    if args[:1] == ("--",):  # click keeps the separator when options stop at AGENT
        args = args[1:]
    if shutil.which(AGENT_COMMANDS[agent]) is None:  # before anything is started on its behalf
        raise DaemonError(f"{AGENT_COMMANDS[agent]} is not on PATH (install {agent} first)")
    config = app.config
    url = ensure_proxy(config, app.config_path)
    if not lossless and not _mcp_installed(agent):
        lossless = True
        click.echo(
            f"headroom: lossless mode (run `headroom mcp install {agent}` to let {agent} fetch elided content "
            "and save more)",
            err=True,
        )
    argv, extra = agent_invocation(agent, url, list(args), lossless=lossless)
    executable = shutil.which(argv[0])
    if executable is None:
        raise DaemonError(f"{argv[0]} is not on PATH (install {agent} first)")
    env = {**os.environ, **extra}
    app.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(executable, argv, env)


def register(cli: click.Group) -> None:
    cli.add_command(wrap_cmd)
