"""The code and listing compressors: outlines keep signatures verbatim, bodies go behind redeemable markers."""

from __future__ import annotations

import contextlib
import json
import sysconfig
from pathlib import Path

import pytest
from compress_helpers import run

from headroom.engine.compressors import _languages as langs
from headroom.engine.compressors import _outline_cache as outline_cache
from headroom.engine.compressors.base import Block, Context, Skip, estimate_tokens
from headroom.engine.compressors.code import CodeCompressor
from headroom.engine.compressors.listing import ListingCompressor
from headroom.engine.config import EngineConfig

STDLIB = Path(sysconfig.get_paths()["stdlib"])
CODE = CodeCompressor()
LISTING = ListingCompressor()

PY = '''"""Order store: keeps orders and totals them."""
import json
from dataclasses import dataclass

MAX_ITEMS = 100


@dataclass
class Order:
    """One order."""

    id: int
    total: float


class Store:
    """Keeps orders in memory.

    Not thread-safe.
    """

    def __init__(self, path, *,
                 autosave=False):
        self.path = path
        self.autosave = autosave
        self.orders = {}
        self.loaded = False
        self.dirty = False

    def add(self, order):
        """Add an order, replacing one with the same id."""
        if order.id in self.orders:
            del self.orders[order.id]
        self.orders[order.id] = order
        self.dirty = True
        if self.autosave:
            self.save()

    def compute_total(self, discount=0.0):
        total = 0.0
        for order in self.orders.values():
            total += order.total
        total -= total * discount
        return round(total, 2)
'''

JS = """import fs from 'fs';
const { join } = require('path');

export function loadConfig(path, opts = {}) {
  const raw = fs.readFileSync(path, 'utf8');
  const data = JSON.parse(raw);
  if (!data.version) {
    throw new Error('config without version');
  }
  return { ...opts, ...data };
}

export class Cache {
  constructor(root) {
    this.root = root;
    this.items = new Map();
    this.hits = 0;
    this.misses = 0;
  }

  async get(key) {
    if (this.items.has(key)) {
      this.hits += 1;
      return this.items.get(key);
    }
    this.misses += 1;
    return fs.promises.readFile(join(this.root, key));
  }
}
"""

TS = """import { Request, Response } from "express";

export interface User {
  id: number;
  name: string;
}

export async function findUser(users: User[], id: number): Promise<User | undefined> {
  for (const user of users) {
    if (user.id === id) {
      return user;
    }
  }
  console.warn(`no user ${id}`);
  return undefined;
}

export class UserService {
  private cache = new Map<number, User>();

  public handle(req: Request, res: Response): void {
    const id = Number(req.params.id);
    const user = this.cache.get(id);
    if (!user) {
      res.status(404).end();
      return;
    }
    res.json(user);
  }
}
"""

TSX = """import React from "react";

type Props = { title: string; items: string[] };

export function List({ title, items }: Props) {
  const sorted = [...items].sort();
  const count = sorted.length;
  return (
    <section>
      <h2>{title} ({count})</h2>
      <ul>{sorted.map((item) => <li key={item}>{item}</li>)}</ul>
    </section>
  );
}
"""

GO = """package store

import (
	"fmt"
	"os"
)

type Store struct {
	root  string
	items map[string]string
}

func NewStore(root string) *Store {
	s := &Store{root: root}
	s.items = make(map[string]string)
	if root == "" {
		s.root = os.TempDir()
	}
	fmt.Println("store at", s.root)
	return s
}

func (s *Store) Get(key string) (string, error) {
	if v, ok := s.items[key]; ok {
		return v, nil
	}
	data, err := os.ReadFile(s.root + "/" + key)
	if err != nil {
		return "", fmt.Errorf("get %s: %w", key, err)
	}
	return string(data), nil
}
"""

RUST = """use std::collections::HashMap;
use std::fs;

#[derive(Debug, Default)]
pub struct Store {
    root: String,
    items: HashMap<String, String>,
}

impl Store {
    pub fn new(root: &str) -> Self {
        let mut store = Store::default();
        store.root = root.to_string();
        if store.root.is_empty() {
            store.root = String::from("/tmp");
        }
        store
    }

    pub fn load(&mut self, key: &str) -> std::io::Result<String> {
        if let Some(v) = self.items.get(key) {
            return Ok(v.clone());
        }
        let data = fs::read_to_string(format!("{}/{}", self.root, key))?;
        self.items.insert(key.to_string(), data.clone());
        Ok(data)
    }
}
"""

JAVA = """package com.example.store;

import java.io.IOException;
import java.util.HashMap;
import java.util.Map;

public class Store {
    private final Map<String, String> items = new HashMap<>();
    private final String root;

    public Store(String root) {
        if (root == null) {
            throw new IllegalArgumentException("root");
        }
        this.root = root;
        log("store at " + root);
    }

    public String get(String key) throws IOException {
        String value = items.get(key);
        if (value == null) {
            throw new IOException("missing " + key);
        }
        return value;
    }
}
"""

C = """#include <stdio.h>
#include <stdlib.h>

typedef struct store {
    char *root;
    int count;
} store_t;

store_t *store_new(const char *root,
                   int flags)
{
    store_t *s = malloc(sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->root = strdup(root);
    s->count = flags;
    return s;
}

int store_count(const store_t *s) {
    if (s == NULL) {
        fprintf(stderr, "no store\\n");
        return -1;
    }
    return s->count;
}
"""

CPP = """#include <string>
#include <vector>

namespace store {

class Store {
public:
    explicit Store(const std::string& root) : root_(root) {
        items_.reserve(16);
        if (root_.empty()) {
            root_ = "/tmp";
        }
        count_ = 0;
    }
    int count() const;
private:
    std::string root_;
    std::vector<std::string> items_;
    int count_;
};

int Store::count() const {
    int n = 0;
    for (const auto& item : items_) {
        if (!item.empty()) {
            ++n;
        }
    }
    return n;
}

}  // namespace store
"""

# path, source, lines that must stay verbatim, a body line that must go
CASES = {
    "python": (
        "store.py",
        PY,
        [
            "    def __init__(self, path, *,",
            "                 autosave=False):",
            "    def add(self, order):",
            "@dataclass",
            "class Store:",
        ],
        "self.loaded = False",
    ),
    "javascript": (
        "cache.js",
        JS,
        ["export function loadConfig(path, opts = {}) {", "  async get(key) {", "export class Cache {"],
        "JSON.parse(raw)",
    ),
    "typescript": (
        "users.ts",
        TS,
        ["export interface User {", "  name: string;", "  public handle(req: Request, res: Response): void {"],
        "res.json(user)",
    ),
    "tsx": ("list.tsx", TSX, ["export function List({ title, items }: Props) {"], "sorted.map"),
    "go": (
        "store.go",
        GO,
        [
            "func NewStore(root string) *Store {",
            "func (s *Store) Get(key string) (string, error) {",
            "type Store struct {",
            "\titems map[string]string",
        ],
        "os.ReadFile",
    ),
    "rust": (
        "store.rs",
        RUST,
        [
            "    pub fn new(root: &str) -> Self {",
            "#[derive(Debug, Default)]",
            "    pub fn load(&mut self, key: &str) -> std::io::Result<String> {",
        ],
        "fs::read_to_string",
    ),
    "java": (
        "Store.java",
        JAVA,
        [
            "public class Store {",
            "    public Store(String root) {",
            "    public String get(String key) throws IOException {",
        ],
        "items.get(key)",
    ),
    "c": (
        "store.c",
        C,
        [
            "store_t *store_new(const char *root,",
            "                   int flags)",
            "int store_count(const store_t *s) {",
            "typedef struct store {",
        ],
        "malloc(sizeof",
    ),
    "cpp": (
        "store.cpp",
        CPP,
        [
            "    explicit Store(const std::string& root) : root_(root) {",
            "int Store::count() const {",
            "    std::vector<std::string> items_;",
        ],
        "++n;",
    ),
}


@pytest.mark.parametrize("lang", sorted(CASES))
def test_each_language_keeps_signatures_and_elides_bodies(lang: str) -> None:
    path, source, kept, body = CASES[lang]
    out, ctx = run(CODE, source, path=path)
    out_lines = out.splitlines()
    for line in kept:
        assert line in out_lines, f"{lang}: {line!r} missing from\n{out}"
    assert body not in out
    assert "elided; retrieve hr:" in out
    assert ctx.dropped.get("lines", 0) > 0


@pytest.mark.parametrize("lang", ["python", "javascript", "go", "rust", "java", "c", "cpp"])
def test_language_is_detected_without_a_path(lang: str) -> None:
    _, source, kept, body = CASES[lang]
    out, _ = run(CODE, source)
    assert kept[0] in out.splitlines()
    assert body not in out


def test_marker_sits_on_its_own_line_indented_like_the_body() -> None:
    out, _ = run(CODE, PY, path="store.py")
    markers = [line for line in out.splitlines() if "elided; retrieve" in line]
    assert markers
    assert all(line.startswith("        [") for line in markers)


def test_body_the_question_names_stays_whole() -> None:
    out, _ = run(CODE, PY, path="store.py", question="Why does `compute_total` round the result?")
    assert "        total -= total * discount" in out
    assert "self.loaded = False" not in out  # other bodies still go
    out, _ = run(CODE, GO, path="store.go", question="what does NewStore do when root is empty")
    assert "\t\ts.root = os.TempDir()" in out
    assert "os.ReadFile" not in out


def test_file_named_by_question_keeps_more() -> None:
    text = (STDLIB / "configparser.py").read_text()
    plain, _ = run(CODE, text, path="Lib/configparser.py", question="how do I parse INI files")
    named, _ = run(CODE, text, path="Lib/configparser.py", question="what does configparser expose")
    assert len(named) > len(plain)
    assert "    def _read(self, fp, fpname):" in named  # private signatures stay when the file is named
    assert "    def __init__(self, defaults=None, dict_type=_default_dict,\n" in named


def _numbered(text: str, start: int = 1, sep: str = "\t") -> str:
    return "\n".join(f"{n:6d}{sep}{line}" for n, line in enumerate(text.splitlines(), start)) + "\n"


@pytest.mark.parametrize("sep", ["\t", "→"])
def test_listing_keeps_numbered_lines_verbatim(sep: str) -> None:
    listing = _numbered(PY, start=101, sep=sep)
    assert LISTING.sniff(Block(listing))
    assert not CODE.sniff(Block(listing, path="store.py"))
    out, ctx = run(LISTING, listing, path="/repo/store.py", tool_name="Read")
    numbered = set(listing.splitlines())
    for line in out.splitlines():
        assert line in numbered or "elided; retrieve hr:" in line
    assert f"   122{sep}    def __init__(self, path, *," in out.splitlines()
    assert "self.loaded = False" not in out
    assert ctx.dropped["lines"] > 0


def test_listing_keeps_a_trailing_note_in_view() -> None:
    listing = _numbered(PY) + "\n<system-reminder>\nconsider whether the file is malicious\n</system-reminder>\n"
    out, _ = run(LISTING, listing, path="store.py")
    assert out.endswith("<system-reminder>\nconsider whether the file is malicious\n</system-reminder>\n")


def test_listing_of_prose_keeps_head_structure_and_relevant_lines() -> None:
    doc = ["# Deploy guide", ""] + [f"Step {i}: run the usual checks and wait." for i in range(200)]
    doc[120] = "## Rollback"
    doc[150] = "If the canary fails, set FEATURE_GATE=off and redeploy."
    listing = _numbered("\n".join(doc))
    out, _ = run(LISTING, listing, path="docs/deploy.md", question="how do I turn off FEATURE_GATE")
    assert "     1\t# Deploy guide" in out
    assert "   121\t## Rollback" in out
    assert "   151\tIf the canary fails, set FEATURE_GATE=off and redeploy." in out
    assert "Step 60:" not in out


def test_configparser_needles_survive(shared: Path) -> None:
    work = json.loads((shared / "bench" / "workloads" / "codebase_exploration.json").read_text())
    inputs = {
        b["id"]: b["input"]
        for m in work["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_use"
    }
    outs: list[str] = []
    before = after = 0
    for m in work["messages"]:
        if not isinstance(m["content"], list):
            continue
        for b in m["content"]:
            if b.get("type") != "tool_result":
                continue
            tool_input = inputs[b["tool_use_id"]]
            out, _ = run(
                LISTING,
                b["content"],
                question=work["question"],
                tool_input=tool_input,
                path=tool_input["file_path"],
                tool_name="Read",
            )
            outs.append(out)
            before += estimate_tokens(b["content"])
            after += estimate_tokens(out)
    everything = "\n".join(outs)
    missing = [n["text"] for n in work["needles"] if n["text"] not in everything]
    assert not missing
    assert after < 0.25 * before


def test_exact_policy_skips() -> None:
    exact = EngineConfig(file_read_policy="exact")
    with pytest.raises(Skip, match="exact"):
        run(CODE, PY, path="store.py", config=exact)
    with pytest.raises(Skip, match="exact"):
        run(LISTING, _numbered(PY), path="store.py", config=exact)


def test_broken_code_skips() -> None:
    broken = "\n".join(f"def f{i}(:\n    return ]{i}[ +\n  )))" for i in range(40))
    with pytest.raises(Skip, match="parse errors"):
        run(CODE, broken, path="broken.py")


def test_unknown_language_skips() -> None:
    prose = "The meeting moved to Thursday. Bring the quarterly numbers and the slides.\n" * 40
    with pytest.raises(Skip, match="unknown language"):
        run(CODE, prose, path="notes.xyz")
    with pytest.raises(Skip):
        run(CODE, prose)
    assert not CODE.sniff(Block(prose))
    grep = "".join(f"Lib/store.py:{n}:    def add(self, order):\n" for n in range(30))
    assert not CODE.sniff(Block(grep))


def test_output_is_deterministic() -> None:
    text = (STDLIB / "argparse.py").read_text()
    first, _ = run(CODE, text, path="argparse.py", question="how are subparsers added")
    second, _ = run(CODE, text, path="argparse.py", question="how are subparsers added")
    assert first == second
    listing = _numbered(text)
    assert run(LISTING, listing, path="argparse.py")[0] == run(LISTING, listing, path="argparse.py")[0]


@pytest.mark.parametrize("module", ["argparse.py", "typing.py", "inspect.py"])
def test_big_stdlib_module_saves_most_tokens(module: str) -> None:
    text = (STDLIB / module).read_text()
    out, _ = run(CODE, text, path=f"Lib/{module}", question="where is the help text formatted")
    assert estimate_tokens(out) <= 0.3 * estimate_tokens(text)
    listing = _numbered(text)
    out, _ = run(LISTING, listing, path=f"Lib/{module}", question="where is the help text formatted")
    assert estimate_tokens(out) <= 0.3 * estimate_tokens(listing)


def test_never_raises_anything_but_skip_on_odd_input() -> None:
    odd = [
        "",
        "\n\n\n",
        "x",
        "def",
        "}{" * 500,
        "\x0c\n" * 30,
        "class A:\n\x0c\n    def f(self):\n" + "        pass\n" * 9,
    ]
    for text in odd:
        for compressor, path in ((CODE, "a.py"), (LISTING, "a.py"), (CODE, None)):
            ctx = Context(text)
            with contextlib.suppress(Skip):
                compressor.compress(Block(text, path=path), ctx)


# -- the outline cache: faster, never different ---------------------------------------------------------

QUESTIONS = (None, "how are subparsers added with `add_subparsers`?", "what does `ArgumentParser.parse_known_args` do")


def _cold(comp: CodeCompressor | ListingCompressor, text: str, question: str | None, path: str) -> str:
    outline_cache.clear()
    return run(comp, text, path=path, question=question)[0]


def test_outline_cache_gives_exactly_what_a_fresh_parse_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (STDLIB / "argparse.py").read_text()
    listing = _numbered(text)
    cold = {
        (q, kind): _cold(comp, body, q, "Lib/argparse.py")
        for q in QUESTIONS
        for kind, comp, body in (("code", CODE, text), ("listing", LISTING, listing))
    }
    parses: list[str] = []
    real_parse = langs.parse
    monkeypatch.setattr(langs, "parse", lambda lang, source: parses.append(lang) or real_parse(lang, source))
    outline_cache.clear()
    for q in QUESTIONS + QUESTIONS:  # each question twice, interleaved: every variant is reused
        assert run(CODE, text, path="Lib/argparse.py", question=q)[0] == cold[(q, "code")]
        assert run(LISTING, listing, path="Lib/argparse.py", question=q)[0] == cold[(q, "listing")]
    # One parse per (file layout, distinct set of answers to the walk's questions), not one per call.
    assert len(parses) <= 2 * len(QUESTIONS)
    before = len(parses)
    # A listing whose trailing note changed is the same code: no parse, the same outline.
    noted = listing + "\n<system-reminder>the file may have changed</system-reminder>\n"
    other = listing + "\n<system-reminder>another note of the same length....</system-reminder>\n"
    warm = [run(LISTING, body, path="Lib/argparse.py")[0] for body in (noted, other)]
    assert len(parses) == before + 1
    assert warm == [_cold(LISTING, body, None, "Lib/argparse.py") for body in (noted, other)]


def test_outline_cache_is_bounded() -> None:
    outline_cache.clear()
    for k in range(outline_cache.MAX_FILES + 20):
        run(CODE, PY + f"\nVERSION_{k} = {k}\n" * 3, path="store.py")
    assert len(outline_cache._entries) == outline_cache.MAX_FILES


def test_outline_cache_bounds_the_source_its_keys_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys hold their source text (an exact comparison, not a digest): their characters are bounded too."""
    outline_cache.clear()
    sources = [PY + f"\nVERSION_{k} = {k}\n" * 3 for k in range(10)]
    monkeypatch.setattr(outline_cache, "MAX_SOURCE_CHARS", 3 * len(sources[0]) + 10)
    for source in sources:
        run(CODE, source, path="store.py")
    held = [key[0] for key in outline_cache._entries]
    assert len(held) == 3 and sum(map(len, held)) == outline_cache.source_chars() <= outline_cache.MAX_SOURCE_CHARS
    assert held == ["\n".join(source.splitlines()) for source in sources[-3:]]  # the most recent files stay
    outline_cache.clear()
    assert outline_cache.source_chars() == 0


@pytest.mark.parametrize(
    "question",
    ["how does `TextWrapper._wrap_chunks` handle long words?", "how does _wrap_chunks decide where a line ends?"],
)
def test_a_private_method_the_question_names_is_kept_whole(question: str) -> None:
    """A question naming a private method as written, underscore and all, keeps it (it was elided as private)."""
    text = (STDLIB / "textwrap.py").read_text()
    body = "cur_len = sum(map(len, cur_line))"  # a line deep inside _wrap_chunks
    outline_cache.clear()
    for comp, source in ((CODE, text), (LISTING, _numbered(text))):
        asked = run(comp, source, path="Lib/textwrap.py", question=question)[0]
        assert "def _wrap_chunks(self, chunks):" in asked and body in asked
        plain = run(comp, source, path="Lib/textwrap.py")[0]
        assert "def _wrap_chunks" not in plain  # without the question it is private, so elided whole
