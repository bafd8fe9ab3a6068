"""``headroom daemon``: run the background service, install it as a login service, and manage it.

The service-manager work lives in :mod:`headroom.daemon.install`; this module only parses options, asks
for confirmation and prints. :data:`RUNNER` and :data:`PLATFORM` are the seams tests replace.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from headroom.daemon.cli.common import App, pass_app, progress_bar
from headroom.daemon.errors import DaemonError
from headroom.daemon.ingest import Progress
from headroom.daemon.install import (
    STOP_TIMEOUT,
    UNIT_NAME,
    Runner,
    ServiceInstaller,
    detect_manager,
    follow,
    purge_targets,
    remove_paths,
    run_command,
    service_spec,
    tail_lines,
    terminate,
)
from headroom.daemon.process import running_daemon_pid, setup_logging
from headroom.daemon.service import Service

#: Every service-manager command goes through this (tests put a recorder here).
RUNNER: Runner = run_command
#: The platform whose service manager is used (tests pick one).
PLATFORM: str = sys.platform


@click.group("daemon")
def daemon_group() -> None:
    """Run or inspect the background service."""


@daemon_group.command("run")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
@pass_app
def daemon_run(app: App, verbose: bool) -> None:
    """Run the service in the foreground until Ctrl-C / SIGTERM.

    It backfills every existing session log (with a progress bar on a terminal), then follows the agents'
    logs as they are written.
    """
    config = app.config
    setup_logging(config.paths, verbose=verbose)
    service = Service(config, config_file=Path(app.config_path) if app.config_path else None)
    service.install_signal_handlers()
    logged = _log_progress()
    if not sys.stderr.isatty():
        service.progress = logged
        service.run()
        return
    bar = progress_bar("backfilling agent logs")
    with bar as update:

        def both(done: int, total: int, path: str) -> None:
            update(done, total, path)
            logged(done, total, path)

        service.progress = both
        service.after_backfill = bar.stop  # else it keeps redrawing between the log lines that follow
        service.run()


@daemon_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (pid, health, service).")
@pass_app
def daemon_status(app: App, as_json: bool) -> None:
    """Say whether the daemon runs, how its components are, and whether it is installed (exit 0 if it runs, 3 if not).

    The components' health comes from the daemon's proxy (``GET /healthz``); with the proxy off or
    unreachable only the pid is known.
    """
    config = app.diagnosis_config()  # a broken config.toml must not hide how the daemon is
    pid = running_daemon_pid(config.paths)
    health = daemon_health(config.paths.proxy_state) if pid is not None else None
    installer = _installer(app, required=False)
    if installer is None:
        service = f"none on {PLATFORM}"
    elif not installer.installed():
        service = f"not installed ({installer.unit_path})"
    else:
        service = f"installed ({installer.unit_path})"
    config_error = str(app.config_error) if app.config_error else None
    if as_json:
        summary = {"running": pid is not None, "pid": pid, "health": health, "service": service}
        click.echo(json.dumps({**summary, "config_error": config_error}))
    else:
        if config_error:
            click.echo(f"config: broken: {config_error}")
        if pid is None:
            click.echo("headroom daemon: not running")
        else:
            click.echo(f"headroom daemon: running (pid {pid})")
        for line in health_lines(health) if health is not None else []:
            click.echo(line)
        drift = record_types_warning(health)
        if drift:
            click.echo(drift)
        click.echo(f"service: {service}")
        if installer is not None and installer.installed():
            problem = installer.manager_problem()
            click.echo(f"service state: {'unknown, ' + problem if problem else installer.state() or 'unknown'}")
    if pid is None:
        raise SystemExit(3)


def daemon_health(proxy_state: Path, timeout: float = 3.0) -> dict[str, Any] | None:
    """The running daemon's health from its proxy's ``/healthz``; None when the proxy is off or does not answer
    (or is a standalone ``headroom proxy``, whose answer has no "daemon")."""
    import httpx

    try:
        url = json.loads(proxy_state.read_text(encoding="utf-8"))["url"]
        answer = httpx.get(f"{url}/healthz", timeout=timeout)
        daemon = answer.json().get("daemon") if answer.status_code == 200 else None
    except (OSError, ValueError, KeyError, TypeError, httpx.HTTPError):
        return None
    return daemon if isinstance(daemon, dict) else None


def record_types_warning(health: dict[str, Any] | None) -> str | None:
    """One warning naming the log record types this daemon met that no reader knows (the agents' formats moved)."""
    ingest = ((health or {}).get("components") or {}).get("ingest") or {}
    found = ingest.get("new_record_types") or []
    if not found:
        return None
    names = ", ".join(
        f"{t.get('agent')} {t.get('type')}" + (f" (CLI {t['cli_version']})" if t.get("cli_version") else "")
        for t in found
    )
    return f"warning: new log record types, kept raw but not read: {names} (headroom doctor counts them)"


def watchdog_details(savings: dict[str, Any]) -> list[str]:
    """The holdout share and the cache watchdog's fallbacks, with the latest one (what and why)."""
    out = []
    if savings.get("holdout"):
        out.append(f"holdout {100 * savings['holdout']:g}% ({savings.get('held_out_requests', 0)} requests)")
    fallbacks = savings.get("fallbacks") or {}
    count = sum(fallbacks.values())
    if count:
        events = savings.get("events") or []
        latest = ""
        if events:
            last = events[-1]
            latest = f"; last: {last.get('agent')} {last.get('project') or '(no project)'}, {last.get('detail')}"
        out.append(f"cache watchdog: {count} conversations fell back to lossless{latest}")
    return out


def health_lines(health: dict[str, Any]) -> list[str]:
    """One line per component (state, then its backlog and last error), and the database's size."""
    lines = []
    for name, c in health.get("components", {}).items():
        details = []
        if name == "ingest":
            details += [f"{c.get('pending_paths', 0)} paths pending", f"lag {c.get('lag_s', 0):.1f}s"]
        elif name == "memory" and c.get("embed_backlog") is not None:
            details.append(f"embedding backlog {c['embed_backlog']}")
        elif name == "scheduler" and c.get("jobs"):
            details.append(f"{len(c['jobs'])} jobs")
            upcoming = sorted((j["next_run"], n) for n, j in c["jobs"].items() if j.get("next_run"))
            if upcoming:
                details.append(f"next: {upcoming[0][1]} at {upcoming[0][0][11:16]}")
        elif name == "proxy" and "url" in c:
            details += [c["url"], f"stats queue {c.get('stats_queue', 0)}, {c.get('stats_dropped', 0)} dropped"]
            details += watchdog_details(c.get("savings") or {})
        if c.get("last_error"):
            details.append(f"last error: {c['last_error']}")
        lines.append(f"  {name}: {c.get('state', 'unknown')}" + (f" ({'; '.join(details)})" if details else ""))
    proc = health.get("process") or {}
    if proc.get("rss_bytes") is not None:
        lines.append(
            f"  process: {proc['rss_bytes'] / 1e6:.0f} MB resident, {proc.get('open_fds')} open files, "
            f"{proc.get('threads')} threads"
        )
    database = health.get("database", {})
    parts = [database["state"]] if database.get("state") else []
    if database.get("size_bytes") is not None:
        parts.append(f"{database['size_bytes'] / 1e6:.1f} MB")
    if database.get("last_error"):
        parts.append(f"last error: {database['last_error']}")
    if parts:
        lines.append(f"  database: {', '.join(parts)}")
    config_error = health.get("config", {}).get("last_error")
    if config_error:
        lines.append(f"  config: {config_error}")
    return lines


@daemon_group.command("install")
@click.option("--dry-run", is_flag=True, help="Print the service file instead of writing it.")
@pass_app
def daemon_install(app: App, dry_run: bool) -> None:
    """Install the daemon as a login service (systemd user unit / launchd agent) and start it."""
    installer = _require(_installer(app, required=True))
    if dry_run:
        click.echo(f"# {installer.unit_path} (not written: --dry-run)", err=True)
        click.echo(installer.render().decode(), nl=False)
        return
    was_installed = installer.installed()
    pid = running_daemon_pid(app.config.paths)
    result = installer.install()
    if result.changed:
        click.echo(f"{'updated' if was_installed else 'installed'} {result.path}")
    else:
        click.echo(f"already installed ({result.path})")
    if not result.manager_ok:
        click.echo(f"warning: {result.problem}; the service file is written but not enabled.", err=True)
        click.echo(f"Enable it where the service manager runs with: {_enable_hint(installer)}", err=True)
        return
    click.echo("enabled and started: it starts at login and restarts after a crash")
    if pid is not None and not was_installed:
        click.echo(
            f"note: a daemon started by hand is running (pid {pid}); the service takes over once it stops "
            "(`headroom daemon stop`, then `headroom daemon start`)",
            err=True,
        )


@daemon_group.command("uninstall")
@click.option("--purge", is_flag=True, help="Also delete headroom's data and state (the database, logs).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before deleting data.")
@pass_app
def daemon_uninstall(app: App, purge: bool, yes: bool) -> None:
    """Stop and remove the login service; the data stays unless --purge."""
    installer = _installer(app, required=False)
    if installer is not None and installer.installed():
        problem = installer.uninstall()
        click.echo(f"removed {installer.unit_path}")
        if problem:
            click.echo(f"warning: {problem}; the service could not be stopped or disabled", err=True)
    else:
        click.echo("the service is not installed")
    if not purge:
        click.echo(f"data kept in {app.config.paths.data_dir} (--purge deletes it)")
        return
    paths = app.config.paths
    pid = running_daemon_pid(paths)
    if pid is not None:
        _stop_pid(pid)
    targets = purge_targets(paths)
    if not targets:
        click.echo("no data to delete")
        return
    listing = "\n".join(f"  {target}" for target in targets)
    if not yes and not click.confirm(f"Delete these?\n{listing}\n", default=False):
        raise click.exceptions.Exit(1)
    remove_paths(targets)
    click.echo(f"deleted:\n{listing}")


@daemon_group.command("start")
@pass_app
def daemon_start(app: App) -> None:
    """Start the installed service."""
    _require(_installer(app, required=True)).start()
    click.echo("headroom daemon: started")


@daemon_group.command("stop")
@pass_app
def daemon_stop(app: App) -> None:
    """Stop the daemon: through the service manager, or with SIGTERM when it was started by hand."""
    installer = _installer(app, required=False)
    if installer is not None and installer.installed() and not installer.manager_problem():
        installer.stop()
        click.echo("headroom daemon: stopped")
        return
    pid = running_daemon_pid(app.config.paths)
    if pid is None:
        if installer is not None and installer.installed():  # installed, but its manager is out of reach
            installer.stop()  # raises the manager's problem
        click.echo("headroom daemon: not running")
        return
    _stop_pid(pid)
    click.echo(f"headroom daemon: stopped (pid {pid})")


@daemon_group.command("restart")
@pass_app
def daemon_restart(app: App) -> None:
    """Restart the installed service (after an upgrade or a config change)."""
    _require(_installer(app, required=True)).restart()
    click.echo("headroom daemon: restarted")


@daemon_group.command("logs")
@click.option("-n", "--lines", "count", type=click.IntRange(min=0), default=50, show_default=True)
@click.option("-f", "--follow", "keep_following", is_flag=True, help="Keep printing new lines (Ctrl-C stops).")
@pass_app
def daemon_logs(app: App, count: int, keep_following: bool) -> None:
    """Show the end of the daemon's log file."""
    log_file = app.diagnosis_config().paths.log_file
    if not log_file.exists() and not keep_following:
        click.echo(f"no log yet ({log_file})", err=True)
        return
    for line in tail_lines(log_file, count):
        click.echo(line)
    if keep_following:
        try:
            for line in follow(log_file):
                click.echo(line)
        except KeyboardInterrupt:
            return


def _installer(app: App, *, required: bool) -> ServiceInstaller | None:
    """The installer for this platform and invocation (``--config`` goes into the service's command line)."""
    manager = detect_manager(PLATFORM)
    if manager is None:
        if required:
            raise DaemonError(f"no login service on {PLATFORM}; run `headroom daemon run` in a terminal instead")
        return None
    config_file = Path(app.config_path) if app.config_path else None
    return ServiceInstaller(service_spec(app.diagnosis_config().paths, config_file=config_file), manager, run=RUNNER)


def _require(installer: ServiceInstaller | None) -> ServiceInstaller:
    assert installer is not None  # _installer(required=True) raises instead of returning None
    return installer


def _enable_hint(installer: ServiceInstaller) -> str:
    if installer.manager == "launchd":
        return f"launchctl bootstrap gui/{installer.uid} {installer.unit_path}"
    return f"systemctl --user daemon-reload && systemctl --user enable --now {UNIT_NAME}"


def _stop_pid(pid: int) -> None:
    """SIGTERM a daemon that no service manager runs, and wait for it to finish."""
    if pid <= 0:
        raise DaemonError("a daemon holds the lock but its pid is unknown; stop it from its terminal")
    if not terminate(pid, timeout=STOP_TIMEOUT):
        raise DaemonError(f"the daemon (pid {pid}) did not stop within {STOP_TIMEOUT:.0f}s after SIGTERM")


def _log_progress() -> Progress:
    """Progress lines in the log every 10 % of the backfill (next to the bar on a terminal)."""
    log = logging.getLogger("headroom.daemon")
    state = {"next": 0.1}  # the next fraction to report

    def update(done: int, total: int, _path: str) -> None:
        if total and done / total >= state["next"]:
            log.info("backfill %d%% (%.1f of %.1f MB)", int(100 * done / total), done / 1e6, total / 1e6)
            while state["next"] <= done / total:
                state["next"] += 0.1

    return update


def register(cli: click.Group) -> None:
    cli.add_command(daemon_group)
