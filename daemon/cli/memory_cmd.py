"""``headroom memory``: search, show, save and forget what the agents read and decided; the briefing hook.

Every command first brings the store up to date from the agents' logs (ingest, then feed) unless the daemon
runs and does that itself, so they all work without the daemon. The project is the git root of the current
directory unless ``--project`` or ``--all-projects`` says otherwise.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click
import orjson
from rich.markup import escape
from rich.table import Table

from headroom.daemon.cli.common import App, console, emit_json, json_option, pass_app, printable
from headroom.memory.kinds import KINDS


@click.group("memory")
def memory_group() -> None:
    """The shared memory of all agents: what they read, ran, fetched and decided, per project."""


def _project(project: str | None, all_projects: bool = False) -> str | None:
    from headroom.learn.projects import project_of

    if all_projects:
        return None
    return project_of(project or os.getcwd())


def _memory(app: App, *, refresh: bool = True, embeddings: bool = True) -> Any:
    from headroom.daemon.memory_feed import MemoryFeed
    from headroom.daemon.memory_service import open_memory
    from headroom.memory.api import Memory

    if app.data_read_only:  # read what is there: no catch-up, no feed, nothing written
        return Memory(app.read_db)
    if refresh:
        app.catch_up(quiet=True)
    memory = open_memory(app.config, app.db) if embeddings else Memory(app.db)
    if refresh:
        MemoryFeed(memory.store).run()
    return memory


_project_options = [
    click.option("--project", "-p", help="A project folder (default: the git root of the current directory)."),
    click.option("--all-projects", is_flag=True, help="Every project's items."),
]


def _with_project(func: Any) -> Any:
    for option in reversed(_project_options):
        func = option(func)
    return func


@memory_group.command("search")
@click.argument("query")
@click.option("-k", "limit", default=10, show_default=True, help="How many items.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(KINDS), help="Only these kinds (repeatable).")
@click.option("--text-only", is_flag=True, help="Full-text search only (no embedding model is loaded).")
@_with_project
@json_option
@pass_app
def memory_search(
    app: App,
    query: str,
    limit: int,
    kinds: tuple[str, ...],
    text_only: bool,
    project: str | None,
    all_projects: bool,
    as_json: bool,
) -> None:
    """Search the memory (full-text and vectors, ranked together); the running daemon answers when there is one."""
    scope = _project(project, all_projects)
    answer, source = None, "daemon"
    if not text_only:  # a running daemon has the model loaded: ask it (nothing is written here)
        from headroom.daemon.local_client import daemon_search

        answer = daemon_search(
            app.config.paths.hooks_socket, query, scope, k=limit, kinds=list(kinds) or None, detail=True
        )
    if answer is None:
        source = "local"
        memory = _memory(app, embeddings=not text_only)
        result = memory.search(query, project=scope, k=limit, kinds=list(kinds) or None)
        # scoped: another project's paths stay out
        answer = {"mode": result.mode, "note": result.note, "hits": [h.as_dict(project=scope) for h in result.hits]}
    hits: list[dict[str, Any]] = answer["hits"]
    if as_json:
        emit_json({"mode": answer.get("mode"), "note": answer.get("note"), "searched_by": source, "hits": hits})
        return
    if answer.get("note"):
        click.echo(f"({answer['note']})", err=True)
    if not hits:
        click.echo("nothing found" + (f" in {scope}" if scope else ""))
        return
    table = Table("id", "kind", "title", "agents", "last seen", "via", box=None)
    for hit in hits:
        title = str(hit.get("title") or "")
        if hit.get("status") == "superseded":
            title += " (older version)"
        table.add_row(
            str(hit["id"]),
            str(hit["kind"]),
            escape(printable(title)[:90]),
            ",".join(hit.get("agents") or []),
            str(hit.get("last_seen_at", ""))[:16].replace("T", " "),
            str(hit.get("via", "")),
        )
    console().print(table)


@memory_group.command("show")
@click.argument("item_id", type=int)
@json_option
@pass_app
def memory_show(app: App, item_id: int, as_json: bool) -> None:
    """One item in full, with every sighting (agent, session, path, time) and its versions."""
    memory = _memory(app, refresh=False, embeddings=False)
    item = memory.get(item_id)
    if item is None:
        raise click.ClickException(f"no memory item #{item_id}")
    history = memory.store.history(item_id)
    if as_json:
        emit_json({**item.as_dict(), "versions": history})
        return
    click.echo(f"#{item.id} {item.kind}: {printable(item.title)}")
    click.echo(f"status {item.status}; {item.size} characters; {item.redactions} secrets redacted")
    if len(history) > 1:
        click.echo("versions (oldest first): " + " → ".join(f"#{i}" for i in history))
    if item.supersedes_id:
        click.echo(f"supersedes #{item.supersedes_id} ({item.link_reason})")
    for s in item.sightings:
        where = printable(s.path or s.project)
        click.echo(
            f"  seen by {s.agent or s.source} at {s.ts:%Y-%m-%d %H:%M} in {where} "
            f"(session {printable(s.session_key) or '-'})"
        )
    if item.ref:
        click.echo(f"stored by reference: {printable(item.ref)}")
    click.echo("")
    click.echo(printable(item.content))


@memory_group.command("save")
@click.argument("text")
@click.option("--kind", default="decision", show_default=True, type=click.Choice(KINDS))
@click.option("--title", help="A short title (default: the first line).")
@click.option("--global", "global_scope", is_flag=True, help="Visible in every project (yours only).")
@click.option("--team", is_flag=True, help="Shared with every user of a team database (default: yours only).")
@click.option("--project", "-p", help="A project folder (default: the git root of the current directory).")
@json_option
@pass_app
def memory_save(
    app: App,
    text: str,
    kind: str,
    title: str | None,
    global_scope: bool,
    team: bool,
    project: str | None,
    as_json: bool,
) -> None:
    """Save a note (a decision, an instruction, a lesson) for every agent of the project."""
    memory = _memory(app, refresh=False, embeddings=False)
    where = _project(project) or ""
    result = memory.put(
        text, kind, project=where, title=title, global_scope=global_scope, team=team, source="cli", agent="user"
    )
    if result.item_id is None:
        raise click.ClickException(f"not saved: {result.skipped}")
    if as_json:
        emit_json({"id": result.item_id, "created": result.created, "redactions": result.redactions})
        return
    click.echo(f"{'saved' if result.created else 'already known'} as #{result.item_id}" + _redacted(result.redactions))


def _redacted(n: int) -> str:
    return f" ({n} secret{'s' if n != 1 else ''} redacted)" if n else ""


@memory_group.command("forget")
@click.argument("item_ids", type=int, nargs=-1, required=True)
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@pass_app
def memory_forget(app: App, item_ids: tuple[int, ...], yes: bool) -> None:
    """Delete items for good (with their sightings and vectors)."""
    memory = _memory(app, refresh=False, embeddings=False)
    found = memory.store.items(list(item_ids))
    missing = sorted(set(item_ids) - set(found))
    if missing:
        raise click.ClickException("no memory item " + ", ".join(f"#{i}" for i in missing))
    if not yes:
        for item in found.values():
            click.echo(f"#{item.id} {item.kind}: {item.title or ''}")
        click.confirm(f"Forget {len(found)} item{'s' if len(found) != 1 else ''}?", abort=True)
    n = memory.forget(list(item_ids))
    click.echo(f"forgot {n} item{'s' if n != 1 else ''}")


@memory_group.command("stats")
@_with_project
@json_option
@pass_app
def memory_stats(app: App, project: str | None, all_projects: bool, as_json: bool) -> None:
    """How much is stored, by kind and agent, and the embedding backlog."""
    memory = _memory(app, embeddings=False)
    scope = _project(project, all_projects)
    data = memory.store.stats(scope)
    from headroom.daemon.memory_service import open_memory

    data["embeddings"] = open_memory(app.config, app.db).status()
    if as_json:
        emit_json(data)
        return
    click.echo(f"project: {scope or 'all'}")
    click.echo(f"items: {data['items']} ({data['chars']:,} characters; {data['by_reference']} stored by reference)")
    click.echo("by kind: " + (", ".join(f"{k} {v}" for k, v in data["by_kind"].items()) or "-"))
    click.echo("sightings by agent: " + (", ".join(f"{k} {v}" for k, v in data["sightings_by_agent"].items()) or "-"))
    click.echo(f"versions linked: {data['versions_linked']}; secrets redacted: {data['redactions']}")
    emb = data["embeddings"]
    click.echo(f"embeddings: {emb['embeddings']} ({data['embedded']} embedded, {emb.get('pending', 0)} pending)")


@memory_group.command("redact")
@click.option("--scan", is_flag=True, required=True, help="Scan everything stored with today's rules.")
@click.option("--dry-run", is_flag=True, help="Only report what would be cleaned.")
@json_option
@pass_app
def memory_redact(app: App, scan: bool, dry_run: bool, as_json: bool) -> None:
    """Clean secrets out of what is already stored: memory items, the session mirror, lessons (the rules grow)."""
    from headroom.memory.rescan import note_rules_applied, redact_stored

    memory = _memory(app, refresh=False, embeddings=False)
    report = memory.store.redact_scan(apply=not dry_run)
    report["stored"] = redact_stored(memory.db, apply=not dry_run)
    if not dry_run:  # the daemon's own pass at its next start has nothing left to do
        note_rules_applied(memory.db)
    if as_json:
        emit_json(report)
        return
    verb = "would clean" if dry_run else "cleaned"
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(report["findings"].items()))
    click.echo(f"{verb} {report['items']} item{'s' if report['items'] != 1 else ''}" + (f": {kinds}" if kinds else ""))
    stored = report["stored"]
    tables = ", ".join(f"{name} {n}" for name, n in sorted(stored["by_table"].items()))
    click.echo(
        f"{verb} {stored['rows']} other row{'s' if stored['rows'] != 1 else ''}" + (f": {tables}" if tables else "")
    )


@memory_group.command("embed")
@click.option("--limit", type=int, help="Embed at most this many items.")
@pass_app
def memory_embed(app: App, limit: int | None) -> None:
    """Embed the backlog now (the daemon does this in the background)."""
    memory = _memory(app)
    report = memory.embed_pending(limit, batch=app.config.memory.embed_batch)
    if report.error:
        raise click.ClickException(f"embeddings unavailable: {report.error}")
    click.echo(f"embedded {report.embedded} items ({report.linked} linked as newer versions); {report.pending} pending")


@memory_group.command("briefing")
@click.option("--project", "-p", help="A project folder (default: the git root of the current directory).")
@click.option("--hook", is_flag=True, help="Claude Code SessionStart hook mode: JSON in on stdin, JSON out.")
@pass_app
def memory_briefing(app: App, project: str | None, hook: bool) -> None:
    """What the agents read, decided and were asked in this project lately (what a new session is told)."""
    from headroom.memory.briefing import build_briefing

    max_bytes = int(app.config.memory.briefing_kb * 1000)
    if not hook:
        memory = _memory(app, embeddings=False)
        text = build_briefing(memory.store, _project(project) or "", max_bytes=max_bytes)
        click.echo(text or "nothing known about this project yet")
        return
    # A hook must never break the session it starts: any failure prints nothing and exits 0.
    try:
        event = orjson.loads(sys.stdin.buffer.read() or b"{}")
        cwd = event.get("cwd") if isinstance(event, dict) else None
        session = event.get("session_id") if isinstance(event, dict) else None
        memory = _memory(app, embeddings=False)
        text = build_briefing(
            memory.store, _project(project or cwd) or "", exclude_session=session, max_bytes=max_bytes
        )
    except Exception as exc:  # see above
        click.echo(f"headroom briefing failed: {type(exc).__name__}: {exc}", err=True)
        return
    if text:
        out = {"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": text}}
        click.echo(orjson.dumps(out).decode())


@memory_group.command("install")
@click.option("--dry-run", is_flag=True, help="Show the edit without writing it.")
@pass_app
def memory_install(app: App, dry_run: bool) -> None:
    """Add the SessionStart hook that briefs each new Claude Code session (others: `headroom mcp install`)."""
    from headroom.daemon import memory_hook

    change = memory_hook.install(app.config_path, dry_run=dry_run)
    click.echo(change.describe(dry_run=dry_run))
    if dry_run and change.changed:
        click.echo(change.diff(), nl=False)


@memory_group.command("uninstall")
@click.option("--dry-run", is_flag=True, help="Show the edit without writing it.")
def memory_uninstall(dry_run: bool) -> None:
    """Remove headroom's SessionStart hook (the user's other hooks stay as they are)."""
    from headroom.daemon import memory_hook

    change = memory_hook.uninstall(dry_run=dry_run)
    click.echo(change.describe(dry_run=dry_run))
    if dry_run and change.changed:
        click.echo(change.diff(), nl=False)


def register(cli: click.Group) -> None:
    cli.add_command(memory_group)
