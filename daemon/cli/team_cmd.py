"""``headroom team``: the members of a shared PostgreSQL database, one login role per developer.

Run by whoever administers the database (connected as the owner of the tables, who ran ``headroom db
upgrade``). Each developer's daemon then connects as their own role: row-level security
(:mod:`headroom.memory.rls`) keeps their prompts, transcripts and tool outputs theirs alone.
"""

from __future__ import annotations

import sys

import click

from headroom.daemon.cli.common import App, emit_json, json_option, pass_app


@click.group("team")
def team_group() -> None:
    """Developers sharing one PostgreSQL database (roles and row-level security)."""


def _require_postgres(app: App) -> None:
    if app.db.engine.dialect.name != "postgresql":
        raise click.ClickException(
            "team roles need a shared PostgreSQL database (set database_url); SQLite is one person's"
        )


@team_group.command("add-user")
@click.argument("user")
@click.option("--role", help="The login role's name (default: the user id).")
@click.option("--password-stdin", is_flag=True, help="Read the role's password from standard input (one line).")
@json_option
@pass_app
def team_add_user(app: App, user: str, role: str | None, password_stdin: bool, as_json: bool) -> None:
    """Create a login role for USER (their [team] user id) that sees only their own rows and the team's."""
    from sqlalchemy.exc import DBAPIError

    from headroom.memory import rls

    _require_postgres(app)
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    if password_stdin and not password:
        raise click.ClickException("no password on standard input")
    try:
        with app.db.engine.begin() as conn:
            made = rls.add_user(conn, user, role=role, password=password)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    except DBAPIError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise click.ClickException(f"cannot create the role (connect as the database owner): {first}") from exc
    if as_json:
        emit_json({"user": user, "role": made})
        return
    click.echo(f"role {made} for user {user}: it reads its own rows and the team's, never another user's")
    click.echo(f"their config: database_url = postgresql+psycopg://{made}@HOST/DBNAME, and [team] user = {user!r}")


@team_group.command("users")
@json_option
@pass_app
def team_users(app: App, as_json: bool) -> None:
    """The roles of a shared database and the user id each one's rows carry."""
    from sqlalchemy import text

    _require_postgres(app)
    with app.db.engine.connect() as conn:
        rows = conn.execute(text("SELECT role, user_id, created_at FROM team_members ORDER BY user_id")).all()
    if as_json:
        emit_json([{"role": r, "user": u, "created_at": c.isoformat()} for r, u, c in rows])
        return
    if not rows:
        click.echo("no team members yet (headroom team add-user NAME)")
    for role, user, created in rows:
        click.echo(f"{user}\trole {role}\tsince {created:%Y-%m-%d}")


@team_group.command("adopt")
@click.argument("user")
@click.option("--machine", required=True, help="The machine id of the daemon that wrote them ([team] machine).")
@click.option("--dry-run", is_flag=True, help="Count the rows, change nothing.")
@json_option
@pass_app
def team_adopt(app: App, user: str, machine: str, dry_run: bool, as_json: bool) -> None:
    """Give the rows written before team identities (revision 0008 left them to nobody) to USER on MACHINE.

    Until then no member's role can read them, and that member's daemon reads the same logs again beside them.
    Run as the database owner, once, for the one developer whose daemon used the database alone before.
    """
    from headroom.daemon.learn_service import IDLE_CURSOR
    from headroom.daemon.memory_feed import MACHINE_CURSORS
    from headroom.memory.adopt import adopt

    _require_postgres(app)
    with app.db.engine.begin() as conn:
        counts = adopt(conn, user, machine, cursors=(*MACHINE_CURSORS, IDLE_CURSOR), dry_run=dry_run)
    if as_json:
        emit_json({"user": user, "machine": machine, "dry_run": dry_run, "rows": counts})
        return
    total = sum(n for table, n in counts.items() if "." not in table)
    verb = "would give" if dry_run else "gave"
    click.echo(f"{verb} {total} unowned row(s) to {user} on {machine}")
    for table, n in counts.items():
        if n:
            click.echo(f"  {table}: {n}")
    if counts.get("source_files.kept"):
        click.echo("  (source_files.kept: files this machine already follows under its own row stay unowned)")


def register(cli: click.Group) -> None:
    cli.add_command(team_group)
