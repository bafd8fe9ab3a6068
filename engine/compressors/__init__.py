"""One compressor per content kind, behind the :class:`~headroom.engine.compressors.base.Compressor` protocol.

The router imports each module on first use (``headroom.engine.router``), so a kind whose optional
dependency is missing (tree-sitter grammars, transformers) degrades to the next compressor in its chain.
"""
