"""Settings from ``config.toml`` (in the config dir), with environment overrides.

Every setting has a default, so a missing file is a normal first run. A wrong key or type is an error that
names the key and the file: a daemon that silently ignores a typo'd setting is worse than one that refuses
to start. Example::

    database_url = "postgresql+psycopg://me@db/headroom"   # default: SQLite in the data dir

    [agents.claude]
    homes = ["~/.claude", "~/work/.claude"]   # default: found like the agent does (CLAUDE_CONFIG_DIR, ...)
    enabled = true

    [ingest]
    max_line_mb = 64      # longer lines are skipped and counted, never loaded whole
    chunk_mb = 4          # bytes read (and committed) per transaction

    [watcher]
    debounce_ms = 200     # a burst of writes to one file is read once
    rescan_seconds = 60   # safety net for missed events (and roots that appear later)
    polling = false       # force the polling observer (network file systems)

    [engine]
    file_read_policy = "outline"   # or "exact": never compress files an agent read (it may edit them next)
    min_tokens = 200               # smaller tool results are left alone
    text_model = "/models/llmlingua-2"  # optional local token-classification model for prose
    disabled = ["code"]            # content kinds to pass through untouched
    dedup_repeats = true           # a tool result identical to an earlier one becomes a reference to it

    [proxy]
    enabled = true                 # run the proxy inside `headroom daemon run`
    host = "127.0.0.1"             # a non-loopback address must be set on purpose (the proxy has no auth)
    port = 8787
    mode = "ccr"                   # or "lossless": only transforms that drop nothing (clients without MCP)
    anthropic_upstream = "https://api.anthropic.com"   # a gateway URL may carry a path prefix
    openai_upstream = "https://api.openai.com"
    gemini_upstream = "https://generativelanguage.googleapis.com"
    max_body_mb = 100              # larger request bodies (as sent or decoded) get a 413 in the provider's format
    connect_timeout = 10           # seconds
    read_timeout = 600             # seconds between two chunks of an answer
    header_timeout = 10            # seconds for a request's line and headers (slow ones are closed)
    body_timeout = 60              # seconds for a whole request body once its headers are in (then 408)
    max_connections = 1000         # open connections; one more gets a 503 and is closed
    allowed_hosts = []             # Host/Origin names besides loopback ones, for a non-loopback bind
    prefix_cache_mb = 64           # what it remembers of messages it sent, to send them again byte for byte

    [memory]
    enabled = true                 # feed the shared memory from the sessions; memory tools in MCP
    embeddings = true              # vectors with all-MiniLM-L6-v2 (the ml extra); false: full-text only
    model_path = ""                # another sentence-transformers model folder (default: the packaged one)
    ccr_retention_days = 7         # originals behind compression markers are kept this long after last use
    max_db_mb = 4096               # past this, the oldest low-value items are pruned (see memory.store.prune)
    briefing_kb = 9                # the SessionStart briefing's size (Claude Code truncates past 10 KB)
    embed_batch = 32               # items embedded per batch by the background worker

    [learn]
    enabled = true                 # mine lessons on the daemon's schedule
    auto_apply_personal = true     # write them into personal files (CLAUDE.local.md, git-ignored files)
    auto_apply_shared = false      # and into files git would share (AGENTS.md, GEMINI.md, CLAUDE.md)
    claude_file = "CLAUDE.local.md"   # or "CLAUDE.md"
    idle_minutes = 15              # a session idle this long is mined
    nightly_at = "03:30"           # local time of the nightly run over every project

    [hooks]                        # what the agents' hooks add (`headroom hooks install`); live on SIGHUP
    briefing = true                # session start: the project briefing
    prompt_memory = true           # each prompt: items from other agents/sessions that answer it
    live_lessons = true            # after a failed tool call: the known fix
    min_relevance = 0.55           # prompt memory: how much of the prompt an item must cover (0-1)
    prompt_tokens = 400            # prompt memory: at most this many tokens per prompt
    lesson_tokens = 150            # live lesson: at most this many tokens per failed call

    [team]                         # who writes the rows, when several daemons share one database_url
    user = "ada"                   # default: the OS login name (env HEADROOM_USER)
    machine = "ada-laptop"         # default: an id generated once into state/machine-id (env HEADROOM_MACHINE)
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from headroom.daemon.errors import ConfigError
from headroom.daemon.paths import Paths, agent_homes, agent_roots_from_homes, default_agent_roots, paths
from headroom.daemon.providers import DEFAULT_UPSTREAMS
from headroom.engine.config import EngineConfig
from headroom.learn.model import AGENTS, Agent
from headroom.memory import identity
from headroom.memory.identity import Identity

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


@dataclass
class AgentSettings:
    enabled: bool = True
    homes: list[str] | None = None  # None: discover like the agent does


@dataclass
class IngestSettings:
    max_line_mb: float = 64.0
    chunk_mb: float = 4.0


@dataclass
class WatcherSettings:
    debounce_ms: int = 200
    rescan_seconds: float = 60.0
    polling: bool = False


@dataclass
class ProxyConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8787
    mode: str = "ccr"
    anthropic_upstream: str = DEFAULT_UPSTREAMS["anthropic"]
    openai_upstream: str = DEFAULT_UPSTREAMS["openai"]
    gemini_upstream: str = DEFAULT_UPSTREAMS["gemini"]
    max_body_mb: float = 100.0
    connect_timeout: float = 10.0
    read_timeout: float = 600.0
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_connections: int = 1000
    #: Names a request's Host (and a browser's Origin) may carry besides loopback ones (see proxy.guard).
    allowed_hosts: list[str] = field(default_factory=list)
    #: What the proxy remembers of the messages it sent (so a conversation's prefix is sent again byte for byte);
    #: past it the least recently used entries go, and the engine compresses such a message again, identically.
    prefix_cache_mb: float = 64.0


@dataclass
class MemoryConfig:
    enabled: bool = True
    embeddings: bool = True
    model_path: str = ""
    ccr_retention_days: float = 7.0
    max_db_mb: float = 4096.0
    briefing_kb: float = 9.0
    embed_batch: int = 32


@dataclass
class LearnConfig:
    enabled: bool = True
    auto_apply_personal: bool = True
    auto_apply_shared: bool = False
    claude_file: str = "CLAUDE.local.md"
    idle_minutes: float = 15.0
    nightly_at: str = "03:30"


@dataclass
class HooksConfig:
    briefing: bool = True
    prompt_memory: bool = True
    live_lessons: bool = True
    min_relevance: float = 0.55
    prompt_tokens: int = 400
    lesson_tokens: int = 150


@dataclass
class TeamConfig:
    user: str = ""
    machine: str = ""


@dataclass
class Config:
    """The effective configuration of this process."""

    paths: Paths
    database_url: str = ""
    agents: dict[Agent, AgentSettings] = field(default_factory=lambda: {a: AgentSettings() for a in AGENTS})
    ingest: IngestSettings = field(default_factory=IngestSettings)
    watcher: WatcherSettings = field(default_factory=WatcherSettings)
    engine: EngineConfig = field(default_factory=EngineConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    learn: LearnConfig = field(default_factory=LearnConfig)
    hooks: HooksConfig = field(default_factory=HooksConfig)
    team: TeamConfig = field(default_factory=TeamConfig)
    #: The user and machine this process stamps on every row (from ``team`` and the environment).
    identity: Identity | None = None
    source: Path | None = None  # the file it was read from, if any

    def agent_roots(self) -> dict[Agent, list[Path]]:
        """The log roots to ingest, per enabled agent."""
        defaults = default_agent_roots()
        roots: dict[Agent, list[Path]] = {}
        for agent in AGENTS:
            settings = self.agents[agent]
            if not settings.enabled:
                continue
            if settings.homes is not None:
                roots[agent] = agent_roots_from_homes(agent, agent_homes(agent, settings.homes))
            else:
                roots[agent] = defaults[agent]
        return roots


def load_config(path: Path | None = None) -> Config:
    """Read the config file (default: ``config.toml`` in the config dir) and apply env overrides.

    A file named explicitly (``--config``) must exist; the default one may be absent (a first run).
    """
    where = paths()
    file = path or where.config_file
    config = Config(paths=where)
    if path is not None and not path.is_file():
        raise ConfigError(f"{path}: no such config file" + (" (a folder)" if path.is_dir() else ""))
    if file.exists():
        try:
            text = file.read_text(encoding="utf-8")
            data = tomllib.loads(text)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{file}: cannot be read as TOML: {exc}") from exc
        try:
            _apply(config, data, file)
        except ConfigError as exc:
            raise ConfigError(_with_line(str(exc), file, text)) from None
        config.source = file
    _apply_environment(config)
    return config


def default_config() -> Config:
    """The built-in defaults with the environment's overrides, whatever the config file says."""
    config = Config(paths=paths())
    _apply_environment(config)
    return config


def _with_line(message: str, file: Path, text: str) -> str:
    """``file: problem`` becomes ``file:LINE: problem`` when the setting the message names is found."""
    match = re.search(r"'([^']+)'", message)
    prefix = f"{file}: "
    if not match or not message.startswith(prefix):
        return message
    name = match.group(1).rpartition(".")[2]
    pattern = re.compile(rf"^\s*(\[+\s*[\w.\"-]*{re.escape(name)}[\"]?\s*\]+|\"?{re.escape(name)}\"?\s*=)")
    for number, line in enumerate(text.splitlines(), 1):
        if pattern.match(line):
            return f"{file}:{number}: {message[len(prefix) :]}"
    return message


def _apply_environment(config: Config) -> None:
    where = config.paths
    env_port = os.environ.get("HEADROOM_PROXY_PORT")
    if env_port:
        config.proxy.port = _port(
            int(env_port) if env_port.isdigit() else env_port, "HEADROOM_PROXY_PORT", Path("environment")
        )
    env_embeddings = os.environ.get("HEADROOM_EMBEDDINGS", "").strip().lower()
    if env_embeddings:  # "off" on a small machine, or in tests that do not want torch loaded
        config.memory.embeddings = env_embeddings not in ("0", "off", "false", "no")
    env_url = os.environ.get("HEADROOM_DATABASE_URL")
    if env_url:
        config.database_url = env_url
    if not config.database_url:
        config.database_url = f"sqlite:///{where.db_file}"
    # The one place the process's identity is set: every model's user_id/machine_id default reads it.
    config.identity = identity.configure(config.team.user, config.team.machine, where.state_dir)


def _apply(config: Config, data: dict[str, Any], file: Path) -> None:
    for key, value in data.items():
        if key == "database_url":
            config.database_url = _typed(value, str, key, file)
        elif key == "agents":
            for agent, settings in _table(value, key, file).items():
                if agent not in AGENTS:
                    raise ConfigError(f"{file}: unknown agent [agents.{agent}] (known: {', '.join(AGENTS)})")
                _fill(config.agents[agent], _table(settings, f"agents.{agent}", file), f"agents.{agent}", file)
        elif key == "ingest":
            _fill(config.ingest, _table(value, key, file), key, file)
        elif key == "watcher":
            _fill(config.watcher, _table(value, key, file), key, file)
        elif key == "engine":
            config.engine = _engine(_table(value, key, file), file)
        elif key == "proxy":
            _fill(config.proxy, _table(value, key, file), key, file)
        elif key == "memory":
            _fill(config.memory, _table(value, key, file), key, file)
        elif key == "learn":
            _fill(config.learn, _table(value, key, file), key, file)
        elif key == "hooks":
            _fill(config.hooks, _table(value, key, file), key, file)
        elif key == "team":
            _fill(config.team, _table(value, key, file), key, file)
        else:
            raise ConfigError(f"{file}: unknown setting '{key}'")


def _fill(target: Any, values: dict[str, Any], prefix: str, file: Path) -> None:
    for key, value in _checked(target, values, prefix, file).items():
        setattr(target, key, value)


def _checked(defaults: Any, values: dict[str, Any], prefix: str, file: Path) -> dict[str, Any]:
    """``values`` of table ``[prefix]`` validated against the dataclass ``defaults``: unknown keys and wrong
    types name the key and the file. A setting's type is its default's, unless ``_SPECIAL`` knows better."""
    known = {f.name for f in fields(defaults)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}"
        if key not in known:
            raise ConfigError(f"{file}: unknown setting '{name}' (known: {', '.join(sorted(known))})")
        current = getattr(defaults, key)
        if key in _SPECIAL:
            out[key] = _SPECIAL[key](value, name, file)
        elif isinstance(current, bool):
            out[key] = _typed(value, bool, name, file)
        elif isinstance(current, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"{file}: '{name}' must be a positive number, not {value!r}")
            out[key] = type(current)(value)
        elif isinstance(current, str):
            out[key] = _typed(value, str, name, file)
    return out


def _typed(value: Any, kind: type, name: str, file: Path) -> Any:
    if not isinstance(value, kind):
        raise ConfigError(f"{file}: '{name}' must be a {kind.__name__}, not {value!r}")
    return value


def _table(value: Any, name: str, file: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{file}: '{name}' must be a table ([{name}])")
    return value


_POLICIES = ("outline", "exact")
_MODES = ("ccr", "lossless")


def _strings(what: str) -> Callable[[Any, str, Path], list[str]]:
    def check(value: Any, name: str, file: Path) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{file}: '{name}' must be a list of {what}")
        return value

    return check


def _one_of(choices: tuple[str, ...]) -> Callable[[Any, str, Path], str]:
    def check(value: Any, name: str, file: Path) -> str:
        if value not in choices:
            raise ConfigError(f"{file}: '{name}' must be one of {', '.join(choices)}, not {value!r}")
        return str(value)

    return check


def _url(value: Any, name: str, file: Path) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{file}: '{name}' must be an http:// or https:// URL, not {value!r}")
    return str(value).rstrip("/")


def _port(value: Any, name: str, file: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigError(f"{file}: '{name}' must be a port number (0-65535), not {value!r}")
    return value


#: Settings whose type is not their default's (``None`` defaults, lists, enumerations).
def _time_of_day(value: Any, name: str, file: Path) -> str:
    text = str(_typed(value, str, name, file))
    hour, _, minute = text.partition(":")
    if not (hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60 and len(minute) == 2):
        raise ConfigError(f"{file}: '{name}' must be a time of day like \"03:30\", not {value!r}")
    return text


_SPECIAL: dict[str, Callable[[Any, str, Path], Any]] = {
    "nightly_at": _time_of_day,
    "claude_file": _one_of(("CLAUDE.local.md", "CLAUDE.md")),
    "homes": _strings("paths"),
    "allowed_hosts": _strings("host names"),
    "disabled": lambda value, name, file: frozenset(_strings("content kinds")(value, name, file)),
    "text_model": lambda value, name, file: _typed(value, str, name, file) or None,
    "file_read_policy": _one_of(_POLICIES),
    "mode": _one_of(_MODES),
    "port": _port,
    "anthropic_upstream": _url,
    "openai_upstream": _url,
    "gemini_upstream": _url,
}


def _engine(values: dict[str, Any], file: Path) -> EngineConfig:
    """``[engine]`` as an :class:`EngineConfig` (frozen: built once, with every value checked)."""
    base = EngineConfig()
    return replace(base, **_checked(base, values, "engine", file))


#: Config keys a running daemon applies on SIGHUP: its components read them on every use. A whole section
#: means every key of it; anything else (ports, database_url, agents' homes...) needs a restart.
LIVE_KEYS = frozenset(
    {"engine", "learn", "hooks", "watcher.debounce_ms", "watcher.rescan_seconds"}
    | {f"memory.{key}" for key in ("ccr_retention_days", "max_db_mb", "briefing_kb", "embed_batch")}
)


def config_changes(old: Config, new: Config) -> list[str]:
    """The keys that differ, as ``section.key`` (``engine``, ``agents`` as a whole; paths and source ignored)."""
    changed = []
    for f in fields(old):
        if f.name in ("paths", "source"):
            continue
        a, b = getattr(old, f.name), getattr(new, f.name)
        if a == b:
            continue
        if f.name != "engine" and is_dataclass(a):
            changed += [f"{f.name}.{g.name}" for g in fields(a) if getattr(a, g.name) != getattr(b, g.name)]
        else:
            changed.append(f.name)
    return changed


def is_live_key(key: str) -> bool:
    """Whether a running daemon applies ``key`` (as ``config_changes`` names it) on SIGHUP."""
    return key in LIVE_KEYS or (key.partition(".")[0] in LIVE_KEYS and key != "learn.enabled")


def display_url(url: str) -> str:
    """A database URL as it may be shown or logged: the password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
