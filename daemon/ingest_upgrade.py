"""What migration 0007 does to rows ingested before it: sessions and projects as a fresh ingest gives them now.

Kept apart from :mod:`headroom.daemon.ingest` (the ingestion itself): it runs once, inside the migration, on
rows the old code wrote.
"""

from __future__ import annotations

import os
import re

from sqlalchemy import Connection, and_, delete, or_, select, update

from headroom.learn.projects import fold_worktree, preferred, project_key
from headroom.memory.models import EventRow, SessionRow, SourceFileRow, ToolCallRow, UsageRow

_REPLAY_FILE = re.compile(r"[\\/]subagents[\\/]agent-(?:acompact|aside_question)-[^\\/]*$")
_HASH_FOLDER = re.compile(r"[\\/][0-9a-f]{64}[\\/]chats[\\/]")


def upgrade_identity(conn: Connection) -> None:
    """Bring rows ingested before migration 0007 to what a fresh ingest gives now (sessions and projects).

    * Claude's replay files (``agent-acompact-*``, ``agent-aside_question-*``) were sessions of their own:
      they are dropped with their rows and read again, now into their parent session (what only they
      hold comes back; what repeats the parent is the parent's already).
    * A Claude session made only of bookkeeping records (no cwd, no rows) is no session.
    * Claude sidechain usage keyed per streamed line (no ``requestId``) is dropped and its file read again.
    * Gemini files in a legacy sha256 folder whose sessions have no project are read again: they now
      carry the hash, which ingestion resolves against every known root.
    * Stored projects fold worktrees into their repository and Windows spellings into one.
    """
    s, ev, tc, us, sf = (t.__table__.c for t in (SessionRow, EventRow, ToolCallRow, UsageRow, SourceFileRow))
    replay = or_(s.key.like("agent-acompact-%"), s.key.like("agent-aside\\_question-%", escape="\\"))
    drop = [i for (i,) in conn.execute(select(s.id).where(s.agent == "claude", replay))]
    has_rows = or_(
        *(select(col.session_id).where(col.session_id == s.id).exists() for col in (ev, tc, us)),
    )
    bare = select(s.id).where(s.agent == "claude", s.cwd.is_(None), s.title.is_(None), ~has_rows)
    drop += [i for (i,) in conn.execute(bare)]
    # Sidechain lines without a requestId (Bedrock sub-agents) were one usage row per streamed line.
    per_line = and_(us.key.like("t:%"), us.sidechain.is_(True))
    streamed = {
        f"{key}.jsonl" for (key,) in conn.execute(select(s.key).where(s.id.in_(select(us.session_id).where(per_line))))
    }
    conn.execute(delete(UsageRow).where(per_line))
    for model in (EventRow, ToolCallRow, UsageRow):
        conn.execute(delete(model).where(model.session_id.in_(drop)))
    conn.execute(delete(SessionRow).where(s.id.in_(drop)))
    again = [
        ident
        for ident, agent, path in conn.execute(select(sf.id, sf.agent, sf.path))
        if (agent == "claude" and (_REPLAY_FILE.search(path) or os.path.basename(path) in streamed))
        or (agent == "gemini" and _HASH_FOLDER.search(path))
    ]
    reset = {"offset": 0, "state": None, "fingerprint": None, "size": 0, "mtime_ns": 0, "records": 0}
    conn.execute(update(SourceFileRow).where(sf.id.in_(again)).values(**reset))
    projects = [p for (p,) in conn.execute(select(s.project_root).where(s.project_root.is_not(None)).distinct())]
    spellings: dict[str, set[str]] = {}
    for project in projects:
        folded = fold_worktree(project)
        spellings.setdefault(project_key(folded), set()).add(folded)
    for project in projects:
        best = preferred(spellings[project_key(fold_worktree(project))])
        if best != project:
            conn.execute(update(SessionRow).where(s.project_root == project).values(project_root=best, stale=True))
