"""The one dedup policy of the shared memory, used by every path that puts content into it.

1. **Exact**: content is normalized (line endings, trailing blanks, surrounding blank lines, undecodable
   bytes) and hashed after redaction. Equal hashes are one item; each new meeting adds a sighting.
2. **Same thing, new version**: a file read at a path that already has an item in the same project is a
   newer version of that item (it supersedes it; the old one stays, marked superseded).
3. **Near-duplicate**: an item whose embedding is at least :data:`SIMILARITY` cosine-close to an older item of
   the same kind in the same project, *and* whose lines overlap it by at least :data:`LEXICAL` (Jaccard over
   the sets of non-blank lines), is linked as its newer version too.

Nothing is ever deleted by similarity: the peer that auto-deleted near-duplicates lost distinct facts. A link
only changes ranking (the newest version first) and what a briefing shows.

The thresholds were calibrated with all-MiniLM-L6-v2 on the generated sessions (``tests/test_memory_dedup``
and ``bench/README.md`` list the pairs): versions of one edited file score 0.95-0.99 cosine and 0.6-0.9 line
overlap; different files of one project stay under 0.85 cosine or under 0.3 overlap. The lexical check is what
keeps two similar-sounding but different facts apart ("use python3" vs "use python3.11" share no line).
"""

from __future__ import annotations

import hashlib
import re

#: Cosine similarity at or above which two items may be versions of one thing (all-MiniLM-L6-v2).
SIMILARITY = 0.92
#: Line-set overlap (Jaccard) needed on top of :data:`SIMILARITY`.
LEXICAL = 0.5

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


def is_new_version(similarity: float, old: str, new: str) -> tuple[bool, float]:
    """Rule 3: (whether ``new`` is a newer version of ``old``, the line overlap that decided it)."""
    if similarity < SIMILARITY:
        return False, 0.0
    overlap = line_overlap(old, new)
    return overlap >= LEXICAL, overlap
