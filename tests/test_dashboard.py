"""The local dashboard: its figures from a real database, its routes in the proxy app, and the page in Chromium.

The figures are checked against rows inserted by hand (so the expectations come from the rows, not from the
queries under test); the routes through the ASGI app in-process, including the loopback-only rule for the
data; and the page itself in a real headless Chromium against a real server, which is the only way to know
that the SVG charts are actually drawn (the test skips, saying why, when Chromium is not installed).
"""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from headroom.daemon.config import load_config
from headroom.daemon.dashboard import dashboard_data, price_per_million
from headroom.daemon.dashboard.data import Dashboard, Figures, LessonItem, MemoryFigures, ProjectFigures
from headroom.daemon.proxy.app import ProxyApp
from headroom.daemon.proxy.server import ProxyServer, build_app
from headroom.memory.api import Memory
from headroom.memory.db import Database
from headroom.memory.models import LessonRow, ProxyRequestRow, SessionRow


def utc_today() -> date:
    """Today in UTC, read when asked: a constant taken at import went stale for a suite running past midnight."""
    return datetime.now(timezone.utc).date()


def _at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour))


def _request(days_ago: int, agent: str, provider: str, model: str | None, before: int, after: int) -> dict[str, Any]:
    day = utc_today() - timedelta(days=days_ago)
    return {
        "ts": _at(day, 0 if days_ago == 0 else 12),
        "day": day,
        "agent": agent,
        "provider": provider,
        "endpoint": "messages",
        "model": model,
        "status": 200,
        "tokens_before": before,
        "tokens_after": after,
    }


def _session(key: str, project: str | None, days_ago: int, calls: int, failed: int, api_errors: int = 0) -> SessionRow:
    start = _at(utc_today() - timedelta(days=days_ago), 0)
    return SessionRow(
        agent="claude",
        key=key,
        project_root=project,
        started_at=start,
        ended_at=start + timedelta(minutes=30),
        tool_calls=calls,
        failed_tool_calls=failed,
        api_errors=api_errors,
        stale=False,
    )


def _lesson(key: str, status: str, text: str, **extra: Any) -> LessonRow:
    now = _at(utc_today())
    return LessonRow(
        key=key,
        project="/p/a",
        kind="command",
        signature=key,
        text=text,
        status=status,
        sessions=3,
        count=4,
        created_at=now,
        updated_at=now,
        **extra,
    )


def seed(db: Database) -> None:
    """Proxy requests, sessions, lessons and memory items whose aggregates the tests spell out by hand."""
    with db.transaction() as s:
        s.execute(
            insert(ProxyRequestRow),
            [
                _request(0, "claude", "anthropic", "claude-sonnet-4-5", 6000, 2000),
                _request(0, "claude", "anthropic", "claude-sonnet-4-5", 4000, 2000),
                _request(0, "codex", "openai", "gpt-5-codex", 5000, 1000),
                _request(2, "claude", "anthropic", "claude-opus-4-1", 2000, 500),
                _request(1, "gemini", "gemini", None, 1000, 1000),  # nothing saved: no bar
                _request(40, "claude", "anthropic", "claude-sonnet-4-5", 9000, 1000),  # outside 30 days
            ],
        )
        s.add_all(
            [
                _session("a1", "/p/a", 0, calls=10, failed=2),
                _session("a2", "/p/a", 1, calls=5, failed=0, api_errors=1),
                _session("a3", "/p/a", 3, calls=5, failed=0),
                _session("b1", "/p/b", 2, calls=4, failed=1),
                _session("n1", None, 0, calls=0, failed=0),
                _session("old", "/p/a", 60, calls=50, failed=50),  # outside 30 days
            ]
        )
        s.add_all(
            [
                _lesson(
                    "k1",
                    "active",
                    "Run `uv run pytest`, not `pytest`.",
                    sessions_before=10,
                    recurring_before=4,
                    sessions_after=5,
                    recurring_after=1,
                ),
                _lesson("k2", "proposed", "The API key is [REDACTED]; use the env file."),
                _lesson("k3", "retired", "Use `python3`.", retired_reason="expired"),
            ]
        )
    memory = Memory(db)
    memory.put("Deploys go through `make release`, never by hand.", "decision", project="/p/a", agent="claude")
    memory.put("Tests need PostgreSQL 16 for the JSON operators.", "decision", project="/p/a", agent="codex")
    memory.put("Always answer in British English.", "instruction", project="/p/b", agent="gemini")


@pytest.fixture
def seeded(db: Database) -> Database:
    seed(db)
    return db


# -- the figures ---------------------------------------------------------------------------------------------


def test_savings_per_day_and_agent_with_a_dollar_estimate(seeded: Database) -> None:
    data = dashboard_data(seeded)
    assert (data["days"], data["since"], data["until"]) == (
        30,
        (utc_today() - timedelta(days=29)).isoformat(),
        str(utc_today()),
    )
    s = data["savings"]
    assert s["agents"] == ["claude", "codex", "gemini"]
    assert len(s["days"]) == 30 and s["days"][-1]["day"] == utc_today().isoformat()  # every day, zeros included
    today, two_ago = s["days"][-1]["agents"], s["days"][-3]["agents"]
    assert today["claude"]["tokens_saved"] == 6000 and today["claude"]["requests"] == 2
    assert today["claude"]["usd_estimate"] == pytest.approx(6000 * 3.0 / 1e6)
    assert today["codex"]["tokens_saved"] == 4000
    assert today["codex"]["usd_estimate"] == pytest.approx(4000 * 1.25 / 1e6)
    assert two_ago == {"claude": two_ago["claude"]} and two_ago["claude"]["tokens_saved"] == 1500
    assert two_ago["claude"]["usd_estimate"] == pytest.approx(1500 * 15.0 / 1e6)  # opus: another family
    assert s["days"][-2]["agents"]["gemini"]["tokens_saved"] == 0
    assert s["by_agent"]["claude"]["tokens_before"] == 12000 and s["by_agent"]["claude"]["tokens_after"] == 4500
    total = s["total"]
    assert (total["requests"], total["tokens_saved"]) == (5, 6000 + 4000 + 1500)
    assert total["saved_ratio"] == round(11500 / 18000, 4)
    assert total["usd_estimate"] == pytest.approx(0.018 + 0.005 + 0.0225)
    assert "estimate" in data["prices"]["note"]
    # A longer window reaches the old request.
    assert dashboard_data(seeded, days=60)["savings"]["total"]["tokens_saved"] == 11500 + 8000


def test_price_families() -> None:
    assert price_per_million("claude-opus-4-1-20250805") == 15.0
    assert price_per_million("claude-3-5-haiku-latest") == 1.0
    assert price_per_million("gpt-5-mini") == 0.25
    assert price_per_million("gemini-2.5-flash-lite") == 0.1
    assert price_per_million(None, "openai") == 1.25
    assert price_per_million("some-new-model", "nobody") == 3.0


def test_sessions_and_failure_rates_per_project(seeded: Database) -> None:
    rows = {p["project"]: p for p in dashboard_data(seeded)["projects"]}
    assert list(rows) == ["/p/b", "/p/a", "(no project)"]  # worst failure rate first
    a = rows["/p/a"]
    assert (a["sessions"], a["tool_calls"], a["failed_tool_calls"], a["failure_rate"]) == (3, 20, 2, 0.1)
    assert (a["failed_sessions"], a["session_failure_rate"], a["api_errors"]) == (2, 0.6667, 1)
    b = rows["/p/b"]
    assert (b["sessions"], b["failure_rate"], b["failed_sessions"]) == (1, 0.25, 1)
    assert rows["(no project)"]["sessions"] == 1 and rows["(no project)"]["failure_rate"] == 0.0


def test_lessons_and_memory(seeded: Database) -> None:
    data = dashboard_data(seeded)
    lessons = data["lessons"]
    assert lessons["total"] == 3 and lessons["by_status"] == {"active": 1, "proposed": 1, "retired": 1}
    assert [i["status"] for i in lessons["items"]] == ["active", "proposed", "retired"]
    active = lessons["items"][0]
    assert (active["text"], active["before"], active["after"]) == ("Run `uv run pytest`, not `pytest`.", "4/10", "1/5")
    assert lessons["items"][2]["retired_reason"] == "expired"
    assert "evidence" not in active and "signature" not in active
    mem = data["memory"]
    assert mem["items"] == 3 and mem["by_kind"] == {"decision": 2, "instruction": 1}
    assert mem["projects"] == 2 and mem["db_bytes"] > 0
    assert "Deploys" not in str(data)  # memory contents never leave through the dashboard


def test_an_empty_database_gives_empty_figures(db: Database) -> None:
    data = dashboard_data(db, days=7)
    assert data["savings"]["agents"] == [] and len(data["savings"]["days"]) == 7
    assert data["savings"]["total"]["tokens_saved"] == 0
    assert data["projects"] == [] and data["lessons"]["items"] == [] and data["memory"]["items"] == 0


# -- the routes ------------------------------------------------------------------------------------------------


def _get(
    app: ProxyApp, path: str, client: tuple[str, int] = ("127.0.0.1", 50000), host: str = "127.0.0.1:8787"
) -> httpx.Response:
    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as http:
            return await http.get(path)

    return asyncio.run(main())


@pytest.fixture
def app(seeded: Database) -> Iterator[ProxyApp]:
    config = load_config()
    proxy = build_app(config, seeded)
    try:
        yield proxy
    finally:
        if proxy.stats is not None:
            proxy.stats.close()


def test_static_files_name_no_outside_url() -> None:
    folder = resources.files("headroom.daemon.dashboard").joinpath("static")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["dashboard.css", "dashboard.js", "index.html"]
    for name in names:
        text = folder.joinpath(name).read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name


def test_the_page_and_its_files_are_served(app: ProxyApp) -> None:
    for path in ("/dashboard", "/dashboard/"):
        page = _get(app, path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<svg" not in page.text and 'src="/dashboard/dashboard.js"' in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
    assert _get(app, "/dashboard/dashboard.js").headers["content-type"].startswith("text/javascript")
    assert _get(app, "/dashboard/dashboard.css").headers["content-type"].startswith("text/css")
    assert _get(app, "/dashboard/..%2fpyproject.toml").status_code == 404
    assert _get(app, "/dashboard/static/index.html").status_code == 404
    assert _get(app, "/dashboard/nothing.js").status_code == 404
    # The page holds no data: another machine may load it (it will just not get the figures).
    assert _get(app, "/dashboard", client=("192.168.1.20", 50000)).status_code == 200


def test_the_data_is_for_loopback_clients_only(app: ProxyApp) -> None:
    ok = _get(app, "/dashboard/data.json?days=7")
    assert ok.status_code == 200 and ok.headers["cache-control"] == "no-store"
    assert ok.json()["days"] == 7 and ok.json()["savings"]["total"]["tokens_saved"] == 11500
    assert _get(app, "/dashboard/data.json").json()["days"] == 30
    assert _get(app, "/dashboard/data.json", host="localhost:8787").status_code == 200
    assert _get(app, "/dashboard/data.json", client=("::1", 50000), host="[::1]:8787").status_code == 200
    refused = _get(app, "/dashboard/data.json", client=("192.168.1.20", 50000))
    assert refused.status_code == 403 and "local clients" in refused.json()["error"]
    # A page of another site whose name resolves to 127.0.0.1 (DNS rebinding) names its own host.
    assert _get(app, "/dashboard/data.json", host="evil.example:8787").status_code == 403
    assert _get(app, "/dashboard/data.json?days=0").status_code == 400
    assert _get(app, "/dashboard/data.json?days=x").status_code == 400


def test_without_a_database_the_data_is_unavailable() -> None:
    proxy = build_app(load_config(), None)
    try:
        assert _get(proxy, "/dashboard").status_code == 200
        assert _get(proxy, "/dashboard/data.json").status_code == 503
    finally:
        if proxy.stats is not None:
            proxy.stats.close()


# -- the page in a real browser ------------------------------------------------------------------------------


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("headless Chromium is not installed (apt-get install -y chromium)")


def _headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _png_pixels(data: bytes) -> set[bytes]:
    """The distinct pixel values of an 8-bit RGB(A) PNG (what Chromium writes), decoded with zlib only."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(b"".join(chunks)), width * bpp
    previous, seen = bytearray(stride), set()
    for row in range(height):
        kind, line = raw[row * (stride + 1)], bytearray(raw[row * (stride + 1) + 1 : (row + 1) * (stride + 1)])
        for i in range(stride):  # undo the PNG row filters
            left = line[i - bpp] if i >= bpp else 0
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        if row % 8 == 0:
            seen.update(bytes(line[i : i + bpp]) for i in range(0, stride, bpp * 8))
        previous = line
    return seen


@pytest.mark.slow
def test_chromium_draws_the_charts(seeded: Database, tmp_path: Path) -> None:
    browser = _chromium()
    config = load_config()
    server = ProxyServer(
        build_app(config, seeded, dashboard_data=lambda days: dashboard_data(seeded, days)), "127.0.0.1", 0
    )
    server.start()
    try:
        url = f"{server.url}/dashboard?days=30"
        dom = _headless(browser, tmp_path / "profile", "--dump-dom", url)
        assert dom.returncode == 0, dom.stderr[-2000:]
        html = dom.stdout
        assert 'data-state="ready"' in html, html[:3000]
        assert 'id="savings-svg"' in html and 'id="projects-svg"' in html and 'id="memory-svg"' in html
        # One stacked segment per (day, agent) with tokens saved: claude and codex today, claude two days ago.
        assert html.count('class="bar saved"') == 3
        assert html.count('data-agent="claude"') == 2 and html.count('data-agent="codex"') == 1
        assert html.count('class="bar failure"') == 3  # one bar per project
        assert html.count('class="bar memory"') == 2  # decision, instruction
        assert 'id="error" class="error" role="alert" hidden=""' in html  # the error banner stayed hidden
        assert "Run `uv run pytest`, not `pytest`." in html and "4/10" in html

        shot = tmp_path / "shot.png"
        run = _headless(browser, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,900", url)
        assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
        data = shot.read_bytes()
        assert len(data) > 20_000
        assert len(_png_pixels(data)) > 10  # charts in several colours, not a blank page
    finally:
        server.stop()


@pytest.mark.slow
def test_an_empty_dashboard_says_so_in_chromium(db: Database, tmp_path: Path) -> None:
    browser = _chromium()
    server = ProxyServer(build_app(load_config(), db), "127.0.0.1", 0)
    server.start()
    try:
        dom = _headless(browser, tmp_path / "profile", "--dump-dom", f"{server.url}/dashboard")
        assert 'data-state="ready"' in dom.stdout
        assert dom.stdout.count("No data yet") == 3 and "No lessons yet" in dom.stdout and "<rect" not in dom.stdout
    finally:
        server.stop()


def test_spend_is_the_price_of_every_call_and_unpriced_calls_are_counted(seeded: Database) -> None:
    from headroom.daemon import pricing
    from headroom.memory.models import UsageRow

    calls = [  # (session, days ago, model, input, output, cache read, cache write, 1-hour part)
        ("a1", 0, "claude-sonnet-4-6", 1_000, 2_000, 50_000, 4_000, 1_000),
        ("a2", 1, "claude-opus-4-6", 10, 500, 250_000, 0, 0),
        ("b1", 2, "claude-haiku-4-5-20251001", 300, 100, 0, 9_000, 0),
        ("b1", 2, "acme-mystery-7", 5_000, 5_000, 0, 0, 0),
        ("old", 60, "claude-sonnet-4-6", 1_000_000, 0, 0, 0, 0),  # outside the 30 days
    ]
    with seeded.transaction() as s:
        ids = {str(key): int(sid) for key, sid in s.execute(select(SessionRow.key, SessionRow.id))}
        for n, (key, ago, model, inp, out, read, write, hour) in enumerate(calls):
            ts = _at(utc_today() - timedelta(days=ago), 1)
            s.add(
                UsageRow(
                    agent="claude",
                    key=f"u{n}",
                    session_id=ids[key],
                    ts=ts,
                    day=ts.date(),
                    model=model,
                    input_tokens=inp,
                    output_tokens=out,
                    cache_read_tokens=read,
                    cache_creation_tokens=write,
                    cache_write_1h_tokens=hour,
                )
            )
    expected = 0.0
    for _key, ago, model, inp, out, read, write, hour in calls[:3]:
        cost = pricing.price(
            model,
            input_tokens=inp,
            output_tokens=out,
            cache_read_tokens=read,
            cache_write_tokens=write,
            cache_write_1h_tokens=hour,
            when=utc_today() - timedelta(days=ago),
        )
        assert cost is not None
        expected += cost.usd
    spend = dashboard_data(seeded)["spend"]
    assert spend["total_usd"] == pytest.approx(expected, abs=1e-6)
    assert spend["unpriced_calls"] == 1 and spend["table"]["package"] == "genai-prices"
    assert sum(v or 0 for day in spend["days"] for v in day["agents"].values()) == pytest.approx(expected, abs=1e-5)
    projects = {p["project"]: p for p in dashboard_data(seeded)["projects"]}
    assert projects["/p/b"]["unpriced_calls"] == 1 and projects["/p/b"]["cost_usd"] > 0
    from click.testing import CliRunner

    from headroom.daemon.cli import cli

    view = CliRunner().invoke(cli, ["stats", "--overview", "--no-refresh"], catch_exceptions=False).output
    assert "spent (list price)" in view and "1 calls of models the price table does not know" in view


def test_the_document_is_its_typed_records(seeded: Database) -> None:
    """``dashboard_data`` is typed section by section (TypedDicts): what it returns has exactly their keys."""
    data = dashboard_data(seeded)
    assert set(data) == Dashboard.__required_keys__
    assert set(data["savings"]["total"]) == Figures.__required_keys__
    assert all(set(f) == Figures.__required_keys__ for f in data["savings"]["by_agent"].values())
    assert data["projects"] and all(set(p) == ProjectFigures.__required_keys__ for p in data["projects"])
    assert data["lessons"]["items"] and set(data["lessons"]["items"][0]) == LessonItem.__required_keys__
    assert set(data["memory"]) == MemoryFigures.__required_keys__
