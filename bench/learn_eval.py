"""The labelled evaluation of ``headroom learn`` on real logs (issue 15, "Done when").

It ingests ../shared/fixtures/{sessions-more,sessions,generated} into a throw-away ``HEADROOM_HOME`` (the real
CLI, as a user runs it), mines every project and the machine scope, and scores the proposals against two files
kept beside this script:

* ``learn_eval/recall.toml``: the lessons an engineer reading those sessions would write, each with its
  evidence (file and what happened) and the patterns a proposal must match to count as found;
* ``learn_eval/judgments.toml``: every lesson ``learn`` has proposed, keyed by a normalized form of its text
  (numbers, hashes and quoted ids masked, so a re-run that shifts an id reuses its label), labelled
  good / marginal / bad with a reason.

Printed: precision (share of proposals labelled good), the marginal and bad shares, recall (share of the recall
list matched by a proposal), and every proposal without a label yet (``--write-unlabelled`` appends them to the
judgments file as ``label = "?"`` for a person to fill in). Nothing from the logs is copied here beyond short
quotes of a command or an error.

Usage: ``.venv/bin/python bench/learn_eval.py [--keep DIR] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
EVAL = Path(__file__).resolve().parent / "learn_eval"


def shared_dir() -> Path:
    env = os.environ.get("HEADROOM_SHARED")
    return (
        Path(env)
        if env
        else REPO.parent.parent / "shared"
        if (REPO.parent.parent / "shared").is_dir()
        else Path("/work/shared")
    )


def build_corpus(out: Path) -> Path:
    """One HOME-like tree of the three fixture sets: claude/projects, codex/sessions, gemini/{tmp,projects.json}."""
    fixtures = shared_dir() / "fixtures"
    more, real, gen = fixtures / "sessions-more", fixtures / "sessions", fixtures / "generated"
    pairs = [
        (more / ".claude" / "projects", out / "claude" / "projects"),
        (more / ".codex" / "sessions", out / "codex" / "sessions"),
        (more / ".gemini" / "tmp", out / "gemini" / "tmp"),
        (real / "claude" / "projects", out / "claude" / "projects"),
        (real / "codex" / "sessions", out / "codex" / "sessions"),
        (real / "gemini" / "tmp", out / "gemini" / "tmp"),
    ]
    for agent, sub in (("claude", "claude/projects"), ("codex", "codex/sessions"), ("gemini", "gemini/tmp")):
        pairs += [(scenario, out / sub) for scenario in sorted((gen / agent).iterdir())]
    for source, target in pairs:
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
    if (more / ".gemini" / "projects.json").exists():
        shutil.copy(more / ".gemini" / "projects.json", out / "gemini" / "projects.json")
    for dirpath, _dirs, files in os.walk(out):
        for name in files:
            (Path(dirpath) / name).chmod(0o644)
    return out


def ingest(work: Path) -> Path:
    """Ingest the corpus with the real CLI into ``work/hr``; returns that HEADROOM_HOME."""
    logs = build_corpus(work / "logs")
    base = work / "hr"
    base.mkdir(parents=True, exist_ok=True)
    (base / "config.toml").write_text(
        f'[agents.claude]\nhomes = ["{logs / "claude"}"]\n'
        f'[agents.codex]\nhomes = ["{logs / "codex"}"]\n'
        f'[agents.gemini]\nhomes = ["{logs / "gemini"}"]\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADROOM_", "CLAUDE_", "CODEX_", "GEMINI_"))}
    env.update(HOME=str(work / "home"), HEADROOM_HOME=str(base))
    (work / "home").mkdir(exist_ok=True)
    headroom = Path(sys.executable).parent / "headroom"
    subprocess.run([str(headroom), "ingest", "--json"], env=env, check=True, capture_output=True, text=True)
    return base


@dataclass(frozen=True)
class Proposal:
    """One lesson learn proposed, in the shape the labels are keyed on."""

    text: str
    scope: str  # machine | project | agent:<name>
    project: str
    sessions: int

    @property
    def key(self) -> str:
        where = "machine" if self.scope == "machine" else _project_name(self.project)
        return f"{normalize(self.text)} @{where}"


def _project_name(project: str) -> str:
    return re.split(r"[\\/]", project.rstrip("\\/"))[-1].lower() if project else ""


_MASK = [
    (re.compile(r"\b[0-9a-f]{7,}\b"), "<hash>"),
    (re.compile(r"\d+(?:\.\d+)?"), "N"),
]


def normalize(text: str) -> str:
    """A lesson's text with what changes between runs masked: numbers, hashes; case and spacing folded."""
    out = " ".join(text.split()).lower()
    for pattern, repl in _MASK:
        out = pattern.sub(repl, out)
    return out


def propose(home: Path) -> list[Proposal]:
    """Every lesson learn proposes over the ingested corpus: a dry run of each project, machine lessons once."""
    os.environ["HEADROOM_HOME"] = str(home)
    from sqlalchemy import select

    from headroom.daemon.config import load_config
    from headroom.learn.apply import run_learn
    from headroom.learn.journal import Journal
    from headroom.memory.db import open_database
    from headroom.memory.models import SessionRow

    config = load_config()
    db = open_database(config.database_url)
    try:
        with db.sessions() as s:
            projects = sorted({p for p in s.execute(select(SessionRow.project_root).distinct()).scalars() if p})
        from headroom.learn.failures import observe

        seen: dict[str, Proposal] = {}
        journal = Journal(home / "learn-journal")
        observations = observe(db)
        for project in projects:
            run = run_learn(db, project, journal=journal, observations=observations)
            for draft in run.drafts:
                p = _proposal(draft)
                seen.setdefault(p.key, p)
        return sorted(seen.values(), key=lambda p: (p.scope, p.project, p.text))
    finally:
        db.close()


def _proposal(draft: Any) -> Proposal:
    scope = getattr(draft, "scope", "project")
    agents = tuple(getattr(draft, "agents", ()) or ())
    if scope in ("environment", "machine"):
        kind = "machine"
    elif len(agents) == 1:
        kind = f"agent:{agents[0]}"
    else:
        kind = "project"
    return Proposal(draft.text, kind, draft.project or "", draft.sessions)


def _load(name: str) -> dict[str, Any]:
    path = EVAL / name
    return tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _matches(item: dict[str, Any], p: Proposal) -> bool:
    if not all(re.search(rx, p.text, re.IGNORECASE) for rx in item.get("match", [])):
        return False
    scope = item.get("scope")
    if scope == "machine" and p.scope != "machine":
        return False
    if scope and scope.startswith("agent:") and p.scope not in (scope, "project", "machine"):
        return False
    if scope and scope != "machine" and p.scope == "machine":
        return False
    project = item.get("project")
    return not project or project.lower() in p.project.lower()


def score(proposals: list[Proposal]) -> dict[str, Any]:
    recall_items = _load("recall.toml").get("lesson", [])
    must_not = _load("recall.toml").get("not_found", [])
    labels = {j["key"]: j for j in _load("judgments.toml").get("judgment", [])}
    counts = {"good": 0, "marginal": 0, "bad": 0}
    unlabelled = []
    for p in proposals:
        label = labels.get(p.key, {}).get("label")
        if label in counts:
            counts[label] += 1
        else:
            unlabelled.append(p)
    # An item counts as found only through a proposal judged good: a wrong lesson that happens to share the words
    # of a right one finds nothing.
    good = [p for p in proposals if labels.get(p.key, {}).get("label") == "good"]
    found = [item["id"] for item in recall_items if any(_matches(item, p) for p in good)]
    missed = [item["id"] for item in recall_items if item["id"] not in found]
    wrongly = [item["id"] for item in must_not if any(_matches(item, p) for p in proposals)]
    total = len(proposals)
    return {
        "proposed": total,
        "labels": counts,
        "precision": round(counts["good"] / total, 3) if total else None,
        "unlabelled": [p.__dict__ | {"key": p.key} for p in unlabelled],
        "recall": round(len(found) / len(recall_items), 3) if recall_items else None,
        "recall_found": found,
        "recall_missed": missed,
        "must_not_proposed": wrongly,
        "proposals": [p.__dict__ | {"key": p.key, "label": labels.get(p.key, {}).get("label", "?")} for p in proposals],
    }


def _toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def write_unlabelled(unlabelled: list[dict[str, Any]]) -> None:
    """Append the new proposals to judgments.toml with ``label = "?"`` for a person to judge."""
    with (EVAL / "judgments.toml").open("a", encoding="utf-8") as fh:
        for p in unlabelled:
            fh.write(
                f"\n[[judgment]]\nkey = {_toml_str(p['key'])}\nscope = {_toml_str(p['scope'])}\n"
                f'sessions = {p["sessions"]}\nlabel = "?"\nreason = ""\n'
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="work in this folder (kept) instead of a temp one")
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    parser.add_argument("--write-unlabelled", action="store_true", help="append unlabelled proposals to judgments.toml")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="learn-eval-"))
    try:
        home = work / "hr" if (work / "hr" / "headroom.db").exists() else ingest(work)
        result = score(propose(home))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.write_unlabelled and result["unlabelled"]:
        write_unlabelled(result["unlabelled"])
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
        return 0
    for p in result["proposals"]:
        where = _project_name(p["project"]) or "-"
        print(f"[{p['label']:>8}] {p['scope']:<13} {where:<22} s={p['sessions']:<3} {p['text']}")
    labels = result["labels"]
    print(
        f"\nproposed {result['proposed']}: good {labels['good']}, marginal {labels['marginal']}, bad {labels['bad']}, "
        f"unlabelled {len(result['unlabelled'])}; precision (share good) {result['precision']}"
    )
    print(
        f"recall {result['recall']} ({len(result['recall_found'])} found); missed: {', '.join(result['recall_missed'])}"
    )
    print(f"must-not lessons proposed: {', '.join(result['must_not_proposed']) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
