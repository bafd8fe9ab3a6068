"""``headroom db``: the schema of the configured database, upgraded on purpose, and what a client sees of it.

A shared PostgreSQL database is never upgraded by a developer's daemon or CLI on connect (one old client must
not migrate the team's schema under everyone else): whoever administers it runs ``headroom db upgrade`` once per
release. ``headroom db status`` says where the schema stands against this client, how big the database is, who
this machine writes as and how many connections it uses.
"""

from __future__ import annotations

from typing import Any

import click

from headroom.daemon.cli.common import App, emit_json, json_option, pass_app

PASSWORD_WARNING = (
    "database_url holds a password: config.toml is a plain file, put it in ~/.pgpass (mode 0600) or a "
    "PGSERVICE entry instead and drop it from the URL"
)


@click.group("db")
def db_group() -> None:
    """The configured database's schema: upgrade it (a team's admin), see its status."""


@db_group.command("upgrade")
@json_option
@pass_app
def db_upgrade(app: App, as_json: bool) -> None:
    """Upgrade the configured database to this headroom's newest schema (once per release, by its admin)."""
    from sqlalchemy.exc import DBAPIError

    from headroom.memory.db import open_database

    url = app.config.database_url
    app.config.paths.ensure()
    before = _revision_before(url)
    try:
        db = open_database(url, shared_upgrade=True)
    except DBAPIError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise click.ClickException(f"cannot upgrade the schema (connect as the database owner): {first}") from exc
    try:
        after = db.revision()
    finally:
        db.close()
    if as_json:
        emit_json({"before": before, "after": after, "upgraded": before != after})
        return
    if before == after:
        click.echo(f"the database is at revision {after} already: nothing to do")
    else:
        click.echo(f"upgraded the database from revision {before or 'none'} to {after}")


def _revision_before(url: str) -> str | None:
    """The revision before the upgrade, read without upgrading or checking anything (None: empty or unreadable)."""
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.exc import SQLAlchemyError

    from headroom.memory.db import sqlite_path

    path = sqlite_path(url)
    if path is not None and not path.exists():
        return None
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            return str(value) if value else None
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()


@db_group.command("status")
@json_option
@pass_app
def db_status(app: App, as_json: bool) -> None:
    """Backend, schema revision against this client's, size, this user and machine, connection pool."""
    status = collect_status(app)
    if as_json:
        emit_json(status)
        return
    click.echo(f"backend      {status['backend']}  {status['url']}")
    click.echo(
        f"revision     {status['revision'] or 'none'} (this headroom: {status['client_revision']}) — {status['state']}"
    )
    if status["min_client_revision"]:
        click.echo(f"min client   {status['min_client_revision']}")
    size = status["size_bytes"]
    click.echo(f"size         {'unknown' if size is None else _human(size)}")
    click.echo(f"identity     user {status['user']}, machine {status['machine']}")
    pool = status["pool"]
    if pool:
        click.echo(
            f"connections  {pool['pool_size']} kept open, at most {pool['pool_size'] + pool['max_overflow']} "
            f"per process (pre-ping, recycled after {pool['pool_recycle']} s)"
        )
    for warning in status["warnings"]:
        click.echo(f"warning: {warning}", err=True)


def collect_status(app: App) -> dict[str, Any]:
    """What ``db status`` shows, as a dict (``--json``). A schema behind or ahead is reported, not an error."""
    from sqlalchemy.engine import make_url

    from headroom.memory import identity
    from headroom.memory.db import (
        database_size,
        is_ahead,
        min_client_revision,
        open_database,
        password_in_url,
        pool_settings,
    )
    from headroom.memory.errors import DatabaseTooNew
    from headroom.migrations import HEAD

    url = app.config.database_url
    backend = make_url(url).get_backend_name()
    me = identity.current()
    status: dict[str, Any] = {
        "backend": backend,
        "url": make_url(url).render_as_string(hide_password=True),
        "client_revision": HEAD,
        "revision": None,
        "min_client_revision": None,
        "state": "empty",
        "size_bytes": None,
        "user": me.user,
        "machine": me.machine,
        "pool": pool_settings() if backend == "postgresql" else None,
        "warnings": [PASSWORD_WARNING] if password_in_url(url) else [],
    }
    app.config.paths.ensure()
    try:
        db = open_database(url, upgrade=False)
    except DatabaseTooNew as exc:
        status.update(revision=exc.revision, min_client_revision=exc.min_client, state="too new for this client")
        return status
    try:
        current = db.revision()
        status["revision"] = current
        status["min_client_revision"] = min_client_revision(db) if backend == "postgresql" else None
        status["size_bytes"] = database_size(db)
    finally:
        db.close()
    if current is None:
        status["state"] = "empty"
    elif current == HEAD:
        status["state"] = "current"
    elif is_ahead(current):
        status["state"] = "ahead, within the compatibility window"
    else:
        status["state"] = "behind: run `headroom db upgrade`"
    return status


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def register(cli: click.Group) -> None:
    cli.add_command(db_group)
