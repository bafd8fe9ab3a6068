"""Project identity: one project whatever the spelling, worktree or Gemini hash; summaries tell projects apart.

``tests/fixtures/projects-windows`` mirrors a Windows machine seen in real logs (made-up names): Claude
Code sessions in ``C:\\Users\\dev\\Documents\\VAULT``, ``c:\\Users\\dev\\Documents\\VAULT`` and the worktree
``…\\VAULT\\.claude\\worktrees\\calm-otter``; a Gemini slug folder whose ``.project_root`` is the
lower-cased root; and a legacy Gemini folder named by the sha256 of ``c:\\Users\\dev\\Documents\\VAULT``,
which no Gemini file names: only Claude's logs know that root.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from headroom.daemon.cli import cli
from headroom.daemon.ingest import Ingestor, LogFile
from headroom.learn.projects import (
    HASH_PREFIX,
    display_names,
    fold_worktree,
    hash_candidates,
    preferred,
    project_key,
    project_root,
    sha256_of,
)
from headroom.memory.db import Database
from headroom.memory.models import SessionRow
from tests.helpers import point_agents_at

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "projects-windows"
VAULT = "C:\\Users\\dev\\Documents\\VAULT"


def test_windows_spellings_share_a_key_and_the_choice_does_not_depend_on_order() -> None:
    spellings = [
        VAULT,
        "c:\\Users\\dev\\Documents\\VAULT",
        "c:\\users\\dev\\documents\\vault",
        "C:/Users/dev/Documents/VAULT/",
    ]
    assert len({project_key(s) for s in spellings}) == 1
    assert preferred(spellings) == preferred(reversed(spellings)) == VAULT
    assert project_key("/home/dev/Vault") != project_key("/home/dev/vault")  # POSIX paths stay case-sensitive


def test_claude_worktrees_fold_into_their_repository() -> None:
    assert fold_worktree(VAULT + "\\.claude\\worktrees\\calm-otter") == VAULT
    assert fold_worktree("/home/dev/app/.claude/worktrees/x/src") == "/home/dev/app"
    assert fold_worktree("/home/dev/app/worktrees/x") == "/home/dev/app/worktrees/x"


def test_a_git_worktree_on_this_machine_belongs_to_its_repository(tmp_path: Path) -> None:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {"GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for args in (
        ["init", "-q"],
        ["-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "x"],
    ):
        subprocess.run([git, *args], cwd=repo, env=env, check=True, capture_output=True)
    subprocess.run(
        [git, "worktree", "add", "-q", str(tmp_path / "wt")], cwd=repo, env=env, check=True, capture_output=True
    )
    (tmp_path / "wt" / "src").mkdir()
    assert project_root(str(tmp_path / "wt" / "src")) == str(repo)
    assert project_root(str(repo)) == str(repo)


def test_hash_candidates_cover_the_casings_gemini_saw() -> None:
    digest = sha256_of("c:\\Users\\dev\\Documents\\VAULT")
    assert digest in {sha256_of(s) for s in hash_candidates(VAULT)}


def test_display_names_are_the_shortest_unique_suffix() -> None:
    paths = ["/tmp/a/src/calc", "/tmp/b/src/calc", "/home/x/shop", None, "C:\\w\\calc2", HASH_PREFIX + "ab" * 32]
    names = display_names(paths)
    assert names["/tmp/a/src/calc"] == "a/src/calc" and names["/tmp/b/src/calc"] == "b/src/calc"
    assert names["/home/x/shop"] == "shop" and names["C:\\w\\calc2"] == "calc2"
    assert names[HASH_PREFIX + "ab" * 32] == "(unresolved abababab)"
    assert len(set(names.values())) == len(names)


def _ingest(db: Database, tmp_path: Path, first: str) -> None:
    claude = shutil.copytree(FIXTURE / "claude", tmp_path / "claude")
    gemini = shutil.copytree(FIXTURE / "gemini" / "tmp", tmp_path / "gemini-tmp")
    ingestor = Ingestor(db, {"claude": [claude / "projects"], "gemini": [gemini]})
    order = ["gemini", "claude"] if first == "gemini" else ["claude", "gemini"]
    for agent in order:
        root = claude / "projects" if agent == "claude" else gemini
        for path in sorted(ingestor.readers[agent].discover(root)):
            ingestor.ingest_file(LogFile(agent, root, path))
        ingestor.refresh()


@pytest.mark.parametrize("first", ["gemini", "claude"])
def test_one_windows_project_across_agents_spellings_worktrees_and_hashes(
    db: Database, tmp_path: Path, first: str
) -> None:
    _ingest(db, tmp_path, first)
    with db.sessions() as dbs:
        roots = {s.key: s.project_root for s in dbs.execute(select(SessionRow)).scalars()}
    assert len(roots) == 5
    assert set(roots.values()) == {VAULT}


def test_summaries_show_one_row_for_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    claude = shutil.copytree(FIXTURE / "claude", tmp_path / "claude")
    point_agents_at(monkeypatch, tmp_path, claude, tmp_path / "no-codex", FIXTURE / "gemini" / "tmp")
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest"], catch_exceptions=False).exit_code == 0
    result = runner.invoke(cli, ["stats", "--by", "project", "--json"], catch_exceptions=False)
    rows = json.loads(result.stdout)
    assert [(r["project"], r["name"], r["sessions"]) for r in rows] == [(VAULT, "VAULT", 5)]
    table = runner.invoke(cli, ["stats", "--by", "project"], catch_exceptions=False).output
    assert "VAULT" in table
