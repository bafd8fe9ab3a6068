"""The one dedup policy of the shared memory, used by every path that puts content into it.

1. **Exact**: content is normalized (line endings, trailing blanks, surrounding blank lines, undecodable
   bytes) and hashed after redaction. Equal hashes are one item; each new meeting adds a sighting.
2. **Same thing, new version**: a file read at a path that already has an item in the same project is a
   newer version of that item (it supersedes it; the old one stays, marked superseded).
3. **Near-duplicate**: an item whose embedding is at least :data:`SIMILARITY` cosine-close to an older item of
   the same kind in the same project, *and* whose lines overlap it by at least :data:`LEXICAL` (Jaccard over
   the sets of non-blank lines), is linked as its newer version too. Two file reads at different known paths
   are two files (rule 2 already links reads of one path), and prompts are distinct requests even when they
   share a template: neither is ever linked by this rule (:func:`may_link`).

Nothing is ever deleted by similarity: the peer that auto-deleted near-duplicates lost distinct facts. A link
only changes ranking (the newest version first) and what a briefing shows.

Calibration (``bench/dedup_calibration.py``, all-MiniLM-L6-v2, 2,944 same-kind pairs from the generated and the
real sessions; ``bench/results/2026-11-21-dedup.md``): within a project every version pair scored cosine
≥ 0.966 and line overlap ≥ 0.75, while different content reached cosine 0.987 and overlap 0.948 (files made
from one template) — no threshold pair separates them alone. At 0.92 / 0.7 all 31 versions are linked and 5
of 820 different pairs would be; the two exclusions above remove those 5 as well.
"""

from __future__ import annotations

import hashlib
import re

#: Cosine similarity at or above which two items may be versions of one thing (all-MiniLM-L6-v2).
SIMILARITY = 0.92
#: Line-set overlap (Jaccard) needed on top of :data:`SIMILARITY`.
LEXICAL = 0.7

_TRAILING_WS = re.compile(r"[ \t]+$", re.MULTILINE)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` storable in any database: lone surrogates (undecodable bytes) become U+FFFD, NUL is dropped."""
    return _SURROGATE.sub("\ufffd", text).replace("\x00", "")


def normalize(text: str) -> str:
    """The form content is compared in: LF line endings, no trailing blanks, no surrounding blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _TRAILING_WS.sub("", text)
    return text.strip("\n")


def content_hash(normalized: str) -> str:
    """The identity of an item: SHA-256 of its normalized, redacted content."""
    return hashlib.sha256(normalized.encode("utf-8", "surrogatepass")).hexdigest()


def looks_binary(text: str, sample: int = 8192) -> bool:
    """Binary data read as text: NUL bytes or many control characters in the first ``sample`` characters."""
    head = text[:sample]
    if not head:
        return False
    if "\x00" in head:
        return True
    return len(_CONTROL.findall(head)) > len(head) * 0.05


def line_overlap(a: str, b: str) -> float:
    """Jaccard similarity of the two texts' sets of non-blank, stripped lines."""
    sa = {line.strip() for line in a.splitlines() if line.strip()}
    sb = {line.strip() for line in b.splitlines() if line.strip()}
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def may_link(kind: str, paths: set[str], other_paths: set[str]) -> bool:
    """Whether rule 3 may consider two items of ``kind`` seen at these paths (in the same project)."""
    if kind == "instruction":
        return False
    return not (kind == "file_read" and paths and other_paths and not paths & other_paths)


def is_new_version(similarity: float, old: str, new: str) -> tuple[bool, float]:
    """Rule 3: (whether ``new`` is a newer version of ``old``, the line overlap that decided it)."""
    if similarity < SIMILARITY:
        return False, 0.0
    overlap = line_overlap(old, new)
    return overlap >= LEXICAL, overlap
