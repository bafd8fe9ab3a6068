"""Shared context and lessons through each agent's own lifecycle hooks (Claude Code, Codex CLI, Gemini CLI).

Three moments, three answers, all from the running daemon:

- **session start** (``SessionStart`` in all three): the project briefing (:mod:`headroom.memory.briefing`);
- **each prompt** (``UserPromptSubmit``; Gemini ``BeforeAgent``): the few memory items from other agents or
  earlier sessions that answer this prompt, above a calibrated relevance threshold, never twice a session;
- **after a tool call** (``PostToolUse``/``PostToolUseFailure``; Gemini ``AfterTool``): when the call failed the
  way a known lesson or an earlier session's failure did, the known fix, and whether the next call succeeded.

The hook command the agents run is :mod:`~headroom.daemon.hooks.client`: a script that imports only ``sys``
and ``_socket``, started with ``python -I -S``, which hands the event to the daemon over an owner-only Unix
socket (:mod:`~headroom.daemon.hooks.server`) and prints the answer in the host's own output shape, or the
host's empty answer when the daemon is down or slow. :mod:`~headroom.daemon.hooks.install` edits only
headroom's entries in each agent's settings. The client runs as a script, outside this package; still,
this ``__init__`` imports nothing.
"""
