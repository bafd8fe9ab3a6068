"""Failure classes and lesson mining: on the sessions the real CLIs wrote, and on hand-made steps and failures."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from headroom.learn.error_classes import classify
from headroom.learn.failures import (
    Failure,
    Observations,
    SessionView,
    Step,
    chain,
    find_failures,
    mask,
    normalize_command,
    relpath,
)
from headroom.learn.mining import lesson_key, mine, mine_db, recurrences
from headroom.learn.rules import rule_text
from headroom.learn.writers import render_block
from headroom.memory.db import Database, open_database

SHARED_ROOT = "/srv/work/src"
_AGENT_HOME = re.compile(r"/tmp/agent-home-[A-Za-z0-9-]+/src")
T0 = datetime(2026, 5, 1, 10, 0)


def _ingest(tmp_path: Path) -> Database:
    from headroom.daemon.config import load_config
    from headroom.daemon.service import make_ingestor

    db = open_database(f"sqlite:///{tmp_path / 'db' / 'headroom.db'}")
    make_ingestor(load_config(), db).scan()
    return db


@pytest.fixture
def generated_db(generated_logs: Path, tmp_path: Path) -> Iterator[Database]:
    db = _ingest(tmp_path)
    yield db
    db.close()


@pytest.fixture
def shared_project_db(generated_logs: Path, tmp_path: Path) -> Iterator[Database]:
    """The same sessions, as if every agent and scenario had run in one checkout (/srv/work/src/<name>)."""
    for path in generated_logs.rglob("*"):
        if path.is_file() and not path.is_symlink():
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
            new = _AGENT_HOME.sub(SHARED_ROOT, text)
            if new != text:
                path.write_text(new, encoding="utf-8", errors="surrogateescape")
    db = _ingest(tmp_path)
    yield db
    db.close()


# ---------------------------------------------------------------------------------------- real sessions


def test_failures_of_the_generated_sessions(generated_db: Database) -> None:
    failures = find_failures(generated_db)
    by_agent: dict[str, set[str]] = {}
    for f in failures:
        by_agent.setdefault(f.agent, set()).add(f.signature)
    for agent in ("claude", "codex", "gemini"):
        assert "path:log/server.log" in by_agent[agent]  # Gemini's is an "ok" call with "Exit Code: 2" inside
    assert "edit-unread" in by_agent["claude"]
    assert "edit-no-match:apply_patch" in by_agent["codex"]
    assert "edit-no-match:replace" in by_agent["gemini"]
    grep = [f for f in failures if f.signature == "path:log/server.log"]
    assert {f.fix for f in grep} == {"logs/server.log"}
    # A failing test run is the work loop, a missing file nobody found teaches nothing, and "that's not quite
    # what I wanted: add() must also accept digit strings" is one task's requirement, not a rule.
    assert not [f for f in failures if "unittest" in (f.command or "") or f.kind == "user_rule"]
    assert not [f for f in failures if "does-not-exist" in f.signature]
    for f in failures:
        for value in (f.command, f.error, f.fix):
            assert value is None or "/tmp/agent-home" not in value, f


def test_each_scenario_alone_gives_no_project_lesson(generated_db: Database) -> None:
    drafts = mine_db(generated_db)
    # Every scenario ran in a folder of its own: one session per project, so no project lesson qualifies.
    assert not [d for d in drafts if d.scope == "project"]
    # An agent's own tool behaves alike in every project: Claude's unread-edit refusal in two sessions is one.
    (unread,) = [d for d in drafts if d.signature == "edit-unread"]
    assert unread.scope == "agent" and unread.agents == ("claude",) and unread.sessions == 2
    assert unread.text.startswith("Read a file before you Edit or Write it")


def test_one_shared_project_mines_the_expected_lessons(shared_project_db: Database) -> None:
    drafts = mine_db(shared_project_db)
    by_sig = {d.signature: d for d in drafts}
    grep = by_sig["path:log/server.log"]
    assert grep.project == f"{SHARED_ROOT}/inventory-service" and grep.scope == "project" and grep.agents == ()
    assert grep.text == "Use `logs/server.log`: `log/server.log` does not exist."
    assert grep.names == ("logs/server.log",) and grep.sessions == 6
    assert {e.agent for e in grep.evidence} == {"claude", "codex", "gemini"}
    assert not [d for d in drafts if d.kind == "user_rule" or "unittest" in d.text]
    for d in drafts:
        assert len(d.text) <= 200 and "/srv/" not in d.text and "/tmp/" not in d.text
        assert d.first_seen is not None and d.last_seen is not None and d.first_seen <= d.last_seen
    assert [d.key for d in drafts] == [d.key for d in mine_db(shared_project_db)]  # deterministic


def test_recurrences_count_sessions_after_a_moment(shared_project_db: Database) -> None:
    project = f"{SHARED_ROOT}/inventory-service"
    assert recurrences(shared_project_db, "path:log/server.log", project, after=datetime(2000, 1, 1)) == 6
    assert recurrences(shared_project_db, "path:log/server.log", project, after=datetime(2100, 1, 1)) == 0
    assert recurrences(shared_project_db, "path:log/server.log", f"{SHARED_ROOT}/calc", after=datetime(2000, 1, 1)) == 0


def test_real_sessions_mine_without_noise(real_logs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _ingest(tmp_path)
    drafts = mine_db(db)
    with capsys.disabled():
        print(f"\n{len(drafts)} lessons from the real sessions")
        for d in drafts:
            print(f"  [{d.scope}] sessions={d.sessions} {d.text}")
    assert all(d.sessions >= 2 or d.corrected_by_user or d.signature.startswith("protected-branch") for d in drafts)
    assert not [d for d in drafts if "\\`" in d.text]


# ---------------------------------------------------------------------------------------- error classes


def _view(agent: str, calls: list[tuple[str, int, str]], *, project: str = "/home/dev/shop") -> SessionView:
    steps = [
        Step(
            key=f"k{i}",
            seq=i,
            ts=T0 + timedelta(seconds=i),
            tool="bash",
            name="Bash",
            kind="shell",
            command=command,
            path=None,
            failed=code != 0,
            by_user=False,
            output=output,
            args={},
            exit_code=code,
            parts=chain(command),
        )
        for i, (command, code, output) in enumerate(calls)
    ]
    return SessionView(agent, f"s-{agent}", project, "/home/dev", steps)


def _first(view: SessionView) -> Failure | None:
    return classify(view, next(s for s in view.steps if s.failed))


def test_command_not_found_names_the_alternative_that_ran() -> None:
    f = _first(
        _view(
            "claude", [("python -m pytest", 127, "bash: python: command not found"), ("python3 -m unittest", 0, "OK")]
        )
    )
    assert f is not None and f.signature == "not-found:python" and f.fix == "python3" and f.scope == "machine"
    f = _first(_view("codex", [("pnpm --version", 127, "bash: pnpm: command not found"), ("npm install", 0, "ok")]))
    assert f is not None and f.fix == "npm"
    # PowerShell's wording, wrapped over lines.
    f = _first(_view("gemini", [("gcloud auth list", 1, "gcloud : The term 'gcloud' is not\nrecognized as the name")]))
    assert f is not None and f.signature == "not-found:gcloud" and f.fix is None


def test_missing_npm_script_names_the_command_that_ran_the_tests() -> None:
    view = _view(
        "claude", [("npm test", 1, 'npm error Missing script: "test"'), ("ls", 0, "Makefile"), ("make test", 0, "OK")]
    )
    f = _first(view)
    assert f is not None and f.signature == "npm-missing-script:test" and f.fix == "make test"


def test_module_missing_from_the_system_python_points_at_the_venv() -> None:
    view = _view(
        "codex",
        [
            ("python3 -m pytest", 1, "ModuleNotFoundError: No module named 'httpx'"),
            (".venv/bin/python -m pytest", 0, "ok"),
        ],
    )
    f = _first(view)
    assert f is not None and f.signature == "py-module-missing" and f.fix == ".venv/bin/python -m pytest"
    assert f.detail == "httpx"


def test_crlf_safe_directory_timeout_and_network_classes() -> None:
    crlf = _first(_view("claude", [("./build.sh", 127, "./build.sh: line 2: $'\\r': command not found")]))
    assert crlf is not None and crlf.signature == "crlf"
    safe = _first(_view("claude", [("git status", 128, "fatal: detected dubious ownership in repository at '/x'")]))
    assert safe is not None and safe.signature == "git-safe-directory" and "safe.directory" in (safe.fix or "")
    slow = _first(_view("codex", [("npm test", 124, "command timed out after 10017 milliseconds")]))
    assert (
        slow is not None and slow.signature == "timeout" and slow.command == "npm test" and slow.agent_only == "codex"
    )
    net = _first(_view("codex", [("npm install", 1, "npm error code ENOTFOUND")]))
    assert net is not None and net.signature == "sandbox-no-network" and net.agent_only == "codex"
    assert _first(_view("claude", [("npm install", 1, "npm error code ENOTFOUND")])) is None  # one-off elsewhere


def test_transient_state_is_no_failure() -> None:
    for output in (
        "error: Your local changes to the following files would be overwritten by checkout:",
        "sqlite3.OperationalError: database is locked",
        "Error: 429 Too Many Requests (rate limit)",
    ):
        assert _first(_view("claude", [("git checkout main", 1, output)])) is None


def test_a_chain_blames_the_part_that_failed() -> None:
    assert chain("cd /x && FOO=1 python3 - <<'EOF'\nprint(1)\nEOF") == [["cd", "/x"], ["python3", "-"]]
    view = _view(
        "claude",
        [
            (
                "set +H && git mv '!/a.md' b.md",
                128,
                "fatal: bad source, source=!C:/Users/x/AppData/Local/Programs/Git/a.md",
            ),
            ("git mv './!/a.md' b.md", 0, ""),
        ],
    )
    f = _first(view)
    assert f is not None and f.signature == "git-bash-path:!" and f.command == "git mv" and f.fix == "./"
    assert normalize_command("set +H && git log | tail -5", "/p") == "git log"


def test_zsh_brackets_and_a_repository_in_a_subfolder() -> None:
    zsh = _first(_view("codex", [("ls src/app/[id]/page.tsx", 1, "zsh:1: no matches found: src/app/[id]/page.tsx")]))
    assert zsh is not None and zsh.signature == "zsh-glob-brackets"
    repo = _first(
        _view(
            "gemini",
            [
                ("git add .", 128, "fatal: not a git repository (or any of the parent directories): .git"),
                ("cd app && git add .", 0, ""),
            ],
        )
    )
    assert repo is not None and repo.signature == "not-a-git-repo" and repo.fix == "app"


# ---------------------------------------------------------------------------------------- mining rules


def _f(
    session: str,
    signature: str,
    *,
    kind: str = "tool_error",
    project: str = "/home/dev/shop",
    fix: str | None = None,
    command: str | None = None,
    error: str | None = None,
    agent: str = "claude",
    minutes: int = 0,
    scope: str = "project",
    agent_only: str | None = None,
    machine: str = "/home/dev",
    explicit: bool = False,
    call: str | None = None,
    detail: str | None = None,
) -> Failure:
    return Failure(
        kind=kind,
        agent=agent,
        session_key=session,
        project=project,
        ts=T0 + timedelta(minutes=minutes),
        signature=signature,
        command=command,
        error=error,
        fix=fix,
        tool_call_key=call,
        scope=scope,
        agent_only=agent_only,
        machine=machine,
        explicit=explicit,
        detail=detail,
    )


def test_one_accidental_failure_is_not_a_lesson() -> None:
    assert mine([_f("s1", "path:log/x.log", fix="logs/x.log")]) == []
    assert mine([_f("s1", "not-found:gti", scope="machine", fix="git")]) == []  # a typo, once
    # The same session failing twice is still one session.
    assert mine([_f("s1", "timeout", minutes=1), _f("s1", "timeout", minutes=2)]) == []


def test_a_replayed_history_is_not_a_second_session() -> None:
    """A sub-agent file that replays its parent's calls (same tool-call ids) is the same evidence."""
    replayed = [_f("parent", "timeout", call="toolu_1"), _f("aside", "timeout", call="toolu_1")]
    assert mine(replayed) == []
    (draft,) = mine([*replayed, _f("other", "timeout", call="toolu_9", minutes=60 * 24)])
    assert draft.sessions == 2 and draft.days == 2 and draft.auto_ok


def test_path_lessons_need_a_fix_the_sessions_agree_on() -> None:
    agreed = [
        _f("s1", "path:log/x.log", fix="logs/x.log", detail="log/x.log"),
        _f("s2", "path:log/x.log", fix="logs/x.log"),
    ]
    (draft,) = mine(agreed)
    assert draft.text == "Use `logs/x.log`: `log/x.log` does not exist." and draft.names == ("logs/x.log",)
    assert mine([_f(f"s{i}", "path:log/x.log") for i in range(3)]) == []  # never found: says nothing
    moved = [_f("s1", "path:a.md", fix="x/a.md"), _f("s2", "path:a.md", fix="y/a.md")]
    assert mine(moved) == []


def test_a_stated_rule_is_enough_and_kept_whole() -> None:
    rule = "Big IFs.md is the canonical ledger stub (empty). Do not record the session archive there."
    (draft,) = mine([_f("s1", "rule:big", kind="user_rule", error=rule, explicit=True)])
    assert draft.text == rule and draft.corrected_by_user and draft.auto_ok and draft.sessions == 1


def test_machine_facts_group_by_machine_and_retire_when_the_program_runs() -> None:
    facts = [
        _f("s1", "not-found:python", scope="machine", project="/home/dev/a", fix="python3"),
        _f("s2", "not-found:python", scope="machine", project="/home/dev/b", minutes=60 * 24),
    ]
    (draft,) = mine(facts)
    assert draft.scope == "machine" and draft.project == "" and draft.machine == "/home/dev"
    assert draft.text == "Use `python3`: `python` is not installed on this machine." and draft.names == ("python3",)
    other_machine = [_f("s3", "not-found:python", scope="machine", machine="/home/other")]
    assert len(mine([*facts, *other_machine])) == 1  # another machine's single failure stays its own
    later = Observations(program_ok={("/home/dev", "python"): T0 + timedelta(days=3)})
    assert mine(facts, observations=later) == []  # installed since: the lesson is gone
    split = [_f("s1", "timeout", project="/home/dev/a"), _f("s2", "timeout", project="/home/dev/b")]
    assert mine(split) == []  # project lessons never group across projects


def test_agent_tool_lessons_go_to_that_agent_only() -> None:
    edits = [
        _f("s1", "edit-unread", scope="agent", agent_only="claude", project="/home/dev/a"),
        _f("s2", "edit-unread", scope="agent", agent_only="claude", project="/home/dev/b"),
    ]
    (draft,) = mine(edits)
    assert draft.scope == "agent" and draft.agents == ("claude",)
    assert draft.text.startswith("Read a file before you Edit or Write it")


def test_keys_are_stable_and_order_is_deterministic() -> None:
    failures = [
        _f("s1", "path:log/x.log", fix="logs/x.log", minutes=1),
        _f("s2", "path:log/x.log", fix="logs/x.log", minutes=2),
        _f("s1", "zsh-glob-brackets", minutes=3),
        _f("s2", "zsh-glob-brackets", minutes=4),
        _f("s3", "zsh-glob-brackets", minutes=5),
    ]
    first = mine(failures)
    again = mine(list(reversed(failures)))
    assert [d.key for d in first] == [d.key for d in again]
    assert [d.signature for d in first] == ["zsh-glob-brackets", "path:log/x.log"]
    assert first[0].key == lesson_key("/home/dev/shop", "zsh-glob-brackets")
    assert len(first[0].key) == 16 and first[0].key != lesson_key("/home/dev/other", "zsh-glob-brackets")
    assert first[0].first_seen == T0 + timedelta(minutes=3) and first[0].last_seen == T0 + timedelta(minutes=5)


def test_secrets_are_redacted_and_paths_relative() -> None:
    secret = "sk-ant-api03-" + "A1b2C3d4E5f6G7h8" * 5
    command = f"curl -H 'x-api-key: {secret}' https://api.example.com"
    signature = f"cmd:{normalize_command(command, '/home/dev/shop')}"
    failures = [
        _f(f"s{i}", signature, command=command, error=f"401 for {secret}", fix=f"curl -H 'x-api-key: {secret}' -v")
        for i in range(2)
    ]
    (draft,) = mine(failures)
    # One redaction, where a lesson is made: its text, signature and evidence.
    assert secret not in draft.text and secret not in draft.signature
    assert all(secret not in (e.command or "") + (e.error or "") for e in draft.evidence)
    assert relpath("/home/dev/shop/src/app.py", "/home/dev/shop") == "src/app.py"
    assert relpath("C:\\code\\app\\src\\x.ts", "c:\\code\\app") == "src/x.ts"
    assert not relpath("/opt/elsewhere/deep/file.txt", "/home/dev/shop").startswith("/")
    abs_fix = [
        _f(f"s{i}", "path:cfg.yml", fix="/home/dev/shop/conf/cfg.yml", project="/home/dev/shop") for i in range(2)
    ]
    (draft,) = mine(abs_fix)
    assert "/home/dev" not in draft.text and "conf/cfg.yml" in draft.text


def test_placeholders_for_what_differs_between_runs() -> None:
    assert mask("bd show abc1234def --children") == "bd show <id> --children"
    ids = [
        _f(f"s{i}", "cmd:bd show <id>", command=f"bd show {h} --children", fix=f"bd show {h} --children --json")
        for i, h in enumerate(("abc1234def", "f00ba4c0ffee"))
    ]
    (draft,) = mine(ids)
    assert draft.text == "Use `bd show <id> --children --json`, not `bd show <id> --children`."
    assert mask("rm /tmp/tmpa1b2c3/out.txt 2026-03-29") == "rm <tmp>/out.txt <date>"
    assert mask("id 550e8400-e29b-41d4-a716-446655440000 n 42") == "id <id> n <n>"


def test_sessions_without_a_cwd_give_no_project_lesson() -> None:
    assert mine([_f(f"s{i}", "path:a.txt", fix="b/a.txt", project="") for i in range(3)]) == []
    env = [_f(f"s{i}", "not-found:python", fix="python3", project="", scope="machine") for i in range(2)]
    (draft,) = mine(env)
    assert draft.scope == "machine" and draft.project == ""


def test_lessons_render_as_valid_markdown() -> None:
    block = render_block(["`python` is not installed on this machine.", "```evil", "# heading"])
    assert "- `python` is not installed" in block and "\\`python" not in block
    assert "- \\```evil" in block and "- \\# heading" in block


# ---------------------------------------------------------------------------------------- user rules


@pytest.mark.parametrize(
    "prompt",
    [
        "Always run `make check` before committing.",
        "Never push to main directly.",
        "Use pnpm, not npm, in this repo.",
        "docs/ is the canonical place for design notes.",
        "Before doing work, verify Linear access. If unavailable, report the missing config and do not simulate it.",
    ],
)
def test_durable_rules_are_kept_whole(prompt: str) -> None:
    assert rule_text(prompt) == prompt


@pytest.mark.parametrize(
    "prompt",
    [
        "don't .venv folders exist to ensure the environment persists?",  # a question
        "What was the IMMEDIATE next thing I told you to do?",
        "Do not start the task yet. Do not edit files.",  # one turn's instruction
        "That's not quite what I wanted: add() must also accept digit strings. Please add a test.",
        "CODEX SAYS: never use the old path, it is stale.",  # relayed from another agent
        "You have exceeded the maximum number of turns. You MUST call `complete_task` immediately. "
        "Do not call any other tools.",
        "That is the right question...",
    ],
)
def test_questions_frustration_and_one_task_instructions_are_not_rules(prompt: str) -> None:
    assert rule_text(prompt) is None


def test_on_windows_a_missing_program_is_a_fact_of_that_agents_shell() -> None:
    """Claude runs Git Bash there, Codex and Gemini PowerShell: `bash` missing for Gemini says nothing of Claude."""
    view = _view("gemini", [("bash x.sh", 1, "bash : The term 'bash' is not recognized as the name of a cmdlet")])
    view.machine = "c:/users/ann"
    f = _first(view)
    assert f is not None and f.scope == "machine" and f.agent_only == "gemini"
    facts = [
        replace(f, session_key="s1", tool_call_key="a"),
        replace(f, session_key="s2", tool_call_key="b", ts=T0 + timedelta(days=1)),
    ]
    (draft,) = mine(facts)
    assert draft.agents == ("gemini",) and draft.text == "`bash` is not on your shell's PATH on this machine."
    posix = _first(_view("codex", [("python x.py", 127, "bash: python: command not found")]))
    assert posix is not None and posix.agent_only is None  # one shell, one PATH: every agent's fact
