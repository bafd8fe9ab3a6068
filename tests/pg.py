"""A real PostgreSQL 16 with pgvector for the team tests, from the ``pgserver`` package (bundled binaries).

One server per test session (it starts in under a second); every test gets a database of its own, dropped after
it, so tests never see each other's rows. Tests using these fixtures are marked ``pg`` and ``slow``.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from click.testing import Result

    from headroom.memory.db import Database


class PgServer:
    """The running server: a superuser URL per database and a ``psql`` escape hatch for set-up SQL."""

    def __init__(self, server: Any) -> None:
        self._server = server
        parts = urlsplit(server.get_uri())
        self.socket_dir = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)["host"]

    def url(self, database: str, user: str = "postgres", password: str = "") -> str:
        """A SQLAlchemy URL (psycopg 3 driver) for ``database`` over the server's Unix socket."""
        auth = f"{user}:{password}" if password else user
        return f"postgresql+psycopg://{auth}@/{database}?host={self.socket_dir}"

    def psql(self, sql: str) -> str:
        return str(self._server.psql(sql))

    def create_database(self) -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        self.psql(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def clone_database(self, template: str) -> str:
        """A new database copied from ``template`` (a file-level copy: no migrations to run)."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.psql(f"CREATE DATABASE {name} TEMPLATE {template}")
        return name


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """Start the bundled PostgreSQL once per session (stopped at the end)."""
    # platformdirs warns when XDG_RUNTIME_DIR is unset, and warnings are errors here.
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="xdg-"))
    import pgserver

    data = Path(tempfile.mkdtemp(prefix="headroom-pg-"))
    server = pgserver.get_server(data, cleanup_mode="stop")
    try:
        yield PgServer(server)
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def pg_template(pg_server: PgServer) -> str:
    """A database upgraded to the newest schema once per session, for :func:`pg_head_url` to copy.

    Creating a database and running every migration costs about a second per test; ``CREATE DATABASE ...
    TEMPLATE`` copies the upgraded one in a fraction of that. Nothing connects to it after the upgrade (a
    template with a connection cannot be copied).
    """
    from headroom.memory.db import open_database

    name = pg_server.create_database()
    open_database(pg_server.url(name), shared_upgrade=True).close()
    return name


@pytest.fixture
def pg_head_url(pg_server: PgServer, pg_template: str) -> Iterator[str]:
    """A fresh database already at the newest schema (a copy of the template), dropped after the test."""
    name = pg_server.clone_database(pg_template)
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database on the session's server (dropped after the test): its SQLAlchemy URL."""
    name = pg_server.create_database()
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[Database]:
    """``pg_url`` opened and upgraded to the newest schema, as the daemon opens it; closed after the test."""
    from headroom.memory.db import open_database

    database = open_database(pg_url)
    try:
        yield database
    finally:
        database.close()


def act_as(monkeypatch: pytest.MonkeyPatch, user: str, url: str) -> None:
    """Make the next CLI command in this test run as ``user`` (on ``user``-laptop) against ``url``."""
    from headroom.memory import identity

    monkeypatch.setenv("HEADROOM_USER", user)
    monkeypatch.setenv("HEADROOM_MACHINE", f"{user}-laptop")
    monkeypatch.setenv("HEADROOM_DATABASE_URL", url)
    identity.reset()


def run_ok(*args: str) -> Result:
    """``headroom ARGS`` in this process; fails the test on a non-zero exit, with the output."""
    from click.testing import CliRunner

    from headroom.daemon.cli import cli

    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def pg_team(
    pg_server: PgServer, pg_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """A team database: the owner's URL and a role each for alice and bob (made by `headroom team add-user`),
    the agents pointed at empty folders so no command reads a real log."""
    import json

    from headroom.memory import identity
    from tests.helpers import point_agents_at

    monkeypatch.setenv("HEADROOM_HOME", str(tmp_path / "hh"))
    empty = tmp_path / "none"
    point_agents_at(monkeypatch, tmp_path, empty / "claude", empty / "codex", empty / "gemini")
    act_as(monkeypatch, "admin", pg_db.url)
    name = urlsplit(pg_db.url).path.lstrip("/")
    for user in ("alice", "bob"):
        run_ok("team", "add-user", user)
    users = json.loads(run_ok("team", "users", "--json").output)
    assert [u["user"] for u in users] == ["alice", "bob"]
    yield {"owner": pg_db.url, "alice": pg_server.url(name, "alice"), "bob": pg_server.url(name, "bob")}
    identity.reset()
