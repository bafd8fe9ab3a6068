"""The command line on the real fixtures: tables, JSON, filters, clean errors, ccusage parity."""

from __future__ import annotations

import json
import os
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from headroom.daemon.cli import cli
from tests.helpers import ccusage_binary

REPO = Path(__file__).resolve().parent.parent


def run(*args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def as_json(*args: str) -> Any:
    return json.loads(run(*args, "--json").stdout)


def test_help_works_everywhere() -> None:
    assert "sessions" in run("--help").output
    for command in (
        ["daemon", "run"],
        ["daemon", "status"],
        ["sessions"],
        ["sessions", "show"],
        ["stats"],
        ["doctor"],
        ["ingest"],
    ):
        result = run(*command, "--help")
        assert "Usage: headroom " + " ".join(command) in result.output
    assert run("-h").output == run("--help").output


def test_sessions_lists_every_agent(real_logs: Path) -> None:
    rows = as_json("sessions", "-n", "0")
    by_agent = defaultdict(int)
    for row in rows:
        by_agent[row["agent"]] += 1
    claude_files = list((real_logs / "claude").rglob("*.jsonl"))
    assert by_agent["claude"] == len(claude_files)  # each file here is one session or one sub-agent
    assert by_agent["codex"] == len(list((real_logs / "codex").rglob("rollout-*.jsonl")))
    assert by_agent["gemini"] == len(list((real_logs / "gemini").rglob("session-*.jsonl")))
    starts = [row["started_at"] for row in rows]
    assert starts == sorted(starts, reverse=True)
    sub = [row for row in rows if row["kind"] == "subagent"]
    assert sub and all(row["parent"] for row in sub)
    table = run("sessions", "--no-refresh").output
    assert "claude" in table and "codex" in table and "gemini" in table


def test_sessions_filters(real_logs: Path) -> None:
    run("ingest")
    codex = as_json("sessions", "--agent", "codex", "--no-refresh")
    assert codex and {row["agent"] for row in codex} == {"codex"}
    failed = as_json("sessions", "--failed", "-n", "0", "--no-refresh")
    assert failed and all(row["failed_tool_calls"] or row["api_errors"] for row in failed)
    everything = as_json("sessions", "-n", "0", "--no-refresh")
    assert len(failed) < len(everything)
    project = as_json("sessions", "--project", "TravelBlogs", "-n", "0", "--no-refresh")
    assert project and all("TravelBlogs" in row["project"] for row in project)
    assert as_json("sessions", "--since", "2099-01-01", "--no-refresh") == []


def test_sessions_show_a_timeline(real_logs: Path) -> None:
    run("ingest")
    session = "019b6a8c-dbb4-7093-97ed-08d93cacea6d"
    data = as_json("sessions", "show", session[:13])
    assert data["session"]["session"] == session
    kinds = {event["kind"] for event in data["timeline"]}
    assert {"user_prompt", "tool_call", "assistant_text"} <= kinds
    failed = [e for e in data["timeline"] if e["kind"] == "tool_call" and e.get("status") == "error"]
    assert failed and all(e["exit_code"] not in (None, 0) for e in failed if e["tool"] == "shell_command")
    text = run("sessions", "show", session).output
    assert "[error exit" in text


def test_sessions_show_errors_are_one_line(real_logs: Path) -> None:
    run("ingest")
    missing = run("sessions", "show", "no-such-session", ok=False)
    assert missing.exit_code == 1 and "no session matches" in missing.output and "Traceback" not in missing.output
    ambiguous = run("sessions", "show", "0", ok=False)  # several Codex ids start with 0
    assert ambiguous.exit_code == 1 and "several sessions" in ambiguous.output


def test_stats_groupings_add_up(real_logs: Path) -> None:
    days = as_json("stats", "--by", "day")
    fields = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")
    for row in days:
        assert {"day", "agent", *fields} <= row.keys()
        thoughts = row["reasoning_tokens"] if row["agent"] == "gemini" else 0  # outside Gemini's output
        assert row["total_tokens"] == sum(row[f] for f in fields) + thoughts
    totals = {f: sum(row[f] for row in days) for f in fields}
    for by in ("week", "month", "agent", "project", "session"):
        rows = as_json("stats", "--by", by, "--no-refresh")
        assert {f: sum(row[f] for row in rows) for f in fields} == totals, by
    agents = {row["agent"] for row in as_json("stats", "--by", "agent", "--no-refresh")}
    assert agents == {"claude", "codex", "gemini"}
    only_codex = as_json("stats", "--agent", "codex", "--no-refresh")
    assert only_codex and {row["agent"] for row in only_codex} == {"codex"}
    since = as_json("stats", "--since", "2026-01-01", "--no-refresh")
    assert since and all(row["day"] >= "2026-01-01" for row in since)
    assert "tokens by day" in run("stats", "--no-refresh").output


def test_stats_failures(real_logs: Path) -> None:
    data = as_json("stats", "--failures")
    days = as_json("stats", "--no-refresh")
    assert data["failed_tool_calls"] == sum(row["failed_tool_calls"] for row in days) > 0
    assert 0 <= data["repeated_failures"] < data["failed_tool_calls"]
    commands = data["commands"]
    assert commands == sorted(commands, key=lambda c: -c["failures"])
    assert all(c["failures"] >= 1 and c["agents"] for c in commands)
    assert "most failing commands" in run("stats", "--failures", "--no-refresh").output


def test_doctor_reports_what_was_found_and_skipped(
    real_logs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad_root = tmp_path / "bad-claude"
    project = bad_root / "projects" / "-tmp-x"
    project.mkdir(parents=True)
    (project / "s.jsonl").write_bytes(b'{"broken": \n' + b"\x00\x00junk\n")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", f"{real_logs / 'claude'},{bad_root}")
    run("ingest")
    report = as_json("doctor")
    assert report["database"]["up_to_date"] is True
    claude = report["agents"]["claude"]
    assert (
        claude["log_files_on_disk"]
        == claude["files_ingested"]
        == len(list((real_logs / "claude").rglob("*.jsonl"))) + 1
    )
    assert {(p["kind"], p["count"]) for p in report["problems"]} == {
        ("malformed_json", 1),
        ("binary_junk", 1),
    }
    text = run("doctor").output
    assert "skipped input: 2 problems in 1 files" in text


def test_config_errors_are_clean(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "config.toml").write_text("[watcher]\nbogus = 1\n", encoding="utf-8")
    result = run("stats", ok=False)
    assert result.exit_code == 1
    assert "unknown setting 'watcher.bogus'" in result.output and "Traceback" not in result.output
    monkeypatch.setenv("HEADROOM_RAISE_ERRORS", "1")
    with pytest.raises(Exception, match=r"watcher\.bogus"):
        CliRunner().invoke(cli, ["stats"], catch_exceptions=False)


def test_bad_dates_are_usage_errors() -> None:
    result = run("stats", "--since", "last tuesday", ok=False)
    assert result.exit_code == 2 and "is not a date" in result.output


# -- ccusage parity ---------------------------------------------------------------------------------


def _ccusage_daily(tmp: Path, claude: Path, codex: Path, gemini_dir: Path) -> dict[tuple[str, str], tuple[int, ...]]:
    binary = ccusage_binary()
    assert binary is not None
    home = tmp / "ccusage-home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(claude),
        "CODEX_HOME": str(codex),
        "GEMINI_DATA_DIR": str(gemini_dir),
    }
    out = subprocess.run(
        [binary, "daily", "--json", "--by-agent", "--offline", "-z", "UTC"],
        env=env,
        capture_output=True,
        check=True,
        timeout=300,
    ).stdout
    rows = {}
    for day in json.loads(out)["daily"]:
        for agent in day["agents"]:
            rows[(day["period"], agent["agent"])] = (
                agent["inputTokens"],
                agent["outputTokens"],
                agent["cacheReadTokens"],
                agent["cacheCreationTokens"],
            )
    return rows


def _ours() -> dict[tuple[str, str], tuple[int, ...]]:
    return {
        (row["day"], row["agent"]): (
            row["input_tokens"],
            row["output_tokens"],
            row["cache_read_tokens"],
            row["cache_creation_tokens"],
        )
        for row in as_json("stats", "--by", "day")
        if row["model_calls"]
    }


@pytest.mark.ccusage
@pytest.mark.skipif(ccusage_binary() is None, reason="ccusage is not installed (make tools installs it)")
def test_daily_tokens_equal_ccusage_on_real_logs(real_logs: Path, tmp_path: Path) -> None:
    expected = _ccusage_daily(tmp_path, real_logs / "claude", real_logs / "codex", real_logs / "gemini")
    assert expected, "ccusage found no usage: the fixture layout changed"
    assert _ours() == expected


@pytest.mark.ccusage
@pytest.mark.skipif(ccusage_binary() is None, reason="ccusage is not installed (make tools installs it)")
def test_daily_tokens_equal_ccusage_on_logs_of_the_real_clis(generated_logs: Path, tmp_path: Path) -> None:
    expected = _ccusage_daily(tmp_path, generated_logs / "claude", generated_logs / "codex", generated_logs / "gemini")
    assert {agent for _, agent in expected} == {"claude", "codex", "gemini"}
    assert _ours() == expected
