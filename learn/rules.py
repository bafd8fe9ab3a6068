"""Durable rules the user states in a prompt: "always …", "never …", "use X, not Y", "X is the canonical …".

A rule is a lesson on the user's word alone (one session is enough), so this is strict on purpose: a wrong rule
would be repeated to every later session. Not rules: questions, frustration, one turn's instructions ("do not
start yet", "now …"), role-play, pasted or relayed text (long prompts, code blocks, "X SAYS:"), and harness
prompts. The user's sentence is kept whole (never cut mid-word): a short prompt whole, a longer one's rule
sentences whole.
"""

from __future__ import annotations

import re

MAX_PROMPT = 400  # longer prompts are task briefs or pasted text: their "do not" is that task's
WHOLE_PROMPT = 240  # a prompt this short is kept whole: its other sentence is usually the rule's reason

_HARNESS = re.compile(r"\A\s*(?:<|\[Request interrupted|Caveat:|/\w|\[image\])")
_RELAYED = re.compile(r"```|\bSAYS:|\bstat_\d|User Selected Files|Current File Path|\bThinking\b|^\s*#", re.MULTILINE)
_SENTENCE = re.compile(r"(?<=[.!;])\s+|\n+")
_RULES = (
    re.compile(r"\A(?:always|never|don'?t|do not|avoid|prefer)\b", re.IGNORECASE),
    re.compile(r"\buse\b .{1,60}?(?:, not | instead of | rather than )", re.IGNORECASE),
    re.compile(r"\b(?:is|are) the (?:canonical|correct|only|official)\b", re.IGNORECASE),
    re.compile(r"\b(?:is|are) (?:an? |the )?[\w.\- ]{1,40}, not (?:an? |the )?[\w.\- ]{1,40}", re.IGNORECASE),
    re.compile(r"\A(?:if|when|whenever|before|after|unless)\b.*\b(?:do not|don'?t|never|always)\b", re.IGNORECASE),
)
_ONE_TASK = re.compile(
    r"\b(?:yet|now|for now|this (?:turn|time|task|pr|file|session|window|branch|commit|change|chat)|today|"
    r"tonight|next|again|above|below|here|immediately|final|fresh session|first turn|the task|prior)\b|\.\.\.",
    re.IGNORECASE,
)


def rule_text(prompt: str) -> str | None:
    """The durable rule a user prompt states, in the user's own whole sentences; None for anything else."""
    text = prompt.strip()
    if not text or len(text) > MAX_PROMPT or _HARNESS.match(text) or _RELAYED.search(text) or "?" in text:
        return None
    sentences = [s.strip() for s in _SENTENCE.split(text) if s.strip()]
    rules = [s for s in sentences if any(p.search(s) for p in _RULES)]
    if not rules or _ONE_TASK.search(text):
        return None
    whole = " ".join(text.split())
    return whole if len(whole) <= WHOLE_PROMPT else " ".join(rules)
