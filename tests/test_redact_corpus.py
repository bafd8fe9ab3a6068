"""The labelled redaction corpus (tests/redaction_corpus.py): every positive loses its secret, no negative changes."""

from __future__ import annotations

import pytest
from redaction_corpus import NEGATIVES, POSITIVES, Negative, Positive

from headroom.memory.redact import redact, redact_many, redact_text


@pytest.mark.parametrize("case", POSITIVES, ids=lambda c: c.syntax)
def test_positive_is_redacted(case: Positive) -> None:
    out = redact_text(case.text)
    assert "[REDACTED:" in out, out
    if case.secret:
        assert case.secret not in out, out


@pytest.mark.parametrize("case", NEGATIVES, ids=lambda c: c.syntax)
def test_negative_is_unchanged(case: Negative) -> None:
    result = redact(case.text)
    assert result.text == case.text, result.findings


def test_the_corpus_is_broad() -> None:
    assert len(POSITIVES) >= 80 and len(NEGATIVES) >= 70
    assert len({c.syntax.split(" ")[0] for c in POSITIVES}) >= 15


def test_redact_many_is_redact_text_on_each() -> None:
    texts = [c.text for c in POSITIVES] + [c.text for c in NEGATIVES] + [None, "", "x"]
    assert redact_many(texts) == [redact_text(t) if t else t for t in texts]
