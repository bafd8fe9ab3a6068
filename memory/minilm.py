"""A BERT sentence encoder (all-MiniLM-L6-v2) in plain numpy: the daemon's embedder without torch.

Why: with torch and sentence-transformers loaded the daemon's RSS went from ~90 MB to 858 MB, for a model
whose weights are 90 MB. The forward pass of a six-layer, 384-wide BERT is a few matrix products per layer,
which numpy's BLAS does as fast as torch on a CPU; the tokenizer is the same Rust ``tokenizers`` library
sentence-transformers uses, read from the same ``tokenizer.json``. So nothing is exported or downloaded: the
weights are read from the model folder's ``model.safetensors`` (a JSON header and raw little-endian arrays,
parsed here), and the vectors match sentence-transformers' within float32 rounding (the tests compare them
when torch is installed; bench/README.md, Memory, records the figures).

Only what all-MiniLM-L6-v2's folder describes is supported: a ``BertModel`` with absolute positions, GELU,
mean pooling and a Normalize module. :func:`supported` says whether a folder is one; any other folder is left
to sentence-transformers (memory/embed.py).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import mmap
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

#: sentence-transformers' ``max_seq_length`` for the model (sentence_bert_config.json): longer texts are cut.
DEFAULT_MAX_TOKENS = 256
#: Below this many word pieces an encode's temporaries are small enough to leave to malloc (see release_memory).
TRIM_TOKENS = 1024
#: Up to this many word pieces in a batch a linear layer is computed as ``(W @ x.T).T`` (see MiniLM._linear).
FEW_ROWS = 64


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def supported(folder: Path) -> bool:
    """Whether ``folder`` is a sentence-transformers BERT model this module computes exactly (mean pooling,
    normalised, safetensors weights, a fast tokenizer file)."""
    try:
        config = _read_json(folder / "config.json")
        pooling = _read_json(folder / "1_Pooling" / "config.json")
        modules = _read_json(folder / "modules.json")
    except (OSError, ValueError):
        return False
    types = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules if isinstance(m, dict)]
    return (
        config.get("model_type") == "bert"
        and config.get("hidden_act") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and pooling.get("pooling_mode_mean_tokens") is True
        and not any(pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens"))
        and types == ["Transformer", "Pooling", "Normalize"]
        and (folder / "model.safetensors").is_file()
        and (folder / "tokenizer.json").is_file()
    )


def load_safetensors(path: Path) -> dict[str, F32]:
    """The float32 tensors of a safetensors file (the format: an 8-byte header length, a JSON header of
    names, dtypes, shapes and byte offsets, then the raw data), as read-only views of the file mapped in memory.

    Mapped, not read: the word-embedding table is half the model (47 MB) and a text touches only its own
    tokens' rows, so only those pages are ever resident (and, being clean file pages, the kernel may drop them).
    """
    mapped = np.memmap(path, dtype=np.uint8, mode="r")
    advise = getattr(mapped._mmap, "madvise", None)  # type: ignore[attr-defined]
    if advise is not None and hasattr(mmap, "MADV_RANDOM"):
        advise(mmap.MADV_RANDOM)  # no read-ahead: a token's row should bring in its own page, not 32 more
    if mapped.size < 8:
        raise ValueError(f"{path} is too short for a safetensors file")
    (size,) = struct.unpack("<Q", mapped[:8].tobytes())
    if not 2 <= size <= mapped.size - 8:
        raise ValueError(f"{path}: a header of {size} bytes does not fit the file")
    header = json.loads(mapped[8 : 8 + size].tobytes())
    out: dict[str, F32] = {}
    for name, spec in header.items():
        if name == "__metadata__" or spec["dtype"] != "F32":
            continue  # position_ids (I64) is not a weight
        start, end = spec["data_offsets"]
        if not 0 <= start <= end <= mapped.size - 8 - size:
            raise ValueError(f"{path}: {name} lies outside the file")
        raw = mapped[8 + size + start : 8 + size + end]
        out[name] = raw.view("<f4").reshape(spec["shape"])
    return out


def _erf(x: F32) -> F32:
    """erf to ~1.5e-7 (Abramowitz and Stegun 7.1.26), below float32's own rounding; numpy has no erf."""
    sign = np.sign(x)
    # Capped where erf is 1 in float32 anyway: exp(-a*a) of a larger a is a subnormal float, and the CPU's
    # slow path for those made the whole encoder ten times slower.
    a = np.minimum(np.abs(x), np.float32(9.0))
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    out: F32 = (sign * (1.0 - poly * np.exp(-a * a))).astype(np.float32)
    return out


def _gelu(x: F32) -> F32:
    """GELU (the exact, erf form BERT uses), a block of rows at a time: the dozen temporaries of :func:`_erf`
    then stay in the CPU's cache instead of streaming 50 MB arrays through memory (3 times faster)."""
    flat = x.reshape(-1, x.shape[-1])
    step = max(1, 65536 // flat.shape[1])
    for start in range(0, flat.shape[0], step):
        block = flat[start : start + step]
        block *= np.float32(0.5) * (np.float32(1.0) + _erf(block * np.float32(1 / math.sqrt(2))))
    return x


def _layer_norm(x: F32, weight: F32, bias: F32, eps: float) -> F32:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    out: F32 = ((x - mean) / np.sqrt(var + eps) * weight + bias).astype(np.float32)
    return out


class MiniLM:
    """The encoder: ``encode(texts)`` gives mean-pooled, L2-normalised float32 rows, as sentence-transformers."""

    def __init__(self, folder: Path, *, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        # lazy: optional dependency, loaded with the model
        from tokenizers import Tokenizer

        config = _read_json(folder / "config.json")
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            max_tokens = min(max_tokens, int(_read_json(folder / "sentence_bert_config.json")["max_seq_length"]))
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.dim = int(config["hidden_size"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.no_padding()  # padded here, per batch, to its longest text
        w = load_safetensors(folder / "model.safetensors")
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in w else ""
        self.w = {k[len(prefix) :]: v for k, v in w.items()}
        # Linear layers as the file stores them, (out, in), copied into memory (see _linear for why that layout).
        # The embedding tables stay mapped from the file (see load_safetensors); the small vectors are copied.
        for name in list(self.w):
            if not name.startswith("embeddings.") or name.startswith("embeddings.LayerNorm"):
                self.w[name] = np.array(self.w[name], dtype=np.float32)
        # Query, key and value as one (3 * dim, dim) product: one BLAS call per layer instead of three.
        for i in range(self.layers):
            p = f"encoder.layer.{i}.attention.self."
            parts = [p + part for part in ("query", "key", "value")]
            self.w[p + "qkv.weight"] = np.concatenate([self.w.pop(n + ".weight") for n in parts])
            self.w[p + "qkv.bias"] = np.concatenate([self.w.pop(n + ".bias") for n in parts])
        # The copies above read the encoder's pages of the mapping: let them go from this process's memory
        # (they stay in the page cache); the tables' pages come back one token's row at a time.
        base = self.w["embeddings.word_embeddings.weight"].base
        while base is not None and not isinstance(base, np.memmap):
            base = base.base
        advise = getattr(getattr(base, "_mmap", None), "madvise", None)
        if advise is not None and hasattr(mmap, "MADV_DONTNEED"):
            advise(mmap.MADV_DONTNEED)

    def _linear(self, x: F32, name: str) -> F32:
        """``x @ W.T + b`` as one 2-D product (numpy's matmul of a stack of matrices loops outside BLAS).

        For the few rows of a search query (up to :data:`FEW_ROWS`) the product is taken the other way round,
        ``(W @ x.T).T``: OpenBLAS then streams the weight matrix once as its wide operand instead of packing it
        for a narrow one, and a one-line query's encode takes ~15 % less CPU (bench/README.md, Memory). Larger
        batches keep ``x @ W.T`` (the transposed product is slower there)."""
        weight = self.w[name + ".weight"]
        flat = x.reshape(-1, x.shape[-1])
        out: F32 = np.ascontiguousarray((weight @ flat.T).T) if flat.shape[0] <= FEW_ROWS else flat @ weight.T
        out += self.w[name + ".bias"]
        return out.reshape(*x.shape[:-1], weight.shape[0])

    def _forward(self, ids: npt.NDArray[np.int64], mask: F32) -> F32:
        w, batch, length = self.w, ids.shape[0], ids.shape[1]
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
        x += w["embeddings.token_type_embeddings.weight"][0]
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        head = self.dim // self.heads
        # Padding gets the most negative float as its score, as transformers does: exp() makes it 0.
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :].astype(np.float32)
        keep = mask[:, None, None, :]  # padding's weight is exactly 0 after the cap below
        scale = np.float32(1 / math.sqrt(head))
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def split(t: F32) -> F32:
                return t.reshape(batch, length, self.heads, head).transpose(0, 2, 1, 3)

            qkv = self._linear(x, p + "attention.self.qkv")
            q, k, v = (split(qkv[..., j * self.dim : (j + 1) * self.dim]) for j in range(3))
            context: F32 = np.empty((batch, self.heads, length, head), dtype=np.float32)
            for b in range(batch):  # one text at a time: its scores (heads x length x length) stay in cache
                scores = q[b] @ k[b].transpose(0, 2, 1)
                scores *= scale
                scores += bias[b]
                scores -= scores.max(-1, keepdims=True)
                np.maximum(scores, np.float32(-80.0), out=scores)  # no subnormal results from exp (see _erf)
                np.exp(scores, out=scores)
                scores *= keep[b]
                scores /= scores.sum(-1, keepdims=True)
                np.matmul(scores, v[b], out=context[b])
            merged = context.transpose(0, 2, 1, 3).reshape(batch, length, self.dim)
            x = _layer_norm(
                self._linear(merged, p + "attention.output.dense") + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                self.eps,
            )
            inner = _gelu(self._linear(x, p + "intermediate.dense"))
            x = _layer_norm(
                self._linear(inner, p + "output.dense") + x,
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
                self.eps,
            )
        summed = (x * mask[:, :, None]).sum(1)
        pooled = summed / np.clip(mask.sum(1, keepdims=True), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out: F32 = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return out

    def encode(self, texts: Sequence[str], batch_size: int = 8) -> F32:
        """One unit-length row per text. Texts are batched by token length (as sentence-transformers does),
        so a batch pads to a similar length instead of to its longest outlier. Batches are small: eight texts
        of 256 word pieces are 2,048 rows per matrix product, plenty for BLAS, and the temporaries of a larger
        batch are what the daemon's RSS would keep (glibc holds freed memory; :func:`release_memory`)."""
        encodings = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
        out = np.empty((len(encodings), self.dim), dtype=np.float32)
        batch_size = max(1, min(batch_size, 8))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            length = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), length), dtype=np.int64)
            mask = np.zeros((len(rows), length), dtype=np.float32)
            for r, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1.0
            out[rows] = self._forward(ids, mask)
        if sum(len(e.ids) for e in encodings) > TRIM_TOKENS:
            release_memory()  # a search query's few temporaries are reused as they are: trimming costs ms
        return out


def release_memory() -> None:
    """Give the forward pass's freed temporaries back to the system (glibc's ``malloc_trim``).

    glibc keeps freed memory in each thread's arena for reuse; a daemon that embeds from a few threads kept
    ~100 MB of dead temporaries that way. Elsewhere (macOS, musl) this does nothing.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    try:
        # lazy: glibc only
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
