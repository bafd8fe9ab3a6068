"""headroom.learn: the agents' session logs, read into one model, mirrored in the database, mined for lessons.

One reader per agent log format (:func:`reader_for`) turns a log into :class:`Batch` es of the normalized model
(:class:`SessionInfo`, :class:`Event`, :class:`ToolCall`, :class:`Usage`); :func:`write_batch` mirrors them
into the database idempotently. :func:`project_of` names the project of a working directory. Failure mining
(:func:`find_failures`, :func:`mine_db`) turns repeated failures into :class:`LessonDraft` s, and
:func:`run_learn` writes the active lessons into each agent's instruction file (:func:`plan_write`,
undone through the :class:`Journal`). Names load on first use (PEP 562), as in :mod:`headroom.memory`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headroom.memory.facade import lazy_getattr

if TYPE_CHECKING:
    from headroom.learn.apply import LearnRun, run_learn
    from headroom.learn.counters import refresh_sessions
    from headroom.learn.failures import Failure, find_failures
    from headroom.learn.journal import Journal
    from headroom.learn.mining import LessonDraft, mine_db
    from headroom.learn.mirror import write_batch
    from headroom.learn.model import AGENTS, Agent, Batch, Event, SessionInfo, ToolCall, Usage
    from headroom.learn.projects import project_of, project_root
    from headroom.learn.readers import LogReader, reader_for
    from headroom.learn.writers import Plan, Target, WriteError, plan_write

_WHERE = {
    "AGENTS": "model",
    "Agent": "model",
    "Batch": "model",
    "Event": "model",
    "Failure": "failures",
    "Journal": "journal",
    "LearnRun": "apply",
    "LessonDraft": "mining",
    "LogReader": "readers",
    "Plan": "writers",
    "SessionInfo": "model",
    "Target": "writers",
    "ToolCall": "model",
    "Usage": "model",
    "WriteError": "writers",
    "find_failures": "failures",
    "mine_db": "mining",
    "plan_write": "writers",
    "project_of": "projects",
    "project_root": "projects",
    "reader_for": "readers",
    "refresh_sessions": "counters",
    "run_learn": "apply",
    "write_batch": "mirror",
}

__all__ = [
    "AGENTS",
    "Agent",
    "Batch",
    "Event",
    "Failure",
    "Journal",
    "LearnRun",
    "LessonDraft",
    "LogReader",
    "Plan",
    "SessionInfo",
    "Target",
    "ToolCall",
    "Usage",
    "WriteError",
    "find_failures",
    "mine_db",
    "plan_write",
    "project_of",
    "project_root",
    "reader_for",
    "refresh_sessions",
    "run_learn",
    "write_batch",
]

__getattr__ = lazy_getattr(__name__, _WHERE)
