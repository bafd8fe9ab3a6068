"""Build a large session-log corpus by replicating the real fixtures with fresh ids.

The benchmarks need hundreds of megabytes of logs that look like the agents' own, and the only real logs we
may use are the shared fixtures (about 9 MB per copy). Copying them verbatim would measure nothing: every
copy would collapse onto the first one through the ingestion's natural keys (and ccusage's dedup). So each
replica gets its own ids, derived deterministically from ``(replica, old id)``:

* UUIDs keep their version and variant nibbles; their first 8 hex digits are mapped on their own, so the
  short forms that embed a UUID prefix (Gemini's ``session-<minute>-<id8>.jsonl``) stay consistent;
* provider ids (Claude ``msg_``/``req_``/``toolu_``, Codex ``call_``/``rs_``/``resp_``/``fc_``/``ctc_``…)
  keep their prefix, length and character classes;
* Gemini tool-call ids (``<tool>_<epoch ms>_<n>``) get a fresh 13-digit number;
* short hex ids (Claude ``agentId`` and ``agent-<id>.jsonl``) are mapped the same way everywhere;
* Codex dedups usage across files on (millisecond, model, token counts), which holds no id at all, so every
  quoted ISO timestamp in a Codex replica is shifted by ``replica`` seconds (gaps between lines, and thus
  the burst rules, are unchanged).

Every substitution has the same length and alphabet as what it replaces, so JSON stays valid and each
replica has exactly the fixtures' size. File and folder names go through the same mapping, and each Gemini
replica gets its own project folder (with ``.project_root`` copied). The output is deterministic.

Layout: ``OUT/claude/projects/…``, ``OUT/codex/sessions/…``, ``OUT/gemini/tmp/…``, plus ``OUT/corpus.json``
(what was built, from what). The fixtures' licences allow their use as test input only: build corpora
under /tmp or the git-ignored ``bench/.work/``, never in the repository.

Usage: ``python bench/corpus.py OUT --mb 1024``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

CORPUS_VERSION = 1  # bump when the output of a given (fixtures, replicas) changes
MANIFEST = "corpus.json"
MB = 1_000_000  # the benchmarks report decimal megabytes, as `headroom ingest` does

# Where each fixture tree goes: (agent, source folder under the fixtures root, whether each child of the
# source folder is a scenario wrapper to strip, destination root under OUT).
_TREES = (
    ("claude", "sessions/claude/projects", False, "claude/projects"),
    ("claude", "generated/claude", True, "claude/projects"),
    ("codex", "sessions/codex/sessions", False, "codex/sessions"),
    ("codex", "generated/codex", True, "codex/sessions"),
    ("gemini", "sessions/gemini/tmp", False, "gemini/tmp"),
    ("gemini", "generated/gemini", True, "gemini/tmp"),
)

_HEX = frozenset(b"0123456789abcdef")
_ALNUM = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS = b"0123456789"
_LOWER = b"abcdefghijklmnopqrstuvwxyz"
_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_HEX_LETTERS = b"abcdef"

# One pass finds every id; the alternatives are tried in order at each position.
_IDS = re.compile(
    rb"""
    (?P<uuid>(?<![0-9A-Za-z])[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?![0-9A-Za-z]))
    |(?<![0-9A-Za-z_])(?P<opaque>(?:msg|req|toolu|srvtoolu|tooluse|call|rs|resp|ctc|fc|ws)_
        (?=[A-Za-z]{0,64}[0-9])[A-Za-z0-9]{8,})
    |(?<=[a-z]_)(?P<millis>1[0-9]{12})(?=_[0-9])
    |(?<="agentId":")(?P<agent>[0-9a-f]{6,32})(?=")
    |(?<=agent-)(?P<agentfile>[0-9a-f]{6,32})(?=\.jsonl|\.meta\.json)
    |(?<=session-)(?P<gemid>\d{4}-\d\d-\d\dT\d\d-\d\d-[0-9a-f]{8})(?=\.json)
    # short hex ids in text: both a digit and a hex letter, so plain numbers and words stay as they are
    |(?<![0-9A-Za-z])(?P<hex>(?=[0-9]{0,16}[a-f])(?=[a-f]{0,16}[0-9])[0-9a-f]{8,17})(?![0-9A-Za-z])
    """,
    re.VERBOSE,
)
# Codex timestamps as JSON strings; the fraction (if any) is kept as it is.
_CODEX_TS = re.compile(rb'(?<=")(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?=(?:\.\d{1,9})?Z")')


def _stream(seed: bytes, key: bytes, length: int) -> bytes:
    """``length`` pseudo-random bytes for ``seed`` under one replica's ``key``."""
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.blake2b(seed + counter.to_bytes(2, "big"), key=key, digest_size=64).digest()
        counter += 1
    return out


def _remap(chars: bytes, seed: bytes, key: bytes) -> bytes:
    """``chars`` with every letter and digit replaced by one of the same class; other bytes kept.

    A token made of hex digits only stays hex (letters map into a-f), so ids keep looking like what they
    were; the class of each position is kept, so fixed-width formats survive.
    """
    rand = _stream(seed, key, len(chars))
    hexish = all(c in _HEX for c in chars if c in _ALNUM)
    out = bytearray(chars)
    for i, c in enumerate(chars):
        r = rand[i]
        if 48 <= c <= 57:
            out[i] = _DIGITS[r % 10]
        elif 97 <= c <= 122:
            out[i] = _HEX_LETTERS[r % 6] if hexish else _LOWER[r % 26]
        elif 65 <= c <= 90:
            out[i] = _UPPER[r % 26]
    return bytes(out)


class Replicator:
    """Maps ids (and Codex timestamps) for one replica; results are cached, ids repeat on every line."""

    def __init__(self, replica: int) -> None:
        self.replica = replica
        self.key = f"headroom-bench-corpus/{CORPUS_VERSION}/{replica}".encode()
        self.shift = timedelta(seconds=replica)
        self._cache: dict[tuple[str, bytes], bytes] = {}

    def short(self, token: bytes) -> bytes:
        """A short hex id; also the first 8 digits of any UUID that starts with it."""
        return _remap(token, token, self.key)

    def uuid(self, old: bytes) -> bytes:
        head = self.short(old[:8])
        tail = bytearray(_remap(old[8:], old, self.key))
        tail[14 - 8] = old[14]  # version nibble
        tail[19 - 8] = old[19]  # variant nibble (8, 9, a, b): keep it a valid RFC 4122 variant
        return head + bytes(tail)

    def map(self, kind: str, token: bytes) -> bytes:
        """The replacement for one id (or Codex timestamp) found by :data:`_IDS` / :data:`_CODEX_TS`."""
        cached = self._cache.get((kind, token))
        if cached is not None:
            return cached
        if kind == "uuid":  # also fco_/ctco_ + UUID: "_" is no id character
            new = self.uuid(token)
        elif kind == "opaque":  # prefix_suffix: keep the prefix
            prefix, _, suffix = token.partition(b"_")
            new = prefix + b"_" + _remap(suffix, token, self.key)
        elif kind == "millis":
            new = _remap(token, b"millis:" + token, self.key)
        elif kind == "gemid":  # <date>-<id8>
            new = token[:-8] + self.short(token[-8:])
        elif kind == "ts":
            moved = datetime.strptime(token.decode(), "%Y-%m-%dT%H:%M:%S") + self.shift
            new = moved.strftime("%Y-%m-%dT%H:%M:%S").encode()
        else:  # agent, agentfile, hex
            new = self.short(token)
        self._cache[(kind, token)] = new
        return new

    def render(self, template: Template) -> bytes:
        """One replica of a fixture: its literal bytes with every id slot filled in."""
        out = [template.parts[0]]
        for (kind, token), part in zip(template.slots, template.parts[1:]):
            out.append(token if kind == "ts" and not self.replica else self.map(kind, token))
            out.append(part)
        return b"".join(out)

    def path(self, agent: str, relative: str) -> str:
        """A file's path under its agent root, with ids mapped (and a per-replica Gemini project)."""
        mapped = self.render(Template.parse("paths", relative.encode())).decode()
        if agent == "gemini":
            project, _, rest = mapped.partition("/")
            mapped = f"{project}-r{self.replica:04d}/{rest}"
        return mapped


@dataclass
class Template:
    """A fixture split once into literal parts and id slots, so each replica is a join, not a regex scan.

    ``parts`` has one more element than ``slots``; slot ``i`` sits between ``parts[i]`` and ``parts[i+1]``.
    (Scanning with ``re`` runs at ~3 MB/s with these patterns; joining runs at disk speed.)
    """

    parts: list[bytes]
    slots: list[tuple[str, bytes]]

    @classmethod
    def parse(cls, agent: str, data: bytes) -> Template:
        found = [(m.start(), m.end(), m.lastgroup or "hex") for m in _IDS.finditer(data)]
        if agent == "codex":
            found += [(m.start(), m.end(), "ts") for m in _CODEX_TS.finditer(data)]
            found.sort()
        parts: list[bytes] = []
        slots: list[tuple[str, bytes]] = []
        at = 0
        for start, end, kind in found:
            if start < at:  # overlaps a slot already taken (cannot happen with these patterns)
                continue
            parts.append(data[at:start])
            slots.append((kind, data[start:end]))
            at = end
        parts.append(data[at:])
        return cls(parts, slots)


@dataclass
class SourceFile:
    agent: str
    source: Path
    relative: str  # under the agent root, before mapping
    size: int


@dataclass
class Manifest:
    """What a corpus holds; ``ingest_bench`` reuses a corpus whose manifest matches."""

    version: int
    fixtures: str
    fixtures_digest: str
    replicas: int
    files: int
    bytes: int
    log_bytes: int  # the files the readers ingest (.jsonl/.json session logs), by far the bulk
    bytes_by_agent: dict[str, int] = field(default_factory=dict)
    build_seconds: float = 0.0

    def save(self, out: Path) -> None:
        (out / MANIFEST).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, out: Path) -> Manifest | None:
        try:
            return cls(**json.loads((out / MANIFEST).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None


def default_fixtures() -> Path:
    """The shared fixtures, found like the tests find them (``$HEADROOM_SHARED`` or ``../shared``)."""
    shared = os.environ.get("HEADROOM_SHARED")
    base = Path(shared) if shared else Path(__file__).resolve().parents[2] / "shared"
    return base / "fixtures"


def source_files(fixtures: Path) -> list[SourceFile]:
    """Every fixture file to replicate, in a fixed order."""
    files: list[SourceFile] = []
    for agent, source, scenarios, _ in _TREES:
        top = fixtures / source
        if not top.is_dir():
            continue
        bases = sorted(p for p in top.iterdir() if p.is_dir()) if scenarios else [top]
        for base in bases:
            for path in sorted(p for p in base.rglob("*") if p.is_file()):
                rel = path.relative_to(base).as_posix()
                files.append(SourceFile(agent, path, rel, path.stat().st_size))
    return files


def _is_log(agent: str, relative: str) -> bool:
    name = relative.rsplit("/", 1)[-1]
    if agent == "claude":
        return name.endswith(".jsonl")
    if agent == "codex":
        return name.startswith("rollout-")
    return "/chats/" in relative and name.endswith((".json", ".jsonl"))


def _digest(files: list[SourceFile]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for item in files:
        digest.update(f"{item.agent}\0{item.relative}\0{item.size}\0".encode())
        digest.update(item.source.read_bytes())
    return digest.hexdigest()


def build(out: Path, mb: float, fixtures: Path | None = None, *, quiet: bool = False) -> Manifest:
    """Write whole replicas into ``out`` until it holds at least ``mb`` MB of session logs.

    A corpus already there with the same fixtures, version and replica count is reused as it is.
    """
    fixtures = fixtures or default_fixtures()
    files = source_files(fixtures)
    if not files:
        raise SystemExit(f"no fixtures under {fixtures} (set HEADROOM_SHARED to the shared folder)")
    # The target counts session logs (what the readers ingest and `headroom ingest` reports as read), not
    # the few tool-output and metadata files beside them.
    per_replica = sum(f.size for f in files if _is_log(f.agent, f.relative))
    replicas = max(1, -(-int(mb * MB) // per_replica))
    digest = _digest(files)
    known = Manifest.load(out)
    if known and (known.version, known.fixtures_digest, known.replicas) == (CORPUS_VERSION, digest, replicas):
        return known
    if out.exists():
        if not (out / MANIFEST).exists() and any(out.iterdir()):
            raise SystemExit(f"{out} exists and is no corpus (no {MANIFEST}); refusing to overwrite it")
        shutil.rmtree(out)
    started = time.monotonic()
    roots = {agent: dest for agent, _, _, dest in _TREES}
    templates = {item.source: Template.parse(item.agent, item.source.read_bytes()) for item in files}
    manifest = Manifest(CORPUS_VERSION, str(fixtures), digest, replicas, 0, 0, 0)
    made: set[Path] = set()
    for replica in range(replicas):
        rep = Replicator(replica)
        for item in files:
            target = out / roots[item.agent] / rep.path(item.agent, item.relative)
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            data = rep.render(templates[item.source])
            if target.exists():  # two fixtures mapped to one path: the mapping is broken
                raise SystemExit(f"corpus path collision at {target}")
            target.write_bytes(data)
            manifest.files += 1
            manifest.bytes += len(data)
            manifest.bytes_by_agent[item.agent] = manifest.bytes_by_agent.get(item.agent, 0) + len(data)
            if _is_log(item.agent, item.relative):
                manifest.log_bytes += len(data)
        if not quiet:
            print(f"\rreplica {replica + 1}/{replicas}: {manifest.bytes / MB:.0f} MB", end="", file=sys.stderr)
    if not quiet:
        print(file=sys.stderr)
    manifest.build_seconds = round(time.monotonic() - started, 2)
    manifest.save(out)
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("out", type=Path, help="folder to write the corpus into (created; replaced if a corpus)")
    parser.add_argument(
        "--mb", type=float, default=200, help="at least this many MB (10^6 bytes) of session logs (default 200)"
    )
    parser.add_argument("--fixtures", type=Path, help="the shared fixtures folder (default: ../shared/fixtures)")
    args = parser.parse_args(argv)
    manifest = build(args.out, args.mb, args.fixtures)
    print(json.dumps(asdict(manifest), indent=2))


if __name__ == "__main__":
    main()
