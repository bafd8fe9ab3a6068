"""The kinds of memory item, in a module of their own: the CLI builds its ``--kind`` choices from them
without importing the store (and SQLAlchemy with it)."""

from __future__ import annotations

KINDS = ("file_read", "tool_output", "fetched_doc", "decision", "instruction", "lesson")
