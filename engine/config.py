"""Engine settings: one frozen dataclass, so a config is hashable and a compression is a pure function of it.

Every knob has a default that suits an agent's tool output; the daemon fills this from ``[engine]`` in
config.toml. Nothing here reads files or the environment: the engine stays a pure library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: What to do with a file the agent read and may edit next (agents edit by exact text):
#: ``outline`` keeps signatures and elides bodies behind line-range markers (one retrieve call gives the
#: exact lines back); ``exact`` never touches file reads.
FileReadPolicy = Literal["outline", "exact"]


@dataclass(frozen=True)
class EngineConfig:
    """Knobs of the pipeline. Two equal configs give byte-identical output on the same input."""

    #: Blocks smaller than this many tokens are left alone: the marker would cost more than it saves.
    min_tokens: int = 200
    #: Blocks larger than this (counted in characters, a cheap stand-in for bytes) are never handed to a
    #: compressor (a 50 MB tool result): the router keeps head and tail and elides the middle behind one marker.
    max_block_bytes: int = 8_000_000
    file_read_policy: FileReadPolicy = "outline"
    #: A file read whose path the question names keeps more detail (all signatures; only long bodies elided).
    keep_files_named_by_question: bool = True
    #: Local path of a token-classification model (LLMLingua-2 style) for prose; ``None`` uses the
    #: extractive compressor.
    text_model: str | None = None
    #: Fraction of prose tokens the text compressors aim to keep.
    text_keep_ratio: float = 0.45
    #: Claude's tokenizer is not public: o200k counts are scaled by this factor for Claude models.
    claude_token_factor: float = 1.1
    #: Compress only tool results (the bulk); ``True`` also compresses long user and assistant text.
    compress_messages_text: bool = False
    #: Kinds switched off (``{"code"}`` passes code through untouched). In lossless mode it names lossless
    #: transforms instead (``json``, ``search``, ``repeats``).
    disabled: frozenset[str] = field(default_factory=frozenset)
    #: Only transforms that drop nothing (compact JSON and tables, grep hits grouped by file, repeated lines
    #: counted), and no CCR markers: for clients that cannot call the retrieval tool (no MCP), a marker
    #: would hide content they could never get back.
    lossless: bool = False
    #: A tool result identical to an earlier one in the same request (a file read twice, a command re-run)
    #: becomes a marker naming the first occurrence, with the original one retrieve call away. Never in
    #: lossless mode, whose clients cannot retrieve.
    dedup_repeats: bool = True
