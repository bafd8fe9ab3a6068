"""What the daemon answers a hook: the briefing, prompt-time memory, and live lessons.

Every answer is plain text (the client wraps it in the host's shape), redacted on the way out, scoped to the
project of the event's ``cwd`` (its git root), and small: the briefing keeps its byte budget
(``memory.briefing_kb``), prompt memory and lessons their token budgets (``[hooks]``). An event without a
project gets nothing (a memory item of one project must not surface in another).

Prompt memory is a full-text search (the embedding model is used only when it is already loaded: a hook
never waits for torch), then a relevance test that does not depend on the other hits: the share of the
prompt's weight (idf from the store's own vocabulary) that an item holds, or the vector similarity when there
is one; an item whose path the prompt names (``notes.txt``, ``src/app.py``) is fully relevant. Only items at
or above ``min_relevance`` and near the best one are shown (bench/README.md, Hooks, records the
calibration), at most :data:`MAX_ITEMS`, never one the session was shown already or one only it saw.

Live lessons: the failed call is classified with the same detector the lesson miner uses
(:mod:`headroom.learn.failures`), so its signature (``not-found:python``, ``path:src/x.py`` ...) can be
matched to a lesson's, or else to an earlier session's failure with a known fix. Each lesson is shown once a
session; the next tool call of that session says whether it helped, counted per lesson in
``hooks-lessons.json`` in the state dir (``headroom hooks status`` shows it).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from headroom.daemon.config import Config
from headroom.daemon.hooks.classify import classify
from headroom.daemon.hooks.client import EVENTS, empty_answer, render, trim
from headroom.engine.tokens import count_tokens
from headroom.learn.failures import find_failures
from headroom.learn.lessons import lessons_for
from headroom.learn.projects import project_of
from headroom.memory.api import Memory
from headroom.memory.briefing import build_briefing
from headroom.memory.db import Database
from headroom.memory.files import write_atomic
from headroom.memory.models import MemoryItemRow
from headroom.memory.records import Item
from headroom.memory.redact import redact_text
from headroom.memory.search import Searcher
from headroom.memory.store import MemoryStore, utcnow

log = logging.getLogger("headroom.hooks")

MAX_ITEMS = 3
#: Beside the best item, only near-ties are shown: the calibration (bench/README.md, Hooks) found the runners-up
#: of a long source file's hit to be mostly noise, and the cut doubled precision at the same recall.
TIE = 0.95
MIN_PROMPT_CHARS = 12
SNIPPET_CHARS = 280
SESSIONS_KEPT = 1024
FAILURES_TTL_S = 600.0
#: A new session always reloads the project's earlier failures: the last one may have ended seconds ago (Codex runs
#: back to back in 2 s) and added the very failure this one is about to repeat. A reload costs milliseconds.
START_REFRESH_S = 0.0
#: How long a failed call's hook waits for a reload already under way (a session's first call can come right
#: after its start, which began the reload): well inside the client's 0.3 s.
RELOAD_WAIT_S = 0.15
FAILURE_DAYS = 30
_WORD = re.compile(r"\w+")
_FILE_NAME = re.compile(r"[\w.-]*[\w-]\.[A-Za-z0-9]{1,8}\b(?:/[\w.-]+)*|[\w.-]+(?:/[\w.-]+)+")
_STOP = frozenset(
    [
        "the",
        "and",
        "for",
        "that",
        "this",
        "with",
        "from",
        "what",
        "have",
        "has",
        "had",
        "are",
        "was",
        "were",
        "you",
        "your",
        "our",
        "can",
        "could",
        "would",
        "should",
        "will",
        "how",
        "why",
        "when",
        "where",
        "which",
        "who",
        "does",
        "did",
        "not",
        "but",
        "all",
        "any",
        "its",
        "into",
        "about",
        "there",
        "their",
        "them",
        "then",
        "than",
        "also",
        "just",
        "please",
        "make",
        "sure",
        "let",
        "lets",
        "use",
        "using",
        "want",
        "need",
        "like",
        "get",
        "got",
        "see",
        "look",
        "find",
        "show",
        "tell",
        "give",
        "run",
    ]
)


def terms(text_: str) -> list[str]:
    """The words of a prompt that can say what it is about (lowercase, 3+ characters, no stop words)."""
    return list(dict.fromkeys(w for w in _WORD.findall(text_.lower()) if len(w) >= 3 and w not in _STOP))


@dataclass
class _SessionState:
    shown_items: set[int] = field(default_factory=set)
    shown_lessons: set[str] = field(default_factory=set)
    pending: str | None = None  # the lesson shown after the last failed call, until the next call says more


@dataclass
class _Counters:
    calls: int = 0
    answered: int = 0
    errors: int = 0
    ms: list[float] = field(default_factory=list)


class HookAnswers:
    """Answers hook requests from the daemon's database and memory (thread-safe: one per daemon)."""

    def __init__(
        self, config: Callable[[], Config], db: Database, memory: Memory | None, stats_file: Path | None = None
    ) -> None:
        self.config = config
        self.db = db
        self.memory = memory
        self.store = memory.store if memory is not None else MemoryStore(db)
        self._text_searcher = Searcher(self.store, None)
        self.stats_file = stats_file
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, _SessionState] = OrderedDict()
        self._projects: dict[str, str] = {}
        self._failures: dict[str, tuple[float, dict[str, list[Any]]]] = {}
        self._failures_loading: set[str] = set()
        self._failures_loaded = threading.Condition(self._lock)  # notified when a project's reload ends
        self.counters: dict[str, _Counters] = {p: _Counters() for p in ("start", "prompt", "tool")}
        self.lessons = self._load_stats()
        self.warmed = threading.Event()

    # -- the entry point -------------------------------------------------------------------------------

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """``{"context": TEXT}`` for one request (``{"ok": true}`` for a ping); never raises."""
        purpose = request.get("purpose")
        if purpose == "ping":
            return {"ok": True, "pid": os.getpid()}
        if purpose not in self.counters:
            return {"context": "", "error": f"unknown purpose {purpose!r}"}
        payload = request.get("payload") if isinstance(request.get("payload"), dict) else {}
        assert isinstance(payload, dict)
        agent = str(request.get("agent") or "")
        counters = self.counters[str(purpose)]
        started = time.perf_counter()
        try:
            handler = {"start": self.start, "prompt": self.prompt, "tool": self.tool}[str(purpose)]
            context = redact_text(handler(agent, str(request.get("event") or ""), payload))
        except Exception as exc:  # a hook must never break the agent: log, count, answer nothing
            counters.errors += 1
            log.error("hook %s/%s failed: %s: %s", agent, purpose, type(exc).__name__, exc)
            context = ""
        counters.calls += 1
        counters.answered += bool(context)
        counters.ms = [*counters.ms[-199:], (time.perf_counter() - started) * 1000]
        return {"context": context}

    def hook(self, header: dict[str, Any], raw: bytes) -> str:
        """What the hook client prints for one event: the host's shape around :meth:`answer`'s context."""
        agent, event = str(header.get("agent") or ""), str(header.get("event") or "")
        purpose = EVENTS.get((agent, event))
        if purpose is None:
            return empty_answer(agent)
        try:
            payload = json.loads(raw.decode("utf-8", "replace") or "{}")
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return empty_answer(agent)
        answer = self.answer({"agent": agent, "event": event, "purpose": purpose, "payload": trim(payload)})
        return render(agent, event, str(answer.get("context") or ""))

    # -- session start ---------------------------------------------------------------------------------

    def start(self, agent: str, event: str, payload: dict[str, Any]) -> str:
        config = self.config()
        project = self.project(payload)
        if not project:
            return ""
        if config.hooks.live_lessons:  # what the last session got wrong, ready before this one's first tool call
            self._earlier_failures(project, max_age=START_REFRESH_S)
        if not config.hooks.briefing:
            return ""
        session = str(payload.get("session_id") or "")
        return build_briefing(
            self.store, project, exclude_session=session or None, max_bytes=int(config.memory.briefing_kb * 1000)
        )

    # -- each prompt -----------------------------------------------------------------------------------

    def prompt(self, agent: str, event: str, payload: dict[str, Any]) -> str:
        config = self.config().hooks
        prompt = payload.get("prompt")
        project = self.project(payload)
        if not config.prompt_memory or not project or not isinstance(prompt, str):
            return ""
        if len(prompt.strip()) < MIN_PROMPT_CHARS:
            return ""
        session = str(payload.get("session_id") or "")
        picked = pick(self.relevant(prompt, project, session), config.min_relevance)
        if not picked:
            return ""
        lines = [
            "headroom memory: other agents or earlier sessions in this project already have this "
            "(memory_get <id> gives an item back in full):"
        ]
        state = self._session(session)
        shown: list[int] = []
        for item, _rel in picked:
            line = _item_line(item, project)
            if _tokens("\n".join([*lines, line])) > config.prompt_tokens:
                break
            lines.append(line)
            shown.append(item.id)
        if not shown:
            return ""
        with self._lock:
            state.shown_items.update(shown)
        return "\n".join(lines)

    def relevant(self, prompt: str, project: str, session: str = "") -> list[tuple[Item, float]]:
        """Candidate items for ``prompt`` with their relevance (0-1), best first; shown/own items left out."""
        words = terms(prompt)
        if not words:
            return []
        # The prompt's own words, not its stop words: full-text search keeps only a query's rarest words, and
        # in a small store "what" or "this" are rarer than the file name that matters.
        result = self._searcher().search(" ".join(words), project=project, k=12)
        weights = self._idf(words)
        total = sum(weights.values())
        named = {n.strip("./") for n in _FILE_NAME.findall(prompt) if n.strip("./")}
        # One pass of one pattern over each item (the prompt's words as whole words), not a tokenization of it
        wanted = re.compile(r"\b(?:" + "|".join(map(re.escape, weights)) + r")\b") if weights else None
        state = self._session(session) if session else None
        out: list[tuple[Item, float]] = []
        for hit in result.hits:
            item = hit.item.scoped(project)
            if state is not None and item.id in state.shown_items:
                continue
            if session and item.sightings and all(s.session_key == session for s in item.sightings):
                continue  # this session produced it: the agent has it already
            if item.kind == "instruction" and " ".join(item.content.split()) == " ".join(prompt.split()):
                continue
            held = set(wanted.findall(f"{item.title or ''} {item.content[:50_000]}".lower())) if wanted else set()
            coverage = sum(w for t, w in weights.items() if t in held) / total if total else 0.0
            title = (item.title or "").rstrip("/")
            if any(title == n or title.endswith("/" + n) for n in named):
                coverage = 1.0  # the prompt names the very file another session read
            out.append((item, max(coverage, hit.similarity or 0.0)))
        out.sort(key=lambda pair: -pair[1])
        return out

    def _searcher(self) -> Searcher:
        """The memory's own searcher when its model is loaded; full-text only otherwise (never load torch here)."""
        memory = self.memory
        if memory is not None and memory.vectors is not None and memory.vectors.embedder.loaded:
            return memory.searcher
        return self._text_searcher

    def _idf(self, words: list[str]) -> dict[str, float]:
        """Each word's idf in the store (a word no item holds weighs like the rarest)."""
        if not words:
            return {}
        with self.db.sessions() as s:
            total = int(s.execute(select(func.count(MemoryItemRow.id))).scalar() or 0)
            held: dict[str, int] = {}
            if self.db.is_sqlite:
                marks = ",".join(f":w{i}" for i in range(len(words)))
                params = {f"w{i}": w for i, w in enumerate(words)}
                rows = s.execute(text(f"SELECT term, doc FROM memory_fts_vocab WHERE term IN ({marks})"), params)
                held = {str(t): int(d) for t, d in rows}
        return {w: math.log((total - held.get(w, 0) + 0.5) / (held.get(w, 0) + 0.5) + 1) for w in words}

    # -- after a tool call -----------------------------------------------------------------------------

    def tool(self, agent: str, event: str, payload: dict[str, Any]) -> str:
        session = str(payload.get("session_id") or "")
        state = self._session(session)
        project = self.project(payload)
        failed, signature, error = classify(agent, event, payload, project)
        with self._lock:
            pending, state.pending = state.pending, None
        if pending is not None:
            self._count(pending, "next_failed" if failed else "next_ok")
        if not failed or not (signature or error) or not self.config().hooks.live_lessons:
            return ""
        found = self._known_fix(signature, error, project)
        if found is None:
            return ""
        key, body = found
        if key in state.shown_lessons:
            return ""
        body = _fit(body, self.config().hooks.lesson_tokens)
        with self._lock:
            state.shown_lessons.add(key)
            state.pending = key
        self._count(key, "shown", text=body)
        return body

    def _known_fix(self, signature: str | None, error: str | None, project: str) -> tuple[str, str] | None:
        """``(key, text)`` of the lesson for ``signature``, else of an earlier session's failure with a fix
        (the same signature, or the same error line)."""
        for lesson in lessons_for(self.db, project) if signature else []:
            if lesson.signature == signature:
                evidence = json.loads(lesson.evidence or "[]")
                agents = sorted({str(e["agent"]) for e in evidence if isinstance(e, dict) and e.get("agent")})
                seen = f"seen in {lesson.sessions} session{'s' if lesson.sessions != 1 else ''}"
                by = f" by {', '.join(agents)}" if agents else ""
                return lesson.key, f"headroom lesson ({seen}{by}): {lesson.text}"
        known = self._earlier_failures(project, wait=RELOAD_WAIT_S)
        earlier = known.get(signature, []) if signature else []
        if not any(f.fix for f in earlier) and error:
            earlier = [f for group in known.values() for f in group if f.error == error]
        fixed = [f for f in earlier if f.fix]
        if not fixed:
            return None
        sessions = {f.session_key for f in earlier}
        agents = sorted({f.agent for f in earlier})
        fix = fixed[-1].fix
        what = f" ({fixed[-1].error})" if fixed[-1].error else ""
        text_ = (
            f"headroom: this failed the same way in {len(sessions)} earlier session"
            f"{'s' if len(sessions) != 1 else ''} ({', '.join(agents)}){what}; what worked then: `{fix}`"
        )
        return f"failure:{fixed[-1].signature}", text_

    def _earlier_failures(
        self, project: str, max_age: float = FAILURES_TTL_S, wait: float = 0.0
    ) -> dict[str, list[Any]]:
        """The project's recent failures by signature, from a cache refreshed on a thread; ``wait`` bounds how
        long to wait for a reload under way (a new session starts one, and its first failure may come at once)."""
        now = time.monotonic()
        with self._lock:
            cached = self._failures.get(project)
            stale = cached is None or now - cached[0] > max_age
            if stale and project not in self._failures_loading:
                self._failures_loading.add(project)
                threading.Thread(
                    target=self._load_failures, args=(project,), name="headroom-hook-failures", daemon=True
                ).start()
            if wait > 0 and project in self._failures_loading:
                self._failures_loaded.wait_for(lambda: project not in self._failures_loading, timeout=wait)
                cached = self._failures.get(project)
        return cached[1] if cached is not None else {}

    def _load_failures(self, project: str) -> None:
        try:
            found: dict[str, list[Any]] = {}
            for f in find_failures(self.db, project=project, since=utcnow() - timedelta(days=FAILURE_DAYS)):
                found.setdefault(f.signature, []).append(f)
            with self._lock:
                self._failures[project] = (time.monotonic(), found)
        except Exception as exc:  # the cache stays as it was; the next request tries again
            log.warning("hooks: loading earlier failures of %s failed: %s", project, exc)
        finally:
            with self._lock:
                self._failures_loading.discard(project)
                self._failures_loaded.notify_all()

    def warm_up(self) -> None:
        """Load what the first answer would otherwise wait for (the token counter's BPE tables, a first query),
        so that the first hook of a session does not run into its client's timeout."""
        try:
            _tokens("warm up")
            self._idf(["warm"])
        except Exception as exc:  # the first answer will try again, and report it
            log.warning("hooks: warming up failed: %s", exc)
        self.warmed.set()

    def warm(self, project: str) -> None:
        """Load a project's earlier failures now (tests and the benchmark: the hook itself never waits)."""
        self._load_failures(project)

    # -- state ----------------------------------------------------------------------------------------

    def project(self, payload: dict[str, Any]) -> str:
        cwd = payload.get("cwd")
        if not isinstance(cwd, str) or not cwd:
            return ""
        with self._lock:
            found = self._projects.get(cwd)
        if found is None:
            found = project_of(cwd)
            with self._lock:
                if len(self._projects) > 4096:
                    self._projects.clear()
                self._projects[cwd] = found
        return found

    def _session(self, session: str) -> _SessionState:
        with self._lock:
            state = self._sessions.get(session)
            if state is None:
                state = self._sessions[session] = _SessionState()
                while len(self._sessions) > SESSIONS_KEPT:
                    self._sessions.popitem(last=False)
            else:
                self._sessions.move_to_end(session)
            return state

    def _load_stats(self) -> dict[str, dict[str, Any]]:
        if self.stats_file is None:
            return {}
        try:
            data = json.loads(self.stats_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _count(self, key: str, what: str, *, text: str | None = None) -> None:
        with self._lock:
            row = self.lessons.setdefault(key, {"shown": 0, "next_ok": 0, "next_failed": 0})
            row[what] = int(row.get(what, 0)) + 1
            if text is not None:
                row["text"] = text[:300]
                row["last_shown"] = utcnow().isoformat(timespec="seconds")
            snapshot = json.dumps(self.lessons, indent=1, sort_keys=True)
        if self.stats_file is not None:
            _write_private(self.stats_file, snapshot)

    def health(self) -> dict[str, Any]:
        """Per purpose: calls, non-empty answers, errors, and p50/p95 of the last 200 answers in ms."""
        out: dict[str, Any] = {}
        for purpose, c in self.counters.items():
            ms = sorted(c.ms)
            out[purpose] = {
                "calls": c.calls,
                "answered": c.answered,
                "errors": c.errors,
                "p50_ms": round(ms[len(ms) // 2], 2) if ms else None,
                "p95_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 2) if ms else None,
            }
        return out


def pick(scored: list[tuple[Item, float]], min_relevance: float) -> list[tuple[Item, float]]:
    """What prompt memory shows of ``scored`` (best first): at or above ``min_relevance`` and near the best."""
    if not scored:
        return []
    best = scored[0][1]
    return [(item, rel) for item, rel in scored if rel >= min_relevance and rel >= TIE * best][:MAX_ITEMS]


def _write_private(path: Path, content: str) -> None:
    try:
        write_atomic(path, content.encode("utf-8"), mode=0o600, fsync=False)  # counters, rewritten every few seconds
    except OSError as exc:
        log.warning("hooks: cannot write %s: %s", path, exc)


def _tokens(text_: str) -> int:
    return count_tokens(text_)


def _fit(text_: str, budget: int) -> str:
    """``text_`` cut at a word to ``budget`` tokens (with an ellipsis when cut)."""
    if _tokens(text_) <= budget:
        return text_
    words = text_.split(" ")
    while len(words) > 1 and _tokens(" ".join(words) + "…") > budget:
        words = words[: len(words) * 3 // 4]
    return " ".join(words) + "…"


def _item_line(item: Item, project: str) -> str:
    title = item.title or ""
    if project and title.startswith(project.rstrip("/") + "/"):
        title = os.path.relpath(title, project)
    who = ", ".join(item.agents) or "saved"
    snippet = " ".join(item.content.split())
    if len(snippet) > SNIPPET_CHARS:
        snippet = snippet[: SNIPPET_CHARS - 1] + "…"
    head = f"- #{item.id} {item.kind}"
    if title and item.kind not in ("decision", "lesson", "instruction"):
        head += f" {title}"
    return f"{head} ({who}, {item.last_seen_at:%Y-%m-%d %H:%M}): {snippet}"
