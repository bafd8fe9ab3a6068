"""CCR: ids, markers, byte-exact retrieval, the stores, and token counting with the bundled BPE files."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from headroom.engine import MemoryCCRStore, RetrievalError, TokenCounter, count_tokens, retrieve
from headroom.engine.ccr import CCRCollision, CCREntry, content_id, find_refs, line_marker, parse_ref, slice_lines
from headroom.engine.tokens import encoding_for
from headroom.memory.ccr_store import FileCCRStore

TEXT = "alpha\r\nbeta\n\ngamma with trailing spaces   \ndelta"  # mixed endings, no final newline


def test_ids_are_deterministic_content_hashes() -> None:
    assert content_id(TEXT) == content_id(str(TEXT))
    assert content_id(TEXT) != content_id(TEXT + " ")
    assert len(content_id("")) == 12
    assert content_id("\ud800 lone surrogate")  # JSON can carry these; hashing must not fail


def test_line_slices_are_byte_exact_and_join_losslessly() -> None:
    n = len(TEXT.splitlines())
    assert slice_lines(TEXT, 1, 2) + slice_lines(TEXT, 3, n) == TEXT
    assert slice_lines(TEXT, 1, 1) == "alpha\r\n"
    with pytest.raises(RetrievalError):
        slice_lines(TEXT, 0, 2)
    with pytest.raises(RetrievalError):
        slice_lines(TEXT, 2, 99)


def test_markers_parse_back_to_refs() -> None:
    entry_id = content_id(TEXT)
    marker = line_marker(entry_id, 2, 4)
    assert marker == f"[3 lines elided; retrieve hr:{entry_id}:2-4]"
    assert line_marker(entry_id, 2, 2).startswith("[1 line elided")
    [ref] = find_refs(f"before {marker} after {marker}")
    assert (ref.id, ref.first, ref.last) == (entry_id, 2, 4)
    assert str(ref) == f"hr:{entry_id}:2-4"
    assert parse_ref(entry_id) == parse_ref(f"hr:{entry_id}")
    for bad in ("hr:xyz", "hr:123", "", "../../etc/passwd", f"hr:{entry_id}:a-b"):
        with pytest.raises(RetrievalError):
            parse_ref(bad)


def test_retrieve_whole_range_and_query() -> None:
    store = MemoryCCRStore()
    entry_id = content_id(TEXT)
    store.put(CCREntry(entry_id, TEXT))
    assert retrieve(entry_id, store) == TEXT
    assert retrieve(f"hr:{entry_id}:2-3", store) == "beta\n\n"
    assert retrieve(entry_id, store, lines=(4, 5)) == "gamma with trailing spaces   \ndelta"
    hits = retrieve(entry_id, store, query="GAMMA")
    assert "4: gamma with trailing spaces" in hits
    assert "no line matches" in retrieve(entry_id, store, query="zeta")
    with pytest.raises(RetrievalError, match="not in the store"):
        retrieve("hr:" + "0" * 12, store)


def test_memory_store_bounds_its_size() -> None:
    store = MemoryCCRStore(max_entries=2)
    for text in ("a", "b", "c"):
        store.put(CCREntry(content_id(text), text))
    assert len(store) == 2
    assert store.get(content_id("a")) is None
    assert store.get(content_id("c")) == "c"


def test_file_store_is_owner_only_exact_and_refuses_paths(tmp_path: Path) -> None:
    store = FileCCRStore(tmp_path / "ccr")
    entry = CCREntry(content_id(TEXT), TEXT)
    store.put(entry)
    store.put(entry)  # idempotent
    assert store.get(entry.id) == TEXT  # \r\n preserved: no newline translation
    path = tmp_path / "ccr" / entry.id[:2] / entry.id
    if sys.platform != "win32":
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(tmp_path / "ccr").st_mode) == 0o700
    assert store.get("../../etc") is None
    assert store.get("0" * 12) is None
    with pytest.raises(ValueError):
        store.put(CCREntry("../escape", "x"))


@pytest.mark.parametrize("make", [MemoryCCRStore, "file"])
def test_a_colliding_id_is_refused_never_served_as_the_other_text(tmp_path: Path, make: object) -> None:
    """Ids are 48 bits of a hash: a second text under a held id raises; the first keeps being served."""
    store = FileCCRStore(tmp_path / "ccr") if make == "file" else MemoryCCRStore()
    first = CCREntry(content_id(TEXT), TEXT)
    store.put(first)
    with pytest.raises(CCRCollision, match=f"hr:{first.id}"):
        store.put(CCREntry(first.id, TEXT + "a different original"))  # the engine computed the same id for it
    assert store.get(first.id) == TEXT
    store.put(first)  # the same text again is still a no-op


@pytest.mark.parametrize("damage", [b"", TEXT.encode()[:7], TEXT.encode()[:-3] + b"\xff"])
def test_a_damaged_original_is_written_again(tmp_path: Path, damage: bytes) -> None:
    """Originals are not fsynced (the proxy puts them on a request's path): a power cut may leave an empty or
    cut file, which is not the text its id names, so the next put of that text repairs it."""
    store = FileCCRStore(tmp_path / "ccr")
    entry = CCREntry(content_id(TEXT), TEXT)
    store.put(entry)
    path = tmp_path / "ccr" / entry.id[:2] / entry.id
    path.write_bytes(damage)
    store.put(entry)
    assert store.get(entry.id) == TEXT and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [entry.id]  # no temp file left


def test_token_counts_use_the_bundled_files_and_match_the_benchmark(shared: Path) -> None:
    sys.path.insert(0, str(shared / "bench"))
    try:
        import benchcore  # the harness's own offline tokenizer
    finally:
        sys.path.pop(0)
    sample = (Path(__file__).parent.parent / "engine" / "router.py").read_text() + " <|endoftext|> é 日本"
    for enc in ("o200k_base", "cl100k_base"):
        model = "gpt-4o" if enc == "o200k_base" else "gpt-4-turbo"
        assert encoding_for(model) == enc
        assert TokenCounter(model).raw(sample) == benchcore.count_text(sample, benchcore.get_encoding(enc))


def test_model_to_encoding_and_claude_factor() -> None:
    assert encoding_for("gpt-5-codex") == "o200k_base"
    assert encoding_for("openai/gpt-4.1-mini") == "o200k_base"
    assert encoding_for("gpt-3.5-turbo") == "cl100k_base"
    assert encoding_for("gemini-2.5-pro") == "o200k_base"
    assert encoding_for(None) == "o200k_base"
    text = "def f(x):\n    return x * 2\n" * 50
    raw = count_tokens(text, "claude-sonnet-4-5")
    assert TokenCounter("claude-sonnet-4-5", claude_factor=1.25).count(text) == round(raw * 1.25)
    assert TokenCounter("gpt-4o", claude_factor=1.25).count(text) == count_tokens(text, "gpt-4o")
    assert count_tokens("") == 0
