"""Test helpers: synthetic log lines, and the rows a set of logs must produce when read whole."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import func, select

from headroom.learn.model import Agent, Batch, Merge
from headroom.learn.readers import LogReader, read_file, reader_for
from headroom.memory.db import Database
from headroom.memory.models import EventRow, SessionRow, ToolCallRow, UsageRow

SESSION = "11111111-2222-4333-8444-555555555555"
CWD = "/home/dev/src/shop"


def claude_envelope(n: int, timestamp: str, *, cwd: str = CWD, session: str = SESSION) -> dict[str, Any]:
    """The fields every Claude Code 2.x log record carries (uuid ``u{n}``, chained to ``u{n-1}``)."""
    return {
        "parentUuid": f"u{n - 1}" if n else None,
        "isSidechain": False,
        "userType": "external",
        "cwd": cwd,
        "sessionId": session,
        "version": "2.1.81",
        "gitBranch": "main",
        "uuid": f"u{n}",
        "timestamp": timestamp,
    }


def claude_record(kind: str, n: int, ts_second: int = 0, **extra: Any) -> dict[str, Any]:
    """A Claude Code 2.x record of ``kind`` (prompt, tool_use, tool_result, text) with uuid ``u{n}``."""
    base = claude_envelope(n, f"2026-05-01T10:{n // 60:02d}:{n % 60:02d}.{ts_second:03d}Z")
    if kind == "prompt":
        base.update(type="user", message={"role": "user", "content": extra.pop("text", f"please do step {n}")})
    elif kind == "tool_use":
        command = extra.pop("command", "npm test")
        call = {"type": "tool_use", "id": f"toolu_{n}", "name": "Bash", "input": {"command": command}}
        base.update(_assistant(n, call, input_tokens=10, cache_write=100, cache_read=1000, output=20))
    elif kind == "tool_result":
        error = extra.pop("error", False)
        base.update(
            type="user",
            message={
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": f"toolu_{extra.pop('call', n - 1)}",
                        "content": extra.pop("output", "Exit code 1\nboom" if error else "ok"),
                        "is_error": error,
                    }
                ],
            },
        )
    elif kind == "text":
        block = {"type": "text", "text": extra.pop("text", f"done with {n}")}
        base.update(_assistant(n, block, input_tokens=5, cache_write=0, cache_read=2000, output=50))
    else:
        raise ValueError(kind)
    base.update(extra)
    return base


def _assistant(
    n: int, block: dict[str, Any], *, input_tokens: int, cache_write: int, cache_read: int, output: int
) -> dict[str, Any]:
    usage = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "output_tokens": output,
    }
    message = {"id": f"msg_{n}", "model": "claude-sonnet-4-5-20250929", "role": "assistant", "type": "message"}
    return {"type": "assistant", "requestId": f"req_{n}", "message": {**message, "content": [block], "usage": usage}}


def claude_session_lines(turns: int, *, fail_every: int = 3) -> list[bytes]:
    """A synthetic Claude session: per turn a prompt, a tool call, its result (some failing) and a reply."""
    lines = []
    n = 0
    for turn in range(turns):
        lines.append(claude_record("prompt", n))
        lines.append(claude_record("tool_use", n + 1, command=f"npm test -- {turn}"))
        lines.append(claude_record("tool_result", n + 2, call=n + 1, error=turn % fail_every == 0))
        lines.append(claude_record("text", n + 3))
        n += 4
    return [json.dumps(line).encode() + b"\n" for line in lines]


def claude_tree(root: Path, name: str = SESSION) -> Path:
    """A Claude ``projects/`` root with one project folder; returns the session file path (not created)."""
    folder = root / "-home-dev-src-shop"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.jsonl"


def read_whole(reader: LogReader, path: Path, root: Path) -> Batch:
    """Read a log whole, insisting it has no bad lines and that the reader's state survives JSON."""
    batch, state, result = read_file(reader, path, root)
    assert result.problems == []
    json.dumps(state)  # ingestion stores the state as JSON between reads
    return batch


def expected_counts(agent: Agent, files: Iterable[tuple[Path, Path]]) -> dict[str, int]:
    """Distinct sessions, events, tool calls and usage keys that reading each (path, root) whole gives."""
    reader = reader_for(agent)
    sessions: set[str] = set()
    events: set[tuple[str, str]] = set()
    calls: set[tuple[str, str]] = set()
    usage: dict[str, Any] = {}
    for path, root in files:
        batch, _, _ = read_file(reader, path, root)
        sessions |= set(batch.sessions)
        sessions |= {e.session_key for e in batch.events} | {t.session_key for t in batch.tool_calls}
        sessions |= {u.session_key for u in batch.usage}
        events |= {(e.session_key, e.key) for e in batch.events}
        calls |= {(t.session_key, t.key) for t in batch.tool_calls}
        for item in batch.usage:
            known = usage.get(item.key)
            if (
                known is None
                or item.merge is Merge.LAST
                or (not item.sidechain, item.total) > (not known.sidechain, known.total)
            ):
                usage[item.key] = item
    tokens = {
        "input_tokens": sum(u.input_tokens for u in usage.values()),
        "output_tokens": sum(u.output_tokens for u in usage.values()),
        "cache_read_tokens": sum(u.cache_read_tokens for u in usage.values()),
        "cache_creation_tokens": sum(u.cache_creation_tokens for u in usage.values()),
    }
    return {
        "sessions": len(sessions),
        "events": len(events),
        "tool_calls": len(calls),
        "usage": len(usage),
        **tokens,
    }


def db_counts(db: Database, agent: Agent | None = None) -> dict[str, int]:
    """The same figures as :func:`expected_counts`, read from the database."""
    with db.sessions() as dbs:

        def count(model: Any, joined: bool = True) -> int:
            query = select(func.count()).select_from(model)
            if agent is not None:
                query = (
                    query.join(SessionRow).where(SessionRow.agent == agent)
                    if joined
                    else query.where(model.agent == agent)
                )
            return int(dbs.execute(query).scalar_one())

        sessions = count(SessionRow, joined=False)
        usage_query = select(
            func.count(),
            func.coalesce(func.sum(UsageRow.input_tokens), 0),
            func.coalesce(func.sum(UsageRow.output_tokens), 0),
            func.coalesce(func.sum(UsageRow.cache_read_tokens), 0),
            func.coalesce(func.sum(UsageRow.cache_creation_tokens), 0),
        )
        if agent is not None:
            usage_query = usage_query.where(UsageRow.agent == agent)
        n, inp, out, cr, cc = dbs.execute(usage_query).one()
        return {
            "sessions": sessions,
            "events": count(EventRow),
            "tool_calls": count(ToolCallRow),
            "usage": int(n),
            "input_tokens": int(inp),
            "output_tokens": int(out),
            "cache_read_tokens": int(cr),
            "cache_creation_tokens": int(cc),
        }


def ccusage_binary() -> str | None:
    """The reference tool for token parity: $HEADROOM_CCUSAGE, ``make tools``' copy, or PATH."""
    local = Path(__file__).resolve().parent.parent / ".tools" / "node_modules" / ".bin" / "ccusage"
    for candidate in (os.environ.get("HEADROOM_CCUSAGE"), str(local)):
        if candidate and Path(candidate).exists():
            return candidate
    return shutil.which("ccusage")


def copy_tree(source: Path, target: Path) -> Path:
    """Copy a fixture tree (logs are never modified in place in ../shared)."""
    shutil.copytree(source, target, dirs_exist_ok=True)
    for dirpath, _dirs, files in os.walk(target):
        for name in files:
            (Path(dirpath) / name).chmod(0o644)
    return target


def point_agents_at(env: pytest.MonkeyPatch, tmp: Path, claude: Path, codex: Path, gemini_tmp: Path) -> None:
    """Set the agents' own variables (as a user would) to fixture trees."""
    env.setenv("CLAUDE_CONFIG_DIR", str(claude))
    env.setenv("CODEX_HOME", str(codex))
    home = tmp / "gemini-home"
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "tmp").symlink_to(gemini_tmp)
    env.setenv("GEMINI_CLI_HOME", str(home))


def move_next_run(db: Database, name: str, when: datetime) -> None:
    """Set a stored job's next run time in the daemon's job store, as a daemon that was down leaves it."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    from headroom.memory.identity import current_machine
    from headroom.memory.models import SchedulerJobRow

    store = SQLAlchemyJobStore(engine=db.engine, tablename=SchedulerJobRow.__tablename__)
    job = store.lookup_job(f"{current_machine()}/{name}")  # this machine's row (daemon/scheduler.py)
    assert job is not None, f"no stored job {name}"
    job.next_run_time = when
    store.update_job(job)


def bench_module(name: str) -> ModuleType:
    """A module of bench/ (not a package), imported as the benchmark runs it: tests check what it reports."""
    folder = str(Path(__file__).resolve().parent.parent / "bench")
    sys.path.insert(0, folder)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(folder)
