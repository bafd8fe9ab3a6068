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
    helper_process = true # a large backfill parses in a second process beside the writer

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
    holdout = 0.0                  # share of conversations sent uncompressed (e.g. 0.05), compared in `stats --proxy`

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

    [scheduler]
    every = {}                     # seconds between runs per job, e.g. { memory-prune = 30 } (tests, load tests)

Adding a setting is one line: a field, with its type and default, on its section's class below (``ProxyConfig``,
``MemoryConfig``...; a new section is a new class plus one line in ``_SECTIONS``). The section classes are plain
dataclasses (``replace()``, ``fields()`` and attribute access as ever), read from the file through their strict
pydantic twin (``extra="forbid"``, no coercion), so the declaration *is* the validation: an unknown
key, a string for a number, ``0.5`` for a whole number (``debounce_ms``, ``embed_batch``) or a non-positive
number is refused with a one-line ``file:LINE: 'section.key' must be ...`` error. A setting that needs more than
its type (a port, a URL, one of a few words) says so in its annotation (``Port``, ``Url``, ``OneOf(...)``), on its
own section only. ``[engine]`` is checked against the engine's own ``EngineConfig`` fields the same way.
"""

from __future__ import annotations

import os
import re
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import pydantic
from pydantic import ConfigDict, Field, PlainValidator, ValidationError

from headroom.daemon.errors import ConfigError
from headroom.daemon.paths import Paths, agent_homes, agent_roots_from_homes, default_agent_roots, paths
from headroom.daemon.providers import DEFAULT_UPSTREAMS, PROVIDERS, Provider
from headroom.engine.config import EngineConfig
from headroom.learn.model import AGENTS, Agent
from headroom.memory import identity
from headroom.memory.identity import Identity

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

# --- what a setting may hold: each check raises ValueError("must be ..."), which the error names the key for ---


def _strings(what: str) -> Callable[[Any], list[str]]:
    def check(value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"must be a list of {what}")
        return value

    return check


def _one_of(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, not {value!r}")
        return str(value)

    return check


def _url(value: Any) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http:// or https:// URL, not {value!r}")
    return str(value).rstrip("/")


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"must be a port number (0-65535), not {value!r}")
    return value


def _time_of_day(value: Any) -> str:
    text = value if isinstance(value, str) else ""
    hour, _, minute = text.partition(":")
    if not (hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60 and len(minute) == 2):
        raise ValueError(f'must be a time of day like "03:30", not {value!r}')
    return text


def _share(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"must be a share from 0 to 1 (0.05 = 5 %), not {value!r}")
    return float(value)


def _optional_path(value: Any) -> str | None:
    if not isinstance(value, str):
        raise ValueError(f"must be a str, not {value!r}")
    return value or None


def _kinds(value: Any) -> frozenset[str]:
    return frozenset(_strings("content kinds")(value))


PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Port = Annotated[int, PlainValidator(_port)]
Url = Annotated[str, PlainValidator(_url)]
HostNames = Annotated[list[str], PlainValidator(_strings("host names"))]
PathList = Annotated[list[str] | None, PlainValidator(_strings("paths"))]
TimeOfDay = Annotated[str, PlainValidator(_time_of_day)]
Share = Annotated[float, PlainValidator(_share)]
T = TypeVar("T")


def OneOf(*choices: str) -> Any:
    """A string setting that must be one of ``choices``."""
    return Annotated[str, PlainValidator(_one_of(*choices))]


_SECTION = ConfigDict(extra="forbid", strict=True)
"""Every section: unknown keys refused, no coercion (``"5"`` is not 5, ``2.9`` is not 2, ``1`` is not true)."""


@dataclass
class AgentSettings:
    enabled: bool = True
    homes: PathList = None  # None: discover like the agent does


@dataclass
class IngestSettings:
    max_line_mb: PositiveFloat = 64.0
    chunk_mb: PositiveFloat = 4.0
    helper_process: bool = True


@dataclass
class WatcherSettings:
    debounce_ms: PositiveInt = 200
    rescan_seconds: PositiveFloat = 60.0
    polling: bool = False


@dataclass
class ProxyConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 8787
    mode: OneOf("ccr", "lossless") = "ccr"  # type: ignore[valid-type]
    anthropic_upstream: Url = DEFAULT_UPSTREAMS["anthropic"]
    openai_upstream: Url = DEFAULT_UPSTREAMS["openai"]
    gemini_upstream: Url = DEFAULT_UPSTREAMS["gemini"]
    max_body_mb: PositiveFloat = 100.0
    connect_timeout: PositiveFloat = 10.0
    read_timeout: PositiveFloat = 600.0
    header_timeout: PositiveFloat = 10.0
    body_timeout: PositiveFloat = 60.0
    max_connections: PositiveInt = 1000
    #: Names a request's Host (and a browser's Origin) may carry besides loopback ones (see proxy.guard).
    allowed_hosts: HostNames = field(default_factory=list)
    #: What the proxy remembers of the messages it sent (so a conversation's prefix is sent again byte for byte);
    #: past it the least recently used entries go, and the engine compresses such a message again, identically.
    prefix_cache_mb: PositiveFloat = 64.0
    #: Share of conversations (a deterministic draw per conversation) sent uncompressed and marked, so that
    #: ``stats --proxy`` can compare their cost per turn with the compressed ones. 0 (off) to 1.
    holdout: Share = 0.0

    def upstreams(self) -> dict[Provider, str]:
        """Where each registered provider's requests go (its ``<name>_upstream`` key)."""
        return {name: str(getattr(self, f"{name}_upstream")) for name in PROVIDERS}


@dataclass
class MemoryConfig:
    enabled: bool = True
    embeddings: bool = True
    model_path: str = ""
    ccr_retention_days: PositiveFloat = 7.0
    max_db_mb: PositiveFloat = 4096.0
    briefing_kb: PositiveFloat = 9.0
    embed_batch: PositiveInt = 32


@dataclass
class LearnConfig:
    enabled: bool = True
    auto_apply_personal: bool = True
    auto_apply_shared: bool = False
    claude_file: OneOf("CLAUDE.local.md", "CLAUDE.md") = "CLAUDE.local.md"  # type: ignore[valid-type]
    idle_minutes: PositiveFloat = 15.0
    nightly_at: TimeOfDay = "03:30"


@dataclass
class HooksConfig:
    briefing: bool = True
    prompt_memory: bool = True
    live_lessons: bool = True
    min_relevance: PositiveFloat = 0.55
    prompt_tokens: PositiveInt = 400
    lesson_tokens: PositiveInt = 150


#: ``[engine]``: the engine's own frozen ``EngineConfig`` (the engine does not know pydantic), checked by a model
#: built from its fields: a number must be positive, and these three need more than their type.
_ENGINE_SPECIAL: dict[str, Any] = {
    "file_read_policy": OneOf("outline", "exact"),
    "disabled": Annotated[frozenset[str], PlainValidator(_kinds)],
    "text_model": Annotated[str | None, PlainValidator(_optional_path)],
}


def _engine_model() -> type[pydantic.BaseModel]:
    hints = typing.get_type_hints(EngineConfig)
    declared: dict[str, Any] = {}
    for f in fields(EngineConfig):
        kind = _ENGINE_SPECIAL.get(f.name, hints[f.name])
        if kind in (int, float):
            kind = Annotated[kind, Field(gt=0)]
        declared[f.name] = (kind, None)
    return pydantic.create_model("EngineSettings", __config__=_SECTION, **declared)


_ENGINE_MODEL = _engine_model()


@dataclass
class TeamConfig:
    user: str = ""
    machine: str = ""


@dataclass
class SchedulerConfig:
    #: Seconds between runs of the named jobs, replacing their own schedule (``memory-prune = 30``): for load
    #: tests and trying a job out, so that jobs that run hourly or nightly run while one watches.
    every: dict[str, PositiveFloat] = field(default_factory=dict)


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
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
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


#: The tables of config.toml and the section class each is read into (``[agents.*]`` and ``[engine]`` aside).
_SECTIONS: dict[str, type[Any]] = {
    "ingest": IngestSettings,
    "watcher": WatcherSettings,
    "proxy": ProxyConfig,
    "memory": MemoryConfig,
    "learn": LearnConfig,
    "hooks": HooksConfig,
    "team": TeamConfig,
    "scheduler": SchedulerConfig,
}


def load_config(path: Path | None = None, *, set_identity: bool = True) -> Config:
    """Read the config file (default: ``config.toml`` in the config dir) and apply env overrides.

    A file named explicitly (``--config``) must exist; the default one may be absent (a first run).
    ``set_identity``: make the config's user and machine this process's (not for a running daemon's reload:
    its cursors, jobs and leadership were taken under the identity it started with, so ``[team]`` waits for a
    restart).
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
    _apply_environment(config, set_identity=set_identity)
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


def _apply_environment(config: Config, *, set_identity: bool = True) -> None:
    where = config.paths
    env_port = os.environ.get("HEADROOM_PROXY_PORT")
    if env_port:
        try:
            config.proxy.port = _port(int(env_port) if env_port.isdigit() else env_port)
        except ValueError as exc:
            raise ConfigError(f"environment: 'HEADROOM_PROXY_PORT' {exc}") from None
    env_embeddings = os.environ.get("HEADROOM_EMBEDDINGS", "").strip().lower()
    if env_embeddings:  # "off" on a small machine, or in tests that do not want torch loaded
        config.memory.embeddings = env_embeddings not in ("0", "off", "false", "no")
    env_url = os.environ.get("HEADROOM_DATABASE_URL")
    if env_url:
        config.database_url = env_url
    if not config.database_url:
        config.database_url = f"sqlite:///{where.db_file}"
    # The one place the process's identity is set: every model's user_id/machine_id default reads it.
    decide = identity.configure if set_identity else identity.resolve
    config.identity = decide(config.team.user, config.team.machine, where.state_dir)


def _apply(config: Config, data: dict[str, Any], file: Path) -> None:
    for key, value in data.items():
        if key == "database_url":
            if not isinstance(value, str):
                raise ConfigError(f"{file}: 'database_url' must be a str, not {value!r}")
            config.database_url = value
        elif key == "agents":
            for agent, settings in _table(value, key, file).items():
                if agent not in AGENTS:
                    raise ConfigError(f"{file}: unknown agent [agents.{agent}] (known: {', '.join(AGENTS)})")
                table = _table(settings, f"agents.{agent}", file)
                config.agents[agent] = read_section(AgentSettings, table, f"agents.{agent}", file)
        elif key == "engine":
            checked = read_section(_ENGINE_MODEL, _table(value, key, file), key, file)
            config.engine = EngineConfig(**checked.model_dump(exclude_unset=True))
        elif key in _SECTIONS:
            setattr(config, key, read_section(_SECTIONS[key], _table(value, key, file), key, file))
        else:
            raise ConfigError(f"{file}: unknown setting '{key}'")


def read_section(kind: type[T], values: dict[str, Any], prefix: str, file: Path) -> T:
    """Table ``[prefix]`` of ``file`` as a ``kind`` (a section class): the first problem, as one line that names
    the key and the file."""
    try:
        checked = _strict(kind)(**values)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, kind, values, prefix, file)) from None
    if isinstance(checked, pydantic.BaseModel):
        return checked  # type: ignore[return-value]  # [engine]'s model: the caller builds EngineConfig
    return kind(**{f.name: getattr(checked, f.name) for f in fields(kind)})  # type: ignore[arg-type]


_TWINS: dict[type[Any], Any] = {}


def _strict(kind: type[Any]) -> Any:
    """The strict pydantic twin of a section dataclass (a subclass that validates in its constructor)."""
    if issubclass(kind, pydantic.BaseModel):
        return kind
    if kind not in _TWINS:
        _TWINS[kind] = pydantic.dataclasses.dataclass(kind, config=_SECTION)
    return _TWINS[kind]


def _explain(exc: ValidationError, kind: type[Any], values: dict[str, Any], prefix: str, file: Path) -> str:
    error = exc.errors()[0]
    key = str(error["loc"][0]) if error["loc"] else ""
    name = f"{prefix}.{key}"
    if error["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        known = sorted(_field_names(kind))
        return f"{file}: unknown setting '{name}' (known: {', '.join(known)})"
    if error["type"] == "value_error":
        return f"{file}: '{name}' {str(error['msg']).removeprefix('Value error, ')}"
    value = values.get(key)
    default = _field_defaults(kind).get(key)
    if isinstance(default, bool):
        what = "a bool"
    elif isinstance(default, int):
        what = "a positive number (a whole one)"
    elif isinstance(default, float):
        what = "a positive number"
    else:
        what = "a str"
    return f"{file}: '{name}' must be {what}, not {value!r}"


def _field_names(kind: type[Any]) -> list[str]:
    return list(_field_defaults(kind))


def _field_defaults(kind: type[Any]) -> dict[str, Any]:
    if kind is _ENGINE_MODEL:
        kind = EngineConfig
    if isinstance(kind, type) and issubclass(kind, pydantic.BaseModel):
        return {name: info.default for name, info in kind.model_fields.items()}
    return {f.name: f.default for f in fields(kind)}


def _table(value: Any, name: str, file: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{file}: '{name}' must be a table ([{name}])")
    return value


#: Config keys a running daemon applies on SIGHUP: its components read them on every use. A whole section
#: means every key of it; anything else (ports, database_url, agents' homes...) needs a restart.
LIVE_KEYS = frozenset(
    {"engine", "learn", "hooks", "watcher.debounce_ms", "watcher.rescan_seconds", "proxy.holdout"}
    | {f"memory.{key}" for key in ("ccr_retention_days", "max_db_mb", "briefing_kb", "embed_batch")}
)


def config_changes(old: Config, new: Config) -> list[str]:
    """The keys that differ, as ``section.key`` (``engine``, ``agents`` as a whole; paths and source ignored)."""
    changed = []
    for f in fields(old):
        if f.name in ("paths", "source", "identity"):
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
    # lazy: SQLAlchemy would cost the CLI fast paths that load the config
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
