"""Secrets found by the name they are given: ``DB_PASSWORD=…``, ``"apiKey": "…"``, "the db password is …".

The format rules of :mod:`headroom.memory.redact` know what a token looks like; these know only that a value is
assigned to a name that holds a secret, so they judge the name (``tokens``, ``max_token``, ``author`` are
not secrets; ``pass`` only ends a longer name) and the value (a placeholder, a path, code or prose is not a
secret) before :func:`name_findings` reports a span.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator

from headroom.memory import redact_values as values

_Q = values.OPT_QUOTE

# Name-based rule. Secret words are found by literal search in the lowercased text; the name grows around each hit
# (at most 64 characters each side, and a hit inside a name already seen is skipped, so the scan stays linear);
# then a separator and a value must follow. `=` must not start `==` or `=~`; `=>` is PHP/Ruby's key-value arrow.
# The unquoted value excludes '=' in its body so runs like `a=a=a=...` stay linear; base64 padding may end it.
_NAME_RUN = re.compile(r"[\w.\-]*")
# Possessive where the engine has it (3.11+): a name that is not followed by a separator then fails at once.
_NAME_TAIL = r"[\w.\-]{0,64}" + ("+" if sys.version_info >= (3, 11) else "")
_NAME_VALUE = (
    rf"(?P<cq>{_Q})(?P<sep>[ \t]*(?:=>|:=|=(?![=~])|:(?![:=]))[ \t]*|[ \t]+is[ \t]+)"
    r"(?:(?P<oq>\\{0,3}[\"'`])(?P<qv>[^\"'`\\\r\n]{1,1024})(?P=oq)"
    r"|(?P<uv>[^\s\"'`,;&|(){}\[\]<>\\=]{1,512}={0,3})(?=[ \t\r\n,;&|)}\]\\#\"'`]|$))"
)
# One scan per word: each starts with a literal, several literal scans beat one alternation by about three times.
_NAME_RULES = tuple(
    re.compile(word + _NAME_TAIL + _NAME_VALUE, re.MULTILINE)
    for word in ("secret", "token(?!s)", "pass", "pw", "key", "auth", "credential")
)
_QUOTES = "\"'`"
_TERMINATORS = "\r\n,;&|)}]\\#" + _QUOTES
_NAME_WORD_RE = re.compile(
    r"secret|token|passw|passphrase|pwd|apikey|privatekey|accesskey|auth|credential|"
    r"(?:signing|encryption|master|account)key"
)
# `pass` and `pw` count only as the last part of a longer name: DATABASE_PASS, db_pass, smtpPass, MYSQL_PW; alone
# they are test results (`PASS: test_login`), and inside a word they are something else (bypass, compass).
_NAME_PARTS_RE = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z0-9]+(?![a-z])")
_NAME_EXCLUDE_RE = re.compile(
    r"tokens|tokeniz|author(?!iz)|secretar|count|max|min|limit|size|length|num|total|usage|budget|before|after|"
    r"type|kind|url|uri|endpoint|path|file|dir|prefix|suffix|expir|ttl|timeout|format|header|field|policy|mode|"
    r"method|enabled|required|hint|label|placeholder|desc|name|keyid|sock|hash|stdin|status"
)


def _name_kind(name: str) -> str | None:
    """The kind a value under this name gets, or None when the name does not hold a secret."""
    n = re.sub(r"[^a-z0-9]", "", name.lower())
    if _NAME_EXCLUDE_RE.search(n):
        return None
    if not _NAME_WORD_RE.search(n):
        parts = _NAME_PARTS_RE.findall(name)
        if len(parts) < 2 or parts[-1].lower() not in ("pass", "pw"):
            return None
    return "aws_secret_key" if "secretaccesskey" in n or ("aws" in n and "secret" in n) else "env_secret"


def _judge_unquoted(value: str, name: str, sep: str, term: str) -> bool:
    """Whether an unquoted value is a secret rather than code or a placeholder."""
    if term and term not in _TERMINATORS and sep != "=":
        return False  # only a shell word (`--password=x --verbose`, `PASSWORD=x ./run`) may end at a space
    if (
        values.is_placeholder(value)
        or values.is_path(value)
        or values.ATTR_CHAIN_RE.match(value)
        or values.not_a_value(value)
    ):
        return False
    if term and term in _QUOTES and not any(not c.isalpha() for c in value):
        return False  # `'X-API-Key: 9f8e...'` ends at the quote; `"the token: it"` is a sentence in a string
    if values.IDENT_RE.match(value) and not any(c.isdigit() for c in value):
        # A bare identifier is a variable, type or keyword in code; in .env/YAML lines it is a plain password.
        in_code = (sep.strip() in ("=", ":=") and sep != "=") or term in ",)}]"
        type_like = values.CODEWORD_RE.search(value) and (value[0].isupper() or "_" in value)  # AccessToken, api_key
        if ((in_code or type_like) and not name.isupper()) or value.lower() == name.lower():
            return False
    return True


def _judge_name_match(text: str, lowered: str, m: re.Match[str]) -> tuple[int, int, str] | None:
    # Grow the name to the left (bounded): the scan started at the secret word, mid-name.
    left = _NAME_RUN.match(lowered[max(0, m.start() - 65) : m.start()][::-1])
    start = m.start() - (left.end() if left else 0)
    if m.start() - start > 64 or (start > 0 and text[start - 1] in "$/]"):
        return None  # too long for a name; `$SECRET=` is a reference, `/etc/passwd:` a path, `]` ends a placeholder
    if start > 0 and text[start - 1] == "\\" and text[start] in "nrt":
        start += 1  # the name follows a JSON-escaped line break
    name = text[start : m.start("cq")].lstrip("-")
    kind = _name_kind(name)
    if kind is None:
        return None
    if m.group("sep").strip() == "is":  # prose: "the db password is S3cretPass1"
        value = text[m.start("qv") : m.end("qv")] if m.group("qv") is not None else text[m.start("uv") : m.end("uv")]
        value = value.rstrip(".!?")
        start = m.start("qv") if m.group("qv") is not None else m.start("uv")
        if values.is_placeholder(value) or values.not_a_value(value) or not values.has_classes(value, upper=False):
            return None  # "the password is wrong", "the token is 5 minutes old": a value needs letters and digits
        return start, start + len(value), kind
    if m.group("qv") is not None:
        value = text[m.start("qv") : m.end("qv")]
        if values.is_placeholder(value) or values.is_path(value) or values.not_a_value(value) or values.is_prose(value):
            return None
        return m.start("qv"), m.end("qv"), kind
    value = text[m.start("uv") : m.end("uv")]
    term = lowered[m.end("uv") : m.end("uv") + 64].lstrip(" \t")[:1]
    if not _judge_unquoted(value, name.split(".")[-1], m.group("sep"), term):
        return None
    return m.start("uv"), m.end("uv"), kind


def name_findings(text: str, lowered: str) -> Iterator[tuple[int, int, str]]:
    """Each ``(start, end, kind)`` of a value assigned to a secret's name in ``text`` (``lowered`` is its
    lower-cased copy, which the scans run on)."""
    seen: set[int] = set()
    for rule in _NAME_RULES:
        pos = 0
        while (m := rule.search(lowered, pos)) is not None:
            found = _judge_name_match(text, lowered, m)
            # A rejected match may hide a real `name=value` inside its value (`x: TOKEN=abc`): rescan from just
            # after its start. Each secret word is still tried once, so the scan stays linear.
            pos = m.end() if found else m.start() + 1
            if found and found[0] not in seen:  # AUTH_TOKEN is found through two of its words
                seen.add(found[0])
                yield found
