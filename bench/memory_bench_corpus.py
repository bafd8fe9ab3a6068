"""The memory benchmark's synthetic content (``memory_bench.py``): realistic items and queries about them.

Items of every kind the daemon stores (file contents, logs, command outputs, docs, decisions, prompts), deterministic
from a seed, spread over ``PROJECTS`` projects of a skewed (Zipf-like) size, each seen 1-3 times; queries take words,
paths and paraphrase-like questions from a sample of the items, each asked in the item's project.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from headroom.memory.records import Draft

PROJECTS = 50

_WORD_TEXT = (
    "retry backoff payment worker invoice customer queue timeout cache session token refresh schema migration "
    "index query latency throughput release deploy rollback canary feature flag config secret vault region "
    "replica shard partition leader election heartbeat lease lock mutex thread pool async await future promise "
    "parser lexer grammar syntax tree node visitor compiler optimizer inline register memory allocator garbage "
    "collector heap stack frame trace span metric histogram counter gauge alert pager incident postmortem owner "
    "review approve merge branch rebase commit tag version semver changelog dependency upgrade vulnerability patch "
    "browser render layout paint component state props hook effect reducer store router navigation modal form "
    "validation error warning notice debug verbose logger handler middleware request response header cookie cors "
    "upload download stream chunk buffer encoder decoder codec image thumbnail video audio subtitle caption "
    "search ranking relevance embedding vector cosine similarity cluster centroid sample batch epoch gradient"
)
_WORDS = tuple(_WORD_TEXT.split())
_PROSE = (
    "we decided to keep the old behaviour until the migration lands because the dashboard still reads it",
    "the flaky test was caused by a shared temporary directory between two workers",
    "use the staging bucket for uploads, production credentials are only on the deploy runner",
    "prefer small pull requests; the reviewer asked to split the schema change from the backfill",
    "the retry loop must cap at five attempts with jittered exponential backoff",
    "the cache key has to include the tenant, otherwise two customers see each other's reports",
    "we pinned the client library because the new major version changed pagination",
    "always run the formatter before committing, CI rejects unformatted files",
    "the incident was a connection pool exhausted by a slow query without an index",
    "logging at debug level in the hot path doubled latency, keep it at info",
)
_DIRS = ("src", "lib", "app", "tests", "pkg", "internal", "cmd", "web", "api", "core", "utils", "scripts")
_EXTS = (".py", ".ts", ".go", ".rs", ".js", ".toml", ".yaml", ".md", ".sql", ".sh")
_LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR")
_COMMANDS = (
    "pytest -q",
    "npm test",
    "cargo test",
    "go test ./...",
    "git log --oneline",
    "ls -la",
    "make build",
    "grep -rn",
    "docker ps",
    "kubectl get pods",
    "git diff --stat",
    "pip list",
)


@dataclass
class Generated:
    """One synthetic item: its drafts (one per sighting) and what a query about it may use."""

    drafts: list[Draft]
    words: list[str]
    path: str | None


class Corpus:
    """Distinct items of every kind, deterministic from a seed, spread over projects of skewed sizes."""

    def __init__(self, seed: int, projects: int = PROJECTS) -> None:
        self.rng = random.Random(seed)
        self.projects = [f"/home/dev/src/proj{i:02d}-{self._ident(self.rng)}" for i in range(projects)]
        # Zipf-like sizes: a few large projects (so the ANN path with a project filter is exercised) and a long tail.
        self.weights = [1.0 / (i + 1) ** 0.9 for i in range(projects)]
        self.paths: dict[str, list[str]] = {p: [] for p in self.projects}
        self.t0 = datetime(2026, 9, 1, tzinfo=timezone.utc)

    @staticmethod
    def _ident(rng: random.Random) -> str:
        return "".join(rng.choice("bcdfghjklmnprstvwz") + rng.choice("aeiou") for _ in range(rng.randint(2, 4)))

    def _name(self) -> str:
        r = self.rng
        return f"{r.choice(_WORDS)}_{self._ident(r)}" if r.random() < 0.6 else f"{self._ident(r)}{r.randint(2, 99)}"

    def _code(self, lines: int) -> str:
        r, out = self.rng, []
        for _ in range(lines // 6 + 1):
            fn, arg = self._name(), self._name()
            out.append(f"def {fn}({arg}, {r.choice(_WORDS)}=None):")
            out.append(f'    """{r.choice(_WORDS).capitalize()} the {r.choice(_WORDS)} for {r.choice(_WORDS)}."""')
            out.append(f"    if {arg} is None:")
            out.append(f"        raise ValueError('{r.choice(_WORDS)} {r.choice(_WORDS)} missing')")
            out.append(f"    return {self._name()}({arg}) + {r.randint(0, 9999)}")
            out.append("")
        return "\n".join(out[:lines])

    def _log(self, lines: int) -> str:
        r = self.rng
        ts = self.t0 + timedelta(seconds=r.randint(0, 8_000_000))
        out = []
        for _ in range(lines):
            ts += timedelta(milliseconds=r.randint(1, 5000))
            out.append(
                f"{ts:%Y-%m-%d %H:%M:%S},{ts.microsecond // 1000:03d} {r.choice(_LEVELS)} [{self._name()}] "
                f"{r.choice(_WORDS)} {r.choice(_WORDS)} id={r.randint(1, 10**6)} took {r.randint(1, 900)}ms"
            )
        return "\n".join(out)

    def _output(self, command: str, lines: int) -> str:
        r = self.rng
        if command.startswith(("pytest", "cargo", "go test", "npm")):
            rows = [
                f"tests/test_{self._name()}.py::test_{self._name()} {r.choice(('PASSED', 'PASSED', 'FAILED'))}"
                for _ in range(lines)
            ]
            return "\n".join([*rows, f"{r.randint(1, 400)} passed, {r.randint(0, 5)} failed in {r.random() * 30:.2f}s"])
        if command.startswith("git"):
            return "\n".join(
                f"{r.getrandbits(28):07x} {r.choice(_WORDS)} {self._name()} {r.choice(_WORDS)}" for _ in range(lines)
            )
        return "\n".join(
            f"{r.choice(('-rw-r--r--', 'drwxr-xr-x'))} {r.randint(1, 99999):>6} {self._name()}"
            f"{r.choice(_EXTS)} {r.choice(_WORDS)}"
            for _ in range(lines)
        )

    def _prose(self, sentences: int) -> str:
        r = self.rng
        out = []
        for _ in range(sentences):
            if r.random() < 0.4:
                out.append(r.choice(_PROSE) + f" (see {self._name()}).")
            else:
                words = [r.choice(_WORDS) for _ in range(r.randint(8, 18))]
                out.append(" ".join(words).capitalize() + f" in {self._name()}.")
        return " ".join(out)

    def text(self, kind: str, size: int) -> tuple[str, str | None, str | None]:
        """(content, path, title) of one item of ``kind``, roughly ``size`` characters long."""
        r = self.rng
        lines = max(3, size // 60)
        if kind == "file_read":
            ext = r.choice(_EXTS)
            path = f"{r.choice(_DIRS)}/{self._name()}/{self._name()}{ext}"
            return self._code(lines), path, None
        if kind == "tool_output":
            command = r.choice(_COMMANDS)
            body = self._log(lines) if r.random() < 0.5 else self._output(command, lines)
            return body, None, f"$ {command} {self._name()}"
        if kind == "fetched_doc":
            return self._prose(max(3, size // 120)), None, f"https://docs.example.com/{self._name()}/{self._name()}"
        return self._prose(max(1, size // 120)), None, None

    def item(self, n: int) -> Generated:
        r = self.rng
        kind = r.choices(("file_read", "tool_output", "fetched_doc", "decision", "instruction"), (40, 30, 10, 15, 5))[0]
        size = int(min(6000, max(150, r.lognormvariate(6.9, 0.6))))  # median ~1 KB, a tail of a few KB
        content, rel, title = self.text(kind, size)
        home = r.choices(self.projects, self.weights)[0]
        path = None
        if rel is not None:
            known = self.paths[home]
            if known and r.random() < 0.1:  # the same file read again after an edit: a new version
                path = r.choice(known)
            else:
                path = f"{home}/{rel}"
                known.append(path)
        drafts = []
        ts = self.t0 + timedelta(seconds=n * 30)
        for s in range(r.choices((1, 2, 3), (60, 30, 10))[0]):
            project = home if s == 0 or r.random() < 0.7 else r.choices(self.projects, self.weights)[0]
            drafts.append(
                Draft(
                    content,
                    kind,
                    project=project,
                    agent=r.choice(("claude", "codex", "gemini")),
                    session_key=f"s{n}-{s}",
                    tool_call_key=f"c{n}-{s}",
                    path=path if project == home else None,
                    title=title,
                    ts=ts + timedelta(minutes=s * 90),
                    source="log",
                )
            )
        words = [w for w in content.replace("(", " ").replace(")", " ").split() if len(w) > 4 and w.isidentifier()]
        return Generated(drafts, words, path)


def make_queries(corpus: Corpus, samples: list[Generated], n: int) -> list[tuple[str, str, str]]:
    """(query, project, family): words from items, paths and paraphrase-like questions, each in a project."""
    r = random.Random(7)
    queries: list[tuple[str, str, str]] = []
    for i in range(n):
        g = samples[i % len(samples)]
        project = g.drafts[0].project
        family = ("words", "path", "paraphrase")[i % 3]
        if family == "path" and g.path:
            queries.append((g.path.rsplit("/", 2)[-1] if r.random() < 0.5 else g.path, project, "path"))
        elif family == "paraphrase" or not g.words:
            prose = r.choice(_PROSE).split()
            start = r.randint(0, max(0, len(prose) - 6))
            queries.append(("how do we handle " + " ".join(prose[start : start + 6]), project, "paraphrase"))
        else:
            picked = r.sample(g.words, min(len(g.words), r.randint(1, 3)))
            queries.append((" ".join(picked), project, "words"))
    return queries
