"""The redaction rules' literals: what every match of a rule starts with, and one pass that finds them all.

Each rule of :mod:`headroom.memory.redact` is a regex pass over the text, at the engine's literal-search speed, and
most rules' literals (``sk-``, ``ghp_``, ``AKIA``, ``-----BEGIN`` …) are in almost no text. :func:`prefilter` builds
one Aho-Corasick automaton over all of them, so one pass tells which rules can match at all and the others are
skipped; :func:`literal_prefix` reads a rule's literal from its pattern, so a new rule gets one without anyone
remembering to.
"""

from __future__ import annotations

from collections.abc import Callable

MIN_NEED = 3  # a shorter literal ("gh", "do", "-") is in nearly every text: looking for it saves nothing
_REGEX_META = frozenset(".^$*+?{}[]()|")


def literal_prefix(pattern: str) -> str:
    """The literal text every match of ``pattern`` starts with (the literal the regex engine itself searches for).

    Read from the pattern's source: plain characters and escaped punctuation, up to the first metacharacter or
    class escape; a character a quantifier follows is left out (it may be absent or repeated). A pattern with a
    top-level alternative has no such prefix.
    """
    if _top_level_alternative(pattern):
        return ""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern) and not pattern[i + 1].isalnum():
            out.append(pattern[i + 1])
            i += 2
        elif char == "\\" or char in _REGEX_META:
            break
        else:
            out.append(char)
            i += 1
        if i < len(pattern) and pattern[i] in "?*+{":
            out.pop()
            break
    return "".join(out)


def _top_level_alternative(pattern: str) -> bool:
    depth, i, in_class = 0, 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                i += 1
            if pattern[i + 1 : i + 2] == "]":  # a "]" first in a class is a member
                i += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return True
        i += 1
    return False


def prefilter(literals: list[str]) -> Callable[[str], frozenset[str]] | None:
    """One pass that names each of ``literals`` occurring in a text (Aho-Corasick over all of them at once).

    Each rule is a pass over the text at the regex engine's literal-search speed, and most rules' literals are
    in almost no text: one multi-literal pass (about the cost of eight regex passes) tells which rules can match
    at all, so the others are skipped. Exact: a rule is skipped only when none of the literals every match of it
    holds occurs. Without the optional ``ahocorasick_rs`` module every rule runs (the same findings, slower).
    """
    # lazy: a fallback where the wheel is missing (every rule runs); the tests switch between both paths
    try:
        import ahocorasick_rs
    except ImportError:  # pragma: no cover - a dependency; tests/test_redact_prefilter.py runs the fallback
        return None
    automaton = ahocorasick_rs.BytesAhoCorasick([literal.encode("ascii") for literal in literals])

    def present(scan: str) -> frozenset[str]:
        # ``scan`` is ASCII (_ascii_view): its bytes have the same offsets; overlapping, so no occurrence hides
        # inside another (``gsk_`` holds ``sk_``).
        found = automaton.find_matches_as_indexes(scan.encode("ascii"), overlapping=True)
        return frozenset(literals[index] for index in {index for index, _, _ in found})

    return present


__all__ = ["MIN_NEED", "literal_prefix", "prefilter"]
