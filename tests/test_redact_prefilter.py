"""The redaction prefilter (one multi-literal pass that skips the rules whose literals are absent) changes nothing.

Every rule it may skip declares literals (``_Rule.needs``) of which each of its matches holds one; these tests
check that claim on the labelled corpus and on generated text, and that redaction with the prefilter gives the
same findings as redaction without it (every rule run), which is what a machine without ``ahocorasick_rs`` does.
"""

from __future__ import annotations

import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redaction_corpus import NEGATIVES, POSITIVES

import headroom.memory.redact as r
from headroom.memory.redact_literals import literal_prefix

CORPUS = [case.text for case in POSITIVES] + [case.text for case in NEGATIVES]
LITERALS = sorted({need for rule in r._RULES for need in rule.needs})


def _without_prefilter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(r, "_PRESENT", None)


def test_the_prefilter_is_installed_and_skips_rules() -> None:
    assert r._PRESENT is not None  # ahocorasick_rs is a dependency: the fast path is the one that runs
    assert sum(1 for rule in r._RULES if rule.needs) >= 30
    assert r._present("nothing to see here") == frozenset()
    assert r._present("x gsk_y AKIA") == frozenset({"gsk_", "sk_", "AKIA"})  # overlapping occurrences: all named


def test_every_match_holds_one_of_its_rules_literals() -> None:
    texts = CORPUS + [_mixed(random.Random(seed)) for seed in range(300)]
    matched: set[int] = set()
    for index, rule in enumerate(r._RULES):
        if not rule.needs:
            continue
        for text in texts:
            scan = r._ascii_view(text)
            for m in rule.pattern.finditer(scan.lower() if rule.lower else scan):
                assert any(need in m.group(0) for need in rule.needs), (rule.kind, m.group(0))
                matched.add(index)
    assert len(matched) >= 20  # the corpus exercises most prefiltered rules, so the check is not vacuous


@pytest.mark.parametrize("text", CORPUS)
def test_same_findings_with_and_without_the_prefilter(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = r.redact(text)
    _without_prefilter(monkeypatch)
    assert r.redact(text) == fast


def test_same_output_for_a_joined_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = r.redact_many(CORPUS)
    assert fast != CORPUS  # the positives were redacted
    _without_prefilter(monkeypatch)
    assert r.redact_many(CORPUS) == fast


_WORD = string.ascii_letters + string.digits + "_-."


def _mixed(rng: random.Random) -> str:
    """Rule literals and secret-shaped runs glued with separators: text where skipping a rule would show."""
    parts = []
    for _ in range(rng.randint(1, 12)):
        pick = rng.random()
        if pick < 0.4:
            parts.append(rng.choice(LITERALS))
        elif pick < 0.5:
            parts.append(rng.choice(CORPUS)[: rng.randint(0, 120)])
        else:
            parts.append(
                "".join(rng.choice(string.ascii_letters + string.digits + "_-.") for _ in range(rng.randint(1, 70)))
            )
        parts.append(rng.choice(["", " ", "=", ": ", "\n", '"', "/", "@"]))
    return "".join(parts)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_generated_text_redacts_the_same(seed: int) -> None:
    text = _mixed(random.Random(seed))
    fast = r.redact(text)
    saved = r._PRESENT
    r._PRESENT = None
    try:
        assert r.redact(text) == fast
    finally:
        r._PRESENT = saved


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        (r"sk\-(?<!x)[\w-]{32,}", "sk-"),
        ("abc|def", ""),  # a top-level alternative: no common prefix
        ("abc(?:x|y)", "abc"),
        ("ab[|]c", "ab"),
        (r"a\|b", "a|b"),
        ("ab?c", "a"),  # an optional character ends the prefix, without it
        ("ab*", "a"),
        ("ab{2}", "a"),
        (r"\.x", ".x"),
        (r"\w+", ""),
        ("(?i)abc", ""),
    ],
)
def test_literal_prefix(pattern: str, prefix: str) -> None:
    assert literal_prefix(pattern) == prefix
