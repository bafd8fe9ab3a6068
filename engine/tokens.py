"""Token counting that works offline: tiktoken with the BPE files shipped inside the package.

tiktoken normally downloads its rank files on first use; here they are package data (``engine/data``) and
are checked against the SHA-256 that tiktoken itself expects. The split patterns and special tokens are
those of tiktoken's public encoding definitions, so counts equal ``tiktoken.get_encoding(name)``.

Models map to encodings by name prefix. Claude's and Gemini's tokenizers are not public: o200k stands in,
and Claude counts are scaled by ``EngineConfig.claude_token_factor`` (Claude's tokenizer yields roughly
10 % more tokens than o200k on code and logs).
"""

from __future__ import annotations

import threading
from functools import cache, cached_property
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tiktoken

_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|"""
    r"""\s+(?!\S)|\s"""
)

_SPECS: dict[str, tuple[str, str, dict[str, int]]] = {
    "o200k_base": (
        _O200K_PAT,
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
    "cl100k_base": (
        _CL100K_PAT,
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
}
ENCODINGS = tuple(_SPECS)

#: Model-name prefixes that use cl100k; every other model counts with o200k.
_CL100K_PREFIXES = ("gpt-4-", "gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada")
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt", "codex", "gpt-oss")

_LOCK = threading.Lock()


@cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """The named encoding, loaded from the bundled BPE file (thread-safe, loaded once)."""
    # lazy: the BPE tables load on the first count, not at import
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    if name not in _SPECS:
        raise ValueError(f"unknown encoding {name!r}; bundled: {', '.join(ENCODINGS)}")
    pat, sha, special = _SPECS[name]
    with _LOCK:
        path = resources.files("headroom.engine").joinpath("data", f"{name}.tiktoken")
        with resources.as_file(path) as real:
            ranks = load_tiktoken_bpe(str(real), expected_hash=sha)
        return tiktoken.Encoding(name=name, pat_str=pat, mergeable_ranks=ranks, special_tokens=special)


def encoding_for(model: str | None) -> str:
    """The encoding name that counts tokens for ``model`` (o200k when unknown)."""
    m = (model or "").lower().split("/")[-1]
    if m.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if m.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return "o200k_base"


def is_claude(model: str | None) -> bool:
    return "claude" in (model or "").lower()


class TokenCounter:
    """Counts tokens of text for one model; ``factor`` scales counts for models without a public tokenizer."""

    def __init__(self, model: str | None = None, claude_factor: float = 1.0) -> None:
        self.model = model
        self.encoding_name = encoding_for(model)
        self.factor = claude_factor if is_claude(model) else 1.0

    @cached_property
    def encoding(self) -> tiktoken.Encoding:
        """Loaded on the first count: ``compress`` builds a counter but may never be asked for tokens."""
        return get_encoding(self.encoding_name)

    def raw(self, text: str) -> int:
        """Exact token count of ``text`` with the encoding (special-token text counts as ordinary text)."""
        if not text:
            return 0
        return len(self.encoding.encode_ordinary(text))

    def count(self, text: str) -> int:
        """The model's estimated token count of ``text``."""
        n = self.raw(text)
        return n if self.factor == 1.0 else round(n * self.factor)


def count_tokens(text: str, model: str | None = None) -> int:
    """Tokens of ``text`` for ``model`` (unscaled: the encoding's exact count)."""
    return TokenCounter(model).raw(text)
