"""``headroom statusline`` on recorded Claude Code statusline inputs, and its install in settings.json.

The inputs (tests/fixtures/statusline) name sessions of the shared fixtures, which are ingested first; the
line is run the way Claude Code runs it (a subprocess, JSON on stdin) and its figures are compared with
``headroom stats --session`` and ``stats --by day`` computed through the full application.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from headroom.daemon import statusline, statusline_data
from headroom.daemon.cli import cli

SAMPLES = Path(__file__).resolve().parent / "fixtures" / "statusline"
SONNET46 = "44ef5cbf-9cc3-4f7b-ac40-337a4d39713b"


def run(*args: str, ok: bool = True, stdin: str | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, input=stdin)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def line_of(sample: str | bytes, *, script: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the statusline as Claude Code would: a fresh process, the document on stdin."""
    text = sample if isinstance(sample, str) else sample.decode()
    command = [str(Path(sys.executable).with_name("headroom")), "statusline"] if script else None
    command = command or [sys.executable, "-m", "headroom.daemon.statusline"]
    return subprocess.run(command, input=text, capture_output=True, text=True, timeout=60, env=dict(os.environ))


def figures(session: str) -> dict[str, Any]:
    rows = json.loads(run("stats", "--session", session, "--no-refresh", "--format", "json").stdout)
    assert len(rows) == 1
    return dict(rows[0])


@pytest.fixture
def ingested(real_logs: Path) -> Path:
    run("ingest")
    return real_logs


def db_file() -> Path:
    return Path(os.environ["HEADROOM_HOME"]) / "headroom.db"


@pytest.mark.parametrize("name", ["sonnet46_session.json", "sonnet45_long_session.json"])
def test_line_shows_the_sessions_cost_as_stats_does(ingested: Path, name: str) -> None:
    document = json.loads((SAMPLES / name).read_text())
    expected = figures(document["session_id"])
    assert expected["session_calls"] > 0 and expected["session_cost_usd"] > 0
    done = line_of((SAMPLES / name).read_text())
    assert done.returncode == 0 and done.stderr == ""
    out = done.stdout.strip()
    assert out == expected["line"]
    assert out.startswith(f"session ${expected['session_cost_usd']:.2f} · today $")
    assert "(Claude Code)" not in out  # headroom's own figure, not the one passed in
    assert line_of((SAMPLES / name).read_text(), script=True).stdout.strip() == out  # `headroom statusline`
    assert run("statusline", stdin=(SAMPLES / name).read_text()).output.strip() == out  # through the CLI too


def test_an_unseen_session_shows_claude_codes_own_figure(ingested: Path) -> None:
    out = line_of((SAMPLES / "unknown_session.json").read_text()).stdout.strip()
    assert out.startswith("session $1.25 (Claude Code) · today $")


def test_today_is_every_agents_cost_of_the_local_day(ingested: Path) -> None:
    days = json.loads(run("stats", "--by", "day", "-z", "UTC", "--no-refresh", "--json").stdout)
    day = "2026-01-04"  # a Codex day: today's figure spans agents, not only Claude's session
    expected = sum(r["cost_usd"] or 0 for r in days if r["day"] == day)
    assert expected > 0
    document = json.loads((SAMPLES / "sonnet46_session.json").read_text())
    out = statusline.line(document, now=datetime(2026, 1, 4, 18, tzinfo=UTC))
    assert f"today ${expected:.2f}" in out


def test_tokens_saved_come_from_this_conversations_proxy_requests(ingested: Path) -> None:
    conn = sqlite3.connect(db_file())
    columns = {row[1] for row in conn.execute("PRAGMA table_info(proxy_requests)")}
    if "conversation" not in columns:  # the proxy's savings migration adds it; a stand-in for the test
        conn.execute("ALTER TABLE proxy_requests ADD COLUMN conversation VARCHAR(32)")
    mine = statusline_data.conversation("claude", SONNET46)
    other = statusline_data.conversation("claude", "someone-else")
    insert = (
        "INSERT INTO proxy_requests (ts, day, agent, provider, endpoint, model, stream, status, mode, tokens_before, "
        "tokens_after, bytes_before, bytes_after, blocks_compressed, frozen_messages, added_ms, duration_ms, "
        "conversation) VALUES ('2026-04-09 14:00:00', '2026-04-09', 'claude', 'anthropic', 'messages', "
        "'claude-sonnet-4-6', 0, 200, 'ccr', ?, ?, 0, 0, 0, 0, 0, 0, ?)"
    )
    conn.executemany(insert, [(12_000, 10_500, mine), (8_000, 8_000, mine), (50_000, 1_000, other)])
    conn.commit()
    conn.close()
    out = line_of((SAMPLES / "sonnet46_session.json").read_text()).stdout.strip()
    assert " · saved 1.5k tok · " in out
    assert figures(SONNET46)["tokens_saved"] == 1_500


def test_active_lessons_are_counted(ingested: Path) -> None:
    conn = sqlite3.connect(db_file())
    insert = (
        "INSERT INTO lessons (key, project, scope, kind, signature, text, names, evidence, status, sessions, count, "
        "corrected_by_user, created_at, updated_at) VALUES (?, ?, 'project', 'command', 'sig', 'text', '[]', '[]', "
        "?, 0, 0, 0, '2026-04-09 10:00:00', '2026-04-09 10:00:00')"
    )
    rows = [
        ("a", "/home/vwestberg/Claude", "active"),
        ("b", "", "active"),
        ("c", "/elsewhere", "active"),
        ("d", "/home/vwestberg/Claude", "proposed"),
    ]
    conn.executemany(insert, rows)
    conn.commit()
    conn.close()
    out = line_of((SAMPLES / "sonnet46_session.json").read_text()).stdout.strip()
    assert out.endswith(" · 2 lessons")  # this project's and the environment's, active only


@pytest.mark.parametrize(
    ("stdin", "expected"),
    [
        ("{not json", "headroom: statusline input is not JSON"),
        ("[1, 2]", "headroom: statusline input is not a JSON object"),
        ("{}", "headroom: no session_id in the statusline input"),
        ('{"session_id": 7}', "headroom: no session_id in the statusline input"),
        ("x" * (statusline.MAX_INPUT + 2), "headroom: statusline input too large"),
    ],
)
def test_bad_input_is_one_line_and_exit_zero(stdin: str, expected: str) -> None:
    done = line_of(stdin)
    assert done.returncode == 0 and done.stdout == expected + "\n" and done.stderr == ""


def test_no_database_yet_says_so() -> None:
    done = line_of((SAMPLES / "sonnet46_session.json").read_text())
    assert done.returncode == 0 and "no data yet" in done.stdout
    assert not db_file().exists()  # the status line never creates the database, nor ingests


def test_the_rate_card_spares_the_price_table_on_warm_runs(ingested: Path) -> None:
    sample = (SAMPLES / "sonnet46_session.json").read_text()
    first = line_of(sample).stdout
    card = json.loads((Path(os.environ["HEADROOM_HOME"]) / "state" / "rate-card.json").read_text())
    assert "claude-sonnet-4-6" in card["models"] and card["thresholds"]
    assert card["table"]["package"] == "genai-prices"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "headroom.daemon.statusline"],
        input=sample,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert done.stdout == first
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    heavy = {name for name in imported if name.split(".")[0] in ("genai_prices", "sqlalchemy", "click", "rich")}
    assert heavy == set(), heavy


# -- install / uninstall ------------------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "claude-home"
    home.mkdir()
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home))
    return home / "settings.json"


ORIGINAL = """{
  // the user's own settings, comments and all
  "model": "opus",
  "hooks": {"Stop": []},
  "permissions": {"allow": ["Bash(ls:*)"]}
}
"""


def test_install_adds_only_the_statusline_key_and_uninstall_restores_the_bytes(settings: Path) -> None:
    settings.write_text(ORIGINAL)
    out = run("statusline", "install").output
    assert "installed in" in out
    data = json.loads("\n".join(ln for ln in settings.read_text().splitlines() if "//" not in ln))
    assert data["model"] == "opus" and data["permissions"] == {"allow": ["Bash(ls:*)"]}
    assert data["statusLine"]["type"] == "command" and "-m headroom.daemon.statusline" in data["statusLine"]["command"]
    assert "// the user's own settings" in settings.read_text()
    assert "already installed" in run("statusline", "install").output
    run("statusline", "uninstall")
    assert settings.read_text() == ORIGINAL
    assert "not installed" in run("statusline", "uninstall").output


def test_the_installed_command_runs(ingested: Path, settings: Path) -> None:
    """`ingested` first: it points CLAUDE_CONFIG_DIR at the read-only fixtures, `settings` then moves it."""
    run("statusline", "install")
    command = json.loads(settings.read_text())["statusLine"]["command"]
    done = subprocess.run(
        command,
        shell=True,
        input=(SAMPLES / "sonnet46_session.json").read_text(),
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert done.returncode == 0 and done.stdout.startswith("session $")


def test_a_users_own_statusline_is_kept_unless_forced(settings: Path) -> None:
    own = '{\n  "statusLine": {"type": "command", "command": "~/.claude/my-line.sh"}\n}\n'
    settings.write_text(own)
    refused = run("statusline", "install", ok=False)
    assert refused.exit_code == 1 and "--force" in refused.output and "my-line.sh" in refused.output
    assert settings.read_text() == own
    assert "not installed" in run("statusline", "uninstall").output  # not headroom's: left alone
    assert settings.read_text() == own
    dry = run("statusline", "install", "--force", "--dry-run").output
    assert "would be updated" in dry and "+" in dry and settings.read_text() == own
    run("statusline", "install", "--force")
    assert "headroom.daemon.statusline" in json.loads(settings.read_text())["statusLine"]["command"]
    assert (settings.parent / "settings.json.headroom-bak").read_text() == own


def test_install_refuses_a_settings_file_that_does_not_parse(settings: Path) -> None:
    settings.write_text('{"model": ')
    result = run("statusline", "install", ok=False)
    assert result.exit_code == 1 and "cannot be parsed" in result.output
    assert settings.read_text() == '{"model": '


def test_install_creates_a_missing_settings_file(settings: Path) -> None:
    run("statusline", "install")
    assert set(json.loads(settings.read_text())) == {"statusLine"}
    assert settings.stat().st_mode & 0o077 == 0
    run("statusline", "uninstall")
    assert json.loads(settings.read_text()) == {}


def test_a_postgresql_database_gives_the_same_line(
    real_logs: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A team's PostgreSQL is read through SQLAlchemy (the slow way): the same figures as on SQLite."""
    run("ingest")
    sample = (SAMPLES / "sonnet46_session.json").read_text()
    on_sqlite = line_of(sample).stdout.strip()
    monkeypatch.setenv("HEADROOM_DATABASE_URL", pg_url)
    run("ingest")
    assert figures(SONNET46)["line"] == on_sqlite
    done = line_of(sample)
    assert done.returncode == 0 and done.stdout.strip() == on_sqlite


def test_stats_session_names_a_missing_session_clearly(ingested: Path) -> None:
    result = run("stats", "--session", "no-such-session", "--no-refresh", ok=False)
    assert result.exit_code == 1 and "no session matches 'no-such-session'" in result.output
    assert "Traceback" not in result.output
    codex = json.loads(run("sessions", "--agent", "codex", "-n", "1", "--json", "--no-refresh").stdout)[0]
    figures_ = figures(codex["session"][:12])  # a prefix is enough, and Codex gets the same figures
    assert figures_["agent"] == "codex" and figures_["session_cost_usd"] == pytest.approx(codex["cost_usd"])
