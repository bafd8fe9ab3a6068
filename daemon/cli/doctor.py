"""``headroom doctor``: where everything is, what was found, ingested and skipped."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from sqlalchemy import case, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from headroom.daemon.cli.common import App, console, emit_json, json_option, pass_app
from headroom.daemon.config import display_url
from headroom.daemon.process import running_daemon_pid
from headroom.daemon.proxy import registration
from headroom.engine.errors import HeadroomError
from headroom.learn.model import EventKind
from headroom.learn.readers import reader_for
from headroom.learn.readers.base import record_type
from headroom.memory.db import Database, check_revision, database_size
from headroom.memory.identity import current_machine
from headroom.memory.models import EventRow, IngestIssueRow, SessionRow, SourceFileRow, ToolCallRow, UsageRow


@click.command("doctor")
@json_option
@pass_app
def doctor(app: App, as_json: bool) -> None:
    """Check the set-up: paths, config, database (revision, integrity), agents' logs found, what is ingested,
    what was skipped. Exits 1 when the config is broken or the database cannot be read or is damaged.

    It works with a broken config.toml (it says what is wrong and goes on with the defaults) and on a
    read-only data dir (the database is opened read-only).
    """
    config = app.diagnosis_config()
    paths = config.paths
    config_file = config.source or app.config_file or paths.config_file
    report: dict[str, Any] = {
        "paths": {
            "data_dir": str(paths.data_dir),
            "config_file": f"{config_file}" + ("" if config_file.exists() else " (absent: defaults)"),
            "state_dir": str(paths.state_dir),
            "log_file": str(paths.log_file),
        },
        "config": {"error": str(app.config_error) if app.config_error else None},
        "database": {"url": display_url(config.database_url)},
        "daemon": {"pid": _daemon_pid(app)},
        "proxy": _proxy_state(app),
        "agents": {},
        "problems": [],
    }
    try:
        db = app.read_db
        report["database"] = _database_state(db)
        if not report["database"]["damaged"]:
            report["memory"] = _memory_state(app)
            _ingested(app, report)
    except (HeadroomError, SQLAlchemyError) as exc:
        report["database"]["error"] = _one_line(exc)
    report["database"]["warnings"] = _url_warnings(config.database_url)
    if as_json:
        emit_json(report)
    else:
        _print(report)
    if report["config"]["error"] or report["database"].get("error") or report["database"].get("damaged"):
        raise SystemExit(1)


def _url_warnings(url: str) -> list[str]:
    """What a developer should change in database_url (a password in config.toml belongs in ~/.pgpass)."""
    from headroom.daemon.cli.db_cmd import PASSWORD_WARNING
    from headroom.memory.db import password_in_url

    return [PASSWORD_WARNING] if password_in_url(url) else []


def _database_state(db: Database) -> dict[str, Any]:
    current, head = check_revision(db)
    problems = db.quick_check()
    return {
        "url": display_url(db.url),
        "revision": current,
        "head": head,
        "up_to_date": current == head,
        "size_bytes": database_size(db),
        "read_only": db.read_only,
        "damaged": bool(problems),
        "integrity": db.integrity,
        "recovery": db.integrity_problem(),
    }


def _ingested(app: App, report: dict[str, Any]) -> None:
    """Per agent: the log files on disk and what the database holds of them; the input skipped.

    This machine's only (issue 17): on a database shared by a team, files, rows and problems of other
    machines are not this machine's to diagnose.
    """
    machine = current_machine()
    with app.read_db.sessions() as dbs:
        files = {
            agent: (count, int(size or 0), int(missing or 0))
            for agent, count, size, missing in dbs.execute(
                select(
                    SourceFileRow.agent,
                    func.count(),
                    func.sum(SourceFileRow.offset),
                    func.sum(case((SourceFileRow.missing, 1), else_=0)),
                )
                .where(SourceFileRow.machine_id == machine)
                .group_by(SourceFileRow.agent)
            )
        }
        mine = SessionRow.machine_id == machine
        sessions = dict(
            dbs.execute(select(SessionRow.agent, func.count()).where(mine).group_by(SessionRow.agent)).all()
        )
        calls = dict(
            dbs.execute(
                select(SessionRow.agent, func.count()).join(ToolCallRow).where(mine).group_by(SessionRow.agent)
            ).all()
        )
        events = dict(
            dbs.execute(
                select(SessionRow.agent, func.count()).join(EventRow).where(mine).group_by(SessionRow.agent)
            ).all()
        )
        usage = dict(
            dbs.execute(
                select(UsageRow.agent, func.count()).where(UsageRow.machine_id == machine).group_by(UsageRow.agent)
            ).all()
        )
        for agent, roots in app.diagnosis_config().agent_roots().items():
            reader = reader_for(agent)
            found = sum(1 for root in roots for _ in reader.discover(root))
            count, size, missing = files.get(agent, (0, 0, 0))
            report["agents"][agent] = {
                "roots": [{"path": str(r), "exists": r.is_dir()} for r in roots],
                "log_files_on_disk": found,
                "files_ingested": count,
                "bytes_ingested": size,
                "files_deleted_since": missing,
                "sessions": sessions.get(agent, 0),
                "events": events.get(agent, 0),
                "tool_calls": calls.get(agent, 0),
                "model_calls": usage.get(agent, 0),
            }
        report["unknown_record_types"] = unknown_record_types(dbs)
        issues = (
            select(IngestIssueRow).where(IngestIssueRow.machine_id == machine).order_by(IngestIssueRow.last_seen.desc())
        )
        for issue in dbs.execute(issues).scalars():
            report["problems"].append(
                {
                    "path": issue.path,
                    "kind": issue.kind,
                    "count": issue.count,
                    "detail": issue.detail,
                    "last_seen": issue.last_seen.isoformat(timespec="seconds") + "Z",
                }
            )


def _daemon_pid(app: App) -> int | None:
    try:
        return running_daemon_pid(app.diagnosis_config().paths)
    except OSError:  # the lock file cannot be opened (a read-only data dir): no daemon can run there
        return None


def _one_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).splitlines()[0]


def unknown_record_types(dbs: Session, *, unnamed_limit: int = 10_000) -> list[dict[str, Any]]:
    """Every log record type the readers kept raw (format drift), counted per agent and CLI version.

    Ingestion names each raw record by its type; records stored before it did are named from their raw
    JSON here (at most ``unnamed_limit`` of them).
    """
    counts: Counter[tuple[str, str, str]] = Counter()
    base = select(SessionRow.agent, func.coalesce(SessionRow.cli_version, "")).join(
        SessionRow, SessionRow.id == EventRow.session_id
    )
    unknown = EventRow.kind == EventKind.UNKNOWN.value
    named = base.add_columns(EventRow.text, func.count()).where(unknown, EventRow.text.is_not(None))
    for agent, version, name, count in dbs.execute(
        named.group_by(SessionRow.agent, SessionRow.cli_version, EventRow.text)
    ):
        counts[(agent, version, name)] += count
    unnamed = base.add_columns(func.substr(EventRow.raw, 1, 4000)).where(unknown, EventRow.text.is_(None))
    for agent, version, raw in dbs.execute(unnamed.limit(unnamed_limit)):
        counts[(agent, version, record_type(raw or ""))] += 1
    return [
        {"agent": agent, "cli_version": version or None, "type": name, "count": count}
        for (agent, version, name), count in sorted(counts.items(), key=lambda item: (item[0][0], -item[1], item[0]))
    ]


def _proxy_state(app: App) -> dict[str, Any]:
    """This data dir's proxy (never another headroom's on the configured port) and how it is configured."""
    config = app.diagnosis_config()
    proxy = config.proxy
    # Only a proxy that proves it holds this data dir's registration secret (never another headroom's, nor
    # whatever else listens on the configured port).
    found = registration.find(config.paths)
    url, health = found if found else (None, None)
    return {
        "url": url,
        "configured": f"{proxy.host}:{proxy.port}" if proxy.enabled else "off",
        "mode": (health or {}).get("mode", proxy.mode),
        "requests": (health or {}).get("requests", 0),
        "upstreams": proxy.upstreams(),
    }


def _memory_state(app: App) -> dict[str, Any]:
    """The shared memory: size, embedding model (checked without loading it), backlog, the briefing hook."""
    from sqlalchemy import func, select

    from headroom.daemon import memory_hook
    from headroom.memory.embed import unavailable_reason
    from headroom.memory.models import MemoryItemRow

    cfg = app.diagnosis_config().memory
    with app.read_db.sessions() as s:
        items = s.execute(select(func.count()).select_from(MemoryItemRow)).scalar() or 0
        embedded = s.execute(select(func.count(MemoryItemRow.embed_model))).scalar() or 0
    if not cfg.enabled:
        embeddings = "memory disabled"
    elif not cfg.embeddings:
        embeddings = "off (full-text search only)"
    else:
        reason = unavailable_reason(Path(cfg.model_path).expanduser() if cfg.model_path else None)
        embeddings = f"unavailable, search falls back to full-text: {reason}" if reason else "all-MiniLM-L6-v2"
    return {
        "enabled": cfg.enabled,
        "items": int(items),
        "embedded": int(embedded),
        "embeddings": embeddings,
        "ccr_retention_days": cfg.ccr_retention_days,
        "session_start_hook": memory_hook.installed(),
    }


def _print(report: dict[str, Any]) -> None:
    out = console()
    out.print("[bold]paths[/bold]")
    for name, value in report["paths"].items():
        out.print(f"  {name}: {value}", markup=False)
    if report["config"]["error"]:
        out.print(f"[bold]config[/bold]: [red]broken[/red], defaults used here: {escape(report['config']['error'])}")
    dbinfo = report["database"]
    if dbinfo.get("error"):
        problem = escape(dbinfo["error"])
        out.print(f"[bold]database[/bold] {escape(dbinfo['url'])}: [red]cannot be read[/red]: {problem}")
    else:
        state = "[green]up to date[/green]" if dbinfo["up_to_date"] else "[yellow]needs upgrade[/yellow]"
        size = f", {dbinfo['size_bytes'] / 1e6:.1f} MB" if dbinfo["size_bytes"] is not None else ""
        ro = ", opened read-only" if dbinfo["read_only"] else ""
        out.print(f"[bold]database[/bold] {escape(dbinfo['url'])}: revision {dbinfo['revision']} ({state}){size}{ro}")
        if dbinfo["damaged"]:
            out.print(f"  [red]damaged[/red]: {escape(dbinfo['recovery'])}")
        else:
            out.print("  integrity check: ok")
    for warning in dbinfo.get("warnings", []):
        out.print(f"  [yellow]warning[/yellow]: {escape(warning)}")
    pid = report["daemon"]["pid"]
    out.print(f"[bold]daemon[/bold]: {'running, pid ' + str(pid) if pid else 'not running'}")
    proxy = report["proxy"]
    if proxy["url"]:
        out.print(f"[bold]proxy[/bold]: {proxy['url']} (mode {proxy['mode']}, {proxy['requests']} requests served)")
    else:
        out.print(f"[bold]proxy[/bold]: not running (configured for {proxy['configured']})")
    mem = report.get("memory")
    if mem is not None:
        hook = "installed" if mem["session_start_hook"] else "not installed (headroom memory install)"
        out.print(
            f"[bold]memory[/bold]: {mem['items']} items, {mem['embedded']} embedded; "
            f"embeddings: {mem['embeddings']}; Claude Code briefing hook {hook}"
        )
    for agent, info in report["agents"].items():
        out.print(f"[bold]{agent}[/bold]")
        for root in info["roots"]:
            mark = "[green]found[/green]" if root["exists"] else "[dim]absent[/dim]"
            out.print(f"  {root['path']}: {mark}")
        out.print(
            f"  {info['log_files_on_disk']} log files on disk, {info['files_ingested']} ingested "
            f"({info['bytes_ingested'] / 1e6:.1f} MB; "
            f"{info['files_deleted_since']} since deleted by the agent, data kept)"
        )
        out.print(
            f"  {info['sessions']} sessions, {info['events']} events, {info['tool_calls']} tool calls, "
            f"{info['model_calls']} model calls"
        )
    drift = report["unknown_record_types"]
    if drift:
        out.print("[bold]unknown log record types[/bold] (kept raw, not read; a newer agent may need a newer headroom)")
        for entry in drift[:20]:
            version = entry["cli_version"] or "version unknown"
            out.print(f"  {entry['agent']} {entry['type']} ×{entry['count']} (CLI {version})")
        if len(drift) > 20:
            out.print(f"  … and {len(drift) - 20} more (headroom doctor --json lists all)")
    else:
        out.print("[bold]unknown log record types[/bold]: none")
    problems = report["problems"]
    if not problems:
        out.print("[bold]skipped input[/bold]: none")
        return
    total = sum(p["count"] for p in problems)
    out.print(f"[bold]skipped input[/bold]: {total} problems in {len({p['path'] for p in problems})} files")
    for problem in problems[:20]:
        out.print(f"  {problem['kind']} ×{problem['count']}: {problem['path']} ({problem['detail']})")
    if len(problems) > 20:
        out.print(f"  … and {len(problems) - 20} more (headroom doctor --json lists all)")


def register(cli: click.Group) -> None:
    cli.add_command(doctor)
