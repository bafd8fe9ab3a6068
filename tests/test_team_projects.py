"""Projects by repository (issue 17): one repository checked out at different paths is one project in stats and
learn, named by its normalized git remote; each checkout keeps its own folder."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from headroom.daemon.cli import cli
from headroom.daemon.config import load_config
from headroom.learn.mining import mine_db
from headroom.learn.projects import normalize_remote, repository_of
from headroom.memory.db import open_database
from tests.helpers import claude_record


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("git@github.com:acme/shop.git", "github.com/acme/shop"),
        ("https://me:token@GitHub.com/acme/shop", "github.com/acme/shop"),
        ("ssh://git@github.com:22/acme/shop.git/", "github.com/acme/shop"),
        ("https://gitlab.example.org/group/sub/shop.git", "gitlab.example.org/group/sub/shop"),
        ("/srv/git/shop.git", "/srv/git/shop"),
        ("", None),
    ],
)
def test_remote_urls_normalize_to_one_name(url: str, name: str | None) -> None:
    assert normalize_remote(url) == name


def checkout(where: Path, remote: str | None) -> Path:
    """A real git repository at ``where`` (``git init``, ``git remote add origin``)."""
    where.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(where)], check=True)
    if remote:
        subprocess.run(["git", "-C", str(where), "remote", "add", "origin", remote], check=True)
    return where


def session_in(claude_root: Path, cwd: Path) -> None:
    """A Claude session in ``cwd``: `npm test` fails for a missing script, `make test` then works."""
    sid = str(uuid.uuid4())
    records = [
        claude_record("prompt", 0, text="run the tests"),
        claude_record("tool_use", 1, command="npm test"),
        claude_record("tool_result", 2, call=1, error=True, output='npm error Missing script: "test"'),
        claude_record("tool_use", 3, command="make test"),
        claude_record("tool_result", 4, call=3, output="OK"),
        claude_record("text", 5, text="tests pass"),
    ]
    folder = claude_root / str(cwd).replace("/", "-")
    folder.mkdir(parents=True, exist_ok=True)
    # Tool call ids of its own: sessions sharing a failing call would be one replayed history to learn.
    lines = [
        json.dumps({**r, "cwd": str(cwd), "sessionId": sid}).replace("toolu_", f"toolu_{sid[:8]}_") + "\n"
        for r in records
    ]
    (folder / f"{sid}.jsonl").write_text("".join(lines))


def test_two_checkouts_of_one_repository_are_one_project(claude_root: Path, tmp_path: Path) -> None:
    first = checkout(tmp_path / "laptop" / "src" / "shop", "git@github.com:acme/shop.git")
    second = checkout(tmp_path / "desk" / "work" / "shop-main", "https://github.com/acme/shop")
    alone = checkout(tmp_path / "scratch", None)  # no remote: the folder stays the project
    assert repository_of(str(first)) == repository_of(str(second)) == "git:github.com/acme/shop"
    assert repository_of(str(alone)) is None
    session_in(claude_root, first)
    session_in(claude_root, second)
    session_in(claude_root, alone)

    result = CliRunner().invoke(cli, ["stats", "--by", "project", "--json", "--refresh"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = {row["project"]: row for row in json.loads(result.output[result.output.index("[") :])}
    assert set(rows) == {"git:github.com/acme/shop", str(alone)}
    assert rows["git:github.com/acme/shop"]["sessions"] == 2
    assert rows["git:github.com/acme/shop"]["name"] == "github.com/acme/shop"
    result = CliRunner().invoke(cli, ["stats", "--by", "project", "--json", "--project", "acme/shop"])
    assert [row["project"] for row in json.loads(result.output)] == ["git:github.com/acme/shop"]

    db = open_database(load_config().database_url)
    try:
        with db.sessions() as s:
            from sqlalchemy import text

            roots = dict(s.execute(text("SELECT project_root, repository FROM sessions")).all())
        assert roots[str(first)] == roots[str(second)] == "git:github.com/acme/shop"  # each keeps its folder
        # One session per checkout: together two sessions, so the repository has its lesson (one, not two).
        for here in (first, second):
            drafts = [d for d in mine_db(db, project=str(here)) if d.signature == "npm-missing-script:test"]
            assert len(drafts) == 1 and drafts[0].sessions == 2 and drafts[0].project == "git:github.com/acme/shop"
        assert not [d for d in mine_db(db, project=str(alone)) if d.signature == "npm-missing-script:test"]
    finally:
        db.close()


def test_every_project_keeps_its_own_lessons_windows_paths_included(
    shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Learning one project returns every lesson mined for it. A Windows project (``C:\\Users\\…``) once lost
    all of them: its name went through two different key functions (learn's and the repository identities')."""
    from sqlalchemy import select

    from headroom.learn.failures import observe, project_key
    from headroom.learn.mining import mine
    from headroom.learn.projects import is_windows
    from headroom.memory.models import SessionRow
    from tests.helpers import point_agents_at

    more = shared / "fixtures" / "sessions-more"
    point_agents_at(monkeypatch, tmp_path, more / ".claude", more / ".codex", more / ".gemini" / "tmp")
    result = CliRunner().invoke(cli, ["ingest"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    db = open_database(load_config().database_url)
    try:
        seen = observe(db)
        everything = [d for d in mine(seen.failures, observations=seen) if d.scope == "project"]
        with db.sessions() as s:
            projects = {p for p in s.execute(select(SessionRow.project_root).distinct()).scalars() if p}
        checked_windows = 0
        for project in projects:
            own = {d.key for d in everything if project_key(d.project) == project_key(project)}
            learned = {d.key for d in mine_db(db, project=project, observations=seen)}
            assert own <= learned, project
            checked_windows += bool(own) and is_windows(project)
        assert checked_windows  # the corpus has a Windows project with lessons: the check above can fail
    finally:
        db.close()
