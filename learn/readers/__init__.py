"""One reader per agent log format, all producing the normalized model of ``headroom.learn.model``."""

from __future__ import annotations

from headroom.learn.model import Agent
from headroom.learn.readers.base import LogReader, State, iter_files
from headroom.learn.readers.claude import ClaudeReader
from headroom.learn.readers.codex import CodexReader
from headroom.learn.readers.gemini import GeminiReader
from headroom.learn.readers.jsonl import ChunkResult, parse_chunk, read_file

READERS: dict[Agent, type[LogReader]] = {
    "claude": ClaudeReader,
    "codex": CodexReader,
    "gemini": GeminiReader,
}


def reader_for(agent: Agent) -> LogReader:
    """A fresh reader for ``agent`` (readers are stateless; per-file state travels separately)."""
    return READERS[agent]()


__all__ = [
    "READERS",
    "ChunkResult",
    "ClaudeReader",
    "CodexReader",
    "GeminiReader",
    "LogReader",
    "State",
    "iter_files",
    "parse_chunk",
    "read_file",
    "reader_for",
]
