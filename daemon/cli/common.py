"""What every command shares: the app context (config, DB), catch-up ingestion, and output helpers."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from headroom.daemon.config import Config, default_config, load_config
from headroom.daemon.errors import ConfigError
from headroom.learn.projects import HASH_PREFIX, hashed_name

if TYPE_CHECKING:  # the DB modules load SQLAlchemy and alembic: only commands that open the DB import them
    from headroom.daemon.ingest import ScanReport
    from headroom.memory.db import Database

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class App:
    """Lazily opened resources for one CLI invocation."""

    config_path: str | None = None
    _config: Config | None = None
    _db: Database | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    config_error: ConfigError | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_file)
        return self._config

    @property
    def config_file(self) -> Path | None:
        """``--config``, or None for the default file."""
        return None if self.config_path is None else Path(self.config_path)

    def diagnosis_config(self) -> Config:
        """The config for the diagnosis commands (doctor, daemon status, daemon logs): a broken file must not
        stop them, so they get the defaults and :attr:`config_error` says what is wrong with the file."""
        if self._config is None:
            try:
                self._config = load_config(self.config_file)
            except ConfigError as exc:
                if self.config_file is not None and not self.config_file.exists():
                    raise  # --config naming no file is the user's typo, not a broken file to diagnose
                self.config_error = exc
                self._config = default_config()
        return self._config

    @property
    def db(self) -> Database:
        """The database, created and upgraded on first use."""
        if self._db is None:
            from headroom.memory.db import open_database

            self.config.paths.ensure()
            self._db = open_database(self.config.database_url)
            self._closers.append(self._db.close)
        return self._db

    @property
    def read_db(self) -> Database:
        """The database for a command that only reads: opened read-only when its schema is current (no lock
        file, no upgrade: works on a read-only data dir), else as :attr:`db` (upgraded) where it can write."""
        if self._db is None:
            from headroom.memory.db import open_database, sqlite_path
            from headroom.memory.errors import DatabaseNeedsUpgrade

            url = self.config.database_url
            path = sqlite_path(url)
            if path is None or (not path.exists() and writable(path.parent)):
                return self.db
            try:
                self._db = open_database(url, read_only=True)
            except DatabaseNeedsUpgrade:
                if not writable(path.parent):
                    raise
                return self.db
            self._closers.append(self._db.close)
        return self._db

    @property
    def data_read_only(self) -> bool:
        """Whether the SQLite database's folder cannot be written (a read-only mount, a locked-down copy)."""
        from headroom.memory.db import sqlite_path

        path = sqlite_path(self.config.database_url)
        return path is not None and not writable(path.parent)

    def catch_up(self, *, quiet: bool = False) -> ScanReport | None:
        """Ingest what is new, unless a running daemon already keeps the DB current."""
        from headroom.daemon.process import running_daemon_pid
        from headroom.daemon.service import make_ingestor  # readers load only when needed

        if running_daemon_pid(self.config.paths) is not None:
            return None
        if self.data_read_only:
            if not quiet:
                click.echo("note: the data dir is read-only: showing the database as it is (no catch-up)", err=True)
            return None
        ingestor = make_ingestor(self.config, self.db)
        if quiet or not sys.stderr.isatty():
            return ingestor.scan()
        with progress_bar("ingesting agent logs") as update:
            return ingestor.scan(progress=update)

    def close(self) -> None:
        for closer in reversed(self._closers):
            closer()
        self._closers.clear()


pass_app = click.make_pass_decorator(App, ensure=True)


def writable(folder: Path) -> bool:
    """Whether this process may create files in ``folder``, or create it (False on a read-only mount, even
    for root: access(2) answers EROFS for everyone)."""
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return os.access(folder, os.W_OK)


def refresh_option(func: F) -> F:
    """``--no-refresh``: show the DB as it is, without ingesting new log lines first."""
    return click.option(
        "--refresh/--no-refresh",
        default=True,
        show_default=True,
        help="Ingest new log lines first (skipped while the daemon runs: it keeps the DB current).",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(func)


def echo_install_rows(rows: list[dict[str, Any]], group: str, file_key: str, unreadable: str) -> None:
    """``mcp status`` and ``hooks status``: one line per agent with its state and file, errors on stderr."""
    words = {
        "installed": "installed",
        "outdated": f"installed, outdated (`headroom {group} install AGENT` updates it)",
        "absent": "not installed",
        "unreadable": unreadable,
    }
    for row in rows:
        click.echo(f"{row['agent']:<7} {words[str(row['state'])]:<16} {row[file_key]}")
        if row.get("codex_hooks") is False:
            click.echo("        [features] codex_hooks = false in config.toml: Codex runs no hooks", err=True)
        if row["error"]:
            click.echo(f"        {row['error']}", err=True)


def emit_json(data: Any) -> None:
    """Print data as JSON on stdout (dates as ISO strings)."""
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str).decode())


def console() -> Console:
    """stdout; wide when it is not a terminal, so piped tables are not squeezed to 80 columns."""
    probe = Console()
    return Console(soft_wrap=False, width=None if probe.is_terminal else 200)


def err_console() -> Console:
    return Console(stderr=True)


class progress_bar:
    """A rich progress bar on stderr fed by (done, total, path) callbacks."""

    def __init__(self, label: str) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=err_console(),
            transient=True,
        )
        self.task = self.progress.add_task(label, total=None)

    def __enter__(self) -> Callable[[int, int, str], None]:
        self.progress.start()

        def update(done: int, total: int, _path: str) -> None:
            if self.progress.live.is_started:
                self.progress.update(self.task, completed=done, total=total)

        return update

    def stop(self) -> None:
        """Stop redrawing and clear the bar (it is transient); safe to call again."""
        if self.progress.live.is_started:
            self.progress.stop()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_RELATIVE = re.compile(r"^(\d+)\s*([dwmy])$")


def parse_since(value: str | None, tz: tzinfo = timezone.utc) -> date | None:
    """``2026-04-01``, ``20260401``, ``7d``, ``2w``, ``3m``, ``1y``, ``today`` or ``yesterday`` (in ``tz``)."""
    if value is None:
        return None
    text = value.strip().lower()
    today = datetime.now(tz).date()
    if text == "today":
        return today
    if text == "yesterday":
        return today - timedelta(days=1)
    match = _RELATIVE.match(text)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        days = {"d": 1, "w": 7, "m": 30, "y": 365}[unit] * amount
        return today - timedelta(days=days)
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise click.BadParameter(f"{value!r} is not a date (use YYYY-MM-DD, or 7d / 2w / 3m / 1y, today, yesterday)")


def human_tokens(value: int) -> str:
    """1234 -> 1.2k, 1234567 -> 1.2M: enough precision to compare rows at a glance."""
    for limit, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}"
    return str(value)


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def local_time(iso: str | None, tz: tzinfo | None = None) -> str:
    """An ISO UTC timestamp shown in ``tz`` (default: the user's local time), to the minute."""
    if not iso:
        return "-"
    moment = datetime.fromisoformat(iso.rstrip("Z")).replace(tzinfo=timezone.utc).astimezone(tz)
    return moment.strftime("%Y-%m-%d %H:%M")


# Terminal control sequences, whole (so a payload such as an OSC 52 clipboard write goes with its introducer):
# CSI (colours, cursor moves, clear screen), OSC (window title, clipboard, hyperlinks) up to BEL/ST or the end,
# DCS/SOS/PM/APC strings, two-byte escapes; then any control character left but tab and newline (C0, DEL, C1).
_CONTROL = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)


def printable(text: str | None) -> str:
    """``text`` from an agent's log made safe for a terminal: control sequences removed, ``\n`` and ``\t`` kept.

    Session logs hold whatever a tool printed or a web page contained; printed raw, an escape sequence could
    set the clipboard (OSC 52), retitle the window or clear the screen. Every command that prints text from
    logs (sessions, stats, learn, memory) passes it through here first.
    """
    return _CONTROL.sub("", text) if text else ""


def project_name(path: str | None) -> str:
    if not path:
        return "-"
    if path.startswith(HASH_PREFIX):
        return hashed_name(path)
    path = printable(path)
    return re.split(r"[\\/]", path.rstrip("/\\"))[-1] or path
