"""Embedders: the hashing fake's contract (fast) and the real all-MiniLM-L6-v2 model, offline (slow)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from headroom.engine.errors import HeadroomError
from headroom.memory.embed import (
    Embedder,
    EmbedderUnavailable,
    HashEmbedder,
    SentenceTransformerEmbedder,
    default_embedder,
)

TEXTS = [
    "The proxy compresses tool output before it reaches the model.",
    "The proxy compresses tool outputs before they reach the model!",
    "Bananas are rich in potassium and grow in tropical climates.",
    "",
]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


def test_hash_embedder_shape_dtype_and_unit_rows() -> None:
    embedder = HashEmbedder()
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert embedder.name == "hash-v1-384"
    assert embedder.embed([]).shape == (0, 384)


def test_hash_embedder_dimension_is_configurable() -> None:
    embedder = HashEmbedder(dim=64)
    assert embedder.name == "hash-v1-64"
    assert embedder.embed(["x"]).shape == (1, 64)
    with pytest.raises(ValueError, match="dim"):
        HashEmbedder(dim=1)


def test_hash_embedder_is_deterministic_across_instances_and_processes() -> None:
    first = HashEmbedder().embed(TEXTS)
    np.testing.assert_array_equal(first, HashEmbedder().embed(TEXTS))
    # A different PYTHONHASHSEED in a fresh process must not change anything: the hash is blake2b, not hash().
    code = (
        "import sys, numpy as np\n"
        "from headroom.memory.embed import HashEmbedder\n"
        "sys.stdout.buffer.write(HashEmbedder().embed(sys.argv[1:]).tobytes())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code, *TEXTS], capture_output=True, env=env, check=True).stdout
    np.testing.assert_array_equal(np.frombuffer(out, dtype=np.float32).reshape(first.shape), first)


def test_hash_embedder_ranks_near_duplicates_above_unrelated_text() -> None:
    near, other = HashEmbedder().embed(TEXTS[:2]), HashEmbedder().embed(TEXTS[2:3])
    assert _cos(near[0], near[1]) > 0.6
    assert abs(_cos(near[0], other[0])) < 0.2
    reflowed = HashEmbedder().embed(["alpha beta\n\n  gamma", "alpha beta gamma"])
    assert _cos(reflowed[0], reflowed[1]) > 0.99


def test_hash_embedder_empty_text_is_a_fixed_unit_vector() -> None:
    vectors = HashEmbedder().embed(["", "   ", ""])
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0)


def test_embed_rejects_a_bare_string() -> None:
    with pytest.raises(TypeError):
        HashEmbedder().embed("not a list")


def test_both_embedders_satisfy_the_protocol() -> None:
    embedders: list[Embedder] = [HashEmbedder(), SentenceTransformerEmbedder()]
    assert [e.dim for e in embedders] == [384, 384]


def test_sentence_transformer_embedder_is_lazy() -> None:
    embedder = default_embedder()
    assert embedder.name == "all-MiniLM-L6-v2"
    assert not embedder.loaded
    assert SentenceTransformerEmbedder(Path("/models/my-model")).name == "my-model"


def test_bad_model_path_raises_embedder_unavailable(tmp_path: Path) -> None:
    embedder = SentenceTransformerEmbedder(tmp_path / "nowhere")
    with pytest.raises(EmbedderUnavailable, match="nowhere") as info:
        embedder.embed(["hello"])
    assert isinstance(info.value, HeadroomError)
    assert "pip install" in str(info.value)
    assert not embedder.loaded


@pytest.mark.slow
def test_broken_model_folder_raises_embedder_unavailable(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{ not json")
    (tmp_path / "modules.json").write_text("[]")
    with pytest.raises(EmbedderUnavailable, match="cannot load the embedding model"):
        SentenceTransformerEmbedder(tmp_path).load()


@pytest.mark.slow
def test_real_model_loads_offline_and_ranks_a_paraphrase_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    embedder = SentenceTransformerEmbedder(threads=2)
    vectors = embedder.embed(
        [
            "How do I reset my password?",
            "What are the steps to change a forgotten password?",
            "The recipe needs two cups of flour and an egg.",
        ]
    )
    assert embedder.loaded
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert embedder.dim == 384
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-4)
    assert _cos(vectors[0], vectors[1]) > _cos(vectors[0], vectors[2]) + 0.3
    # Huge blobs are cut before tokenising and still embed; empty input gives an empty matrix.
    assert embedder.embed(["x" * 1_000_000]).shape == (1, 384)
    assert embedder.embed([]).shape == (0, 384)
