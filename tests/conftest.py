"""Shared fixtures: every test runs with its own HEADROOM_HOME and no inherited agent locations."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers import copy_tree, point_agents_at
from tests.leaks import no_leaks  # noqa: F401  (autouse: a test that leaks a thread or an fd fails)
from tests.pg import pg_db, pg_head_url, pg_server, pg_team, pg_template, pg_url  # noqa: F401  (PostgreSQL fixtures)

if TYPE_CHECKING:
    from headroom.daemon.service import Service
    from headroom.memory.db import Database

REPO = Path(__file__).resolve().parent.parent
OWN_FIXTURES = Path(__file__).resolve().parent / "fixtures"

_AGENT_ENV = ("CLAUDE_CONFIG_DIR", "CODEX_HOME", "GEMINI_CLI_HOME", "GEMINI_DIR")


def _shared_dir() -> Path | None:
    explicit = os.environ.get("HEADROOM_SHARED")
    candidate = Path(explicit) if explicit else REPO.parent / "shared"
    return candidate if (candidate / "fixtures").is_dir() else None


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point every headroom path and every agent root at a fresh tmp dir."""
    home = tmp_path / "headroom-home"
    monkeypatch.setenv("HEADROOM_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    for name in _AGENT_ENV:
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("HEADROOM_") and name not in (
            "HEADROOM_HOME",
            "HEADROOM_SHARED",
            "HEADROOM_CCUSAGE",
        ):
            monkeypatch.delenv(name, raising=False)
    # A daemon started by a test runs its proxy on a free port, never on the user's 8787.
    monkeypatch.setenv("HEADROOM_PROXY_PORT", "0")
    # Daemons and CLI commands in tests search full-text unless a test asks for the real model (slow tests).
    monkeypatch.setenv("HEADROOM_EMBEDDINGS", "off")
    # Days, blocks and times default to the local zone (ccusage's convention): tests name theirs explicitly.
    monkeypatch.setenv("TZ", "UTC")
    from headroom.memory import identity

    identity.reset()  # the identity (and its machine-id file) is this test's home's
    yield home
    identity.reset()


#: The backends a ``both_backends`` test runs on. The PostgreSQL leg is marked ``pg`` and ``slow``: the fast
#: suite (``-m "not slow"``) stays SQLite-only, CI's full run covers both.
BACKENDS = ("sqlite", pytest.param("postgresql", marks=[pytest.mark.pg, pytest.mark.slow]))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test marked ``both_backends`` (a module's ``pytestmark`` or one test) once per backend.

    A test about SQLite itself (its file, FTS5, its lock) in such a module is marked ``sqlite_only``."""
    node = metafunc.definition
    if (
        "backend" in metafunc.fixturenames
        and node.get_closest_marker("both_backends")
        and not node.get_closest_marker("sqlite_only")
    ):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend of this test: "sqlite" unless the test is marked ``both_backends``."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def database_url(isolated_home: Path, backend: str, request: pytest.FixtureRequest) -> str:
    """Where this test's CLI, daemon and ``db`` open the database.

    SQLite: the isolated home's file. PostgreSQL (a ``both_backends`` test's second run): a fresh database of
    the test server at the newest schema, which ``HEADROOM_DATABASE_URL`` points at, so the CLI and a daemon
    the test starts use it too. A module whose tests open the database themselves requests this fixture.
    """
    from headroom.daemon.config import load_config

    if backend == "postgresql":
        url = str(request.getfixturevalue("pg_head_url"))
        request.getfixturevalue("monkeypatch").setenv("HEADROOM_DATABASE_URL", url)
        return url
    return load_config().database_url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """The database where the CLI and the daemon open it (:func:`database_url`), upgraded; closed after the test.

    The one ``db`` fixture: a module needing a database with data builds on it (``def db(db): ...``)."""
    from headroom.daemon.config import load_config
    from headroom.memory.db import open_database

    config = load_config()
    config.paths.ensure()
    database = open_database(database_url)
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def shared() -> Path:
    """../shared (or $HEADROOM_SHARED): the real fixtures. Skips with a reason when it is absent."""
    path = _shared_dir()
    if path is None:
        pytest.skip("../shared/fixtures is absent (set HEADROOM_SHARED); CI always has it")
    return path


@pytest.fixture
def real_logs(shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real public session logs of all three agents."""
    base = shared / "fixtures" / "sessions"
    point_agents_at(monkeypatch, tmp_path, base / "claude", base / "codex", base / "gemini" / "tmp")
    return base


@pytest.fixture
def generated_logs(shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The logs the real CLIs wrote offline, each agent's scenarios merged into one root."""
    out = tmp_path / "generated"
    gen = shared / "fixtures" / "generated"
    for agent, sub in (("claude", "claude/projects"), ("codex", "codex/sessions"), ("gemini", "gemini/tmp")):
        for scenario in sorted((gen / agent).iterdir()):
            copy_tree(scenario, out / sub)
    point_agents_at(monkeypatch, tmp_path, out / "claude", out / "codex", out / "gemini" / "tmp")
    return out


@pytest.fixture
def claude_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "claude-home"
    (home / "projects").mkdir(parents=True)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home))
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "no-codex"))
    monkeypatch.setenv("GEMINI_CLI_HOME", str(tmp_path / "no-gemini"))
    return home / "projects"


@pytest.fixture
def running_service(claude_root: Path) -> Iterator[Service]:
    """A daemon (``Service``) running on a thread over ``claude_root``; stopped and checked afterwards."""
    import threading

    from headroom.daemon.config import load_config
    from headroom.daemon.service import Service

    config = load_config()
    config.watcher.debounce_ms = 50
    service = Service(config)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    yield service
    service.request_stop()
    thread.join(10)
    assert not thread.is_alive(), "the service did not stop within 10 s"
