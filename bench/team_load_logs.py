"""The real logs of the team load test (bench/team_load.py), cut into units and dealt to developers.

A unit is what one developer must own whole: a Claude session with its sub-agent folder, a Codex file, a Gemini
chat (or a whole Gemini project when it keeps a ``logs.json``); units naming the same session id are merged, so no
session is two developers'. Units are dealt largest first in snake order, so everyone has all three agents, and
dropped into the HOMEs at random times over the first part of the run, a JSONL log with a second turn in two
parts (the daemons tail appended files).
"""

from __future__ import annotations

import heapq
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

SOURCES = ("sessions", "sessions-more", "generated")

DROP_SHARE = 0.7


# -- the logs ----------------------------------------------------------------------------------------------------


@dataclass
class Unit:
    """Files that belong together (a session with its sub-agents, a Gemini project with its logs.json): one owner.

    ``files``: (source, path under the agent's home folder in a developer's HOME)."""

    agent: str
    name: str
    files: list[tuple[Path, str]]

    @property
    def size(self) -> int:
        return sum(src.stat().st_size for src, _ in self.files)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _claude_units(projects: Path, agent_dir: str = ".claude/projects") -> list[Unit]:
    units = []
    for folder in sorted(p for p in projects.iterdir() if p.is_dir()):
        for log in sorted(folder.glob("*.jsonl")):
            files = [(log, f"{agent_dir}/{folder.name}/{log.name}")]
            side = folder / log.stem  # sub-agents and tool results of this session
            if side.is_dir():
                files += [(f, f"{agent_dir}/{folder.name}/{f.relative_to(folder)}") for f in _files(side)]
            units.append(Unit("claude", f"{folder.name}/{log.name}", files))
    return units


def _codex_units(sessions: Path) -> list[Unit]:
    return [
        Unit("codex", str(f.relative_to(sessions)), [(f, f".codex/sessions/{f.relative_to(sessions)}")])
        for f in _files(sessions)
    ]


def _gemini_units(tmp: Path) -> list[Unit]:
    """A project with a ``logs.json`` (prompts of every session of it) is one unit; otherwise each chat is,
    with the project's other files (``.project_root``, tool outputs) beside it."""
    units = []
    for project in sorted(p for p in tmp.iterdir() if p.is_dir()):
        files = _files(project)
        dest = [(f, f".gemini/tmp/{f.relative_to(tmp)}") for f in files]
        if (project / "logs.json").exists():
            units.append(Unit("gemini", project.name, dest))
            continue
        chats = project / "chats"
        shared = [(s, d) for s, d in dest if chats not in s.parents]
        for chat in sorted(chats.iterdir()) if chats.is_dir() else []:
            own = [(s, d) for s, d in dest if s == chat or chat in s.parents]
            units.append(Unit("gemini", f"{project.name}/{chat.name}", own + shared))
    return units


def collect_units(shared: Path, sources: tuple[str, ...] = SOURCES) -> dict[str, list[Unit]]:
    """Every unit of the fixture folders named in ``sources`` (``sessions``, ``sessions-more``, ``generated``)."""
    fixtures = shared / "fixtures"
    out: dict[str, list[Unit]] = {"claude": [], "codex": [], "gemini": []}
    for source in sources:
        base = fixtures / source
        if source == "generated":
            for scenario in sorted((base / "claude").iterdir()):
                out["claude"] += _claude_units(scenario)
            for scenario in sorted((base / "codex").iterdir()):
                out["codex"] += _codex_units(scenario)
            for scenario in sorted((base / "gemini").iterdir()):
                out["gemini"] += _gemini_units(scenario)
            continue
        hidden = "." if source == "sessions-more" else ""
        out["claude"] += _claude_units(base / f"{hidden}claude" / "projects")
        out["codex"] += _codex_units(base / f"{hidden}codex" / "sessions")
        out["gemini"] += _gemini_units(base / (f"{hidden}gemini" if hidden else "gemini") / "tmp")
    return _one_owner_per_session(out)


_SESSION_ID = re.compile(rb'"sessionId":\s*"([0-9a-f-]{36})"')


def _one_owner_per_session(units: dict[str, list[Unit]]) -> dict[str, list[Unit]]:
    """Files naming the same session (a resumed Claude session, a Gemini chat saved twice) go to one developer:
    two users never share a session (the database refuses a second user's rows of a session key as theirs)."""
    return {**units, "claude": _merge(units["claude"]), "gemini": _merge(units["gemini"])}


def _merge(units: list[Unit]) -> list[Unit]:
    merged: list[Unit] = []
    owner: dict[bytes, Unit] = {}
    for unit in units:
        ids = {m.group(1) for src, _ in unit.files for m in _SESSION_ID.finditer(src.read_bytes())}
        into = next((owner[i] for i in ids if i in owner), None)
        if into is None:
            merged.append(unit)
            into = unit
        else:
            into.files += [f for f in unit.files if f not in into.files]
        for i in ids:
            owner.setdefault(i, into)
    return merged


def deal(units: dict[str, list[Unit]], developers: int) -> list[list[Unit]]:
    """Each agent's units, largest first, dealt out in a snake order: every developer gets some of each agent."""
    hands: list[list[Unit]] = [[] for _ in range(developers)]
    for agent, items in units.items():
        if len(items) < developers:
            raise SystemExit(f"only {len(items)} {agent} logs for {developers} developers: use fewer developers")
        for i, unit in enumerate(sorted(items, key=lambda u: (-u.size, u.name))):
            turn, pos = divmod(i, developers)
            hands[pos if turn % 2 == 0 else developers - 1 - pos].append(unit)
    return hands


_CODEX_TURN = b'"user_message"'
_CLAUDE_TURN = (b'"type":"user","message":{"role":"user","content":"', b'"role":"user","content":[{"type":"text"')


def split_point(data: bytes) -> int:
    """A byte offset between two turns near the middle of a JSONL log (0: no good place, drop it whole).

    Split there, no tool call is left waiting for its result across the two writes: the memory feed takes a
    call's output once, and a replayed log's calls are all older than its grace period for pending ones."""
    lines = data.splitlines(keepends=True)
    offsets, at = [], 0
    for line in lines:
        # A prompt of the main conversation (a sub-agent's own prompt, inline in old Claude logs, is not a turn:
        # the Task call that started it waits for its result across it).
        claude = any(m in line for m in _CLAUDE_TURN) and b'"isSidechain":false' in line
        if at and (claude or _CODEX_TURN in line):
            offsets.append(at)
        at += len(line)
    if not offsets:
        return 0
    return min(offsets, key=lambda o: abs(o - len(data) // 2))


@dataclass(order=True)
class Drop:
    when: float
    developer: int = field(compare=False)
    target: Path = field(compare=False)
    data: bytes = field(compare=False)
    append: bool = field(compare=False, default=False)


def plan_drops(hands: list[list[Unit]], homes: list[Path], window: float, seed: int = 17) -> list[Drop]:
    """When each file lands in its developer's HOME: a random time in the window; a JSONL log in two parts."""
    rng = random.Random(seed)
    drops: list[Drop] = []
    for dev, (units, home) in enumerate(zip(hands, homes)):
        for unit in units:
            start = rng.uniform(0, window * 0.8)
            for src, dest in unit.files:
                data, target = src.read_bytes(), home / dest
                cut = split_point(data) if src.suffix == ".jsonl" else 0
                if cut:
                    drops.append(Drop(start, dev, target, data[:cut]))
                    drops.append(Drop(min(window, start + rng.uniform(5, 60)), dev, target, data[cut:], True))
                else:
                    drops.append(Drop(start, dev, target, data))
    heapq.heapify(drops)
    return drops


def apply_drop(drop: Drop) -> None:
    drop.target.parent.mkdir(parents=True, exist_ok=True)
    if drop.append:
        with drop.target.open("ab") as out:
            out.write(drop.data)
        return
    tmp = drop.target.with_name(f".{drop.target.name}.part")  # whole files appear at once, as agents write them
    tmp.write_bytes(drop.data)
    os.replace(tmp, drop.target)
