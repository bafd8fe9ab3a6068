"""``headroom statusline``: one line for Claude Code's status bar, fast enough for every redraw (≤ 50 ms warm).

Claude Code runs the configured command on each redraw with a JSON document on stdin (``session_id``,
``transcript_path``, ``model``, ``workspace``, ``cost``...) and shows the first line printed. Why this module
imports only the standard library: the CLI (click, SQLAlchemy, rich) takes far longer than 50 ms to import,
and so does the 30,000-line price table. So it

- finds the database the way :func:`headroom.daemon.paths.paths` does (``HEADROOM_HOME``, else the XDG
  folders), and opens it read-only with ``sqlite3`` (a PostgreSQL ``database_url`` goes the slow way, through
  the full application);
- prices with the rate card (``state/rate-card.json``: the rates of the models seen, the tier thresholds),
  rebuilt from the price table only when a model is missing from it or the day changed;
- never starts ingestion: the figures are what the daemon has ingested (Claude Code's own ``cost`` figure is
  shown instead when headroom has not seen the session yet).

Bad input prints one short line (the status bar shows it) and exits 0: a status bar is no place for a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

MAX_INPUT = 1 << 20
APP = "headroom"


def data_and_state_dirs() -> tuple[Path, Path]:
    """(data dir, state dir), as :func:`headroom.daemon.paths.paths` decides them, without platformdirs."""
    home = os.environ.get("HEADROOM_HOME")
    if home:
        root = Path(home).expanduser()
        return root, root / "state"
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support" / APP
        return base, base
    data = os.environ.get("XDG_DATA_HOME", "").strip() or str(Path.home() / ".local" / "share")
    state = os.environ.get("XDG_STATE_HOME", "").strip() or str(Path.home() / ".local" / "state")
    return Path(data) / APP, Path(state) / APP


def configured_url(data_dir: Path, *, strict: bool = False) -> str | None:
    """The database URL the config gives: ``HEADROOM_DATABASE_URL``, then ``database_url`` in config.toml, else the
    data folder's SQLite file. None when the config file cannot be read or parsed and ``strict`` (the CLI then
    says why); otherwise such a file counts as none. Not strict, a file that never names ``database_url`` is not
    parsed (tomllib costs a redraw a few milliseconds)."""
    url = os.environ.get("HEADROOM_DATABASE_URL", "")
    if url:
        return url
    config = data_dir / "config.toml" if os.environ.get("HEADROOM_HOME") else None
    if config is None:
        xdg = os.environ.get("XDG_CONFIG_HOME", "").strip() or str(Path.home() / ".config")
        config = Path(xdg) / APP / "config.toml"
    try:
        text = config.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except (OSError, ValueError):
        if strict:
            return None
        text = ""
    if text.strip() if strict else "database_url" in text:
        import tomllib

        try:
            url = str(tomllib.loads(text).get("database_url") or "")
        except ValueError:
            if strict:
                return None
    return url or f"sqlite:///{data_dir / 'headroom.db'}"


def _sqlite_file(data_dir: Path) -> Path | None:
    """The SQLite file, or None when the database is elsewhere (``HEADROOM_DATABASE_URL`` or config.toml)."""
    url = configured_url(data_dir) or ""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    return None


class Card:
    """The rate card: rates per logged model name (plain JSON), the known-unpriced names, the tier thresholds.

    A warm run only reads it. The price table (and :mod:`headroom.daemon.pricing`) is imported when the card is
    missing, from another day (prices can change on a date), or lacks a model: then the card is rewritten.
    """

    def __init__(self, path: str, today: date) -> None:
        self.path, self.today = path, today
        self.rates: dict[str, Any] = {}
        self.unpriced: set[str] = set()
        self.thresholds: list[int] = []
        self.dirty = True
        try:
            with open(path, encoding="utf-8") as fh:
                card = json.load(fh)
            if card.get("day") == today.isoformat() and isinstance(card.get("thresholds"), list):
                self.rates = dict(card.get("models", {}))
                self.unpriced = set(card.get("unpriced", []))
                self.thresholds = [int(t) for t in card["thresholds"]]
                self.dirty = False
            else:
                self.rates = dict.fromkeys([*card.get("models", {}), *card.get("unpriced", [])])
        except (OSError, ValueError, TypeError, AttributeError):
            pass
        if self.dirty:  # rebuild from the table: the same names, today's prices
            self.thresholds = list(self._pricing().tier_thresholds())
            names, self.rates = list(self.rates), {}
            for name in names:
                self.lookup(name)

    def _pricing(self) -> Any:
        from headroom.daemon import pricing

        return pricing

    def lookup(self, model: str | None, agent: str = "", day: date | None = None) -> Any:
        if model is None:
            return None
        if model in self.rates:
            return self.rates[model]
        if model in self.unpriced:
            return None
        found = self._pricing().rates(model, when=self.today)  # a miss: the table, once
        if found is None:
            self.unpriced.add(model)
        else:
            self.rates[model] = found.to_json()
        self.dirty = True
        return self.rates.get(model)

    def save(self) -> None:
        if not self.dirty:
            return
        from pathlib import Path

        with contextlib.suppress(OSError):  # a read-only state dir: price from the table again next time
            self._pricing().write_rate_card(Path(self.path), [*self.rates, *self.unpriced], when=self.today)


def line(document: dict[str, Any], *, now: datetime | None = None) -> str:
    """The status line for one statusline input document."""
    from headroom.daemon import statusline_data as data

    session_id = document.get("session_id")
    if not isinstance(session_id, str) or not session_id:
        return "headroom: no session_id in the statusline input"
    workspace = _object(document.get("workspace"))
    project = workspace.get("project_dir") or workspace.get("current_dir") or document.get("cwd")
    data_dir, state_dir = data_and_state_dirs()
    db_file = _sqlite_file(data_dir)
    if db_file is None:
        return _slow(document)
    if not db_file.is_file():
        return "headroom: no data yet (is the daemon running? `headroom doctor`)"
    today = (now or datetime.now(UTC)).astimezone().date()  # the local day (TZ honoured)
    card = Card(os.path.join(state_dir, "rate-card.json"), today)
    try:
        conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=0.2)
    except sqlite3.Error as exc:
        return f"headroom: database unreadable ({exc})"
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(proxy_requests)")}
        usage_columns = {row[1] for row in conn.execute("PRAGMA table_info(usage)")}

        def execute(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
            return list(conn.execute(sql, params))

        figures = data.figures(
            execute,
            agent="claude",
            session_key=session_id,
            project=project if isinstance(project, str) else None,
            tz=None,
            thresholds=card.thresholds,
            rates_of=card.lookup,
            has_conversation="conversation" in columns,
            has_1h="cache_write_1h_tokens" in usage_columns,
            now=now,
        )
    except sqlite3.Error as exc:
        return f"headroom: database busy or unreadable ({exc})"
    finally:
        conn.close()
    card.save()
    if not figures["session_calls"]:  # not ingested yet: Claude Code's own figure, said to be its
        total = _object(document.get("cost")).get("total_cost_usd")
        if isinstance(total, (int, float)):
            return str(figures["line"]).replace("session $0.00", f"session ${total:.2f} (Claude Code)", 1)
    return str(figures["line"])


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _slow(document: dict[str, Any]) -> str:
    """A database that is not a local SQLite file (a team's PostgreSQL): through SQLAlchemy (slower, same figures)."""
    from headroom.daemon.config import load_config
    from headroom.daemon.statusline_data import session_figures
    from headroom.daemon.zones import zone
    from headroom.memory.db import open_database

    try:
        config = load_config()
        db = open_database(config.database_url)
    except Exception as exc:  # a status bar shows one line whatever went wrong
        return f"headroom: {type(exc).__name__}: {exc}"
    try:
        with db.sessions() as dbs:
            result = session_figures(dbs, str(document["session_id"]), tz=zone(None), state_dir=config.paths.state_dir)
        return str(result["line"])
    except Exception as exc:  # as above
        return f"headroom: {type(exc).__name__}: {exc}"
    finally:
        db.close()


def read_input(stream: Any) -> dict[str, Any] | str:
    """The statusline document on ``stream``, or the one-line reason it is not one."""
    raw = stream.read(MAX_INPUT + 1)
    if len(raw) > MAX_INPUT:
        return "headroom: statusline input too large"
    try:
        document = json.loads(raw or "{}")
    except ValueError:
        return "headroom: statusline input is not JSON"
    if not isinstance(document, dict):
        return "headroom: statusline input is not a JSON object"
    return document


def main() -> int:
    document = read_input(sys.stdin)
    try:
        text = document if isinstance(document, str) else line(document)
    except Exception as exc:  # one line, never a traceback in the status bar
        text = f"headroom: {type(exc).__name__}: {exc}"
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
