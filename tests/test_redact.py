"""The secret-redaction gate: planted secrets of every kind vanish, near-misses survive byte for byte.

Every fake secret is built at import time from a seeded generator or by concatenation, so no literal token sits in
this file (push protection and secret scanners would flag one) and the table is the same on every run.
"""

from __future__ import annotations

import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headroom.memory.redact import (
    KINDS,
    Finding,
    Redacted,
    has_secrets,
    placeholder,
    redact,
    redact_many,
    redact_text,
)

_rng = random.Random(20240601)
ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "-_"
B64 = ALNUM + "+/"
UPPER_DIGITS = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"


def gen(n: int, alphabet: str = ALNUM) -> str:
    # Mixed classes guaranteed: real keys have them, and a few rules ask for them.
    while True:
        s = "".join(_rng.choice(alphabet) for _ in range(n))
        if alphabet != ALNUM or (
            any(c.isupper() for c in s) and any(c.islower() for c in s) and any(c.isdigit() for c in s)
        ):
            return s


def digits(n: int) -> str:
    return "".join(_rng.choice(string.digits) for _ in range(n))


# --- fake secrets, one per format ----------------------------------------------------------------------------------

FORMATS: list[tuple[str, str]] = [
    ("anthropic_key", "sk-ant-" + "api03-" + gen(93, B64URL) + "AA"),
    ("anthropic_key", "sk-ant-" + "admin01-" + gen(93, B64URL) + "AA"),
    ("anthropic_key", "sk-ant-" + "oat01-" + gen(95, B64URL)),
    ("openai_key", "sk-" + gen(20) + "T3BlbkFJ" + gen(20)),
    ("openai_key", "sk-" + "proj-" + gen(156, B64URL)),
    ("openai_key", "sk-" + "svcacct-" + gen(120, B64URL)),
    ("openai_key", "sk-" + "admin-" + gen(120, B64URL)),
    ("google_api_key", "AI" + "za" + gen(35, B64URL)),
    ("google_oauth_secret", "GOC" + "SPX-" + gen(28, B64URL)),
    ("google_oauth_token", "ya" + "29." + gen(150, B64URL)),
    ("aws_access_key", "AK" + "IA" + gen(16, UPPER_DIGITS)),
    ("aws_access_key", "AS" + "IA" + gen(16, UPPER_DIGITS)),
    ("github_token", "gh" + "p_" + gen(36)),
    ("github_token", "gh" + "o_" + gen(36)),
    ("github_token", "gh" + "u_" + gen(36)),
    ("github_token", "gh" + "s_" + gen(36)),
    ("github_token", "gh" + "r_" + gen(36)),
    ("github_token", "github" + "_pat_" + gen(22) + "_" + gen(59)),
    ("gitlab_token", "gl" + "pat-" + gen(20, B64URL)),
    ("gitlab_token", "gl" + "dt-" + gen(20, B64URL)),
    ("gitlab_token", "gl" + "rt-" + gen(20, B64URL)),
    ("gitlab_token", "gl" + "ptt-" + gen(40, HEX)),
    ("slack_token", "xo" + "xb-" + digits(12) + "-" + digits(13) + "-" + gen(24)),
    ("slack_token", "xo" + "xp-" + digits(12) + "-" + digits(12) + "-" + digits(13) + "-" + gen(32, HEX)),
    ("slack_token", "xo" + "xa-2-" + digits(12) + "-" + gen(24)),
    ("slack_token", "xo" + "xr-" + digits(12) + "-" + gen(24)),
    ("slack_token", "xa" + "pp-1-A" + gen(10, UPPER_DIGITS) + "-" + digits(13) + "-" + gen(64, HEX)),
    ("stripe_key", "sk" + "_live_" + gen(99)),
    ("stripe_key", "rk" + "_live_" + gen(99)),
    ("stripe_key", "sk" + "_test_" + gen(24)),
    ("stripe_key", "wh" + "sec_" + gen(32)),
    ("npm_token", "np" + "m_" + gen(36)),
    ("pypi_token", "py" + "pi-AgEIcHlwaS5vcmc" + gen(120, B64URL)),
    ("huggingface_token", "h" + "f_" + gen(34, string.ascii_letters)),
    ("sendgrid_key", "S" + "G." + gen(22, B64URL) + "." + gen(43, B64URL)),
    ("twilio_key", "S" + "K" + gen(32, HEX)),
    ("discord_token", "MTk4NjIyNDgzNDcxOTI1MjQ4" + "." + gen(6) + "." + gen(27, B64URL)),
    ("jwt", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" + ".eyJ" + gen(60, B64URL) + "." + gen(43, B64URL)),
]

# Each format in five surroundings: prose, an env line, JSON, YAML and an HTTP header.
CONTEXTS = [
    "the key is {s} so keep it safe",
    "export SERVICE_API_KEY={s}",
    '{{"credentials": {{"value": "{s}", "scope": "all"}}}}',
    "service:\n  token: '{s}'\n  region: eu",
    "curl -H 'x-api-key: {s}' https://api.example.com/v1",
]

PEM_BODY = "\n".join(gen(64, B64) for _ in range(5)) + "\n" + gen(20, B64) + "=="


def pem(label: str, body: str = PEM_BODY, nl: str = "\n") -> str:
    return f"-----BEGIN {label}-----{nl}{body.replace(chr(10), nl)}{nl}-----END {label}-----"


BEARER = gen(40, B64URL)
BASIC = gen(24, B64) + "=="
PW = gen(16)
VAL = gen(24)

# (input, kind, the secret substring that must be gone)
CASES: list[tuple[str, str, str]] = [(ctx.format(s=s), kind, s) for kind, s in FORMATS for ctx in CONTEXTS]
CASES += [
    (pem("RSA PRIVATE KEY"), "private_key", PEM_BODY),
    (pem("EC PRIVATE KEY"), "private_key", PEM_BODY),
    (pem("OPENSSH PRIVATE KEY"), "private_key", PEM_BODY),
    (pem("PRIVATE KEY"), "private_key", PEM_BODY),
    (pem("ENCRYPTED PRIVATE KEY"), "private_key", PEM_BODY),
    (pem("PGP PRIVATE KEY BLOCK", "Version: GnuPG v2\n\n" + PEM_BODY), "private_key", PEM_BODY),
    (
        pem("RSA PRIVATE KEY", "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,ABCDEF01\n\n" + PEM_BODY),
        "private_key",
        PEM_BODY,
    ),
    (
        '{"private_key": "' + pem("PRIVATE KEY", nl="\\n") + '\\n", "client_email": "x@y.iam"}',
        "private_key",
        PEM_BODY.replace("\n", "\\n"),
    ),
    ("$ cat id_rsa | head\n-----BEGIN RSA PRIVATE KEY-----\n" + PEM_BODY, "private_key", PEM_BODY),
    ("Authorization: Bearer " + BEARER, "bearer_token", BEARER),
    ('curl -H "Authorization: Bearer ' + BEARER + '" https://x', "bearer_token", BEARER),
    ('{"authorization": "Bearer ' + BEARER + '"}', "bearer_token", BEARER),
    ("> authorization: bearer " + BEARER, "bearer_token", BEARER),
    ("Proxy-Authorization: Bearer " + BEARER, "bearer_token", BEARER),
    ("Authorization: token " + BEARER, "bearer_token", BEARER),
    ("Authorization: Basic " + BASIC, "basic_auth", BASIC),
    ("curl -u admin:" + PW + " https://x", "basic_auth", PW),
    ("curl --user 'admin:" + PW + "' https://x", "basic_auth", PW),
    ("postgres://app:" + PW + "@db.internal:5432/app", "url_password", PW),
    ("postgresql://app:" + PW + "@localhost/app", "url_password", PW),
    ("mysql://root:" + PW + "@127.0.0.1:3306/x", "url_password", PW),
    ("redis://:" + PW + "@cache:6379/0", "url_password", PW),
    ("mongodb+srv://admin:" + PW + "@cluster0.abc.mongodb.net/db", "url_password", PW),
    ("amqp://guest:" + PW + "@rabbit:5672/", "url_password", PW),
    ("git clone https://bot:" + PW + "@git.example.com/org/repo.git", "url_password", PW),
    ("proxy=http://u:" + PW + "@proxy:3128", "url_password", PW),
    (
        "https://hooks.slack.com/services/T" + gen(8, UPPER_DIGITS) + "/B" + gen(8, UPPER_DIGITS) + "/" + VAL,
        "slack_webhook",
        VAL,
    ),
    (
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey="
        + gen(86, B64)
        + "==;EndpointSuffix=core.windows.net",
        "azure_key",
        "",
    ),
    ("aws_secret_access_key = " + gen(40, B64), "aws_secret_key", ""),
    ("AWS_SECRET_ACCESS_KEY=" + gen(40, B64), "aws_secret_key", ""),
    ('  "SecretAccessKey": "' + gen(40, B64) + '",', "aws_secret_key", ""),
    ("DB_PASSWORD=" + PW, "env_secret", PW),
    ("export SECRET_TOKEN=" + VAL, "env_secret", VAL),
    ("password: " + PW, "env_secret", PW),
    ('"api_key": "' + VAL + '"', "env_secret", VAL),
    ('client_secret = "' + VAL + '"', "env_secret", VAL),
    ("    MYSQL_ROOT_PASSWORD: " + PW, "env_secret", PW),
    ("  - POSTGRES_PASSWORD=" + PW, "env_secret", PW),
    ("const config = { apiKey: '" + VAL + "' };", "env_secret", VAL),
    ("mytool --password=" + PW + " --verbose", "env_secret", PW),
    ("auth_token = '" + VAL + "'", "env_secret", VAL),
    ("PRIVATE_KEY_PASSPHRASE=" + PW, "env_secret", PW),
    ("X-Api-Key: " + VAL, "env_secret", VAL),
    ("GET /callback?access_token=" + VAL + "&state=1", "env_secret", VAL),
    ("DJANGO_SECRET_KEY='" + VAL + "'", "env_secret", VAL),
    ('{\\"password\\": \\"' + PW + '\\"}', "env_secret", PW),
    ("//registry.npmjs.org/:_authToken=" + VAL, "env_secret", VAL),
    ("$db = ['password' => '" + PW + "'];", "env_secret", PW),
    ("credentials: " + VAL, "env_secret", VAL),
    ("SUPERSET_PASSWORD=supersecret", "env_secret", "supersecret"),
    ("password = hunter42", "env_secret", "hunter42"),
]

NEAR_MISSES = [
    "request id 550e8400-e29b-41d4-a716-446655440000",
    '"sessionId": "550e8400-e29b-41d4-a716-446655440000"',
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
    "fixed in a1b2c3d (and 9fceb02d0a)",
    "sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    '"integrity": "sha512-'
    + "Z" * 20
    + "abcdefghijklmnopqrstuvwxyz0123456789+/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789=="
    + '"',
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
    "pip install scikit-learn  # the task-sk-learn-pipeline-for-everyone-here",
    "color: #ff00aa; background: #0a0a0a;",
    "bumped to 2.31.0-rc.1 from v1.2.3",
    "password = getpass()",
    'token = request.headers.get("Authorization")',
    "if password == confirm:",
    "    def get_token(self):",
    "max_tokens = 4096",
    "token_count: int",
    "password: str = ''",
    "token: Optional[str] = None",
    'return {"token": token, "user": user}',
    "const token = await getToken();",
    "const password = req.body.password;",
    '"resolved": "https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz"',
    "git@github.com:org/repo.git",
    "https://user@example.com/path",
    "max_tokens: 4096",
    "tokens_before: 120000",
    '"usage": {"input_tokens": 1234, "output_tokens": 56, "cache_read_input_tokens": 7}',
    "tokenizer: cl100k_base",
    "image: python@sha256:4b1a9c1f0e5d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b",
    "arn:aws:iam::123456789012:role/deploy",
    "listening on 192.168.1.10:8080 and [::1]:8080",
    "http://localhost:8080/api/v1/items?page=2",
    "OPENAI_API_KEY=your-api-key-here",
    "PASSWORD=changeme",
    "GITHUB_TOKEN=${GITHUB_TOKEN}",
    "API_KEY=$API_KEY",
    "password: ***",
    "SECRET=<your-secret>",
    "api_key: null",
    "PWD=/home/user/project",
    "SSH_AUTH_SOCK=/tmp/ssh-XXXXabcd/agent.1234",
    'author: "Jane Doe"',
    "Bearer authentication is described in RFC 6750.",
    "docker run -u 1000:1000 image",
    "git push -u origin main",
    "OPENAI_API_KEY=[REDACTED:openai_key]",
    "Authorization: Bearer [REDACTED:bearer_token]",
    "https://user:[REDACTED:url_password]@host/db",
    "token_type: Bearer",
    "GOOGLE_APPLICATION_CREDENTIALS=/etc/gcp/creds.json",
    "AUTH_ENABLED=true",
    "redis://cache:6379/0",
]


@pytest.mark.parametrize(("text", "kind", "secret"), CASES)
def test_planted_secret_is_redacted(text: str, kind: str, secret: str) -> None:
    result = redact(text)
    assert kind in result.counts(), (result.text, result.findings)
    assert placeholder(kind) in result.text
    if secret:
        assert secret not in result.text
        assert any(secret in text[f.start : f.end] or text[f.start : f.end] in secret for f in result.findings)
    if kind != "private_key":  # a PEM block becomes one placeholder, by design
        assert result.text.count("\n") == text.count("\n")
    assert has_secrets(text)
    assert redact(result.text).findings == ()


def test_there_are_enough_planted_cases() -> None:
    assert len(CASES) >= 100
    assert len(NEAR_MISSES) >= 30
    assert {kind for _, kind, _ in CASES} <= KINDS


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_miss_is_unchanged(text: str) -> None:
    result = redact(text)
    assert result.text == text, result.findings
    assert not result.changed
    assert not has_secrets(text)


def test_env_line_keeps_name_and_gets_the_specific_kind() -> None:
    key = "sk-" + "proj-" + gen(100, B64URL)
    assert redact_text("OPENAI_API_KEY=" + key) == "OPENAI_API_KEY=[REDACTED:openai_key]"
    assert redact_text("DB_PASSWORD=" + PW) == "DB_PASSWORD=[REDACTED:env_secret]"
    assert redact_text('DB_PASSWORD="' + PW + '"') == 'DB_PASSWORD="[REDACTED:env_secret]"'
    assert redact_text("Authorization: Bearer " + BEARER) == "Authorization: Bearer [REDACTED:bearer_token]"
    assert redact_text("https://user:" + PW + "@host/db") == "https://user:[REDACTED:url_password]@host/db"


def test_pem_block_is_one_placeholder() -> None:
    text = "before\n" + pem("RSA PRIVATE KEY") + "\nafter"
    assert redact_text(text) == "before\n[REDACTED:private_key]\nafter"


def test_truncated_pem_redacts_to_the_end_of_the_base64_run() -> None:
    text = "-----BEGIN OPENSSH PRIVATE KEY-----\n" + PEM_BODY + "\n... (output truncated)"
    assert redact_text(text) == "[REDACTED:private_key]\n... (output truncated)"


def test_findings_offsets_point_into_the_input() -> None:
    key = "gh" + "p_" + gen(36)
    text = f"a\nGITHUB_TOKEN={key}\nPASSWORD={PW}\n"
    result = redact(text)
    assert result.findings == (
        Finding("github_token", text.index(key), text.index(key) + len(key)),
        Finding("env_secret", text.index(PW), text.index(PW) + len(PW)),
    )


def test_counts() -> None:
    text = "\n".join(
        ["AWS_ACCESS_KEY_ID=" + "AK" + "IA" + gen(16, UPPER_DIGITS) for _ in range(3)] + ["PASSWORD=" + PW]
    )
    result = redact(text)
    assert result.counts() == {"aws_access_key": 3, "env_secret": 1}
    assert redact("nothing here").counts() == {}
    assert isinstance(redact("x"), Redacted)


def test_overlapping_secret_is_merged_not_leaked() -> None:
    jwt = FORMATS[-1][1]
    text = f'{{"access_token": "{jwt}"}}'
    result = redact(text)
    assert jwt not in result.text
    assert result.text == '{"access_token": "[REDACTED:jwt]"}'


def test_realistic_tool_output() -> None:
    gh = "gh" + "p_" + gen(36)
    oai = "sk-" + "proj-" + gen(120, B64URL)
    ant = "sk-ant-" + "api03-" + gen(93, B64URL) + "AA"
    aws_id = "AK" + "IA" + gen(16, UPPER_DIGITS)
    aws_secret = gen(40, B64)
    db_pw, redis_pw, jwt = gen(20), gen(18), FORMATS[-1][1]
    stripe = "sk" + "_live_" + gen(48)
    # (line, the secret it holds or "")
    lines: list[tuple[str, str]] = [
        ("$ env", ""),
        ("HOME=/home/dev", ""),
        ("PATH=/usr/local/bin:/usr/bin:/bin", ""),
        ("PWD=/home/dev/project", ""),
        ("SSH_AUTH_SOCK=/tmp/ssh-abc123/agent.42", ""),
        ("GITHUB_TOKEN=" + gh, gh),
        ("OPENAI_API_KEY=" + oai, oai),
        ("EDITOR=vim", ""),
        ("$ cat .env", ""),
        ("# database", ""),
        ("DATABASE_URL=postgres://app:" + db_pw + "@db:5432/app", db_pw),
        ("AWS_ACCESS_KEY_ID=" + aws_id, aws_id),
        ("AWS_SECRET_ACCESS_KEY=" + aws_secret, aws_secret),
        ("STRIPE_SECRET_KEY=" + stripe, stripe),
        ("DEBUG=true", ""),
        ("MAX_TOKENS=4096", ""),
        ("$ curl -v -H 'x-api-key: " + ant + "' https://api.anthropic.com/v1/messages", ant),
        ("*   Trying 160.79.104.10:443...", ""),
        ("> POST /v1/messages HTTP/2", ""),
        ("> Host: api.anthropic.com", ""),
        ("> authorization: Bearer " + jwt, jwt),
        ("> content-type: application/json", ""),
        ("< HTTP/2 200", ""),
        ("< request-id: req_011CSHoEeqs5C35K2UUqR7Fy", ""),
        ("$ cat docker-compose.yml", ""),
        ("services:", ""),
        ("  db:", ""),
        ("    image: postgres:16", ""),
        ("    environment:", ""),
        ("      POSTGRES_USER: app", ""),
        ("      POSTGRES_PASSWORD: " + db_pw, db_pw),
        ("  cache:", ""),
        ("    image: redis:7", ""),
        ('    command: ["redis-server", "--requirepass", "${REDIS_PASSWORD}"]', ""),
        ("    environment:", ""),
        ("      - REDIS_PASSWORD=" + redis_pw, redis_pw),
        ("    ports:", ""),
        ('      - "6379:6379"', ""),
    ]
    text = "\n".join(line for line, _ in lines) + "\n"
    result = redact(text)
    out_lines = result.text.split("\n")
    assert len(out_lines) == len(lines) + 1
    for (line, secret), out in zip(lines, out_lines):
        if secret:
            assert secret not in out and "[REDACTED:" in out, out
        else:
            assert out == line
    assert result.counts() == {
        "github_token": 1,
        "openai_key": 1,
        "url_password": 1,
        "aws_access_key": 1,
        "aws_secret_key": 1,
        "stripe_key": 1,
        "anthropic_key": 1,
        "jwt": 1,
        "env_secret": 2,
    }


def test_surrogate_escaped_and_binary_input() -> None:
    raw = b"\xff\xfe\x00PASSWORD=" + PW.encode() + b"\n\x80\x81 sk-\xc3\x28 \xed\xa0\x80"
    text = raw.decode("utf-8", "surrogateescape")
    result = redact(text)
    assert PW not in result.text
    assert result.text.encode("utf-8", "surrogateescape").startswith(b"\xff\xfe\x00PASSWORD=[REDACTED")
    junk = bytes(_rng.randrange(256) for _ in range(20000)).decode("latin-1")
    assert redact(redact(junk).text).findings == ()


def test_case_changing_characters_keep_offsets() -> None:
    # U+0130 lowercases to two characters; offsets into the input must still be right.
    text = "İstanbul İ PASSWORD=" + PW
    result = redact(text)
    assert result.text == "İstanbul İ PASSWORD=[REDACTED:env_secret]"


def test_large_input_does_not_blow_up() -> None:
    chunk = "password=password=" * 1000 + "eyJ" * 1000 + "-----BEGIN PRIVATE KEY-----\n" * 100 + "token.a" * 1000
    assert isinstance(redact(chunk * 20).text, str)
    # The command-line, prose and quoted-header rules have bounded gaps: their prefixes repeated stay linear.
    for fragment in ("mysql ", "mysql x" + " " * 150, "sshpass -p ", "redis-cli -a ", "password is ", "db_pass: "):
        assert isinstance(redact(fragment * 2000).text, str)


FRAGMENTS = [s for _, s in FORMATS] + [text for text, _, _ in CASES[-40:]] + NEAR_MISSES[:20]
SAFE_ALPHABET = "bcdfhjlmqvwxz0123456789 \n\t.,;()=_\"'[]{}<>#/\\"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(), st.sampled_from(FRAGMENTS)), max_size=8).map("".join))
def test_redact_is_idempotent_and_total(text: str) -> None:
    once = redact(text)
    twice = redact(once.text)
    assert twice.text == once.text
    assert twice.findings == ()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=SAFE_ALPHABET, max_size=300))
def test_text_without_secret_prefixes_is_unchanged(text: str) -> None:
    assert redact_text(text) == text


MANY_PARTS = [*FRAGMENTS, "-----BEGIN RSA PRIVATE KEY-----", "A" * 64, "\n", "PASSWORD=", "x-api-key: '", "'"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=40), st.sampled_from(MANY_PARTS)), max_size=12))
def test_redact_many_is_redact_text_on_each(texts: list[str | None]) -> None:
    assert redact_many(texts) == [redact_text(t) if t else t for t in texts]


def test_redact_many_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    import headroom.memory.redact as module

    monkeypatch.setattr(module, "_CHUNK_CHARS", 64)  # many chunks, and texts larger than one
    texts: list[str | None] = [*(text for text, _, _ in CASES[:60]), None, "", *NEAR_MISSES[:20]]
    assert redact_many(texts) == [redact_text(t) if t else t for t in texts]
