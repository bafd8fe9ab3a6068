"""How a value found under a secret-sounding name is judged: a secret, or a placeholder, a version, a path, code.

Split from :mod:`headroom.memory.redact` (redaction's own; only it and :mod:`headroom.memory.redact_names` import
this): the rules there find candidates, these predicates keep the look-alikes (``changeme``, ``${VAR}``, ``^4.24.13``,
``src/app/auth/``, ``super-secret``, ``"Password is required."``) out of the redactions.
"""

from __future__ import annotations

import re

PLACEHOLDER_MARK = "[REDACTED:"
#: An optional quote before a separator, possibly JSON-escaped (`"key\": "…"` inside a logged tool output).
OPT_QUOTE = r"\\{0,3}[\"']?"

# Values that stand for a secret in docs and templates, or are keywords and type names in code.
PLACEHOLDER_WORDS = re.compile(
    r"(?i)changeme|change_me|change-me|changeit|password|passwd|secret|pass|none|null|nil|true|false|yes|no|on|off|undefined|"
    r"redacted|example|dummy|placeholder|todo|tbd|required|optional|empty|default|test|token|string|str|int|float|"
    r"bool|bytes|number|boolean|any|object|list|dict|self|cls|this|secretstr|"
    # fetch()'s `credentials:` modes, status words in task lists, npm dist-tags (`"next-auth": "latest"`), and
    # auth schemes (`"Authorization": "Bearer " + token`)
    r"include|omit|same-origin|done|pending|skipped|passed|failed|ok|latest|next|beta|alpha|canary|nightly|stable|"
    r"bearer|basic|digest"
)
PLACEHOLDER_RE = re.compile(
    r"(?i)^(?:[*x.•\-_#]+|<[^>]*>|\{[^}]*\}|%\(?\w*\)?s?|\$.*|.*\$\{.*|.*\{\{.*|.*your[_\-. ]?.*|.*example.*"
    r"|.*placeholder.*|.*\*\*\*.*|.*\.\.\..*|.*….*|-?\d{1,6}(?:\.\d+)?"
    # a reference to a secret kept elsewhere: 1Password, Vault, AWS Secrets Manager / SSM
    r"|(?:op|vault|secret|secrets|ssm)://.*|arn:aws:(?:secretsmanager|ssm):.*)$"
)
PATH_RE = re.compile(r"^(?:~|\.{1,2}|[A-Za-z]:)?[/\\][\w.\-/\\ ]*$")
ATTR_CHAIN_RE = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$")
IDENT_RE = re.compile(r"^[A-Za-z_]\w*$")
# Words a value may contain that mark it as a type or field name rather than a secret (AccessToken, SecretStr).
CODEWORD_RE = re.compile(r"(?i)secret|token|passw|key|auth|credential")
# A version or version range (`^4.24.13`, `>=0.15,<0.16`, `~1.2`, `v2.0.0-rc.1`): a package under a name that holds
# `auth`/`token`/`key` (`"next-auth": "^4.24.13"`, `oauthlib = "3.2.2"`), never a secret. An operator or a dot is
# required, so a PIN of bare digits is still judged as a value.
VERSION_PART = re.compile(
    r"(?i)(?:(?:[\^~]|[<>]=?|==?|v)\d+(?:\.(?:\d+|x|\*)){0,3}|\d+(?:\.(?:\d+|x|\*)){1,3})"
    r"(?:-[0-9a-z.]+)?(?:\+[0-9a-z.]+)?|\*|x|-|\|\||(?:workspace|catalog|npm|link):\S*"
)
VERSION_SPLIT = re.compile(r"\s*(?:,|\|\||\s)\s*")
# A test value made of words, one of them a secret word (`super-secret`, `card-token`, `my_test_password`).
WORDY_FAKE_RE = re.compile(r"(?i)^(?:[a-z]+[-_])+[a-z]+$")
FAKE_WORD_RE = re.compile(r"(?i)secret|token|passw|key|fake|dummy|sample|test|demo")
# A relative path in lower case (`src/app/api/auth/`, `config/secrets.yml`); a key with a `/` is mixed-case.
REL_PATH_RE = re.compile(r"^[a-z0-9_.\-]*(?:/[a-z0-9_.\-]*)+$|^[\w.\-]*(?:/[\w.\-]+)+\.[a-z]{1,5}$")


def is_version(value: str) -> bool:
    parts = [p for p in VERSION_SPLIT.split(value.strip()) if p]
    return bool(parts) and all(VERSION_PART.fullmatch(p) for p in parts) and any(c.isdigit() for c in value)


def is_prose(value: str) -> bool:
    """Three or more words with spaces: a message or a label (`"Password is required."`), not a secret.

    Passphrases of plain words are missed by this: a price paid for not redacting every error message."""
    return len(value.split()) >= 3


def not_a_value(value: str) -> bool:
    """Values that sit under secret-sounding names but are not secrets: versions, test words, relative paths."""
    return (
        is_version(value)
        or (WORDY_FAKE_RE.match(value) is not None and FAKE_WORD_RE.search(value) is not None)
        or REL_PATH_RE.match(value) is not None
    )


def is_placeholder(value: str) -> bool:
    v = value.strip()
    return (
        len(v) < 3
        or PLACEHOLDER_MARK in v
        or PLACEHOLDER_WORDS.fullmatch(v) is not None
        or PLACEHOLDER_RE.match(v) is not None
        or len(set(v)) == 1
    )


def is_path(value: str) -> bool:
    # A base64 secret may start with '/', so a '+' or '=' means it is not a path.
    return PATH_RE.match(value) is not None and "+" not in value and "=" not in value


def has_classes(value: str, *, upper: bool = True, lower: bool = True, digit: bool = True) -> bool:
    return (
        (not upper or any(c.isupper() for c in value))
        and (not lower or any(c.islower() for c in value))
        and (not digit or any(c.isdigit() for c in value))
    )


def mixed(value: str) -> bool:
    return has_classes(value)


def not_placeholder(value: str) -> bool:
    return not is_placeholder(value)


def bearer_value(value: str) -> bool:
    # Prose says "Bearer authentication"; a token has a digit or is long.
    return not is_placeholder(value) and (any(c.isdigit() for c in value) or len(value) >= 24)
