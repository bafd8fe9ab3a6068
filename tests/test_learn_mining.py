"""Failure detection and lesson mining, on the sessions the real CLIs wrote and on hand-made failures."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from headroom.learn.failures import Failure, find_failures, normalize_command, relpath
from headroom.learn.mining import LessonDraft, lesson_key, mine, mine_db, recurrences
from headroom.memory.db import Database, open_database

SHARED_ROOT = "/srv/work/src"
_AGENT_HOME = re.compile(r"/tmp/agent-home-[A-Za-z0-9-]+/src")


def _ingest(tmp_path: Path) -> Database:
    from headroom.daemon.config import load_config
    from headroom.daemon.service import make_ingestor

    db = open_database(f"sqlite:///{tmp_path / 'db' / 'headroom.db'}")
    make_ingestor(load_config(), db).scan()
    return db


@pytest.fixture
def generated_db(generated_logs: Path, tmp_path: Path) -> Database:
    return _ingest(tmp_path)


@pytest.fixture
def shared_project_db(generated_logs: Path, tmp_path: Path) -> Database:
    """The same sessions, as if every agent and scenario had run in one checkout (/srv/work/src/<name>).

    Each agent records its cwd inside its own records (Claude: every line's ``cwd``; Codex: ``session_meta``
    and ``turn_context``; Gemini: ``.project_root`` and the tool outputs), so rewriting the text is enough.
    """
    for path in generated_logs.rglob("*"):
        if path.is_file() and not path.is_symlink():
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
            new = _AGENT_HOME.sub(SHARED_ROOT, text)
            if new != text:
                path.write_text(new, encoding="utf-8", errors="surrogateescape")
    return _ingest(tmp_path)


def _by_signature(drafts: list[LessonDraft], signature: str) -> list[LessonDraft]:
    return [d for d in drafts if d.signature == signature]


# ---------------------------------------------------------------------------------------------- detection


def test_failures_of_the_generated_sessions(generated_db: Database) -> None:
    failures = find_failures(generated_db)
    by_agent: dict[str, set[str]] = {}
    for f in failures:
        by_agent.setdefault(f.agent, set()).add(f.signature)
    for agent in ("claude", "codex", "gemini"):
        sigs = by_agent[agent]
        assert "missing-file:does-not-exist.txt" in sigs
        assert "path:log/server.log" in sigs  # Gemini's is an "ok" call with "Exit Code: 2" inside
        assert "test:python3 -m unittest -v" in sigs
        assert "edit-no-match:calc.py" in sigs  # Claude unread, Gemini no match, Codex apply_patch
        assert any(s.startswith("correction:add must also accept digit strings") for s in sigs)
    missing = [f for f in failures if f.signature == "missing-file:does-not-exist.txt"]
    assert {f.fix for f in missing} == {"notes.txt"}
    grep = [f for f in failures if f.signature == "path:log/server.log"]
    assert {f.fix for f in grep} == {"logs/server.log"}
    assert all(f.error and "No such file" in f.error for f in grep)
    tests = [f for f in failures if f.kind == "test_failure"]
    assert all(f.fix == "python3 -m unittest -v" for f in tests)
    # Codex "code mode" logs each call twice (the JS exec and the inner command): counted once.
    assert len([f for f in grep if f.agent == "codex"]) == 3
    # No absolute machine path in what is kept.
    for f in failures:
        for value in (f.command, f.error, f.fix):
            assert value is None or "/tmp/agent-home" not in value, f
    # Re-running the test suite three times (fail, pass, pass) is work, not a loop.
    assert not [f for f in failures if f.kind == "loop"]


def test_each_project_alone_proposes_only_the_user_corrected_lesson(generated_db: Database) -> None:
    drafts = mine_db(generated_db)
    # Every scenario ran in a folder of its own: one session per project, so only corrections qualify.
    assert drafts and all(d.kind == "user_correction" and d.sessions == 1 for d in drafts)
    assert all(d.corrected_by_user for d in drafts)
    calc = [d for d in drafts if d.project.endswith("/src/calc")]
    assert len(calc) == 6  # claude x2, codex x3, gemini x1
    draft = calc[0]
    assert "add() must also accept digit strings" in draft.text
    assert "not quite what I wanted" not in draft.text
    assert draft.evidence and draft.evidence[0].error is not None
    # A single accidental failure (the grep on log/, the missing file) proposes nothing.
    assert not [d for d in drafts if d.signature.startswith(("path:", "missing-file:", "test:", "edit-"))]


def test_one_shared_project_mines_the_expected_lessons(shared_project_db: Database) -> None:
    drafts = mine_db(shared_project_db)
    texts = {d.signature: d for d in drafts}

    grep = texts["path:log/server.log"]
    assert grep.project == f"{SHARED_ROOT}/inventory-service" and grep.scope == "project"
    assert grep.text == "`server.log` is in `logs/`, not `log/`: use `logs/server.log`."
    assert grep.names == ("logs/server.log",)
    assert grep.sessions == 6 and {e.agent for e in grep.evidence} == {"claude", "codex", "gemini"}

    missing = texts["missing-file:does-not-exist.txt"]
    assert missing.text == "`does-not-exist.txt` does not exist here; the file is `notes.txt`."
    assert missing.sessions == 6 and missing.names == ("notes.txt",)

    tests = texts["test:python3 -m unittest -v"]
    assert "`python3 -m unittest -v`" in tests.text and tests.kind == "test_failure"

    edit = texts["edit-no-match:calc.py"]
    assert edit.text.startswith("Read `calc.py` before editing it")
    assert edit.kind == "edit_failed" and edit.sessions == 6

    correction = [d for d in drafts if d.kind == "user_correction"]
    assert len(correction) == 1 and correction[0].sessions == 6 and correction[0].corrected_by_user

    for d in drafts:
        assert len(d.text) <= 200 and "/srv/" not in d.text and "/tmp/" not in d.text
        assert d.first_seen is not None and d.last_seen is not None and d.first_seen <= d.last_seen
    assert [d.key for d in drafts] == [d.key for d in mine_db(shared_project_db)]  # deterministic


def test_recurrences_count_sessions_after_a_moment(shared_project_db: Database) -> None:
    project = f"{SHARED_ROOT}/inventory-service"
    assert recurrences(shared_project_db, "path:log/server.log", project, after=datetime(2000, 1, 1)) == 6
    assert recurrences(shared_project_db, "path:log/server.log", project, after=datetime(2100, 1, 1)) == 0
    assert recurrences(shared_project_db, "path:log/server.log", f"{SHARED_ROOT}/calc", after=datetime(2000, 1, 1)) == 0
    # Environment lessons (project "") count across every project.
    assert recurrences(shared_project_db, "path:log/server.log", "", after=datetime(2000, 1, 1)) == 6


def test_real_sessions_mine_without_noise(real_logs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _ingest(tmp_path)
    failures = find_failures(db)
    assert failures  # the real logs do contain failures (missing files, failed patches, interrupts)
    drafts = mine_db(db)
    with capsys.disabled():
        print(f"\n{len(failures)} failures, {len(drafts)} lessons from the real sessions")
        for d in drafts:
            print(f"  [{d.kind}] sessions={d.sessions} count={d.count} {d.text}")
    # No lesson from one accidental failure: every draft has its sessions or a user correction.
    assert all(d.sessions >= 2 or d.corrected_by_user for d in drafts)
    # rg/grep exit 1 means "no match", not a failure (exit 2, a bad regex, is one).
    assert not [f for f in failures if f.signature.startswith(("cmd:rg", "cmd:grep")) and f.error is None]


# ---------------------------------------------------------------------------------------------- rules


T0 = datetime(2026, 5, 1, 10, 0)


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
        tool_call_key=None,
    )


def test_one_accidental_failure_is_not_a_lesson() -> None:
    assert mine([_f("s1", "path:log/server.log", fix="logs/server.log")]) == []
    # The same session failing twice is still one session.
    assert mine([_f("s1", "cmd:make", minutes=1), _f("s1", "cmd:make", minutes=2)]) == []


def test_a_recovered_failure_needs_two_sessions_an_unrecovered_one_three() -> None:
    recovered = [_f("s1", "missing-file:a.txt", fix="b.txt"), _f("s2", "missing-file:a.txt")]
    (draft,) = mine(recovered)
    assert draft.text == "`a.txt` does not exist here; the file is `b.txt`." and draft.names == ("b.txt",)
    plain = [_f(f"s{i}", "missing-file:gone.txt") for i in range(2)]
    assert mine(plain) == []
    (draft,) = mine([*plain, _f("s9", "missing-file:gone.txt")])
    assert draft.sessions == 3 and draft.names == ()  # never the missing path: it does not exist


def test_min_sessions_is_a_parameter() -> None:
    failures = [_f(f"s{i}", "edit-no-match:calc.py", kind="edit_failed") for i in range(3)]
    assert len(mine(failures)) == 1
    assert mine(failures, min_sessions=4) == []


def test_a_single_user_correction_is_enough() -> None:
    (draft,) = mine(
        [_f("s1", "correction:use tabs", kind="user_correction", error="use tabs, not spaces, in Makefiles")]
    )
    assert draft.corrected_by_user and draft.sessions == 1
    assert draft.text == "The user corrected this: use tabs, not spaces, in Makefiles"


def test_environment_lessons_group_across_projects_project_lessons_do_not() -> None:
    env = [
        _f("s1", "not-found:python", project="/home/dev/a", fix="python3"),
        _f("s2", "not-found:python", project="/home/dev/b"),
    ]
    (draft,) = mine(env)
    assert draft.scope == "environment" and draft.project == ""
    assert draft.text == "Use `python3`, not `python`: `python` is not installed here."
    assert draft.names == ("python3",)
    split = [
        _f("s1", "path:log/x.log", project="/home/dev/a", fix="logs/x.log"),
        _f("s2", "path:log/x.log", project="/home/dev/b", fix="logs/x.log"),
    ]
    assert mine(split) == []


def test_keys_are_stable_and_order_is_deterministic() -> None:
    failures = [
        _f("s1", "path:log/x.log", fix="logs/x.log", minutes=1),
        _f("s2", "path:log/x.log", minutes=2),
        _f("s1", "edit-no-match:a.py", kind="edit_failed", minutes=3),
        _f("s2", "edit-no-match:a.py", kind="edit_failed", minutes=4),
        _f("s3", "edit-no-match:a.py", kind="edit_failed", minutes=5),
        _f("s1", "edit-no-match:b.py", kind="edit_failed", minutes=9),
        _f("s3", "edit-no-match:b.py", kind="edit_failed", minutes=9),
    ]
    first = mine(failures)
    again = mine(list(reversed(failures)))
    assert [d.key for d in first] == [d.key for d in again]
    assert [d.signature for d in first] == ["edit-no-match:a.py", "edit-no-match:b.py", "path:log/x.log"]
    assert first[0].key == lesson_key("/home/dev/shop", "edit-no-match:a.py")
    assert len(first[0].key) == 16 and first[0].key != lesson_key("/home/dev/other", "edit-no-match:a.py")
    assert lesson_key("/a", "not-found:python") == lesson_key("/b", "not-found:python")
    assert first[0].first_seen == T0 + timedelta(minutes=3) and first[0].last_seen == T0 + timedelta(minutes=5)


def test_secrets_are_redacted_and_paths_relative() -> None:
    secret = "sk-ant-api03-" + "A1b2C3d4E5f6G7h8" * 5
    command = f"curl -H 'x-api-key: {secret}' https://api.example.com"
    normalized = normalize_command(command, "/home/dev/shop")
    assert secret not in normalized
    failures = [
        _f(f"s{i}", f"cmd:{normalized}", command=command, error=f"401 for key {secret}", agent="codex")
        for i in range(3)
    ]
    (draft,) = mine(failures)
    assert secret not in draft.text and secret not in draft.signature
    assert relpath("/home/dev/shop/src/app.py", "/home/dev/shop") == "src/app.py"
    assert relpath("C:\\code\\app\\src\\x.ts", "c:\\code\\app") == "src/x.ts"
    assert not relpath("/opt/elsewhere/deep/file.txt", "/home/dev/shop").startswith("/")
    abs_fix = [_f(f"s{i}", "missing-file:cfg.yml", fix="/home/dev/shop/conf/cfg.yml") for i in range(2)]
    (draft,) = mine(abs_fix)
    assert "/home/dev" not in draft.text and "conf/cfg.yml" in draft.text


def test_normalization_groups_what_differs_only_by_noise() -> None:
    root = "/home/dev/shop"
    a = normalize_command("cd /home/dev/shop && FOO=1 pytest tests/test_x.py -k 123 2>&1 | tail -5", root)
    b = normalize_command("FOO=2 pytest tests/test_x.py -k 456", root)
    assert a == b == "pytest tests/test_x.py -k N"
    assert normalize_command("cat /tmp/tmpa1b2c3/out.txt", root) == normalize_command(
        "cat /tmp/tmpz9y8x7/out.txt", root
    )
    assert "python3" in normalize_command("python3 -m pytest", root)


def test_sessions_without_a_cwd_give_no_project_lesson() -> None:
    """Their project is unknown: a lesson from them would be rendered into every project as if environmental."""
    no_cwd = [_f(f"s{i}", "missing-file:a.txt", fix="b.txt", project="") for i in range(3)]
    assert mine(no_cwd) == []
    env = [_f(f"s{i}", "not-found:python", fix="python3", project="") for i in range(2)]
    (draft,) = mine(env)
    assert draft.scope == "environment" and draft.project == ""
