"""``headroom learn``: lessons from failed sessions, shown with the diff, written with ``--apply``, and undone.

Works without the daemon: it ingests what is new first. Without ``--apply`` nothing is written or stored: the
lessons and the diff of every agent file (the project's and the user-level ones) are printed. A project whose
folder is not on this machine still shows its lessons, with the reason nothing can be written. ``report`` shows
each lesson with its evidence and whether the failure recurred less after it was written; ``undo`` takes back a
whole ``learn --apply`` (every file it wrote; a user's later edits of a file are kept) and marks its lessons undone.
"""

from __future__ import annotations

import os
from datetime import datetime

import click

from headroom.daemon.cli.common import App, console, emit_json, json_option, pass_app, printable, project_name
from headroom.learn.model import AGENTS


def _project(project: str | None) -> str:
    from headroom.learn.projects import project_of

    return project_of(project or os.getcwd())


@click.group("learn", invoke_without_command=True)
@click.option("--project", "-p", help="A project folder (default: the git root of the current directory).")
@click.option("--agent", "agents", multiple=True, type=click.Choice(AGENTS), help="Only this agent's file.")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), help="Only sessions from this day on.")
@click.option("--apply", "do_apply", is_flag=True, help="Write the lessons (default: show the diff only).")
@json_option
@click.pass_context
def learn_group(
    ctx: click.Context,
    project: str | None,
    agents: tuple[str, ...],
    since: datetime | None,
    do_apply: bool,
    as_json: bool,
) -> None:
    """Mine the failed sessions and show (or --apply) the lessons: the project's in each agent's project file,
    machine facts and agent-tool lessons in each agent's user-level file. A dry run stores nothing."""
    if ctx.invoked_subcommand is not None:
        return
    from headroom.daemon.learn_service import journal_for, user_homes
    from headroom.learn.apply import run_learn

    app = ctx.ensure_object(App)
    app.catch_up(quiet=True)
    scope = _project(project)
    run = run_learn(
        app.db,
        scope,
        journal=journal_for(app.config),
        agents=list(agents) or None,
        since=since,
        apply_personal=do_apply,
        apply_shared=do_apply,
        claude_file=app.config.learn.claude_file,
        user_homes=user_homes(app.config),
    )
    if as_json:
        emit_json(
            {
                "project": scope,
                "lessons_mined": len(run.drafts),
                "new": run.synced.new,
                "lessons": [
                    {
                        "key": d.key,
                        "text": d.text,
                        "scope": d.scope,
                        "agents": list(d.agents),
                        "sessions": d.sessions,
                        "days": d.days,
                        "user_rule": d.corrected_by_user,
                        "auto_ok": d.auto_ok,
                    }
                    for d in run.drafts
                ],
                "files": [
                    {
                        "path": str(p.target.path),
                        "agent": p.target.agent,
                        "changed": p.changed,
                        "written": p in run.written,
                        "lessons": p.lessons_written,
                        "dropped_for_limits": p.lessons_dropped,
                    }
                    for p in run.plans
                ],
                "skipped": run.skipped,
            }
        )
        return
    stored = f", {run.synced.new} new" if do_apply else ""
    click.echo(f"{scope}: {_lessons(len(run.drafts))} mined{stored}")
    for d in run.drafts:
        where = {"machine": "this machine", "agent": "agent"}.get(d.scope, "project")
        only = f", {d.agents[0]} only" if d.agents else ""
        click.echo(f"  - {d.text}  [{where}{only}; {d.sessions} session(s)]")
    for reason in run.skipped:
        click.echo(f"  skipped: {printable(reason)}", err=True)
    for plan in run.plans:
        state = "written" if plan in run.written else ("unchanged" if not plan.changed else "would change")
        extra = f", {plan.lessons_dropped} left out for the file's size limit" if plan.lessons_dropped else ""
        click.echo(f"  {plan.target.agent}: {plan.target.path} ({state}; {_lessons(plan.lessons_written)}{extra})")
        if plan.changed and plan not in run.written:
            click.echo(printable(plan.diff()), nl=False)
    if not do_apply and any(p.changed for p in run.plans):
        click.echo("(dry run: `headroom learn --apply` writes these)")


@learn_group.command("report")
@click.option("--project", "-p", help="A project folder (default: every project).")
@json_option
@pass_app
def learn_report(app: App, project: str | None, as_json: bool) -> None:
    """Every lesson with its evidence, status, and the failure's recurrence before and after it was written."""
    from rich.markup import escape
    from rich.table import Table

    from headroom.learn.lessons import report

    rows = report(app.db, _project(project) if project else None)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no lessons yet (headroom learn mines them)")
        return
    table = Table("status", "lesson", "project", "sessions", "before", "after", box=None)
    for r in rows:
        status = r["status"] + (f" ({r['retired_reason']})" if r["retired_reason"] else "")
        table.add_row(
            status,
            escape(printable(r["text"])),
            escape(project_name(r["project"])),
            str(r["sessions"]),
            r["before"] or "-",
            r["after"] or "-",
        )
    console().print(table)
    click.echo("before/after: sessions showing the failure / sessions of the project, around when it was written")


@learn_group.command("undo")
@click.argument("entry", required=False)
@pass_app
def learn_undo(app: App, entry: str | None) -> None:
    """Take back the last `learn --apply` (every file it wrote), or the run of the journal ENTRY given.

    The user's own later edits of a file are kept; the lessons that run wrote show as undone in `learn report`.
    """
    from headroom.daemon.learn_service import journal_for
    from headroom.learn.lessons import mark_undone

    changed, keys = journal_for(app.config).undo_run(entry)
    if keys:
        mark_undone(app.db, keys)
    if not changed and not keys:
        click.echo("nothing to undo")
        return
    for path in changed:
        click.echo(f"restored {path}")
    click.echo(f"{len(keys)} lesson(s) marked undone")


@learn_group.command("review")
@click.option("--project", "-p", help="A project folder (default: every project).")
@click.option("--accept", "accept_key", metavar="KEY", help="Accept this proposal (a key's first characters).")
@click.option("--reject", "reject_key", metavar="KEY", help="Reject this proposal (a key's first characters).")
@click.option("--all", "show_all", is_flag=True, help="Also list the proposals already accepted or rejected.")
@json_option
@pass_app
def learn_review(
    app: App, project: str | None, accept_key: str | None, reject_key: str | None, show_all: bool, as_json: bool
) -> None:
    """Team proposals: lessons two or more developers' machines learned, for the repository's shared files.

    Only an accepted proposal is written to the shared files (CLAUDE.md, AGENTS.md, GEMINI.md), at once when the
    project is on this machine and by each later `learn --apply` otherwise; personal files need no review.
    """
    from headroom.learn import team

    if accept_key and reject_key:
        raise click.ClickException("give --accept or --reject, not both")
    key = accept_key or reject_key
    if key:
        try:
            row = team.decide(app.db, team.find(app.db, key).key, accept=bool(accept_key))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        written = _write_accepted(app, row.project) if accept_key else []
        if as_json:
            emit_json({"key": row.key, "team_status": row.team_status, "written": written})
            return
        click.echo(f"{row.team_status}: {printable(row.text)}")
        for path in written:
            click.echo(f"wrote {path}")
        return
    statuses = (team.PENDING, team.ACCEPTED, team.REJECTED) if show_all else (team.PENDING,)
    found = team.proposals(app.db, _project(project) if project else None, statuses=statuses)
    if as_json:
        emit_json([p.as_dict() for p in found])
        return
    if not found:
        click.echo("no team proposals (a lesson becomes one when two developers' machines learned it)")
        return
    for p in found:
        click.echo(f"{p.key[:10]}  [{p.status}]  {printable(p.text)}")
        click.echo(
            f"    {project_name(p.project)}: seen by {', '.join(p.users)}; {p.sessions} sessions, {p.count} times"
        )
        for e in p.evidence[:3]:
            what = printable(str(e.get("command") or ""))[:60]
            error = printable(str(e.get("error") or ""))[:80]
            click.echo(f"    - {e.get('agent') or '?'}: {what} -> {error}")
    click.echo("accept with `headroom learn review --accept KEY`, reject with `--reject KEY`")


def _write_accepted(app: App, project: str) -> list[str]:
    """Write the project's shared files now when its folder is on this machine (personal files are left alone)."""
    from pathlib import Path

    from headroom.daemon.learn_service import journal_for, user_homes
    from headroom.learn.apply import run_learn
    from headroom.learn.projects import identities

    here = _project(None)  # the lesson's repository may be checked out here under another path
    folder = project if project and Path(project).is_dir() else here if project in identities(here) else ""
    if not folder or not Path(folder).is_dir():
        return []
    run = run_learn(
        app.db,
        folder,
        journal=journal_for(app.config),
        apply_shared=True,
        claude_file=app.config.learn.claude_file,
        user_homes=user_homes(app.config),
    )
    return [str(plan.target.path) for plan in run.written]


def register(cli: click.Group) -> None:
    cli.add_command(learn_group)


def _lessons(count: int) -> str:
    return f"{count} lesson" if count == 1 else f"{count} lessons"
