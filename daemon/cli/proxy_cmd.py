"""``headroom proxy``: the compressing proxy on its own, in the foreground (the daemon runs the same one)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import click

from headroom.daemon.cli.common import App, pass_app
from headroom.daemon.config import Config
from headroom.daemon.process import setup_logging


def proxy_config(
    config: Config,
    *,
    host: str | None = None,
    port: int | None = None,
    mode: str | None = None,
    anthropic: str | None = None,
    openai: str | None = None,
    gemini: str | None = None,
) -> Config:
    """``config`` with the command-line overrides applied to its ``[proxy]`` table."""
    overrides: dict[str, Any] = {
        "host": host,
        "port": port,
        "mode": mode,
        "anthropic_upstream": anthropic and anthropic.rstrip("/"),
        "openai_upstream": openai and openai.rstrip("/"),
        "gemini_upstream": gemini and gemini.rstrip("/"),
    }
    proxy = replace(config.proxy, **{k: v for k, v in overrides.items() if v is not None})
    return replace(config, proxy=proxy)


@click.command("proxy")
@click.option("--host", help="Address to listen on (default 127.0.0.1; anything else is reachable by others).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default 8787; 0 picks a free one).")
@click.option(
    "--mode",
    type=click.Choice(["ccr", "lossless"]),
    help="ccr: elide with retrievable markers; "
    "lossless: only transforms that drop nothing (for clients without the MCP tool).",
)
@click.option("--anthropic-upstream", metavar="URL", help="Where Anthropic requests go (a gateway may add a path).")
@click.option("--openai-upstream", metavar="URL", help="Where OpenAI requests go.")
@click.option("--gemini-upstream", metavar="URL", help="Where Gemini requests go.")
@click.option("--no-stats", is_flag=True, help="Do not record per-request statistics in the database.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
@pass_app
def proxy_cmd(
    app: App,
    host: str | None,
    port: int | None,
    mode: str | None,
    anthropic_upstream: str | None,
    openai_upstream: str | None,
    gemini_upstream: str | None,
    no_stats: bool,
    verbose: bool,
) -> None:
    """Run the compressing proxy in the foreground until Ctrl-C.

    Point an agent at it (ANTHROPIC_BASE_URL=http://127.0.0.1:8787, Codex's openai_base_url =
    "http://127.0.0.1:8787/v1", GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:8787) or use `headroom wrap`.
    """
    from headroom.daemon.proxy import registration
    from headroom.daemon.proxy.server import ProxyServer, build_app

    for name, url in (("anthropic", anthropic_upstream), ("openai", openai_upstream), ("gemini", gemini_upstream)):
        if url is not None and not url.startswith(("http://", "https://")):
            raise click.BadParameter(
                f"must be an http:// or https:// URL, not {url!r}", param_hint=f"--{name}-upstream"
            )
    config = proxy_config(
        app.config,
        host=host,
        port=port,
        mode=mode,
        anthropic=anthropic_upstream,
        openai=openai_upstream,
        gemini=gemini_upstream,
    )
    setup_logging(config.paths, verbose=verbose)
    db = None if no_stats else app.db
    config.paths.ensure()
    registration.prune(config.paths)
    # Its own registration file: the daemon's (state/proxy.json) is never overwritten by a standalone proxy.
    state_file = registration.standalone_file(config.paths)
    server = ProxyServer(build_app(config, db), config.proxy.host, config.proxy.port, state_file=state_file)
    click.echo(f"headroom proxy on {server.url} (mode {config.proxy.mode}); Ctrl-C stops it", err=True)
    server.run()


def register(cli: click.Group) -> None:
    cli.add_command(proxy_cmd)
