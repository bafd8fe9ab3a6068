"""headroom.memory: the database, and the shared memory of every agent (items, provenance, search, redaction).

``Memory(db)`` is the Python interface: ``put`` (redacted, deduplicated, with where it was met), ``get``,
``search`` (full-text and vectors) and ``forget``. ``redact`` is the one redaction every path uses before
anything leaves the session mirror. Names load on first use (PEP 562): the CLI imports ``headroom.memory.db``
on every command and must not pay for numpy and the vector index to do so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headroom.memory.facade import lazy_getattr

if TYPE_CHECKING:
    from headroom.memory.api import Memory
    from headroom.memory.db import Database, open_database
    from headroom.memory.embed import Embedder, EmbedderUnavailable, HashEmbedder, SentenceTransformerEmbedder
    from headroom.memory.records import Draft, Item, PutResult
    from headroom.memory.redact import Redacted, has_secrets, redact, redact_text
    from headroom.memory.search import Hit, SearchResult

_WHERE = {
    "Database": "db",
    "Draft": "records",
    "Embedder": "embed",
    "EmbedderUnavailable": "embed",
    "HashEmbedder": "embed",
    "Hit": "search",
    "Item": "records",
    "Memory": "api",
    "PutResult": "records",
    "Redacted": "redact",
    "SearchResult": "search",
    "SentenceTransformerEmbedder": "embed",
    "has_secrets": "redact",
    "open_database": "db",
    "redact": "redact",
    "redact_text": "redact",
}

__all__ = [
    "Database",
    "Draft",
    "Embedder",
    "EmbedderUnavailable",
    "HashEmbedder",
    "Hit",
    "Item",
    "Memory",
    "PutResult",
    "Redacted",
    "SearchResult",
    "SentenceTransformerEmbedder",
    "has_secrets",
    "open_database",
    "redact",
    "redact_text",
]


__getattr__ = lazy_getattr(__name__, _WHERE)
