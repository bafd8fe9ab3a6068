"""The scripted case of issue 15, end to end through real logs, real ingestion and the real CLI.

Project ``shop``: a Claude session (day 1) and a Codex session (day 2) each run ``python -m pytest`` (exit 127,
``python: command not found``) then ``python3 -m unittest`` (ok), and ``npm test`` (exit 1, ``Missing script:
"test"``) then ``make test`` (ok). Project ``notes``: a Gemini session with a one-off ``gti status`` typo. Exactly
two lessons, each with its fix; nothing for the typo; nothing in the other project; the machine fact in the
user-level files (``~/.claude/CLAUDE.md``, ``~/.codex/AGENTS.md``, ``~/.gemini/GEMINI.md``); every byte outside
headroom's block unchanged; one ``learn undo`` restores every file.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from headroom.daemon.cli import cli
from headroom.learn.writers import BEGIN, END

USER_CLAUDE = b"# My rules\r\n\r\n- Answer briefly.\r\n"  # CRLF, as a Windows editor leaves it
USER_AGENTS = b"# Shop\n\nRun `make lint` before committing.\n"


def _jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


STEPS = [  # (command, exit code, output)
    ("python -m pytest", 127, "/bin/bash: line 1: python: command not found"),
    (
        "python3 -m unittest",
        0,
        "....\n----------------------------------------------------------------------\nRan 4 tests in 0.002s\n\nOK",
    ),
    (
        "npm test",
        1,
        'npm error Missing script: "test"\nnpm error\nnpm error To see a list of scripts, run:\nnpm error   npm run',
    ),
    ("make test", 0, "python3 -m unittest\nRan 4 tests in 0.002s\nOK"),
]


def claude_session(home: Path, project: Path, session: str, day: str) -> None:
    """A Claude Code log: user prompt, then Bash tool_use / tool_result pairs (errors as ``Exit code N``)."""
    base = {
        "cwd": str(project),
        "sessionId": session,
        "version": "2.1.197",
        "gitBranch": "main",
        "userType": "external",
    }
    records: list[dict[str, Any]] = [
        {
            **base,
            "type": "user",
            "uuid": f"{session}-u0",
            "parentUuid": None,
            "isSidechain": False,
            "timestamp": f"{day}T09:00:00.000Z",
            "message": {"role": "user", "content": "Run the tests and fix what fails."},
        }
    ]
    for i, (command, code, output) in enumerate(STEPS):
        tool_id = f"toolu_{session[:8]}{i:04d}"
        records.append(
            {
                **base,
                "type": "assistant",
                "uuid": f"{session}-a{i}",
                "parentUuid": f"{session}-u{i}",
                "isSidechain": False,
                "timestamp": f"{day}T09:00:{10 + 2 * i:02d}.000Z",
                "requestId": f"req_{session[:8]}{i}",
                "message": {
                    "id": f"msg_{session[:8]}{i}",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-opus-4-8",
                    "content": [{"type": "tool_use", "id": tool_id, "name": "Bash", "input": {"command": command}}],
                    "usage": {"input_tokens": 100, "output_tokens": 20},
                },
            }
        )
        content = f"Exit code {code}\n{output}" if code else output
        records.append(
            {
                **base,
                "type": "user",
                "uuid": f"{session}-u{i + 1}",
                "parentUuid": f"{session}-a{i}",
                "isSidechain": False,
                "timestamp": f"{day}T09:00:{11 + 2 * i:02d}.000Z",
                "message": {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": tool_id, "content": content, "is_error": bool(code)}
                    ],
                },
                "toolUseResult": f"Error: {content}"
                if code
                else {"stdout": output, "stderr": "", "interrupted": False},
            }
        )
    folder = "-" + str(project).strip("/").replace("/", "-")
    _jsonl(home / "projects" / folder / f"{session}.jsonl", records)


def codex_session(home: Path, project: Path, session: str, day: str) -> None:
    """A Codex rollout: session_meta, then shell_command function calls and their ``Exit code: N`` outputs."""
    y, m, d = day.split("-")
    records: list[dict[str, Any]] = [
        {
            "timestamp": f"{day}T10:00:00.000Z",
            "type": "session_meta",
            "payload": {
                "id": session,
                "timestamp": f"{day}T10:00:00.000Z",
                "cwd": str(project),
                "cli_version": "0.122.0",
            },
        },
        {
            "timestamp": f"{day}T10:00:01.000Z",
            "type": "response_item",
            "payload": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Run the tests and fix what fails."}],
            },
        },
    ]
    for i, (command, code, output) in enumerate(STEPS):
        call = f"call_{i}"
        records.append(
            {
                "timestamp": f"{day}T10:00:{10 + 2 * i:02d}.000Z",
                "type": "response_item",
                "payload": {
                    "type": "function_call",
                    "name": "shell_command",
                    "arguments": json.dumps({"command": command, "workdir": str(project)}),
                    "call_id": call,
                },
            }
        )
        records.append(
            {
                "timestamp": f"{day}T10:00:{11 + 2 * i:02d}.000Z",
                "type": "response_item",
                "payload": {
                    "type": "function_call_output",
                    "call_id": call,
                    "output": f"Exit code: {code}\nWall time: 0.2 seconds\nOutput:\n{output}\n",
                },
            }
        )
    _jsonl(home / "sessions" / y / m / d / f"rollout-{day}T10-00-00-{session}.jsonl", records)


def gemini_typo_session(gemini_dir: Path, project: Path, day: str) -> None:
    """A Gemini CLI chat (JSONL): a one-off ``gti status`` typo, then ``git status``."""
    chats = gemini_dir / "tmp" / "notes"
    chats.mkdir(parents=True, exist_ok=True)
    (chats / ".project_root").write_text(str(project), encoding="utf-8")

    def shell(n: int, command: str, output: str, code: int) -> dict[str, Any]:
        call_id = f"run_shell_command_{n}"
        return {
            "id": f"g-m{n}",
            "timestamp": f"{day}T11:00:0{n}.000Z",
            "type": "gemini",
            "content": "",
            "toolCalls": [
                {
                    "id": call_id,
                    "name": "run_shell_command",
                    "args": {"command": command},
                    "result": [
                        {
                            "functionResponse": {
                                "id": call_id,
                                "name": "run_shell_command",
                                "response": {
                                    "output": f"Output: {output}\nExit Code: {code}\nProcess Group PGID: 1{n}"
                                },
                            }
                        }
                    ],
                    "status": "success",
                    "timestamp": f"{day}T11:00:0{n}.000Z",
                }
            ],
            "tokens": {"input": 10, "output": 5, "cached": 0, "thoughts": 0, "tool": 0, "total": 15},
            "model": "gemini-2.5-pro",
        }

    _jsonl(
        chats / "chats" / f"session-{day}T11-00-9e0000aa.jsonl",
        [
            {
                "sessionId": "9e0000aa-0000-4000-8000-0000000000f3",
                "projectHash": "0" * 64,
                "startTime": f"{day}T11:00:00.000Z",
                "lastUpdated": f"{day}T11:00:03.000Z",
                "kind": "main",
            },
            {"id": "g-u1", "timestamp": f"{day}T11:00:01.000Z", "type": "user", "content": [{"text": "Status?"}]},
            shell(2, "gti status", "bash: gti: command not found", 127),
            shell(3, "git status", "On branch main\nnothing to commit, working tree clean", 0),
        ],
    )


@pytest.fixture
def scripted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    user = tmp_path / "user-home"
    claude_home, codex_home, gemini_dir = user / ".claude", user / ".codex", user / ".gemini"
    for folder in (claude_home, codex_home, gemini_dir):
        folder.mkdir(parents=True)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(claude_home))
    monkeypatch.setenv("CODEX_HOME", str(codex_home))
    monkeypatch.setenv("GEMINI_CLI_HOME", str(user))
    shop, notes = tmp_path / "work" / "shop", tmp_path / "work" / "notes"
    for project in (shop, notes):
        project.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", str(project)], check=True)
    (shop / "AGENTS.md").write_bytes(USER_AGENTS)
    (claude_home / "CLAUDE.md").write_bytes(USER_CLAUDE)
    claude_session(claude_home, shop, "c1a00000-0000-4000-8000-00000000aa01", "2026-11-02")
    codex_session(codex_home, shop, "019da907-0000-7000-8000-00000000aa02", "2026-11-03")
    gemini_typo_session(gemini_dir, notes, "2026-11-03")
    return {"shop": shop, "notes": notes, "claude": claude_home, "codex": codex_home, "gemini": gemini_dir}


def _snapshot(*roots: Path) -> dict[Path, bytes]:
    files: dict[Path, bytes] = {}
    for root in roots:
        for path in root.rglob("*"):
            logs = {".git", "projects", "sessions", "tmp"} & set(path.parts)
            if path.is_file() and not logs:
                files[path] = path.read_bytes()
    return files


def _block(data: bytes) -> str:
    text = data.decode("utf-8")
    return text[text.index(BEGIN) : text.index(END)]


def test_two_sessions_give_exactly_two_lessons_each_with_its_fix(scripted: dict[str, Path]) -> None:
    runner = CliRunner()
    shop, notes = scripted["shop"], scripted["notes"]
    before = _snapshot(shop, notes, scripted["claude"], scripted["codex"], scripted["gemini"])

    dry = runner.invoke(cli, ["learn", "-p", str(shop), "--json"], catch_exceptions=False)
    lessons = {d["text"]: d for d in json.loads(dry.output)["lessons"]}
    assert len(lessons) == 2, lessons
    python = next(d for t, d in lessons.items() if "`python3`" in t)
    make = next(d for t, d in lessons.items() if "`make test`" in t)
    assert python["text"].startswith("Use `python3`") and "`python` is not installed" in python["text"]
    assert python["scope"] == "machine" and python["sessions"] == 2 and python["auto_ok"]
    assert make["text"].startswith("Run the tests with `make test`") and "Missing script" in make["text"]
    assert make["scope"] == "project" and make["sessions"] == 2 and make["days"] == 2
    # A dry run stores nothing and writes nothing.
    report = runner.invoke(cli, ["learn", "report", "--json"], catch_exceptions=False)
    assert json.loads(report.output) == []
    assert _snapshot(shop, notes, scripted["claude"], scripted["codex"], scripted["gemini"]) == before

    # The other project: its own typo teaches nothing, and no lesson of the shop reaches it.
    other = runner.invoke(cli, ["learn", "-p", str(notes), "--json"], catch_exceptions=False)
    assert not [d for d in json.loads(other.output)["lessons"] if d["scope"] == "project"]
    assert "gti" not in other.output

    done = runner.invoke(cli, ["learn", "-p", str(shop), "--apply", "--json"], catch_exceptions=False)
    assert json.loads(done.output)["skipped"] == []
    agents_md = (shop / "AGENTS.md").read_bytes()
    claude_local = (shop / "CLAUDE.local.md").read_bytes()
    user_claude = (scripted["claude"] / "CLAUDE.md").read_bytes()
    user_codex = (scripted["codex"] / "AGENTS.md").read_bytes()
    user_gemini = (scripted["gemini"] / "GEMINI.md").read_bytes()
    # Project files: the project lesson only. User-level files: the machine fact only.
    for data in (agents_md, claude_local):
        assert "`make test`" in _block(data) and "python3" not in _block(data)
    for data in (user_claude, user_codex, user_gemini):
        assert "Use `python3`" in _block(data) and "make test" not in _block(data)
    # Every byte outside the block is the user's, unchanged (CRLF kept); valid Markdown, no escaped backticks.
    assert agents_md.startswith(USER_AGENTS) and user_claude.startswith(USER_CLAUDE)
    assert b"\r\n- Use `python3`" in user_claude
    for data in (agents_md, claude_local, user_claude, user_codex, user_gemini):
        assert b"\\`" not in data and data.count(b"- ") >= 1
    # Nothing in the other project.
    assert not (notes / "AGENTS.md").exists() and not (notes / "GEMINI.md").exists()
    assert not (notes / "CLAUDE.local.md").exists()
    statuses = {r["text"]: r["status"] for r in json.loads(runner.invoke(cli, ["learn", "report", "--json"]).output)}
    assert sorted(statuses.values()) == ["active", "active"]

    undo = runner.invoke(cli, ["learn", "undo"], catch_exceptions=False)
    assert undo.output.count("restored") == 5 and "2 lesson(s) marked undone" in undo.output
    assert _snapshot(shop, notes, scripted["claude"], scripted["codex"], scripted["gemini"]) == before
    statuses = {r["text"]: r["status"] for r in json.loads(runner.invoke(cli, ["learn", "report", "--json"]).output)}
    assert sorted(statuses.values()) == ["undone", "undone"]
    assert "nothing to undo" in runner.invoke(cli, ["learn", "undo"]).output


def test_a_project_not_on_this_machine_shows_its_lessons_and_says_why(scripted: dict[str, Path]) -> None:
    import shutil

    shop = scripted["shop"]
    runner = CliRunner()
    runner.invoke(cli, ["ingest"], catch_exceptions=False)
    shutil.rmtree(shop)
    out = runner.invoke(cli, ["learn", "-p", str(shop), "--apply"], catch_exceptions=False)
    assert "Run the tests with `make test`" in out.output
    assert "not on this machine" in out.output
    assert not shop.exists()
