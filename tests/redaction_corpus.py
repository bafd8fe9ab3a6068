"""A labelled corpus for the redaction gate: secrets in the syntaxes they appear in, and look-alikes that are not.

Used by tests/test_redact_corpus.py (every positive redacted, no negative changed) and by bench/redact_bench.py
(recall and false-positive rate, recorded in bench/README.md). Each positive names the secret substring that must
be gone; each negative must come out byte for byte. Every fake secret is generated at import time from a seeded
generator or built by concatenation, so no literal token sits in this file (secret scanners would flag one) and the
corpus is the same on every run.

Decisions recorded here (the negatives say them as data):
- Placeholders and test words under a secret name are kept: ``changeme``, ``password: "test"``, ``<your-key>``,
  ``${VAR}``, ``***``, ``super-secret``, ``card-token``. A test password with digits (``Password123!``) is redacted:
  it may be a real one.
- A version under a package name holding auth/token/key/pass (``"next-auth": "^4.24.13"``) is a version.
- Hashes, digests, UUIDs, base64 images and lockfile integrity strings have no name and no known prefix: kept.
- A quoted value of three or more words is prose (an error message), so a passphrase of plain words is missed.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

_rng = random.Random(20261206)
ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "-_"
B64 = ALNUM + "+/"
UPPER_DIGITS = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"


def gen(n: int, alphabet: str = ALNUM) -> str:
    """Random text from ``alphabet``; with the default, upper, lower and digits are all present, as in real keys."""
    while True:
        s = "".join(_rng.choice(alphabet) for _ in range(n))
        if alphabet != ALNUM or (
            any(c.isupper() for c in s) and any(c.islower() for c in s) and any(c.isdigit() for c in s)
        ):
            return s


def digits(n: int) -> str:
    return "".join(_rng.choice(string.digits) for _ in range(n))


@dataclass(frozen=True)
class Positive:
    syntax: str  # what kind of text it is (env line, YAML, header, ...)
    text: str
    secret: str  # must not survive redaction


@dataclass(frozen=True)
class Negative:
    syntax: str
    text: str  # must come out unchanged


# --- the secrets --------------------------------------------------------------------------------------------------

AWS_ID = "AK" + "IA" + gen(16, UPPER_DIGITS)
AWS_SECRET = gen(40, B64)
GH = "gh" + "p_" + gen(36)
GH_FINE = "github" + "_pat_" + gen(22) + "_" + gen(59)
GL = "gl" + "pat-" + gen(20, B64URL)
ANT = "sk-" + "ant-api03-" + gen(93, B64URL) + "AA"
OAI = "sk-" + "proj-" + gen(120, B64URL)
OAI_LEGACY = "sk-" + gen(20) + "T3Blbk" + "FJ" + gen(20)
OPENROUTER = "sk-" + "or-v1-" + gen(64, HEX)
DEEPSEEK = "sk-" + gen(32, HEX)
GROQ = "gs" + "k_" + gen(52)
XAI = "xa" + "i-" + gen(80)
GOOGLE = "AI" + "za" + gen(35, B64URL)
HF = "h" + "f_" + gen(34)
STRIPE = "sk" + "_live_" + gen(48)
SLACK = "xo" + "xb-" + digits(12) + "-" + digits(13) + "-" + gen(24)
NPM = "np" + "m_" + gen(36)
VAULT = "hv" + "s." + gen(90, B64URL)
JWT = "ey" + "JhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" + ".ey" + "J" + gen(60, B64URL) + "." + gen(43, B64URL)
PEM_BODY = "\n".join(gen(64, B64) for _ in range(6)) + "\n" + gen(20, B64) + "=="
PEM = "-----BEGIN " + "RSA PRIVATE KEY-----\n" + PEM_BODY + "\n-----END RSA PRIVATE KEY-----"
OPENSSH = "-----BEGIN " + "OPENSSH PRIVATE KEY-----\n" + PEM_BODY + "\n-----END OPENSSH PRIVATE KEY-----"
PW = gen(14)  # a password: letters and digits
PW_SYM = gen(10) + "!%^"  # with symbols
HEXKEY = gen(32, HEX)  # an API key with no prefix (Azure, Mistral, Datadog...)
BEARER = gen(40, B64URL)
BASIC = gen(24, B64) + "=="
B64SECRET = gen(40, B64) + "="


POSITIVES: list[Positive] = [
    # env lines and shell
    Positive("env", "AWS_ACCESS_KEY_ID=" + AWS_ID, AWS_ID),
    Positive("env", "AWS_SECRET_ACCESS_KEY=" + AWS_SECRET, AWS_SECRET),
    Positive("env", "export GITHUB_TOKEN=" + GH, GH),
    Positive("env", "GH_TOKEN=" + GH_FINE, GH_FINE),
    Positive("env", "ANTHROPIC_API_KEY=" + ANT, ANT),
    Positive("env", "OPENAI_API_KEY='" + OAI + "'", OAI),
    Positive("env", "DATABASE_PASS=" + PW, PW),
    Positive("env", "DB_PASSWORD=" + PW_SYM, PW_SYM),
    Positive("env", "SMTP_PASS=" + PW, PW),
    Positive("env", "MYSQL_PW=" + PW, PW),
    Positive("env", "export PGPASSWORD=" + PW, PW),
    Positive("env", "DJANGO_SECRET_KEY=" + gen(50), ""),
    Positive("env", "MISTRAL_API_KEY=" + HEXKEY, HEXKEY),
    Positive("env", "WIREGUARD_PRIVATE_KEY=" + B64SECRET, B64SECRET),
    Positive("env", "HF_TOKEN=" + HF, HF),
    Positive("env", "STRIPE_SECRET_KEY=" + STRIPE, STRIPE),
    Positive("env", "SLACK_BOT_TOKEN=" + SLACK, SLACK),
    Positive("env", "VAULT_TOKEN=" + VAULT, VAULT),
    Positive("env", "OPENROUTER_API_KEY=" + OPENROUTER, OPENROUTER),
    Positive("env", "DEEPSEEK_API_KEY=" + DEEPSEEK, DEEPSEEK),
    Positive("env", "GROQ_API_KEY=" + GROQ, GROQ),
    Positive("env", "XAI_API_KEY=" + XAI, XAI),
    Positive("env (JSON-escaped in a tool input)", '{"command": "cat <<EOF > .env\\n' + GH + '\\nEOF"}', GH),
    Positive("env (JSON-escaped)", '{"content": "KEY=1\\nAWS_ACCESS_KEY_ID=' + AWS_ID + '\\n"}', AWS_ID),
    # YAML
    Positive("YAML", "db_pass: " + PW, PW),
    Positive("YAML", "password: " + PW_SYM, PW_SYM),
    Positive("YAML", "  api_key: '" + HEXKEY + "'", HEXKEY),
    Positive("YAML", "      POSTGRES_PASSWORD: " + PW, PW),
    Positive("YAML", "      - REDIS_PASSWORD=" + PW, PW),
    Positive("YAML (k8s Secret)", "data:\n  password: " + B64SECRET, B64SECRET),
    Positive("YAML", "client_secret: " + gen(32), ""),
    # JSON
    Positive("JSON", '{"password": "' + PW + '"}', PW),
    Positive("JSON", '{"apiKey": "' + GOOGLE + '"}', GOOGLE),
    Positive("JSON", '"client_secret":"' + gen(24) + '"', ""),
    Positive("JSON", '{"access_token": "' + JWT + '", "token_type": "Bearer"}', JWT),
    Positive("JSON (escaped)", '{\\"db_password\\": \\"' + PW + '\\"}', PW),
    Positive(
        "JSON (service account)", '{"private_key": "' + PEM.replace("\n", "\\n") + '\\n"}', PEM_BODY.split("\n")[0]
    ),
    # TOML / INI / code
    Positive("TOML", 'password = "' + PW + '"', PW),
    Positive("TOML", "[auth]\ntoken = '" + gen(32) + "'", ""),
    Positive(
        "INI (.pypirc)", "[pypi]\nusername = __token__\npassword = " + "py" + "pi-AgEIcHlwaS5vcmc" + gen(60, B64URL), ""
    ),
    Positive("Python", 'conn = connect(user="app", password="' + PW + '")', PW),
    Positive("JS", "const cfg = { apiKey: '" + HEXKEY + "' };", HEXKEY),
    Positive("Go", 'Password: "' + PW + '",', PW),
    Positive("Ruby", ":password => '" + PW + "'", PW),
    Positive("PHP", "define('DB_PASSWORD', '" + PW + "');", PW),
    Positive("PHP", "$db = ['password' => '" + PW + "'];", PW),
    Positive(".npmrc", "//registry.npmjs.org/:_authToken=" + NPM, NPM),
    # HTTP headers
    Positive("header", "Authorization: Bearer " + BEARER, BEARER),
    Positive("header", "Authorization: Basic " + BASIC, BASIC),
    Positive("header", "X-Api-Key: " + HEXKEY, HEXKEY),
    Positive("curl header, single quotes", "curl -H 'X-API-Key: " + HEXKEY + "' https://api.example.com", HEXKEY),
    Positive("curl header, double quotes", 'curl -H "X-Auth-Token: ' + HEXKEY + '" https://x', HEXKEY),
    Positive("curl header", 'curl -H "Authorization: token ' + GH + '" https://api.github.com', GH),
    Positive("header", "PRIVATE-TOKEN: " + GL, GL),
    Positive("header (verbose)", "> authorization: Bearer " + JWT, JWT),
    Positive("header", "apikey: " + HEXKEY, HEXKEY),
    # CLI flags
    Positive("CLI", "mysql -uroot -p" + PW + " shop", PW),
    Positive("CLI", "mysqldump -h db -u admin -p'" + PW_SYM + "' shop > dump.sql", PW_SYM),
    Positive("CLI", "mariadb -u root -p" + PW, PW),
    Positive("CLI", "sshpass -p " + PW + " ssh deploy@host", PW),
    Positive("CLI", "redis-cli -h cache -a " + PW + " ping", PW),
    Positive("CLI", "docker login -u me --password " + PW + " registry.example.com", PW),
    Positive("CLI", "mytool --password=" + PW + " --verbose", PW),
    Positive("CLI", "curl -u admin:" + PW + " https://x", PW),
    Positive("CLI", "gh auth login --with-token <<< " + GH, GH),
    Positive("CLI", "heroku config:set --api-key " + HEXKEY, HEXKEY),
    # URLs and connection strings
    Positive("URL", "postgres://app:" + PW + "@db.internal:5432/app", PW),
    Positive("URL", "DATABASE_URL=mysql://root:" + PW + "@127.0.0.1:3306/shop", PW),
    Positive("URL", "mongodb+srv://admin:" + PW + "@cluster0.abc.mongodb.net/db", PW),
    Positive("URL", "redis://:" + PW + "@cache:6379/0", PW),
    Positive("URL", "git clone https://oauth2:" + GL + "@gitlab.com/org/repo.git", GL),
    Positive("URL", "https://x-access-token:" + GH + "@github.com/org/repo", GH),
    Positive("URL query", "GET /callback?code=1&access_token=" + BEARER + "&state=2", BEARER),
    Positive("JDBC", "jdbc:postgresql://db:5432/app?user=app&password=" + PW, PW),
    Positive("ADO.NET", "Server=tcp:db,1433;Database=app;User ID=sa;Password=" + PW_SYM + ";", PW_SYM),
    Positive("ODBC", "Driver={ODBC Driver 18};Server=db;UID=sa;PWD=" + PW + ";", PW),
    Positive("libpq", 'psql "host=db user=app password=' + PW + ' dbname=app"', PW),
    Positive(
        "Azure",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + gen(86, B64) + "==;EndpointSuffix=x",
        "",
    ),
    # PEM, JWT, provider keys in prose
    Positive("PEM", PEM, PEM_BODY),
    Positive("PEM", "$ cat ~/.ssh/id_ed25519\n" + OPENSSH, PEM_BODY),
    Positive("JWT", "the session cookie was " + JWT, JWT),
    Positive("prose", "use the key " + ANT + " for now", ANT),
    Positive("prose", "my token is " + OAI_LEGACY, OAI_LEGACY),
    Positive("prose", "AWS key " + AWS_ID + " leaked", AWS_ID),
    Positive("prose", "the org token " + GH_FINE, GH_FINE),
    Positive("prose", "and the db password is " + PW + ".", PW),
]


NEGATIVES: list[Negative] = [
    # versions under secret-sounding package names
    Negative("package.json", '    "next-auth": "^4.24.13",'),
    Negative("package.json", '"@auth/core": "0.34.2"'),
    Negative("package.json", '"jsonwebtoken": "^9.0.2"'),
    Negative("package.json", '"passport": "^0.7.0", "passport-jwt": "~4.0.1"'),
    Negative("package.json", '"keytar": "7.9.0"'),
    Negative("package.json", '"secretlint": ">=8.2.0 <9"'),
    Negative("package.json", '"oauth4webapi": "latest"'),
    Negative("package.json", '"js-tokens": "^4.0.0"'),
    Negative("pyproject", 'django-auth-ldap = "^4.6"'),
    Negative("pyproject", 'tokenizers = ">=0.15,<0.16"'),
    Negative("requirements", "oauthlib==3.2.2"),
    Negative("go.mod", "golang.org/x/oauth2 v0.15.0"),
    Negative("Cargo.toml", 'jsonwebtoken = { version = "9", features = ["use_pem"] }'),
    Negative("yarn.lock", 'next-auth@^4.24.13:\n  version "4.24.13"'),
    # hashes, digests, ids, images
    Negative("git", "commit 9fceb02d0ae598e95dc970b74767f19372d61af8"),
    Negative("git", "Merge: a1b2c3d 9fceb02"),
    Negative("sha256", "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    Negative("docker", "image: python@sha256:4b1a9c1f0e5d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b"),
    Negative("UUID", '"sessionId": "550e8400-e29b-41d4-a716-446655440000"'),
    Negative("ids", "msg_01XFDUDYJgAACzvnptvVoYEL toolu_01A09q90qw90lq917835lq9 req_011CSHoEeqs5C35K2UUqR7Fy"),
    Negative(
        "base64 image",
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
    ),
    Negative(
        "lockfile integrity",
        '"integrity": "sha512-' + gen(64, B64) + '=="',
    ),
    Negative("npm lockfile", '"resolved": "https://registry.npmjs.org/next-auth/-/next-auth-4.24.13.tgz"'),
    Negative("AWS ARN", "arn:aws:iam::123456789012:role/deploy"),
    Negative("KMS key id", "KMS_KEY_ID=arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
    # placeholders and test fixtures
    Negative("fixture", 'password: "test"'),
    Negative("fixture", "PASSWORD=changeme"),
    Negative("fixture", "VITE_HOST_SECRET=change-me"),
    Negative("fixture", '"password": "password"'),
    Negative("fixture", 'process.env.CREATOR_PASSWORD = "super-secret"'),
    Negative("fixture", 'token: "card-token"'),
    Negative("template", "OPENAI_API_KEY=your-api-key-here"),
    Negative("template", "SECRET=<your-secret>"),
    Negative("template", "GITHUB_TOKEN=${GITHUB_TOKEN}"),
    Negative("template", "API_KEY=$API_KEY"),
    Negative("template", "password: ***"),
    Negative("template", "api_key: null"),
    Negative("template", 'api_key = "sk-..."'),
    Negative("reference", "LINEAR_API_KEY: op://vault-operations/linear-api-key/credential"),
    Negative("already redacted", "OPENAI_API_KEY=[REDACTED:openai_key]"),
    # code that names secrets
    Negative("code", "password = getpass()"),
    Negative("code", 'token = os.environ["GITHUB_TOKEN"]'),
    Negative("code", "const token = req.headers.authorization;"),
    Negative("code", "self.api_key = api_key"),
    Negative("code", 'headers["Authorization"] = f"Bearer {token}"'),
    Negative("code", '"Authorization": "Bearer " + token,'),
    Negative("code", "password: str = ''"),
    Negative("code", "token: Optional[str] = None"),
    Negative("code", "def get_token(self) -> AccessToken:"),
    Negative("code", 'fetch(url, { method: "GET", credentials: "include" })'),
    Negative("code", 'passwordHash: "hash",'),
    Negative("code", "tool --password-stdin < pw.txt"),
    Negative("code", "mysql -u root -p shop"),
    Negative("code", "mysql -h db -P3306 -u app shop"),
    Negative("code", 'nextErrors.password = "Password is required.";'),
    Negative("prose", 'description: "the token expires after an hour"'),
    Negative("prose", "Bearer authentication is described in RFC 6750."),
    Negative("prose", "- Auth: `src/app/api/auth/`"),
    Negative("JSON", '{"auth_status": "authenticated"}'),
    # counters, settings and paths under secret-sounding names
    Negative("settings", "max_tokens: 4096"),
    Negative("settings", '"usage": {"input_tokens": 1234, "output_tokens": 56}'),
    Negative("settings", "TOKENIZERS_PARALLELISM=false"),
    Negative("settings", "AUTH_ENABLED=true"),
    Negative("settings", "token_type: Bearer"),
    Negative("settings", "pass_filenames: false"),
    Negative("paths", "SSH_AUTH_SOCK=/tmp/ssh-XXXXabcd/agent.1234"),
    Negative("paths", "GOOGLE_APPLICATION_CREDENTIALS=/etc/gcp/creds.json"),
    Negative("paths", "PWD=/home/user/project"),
    Negative("paths", 'secrets_file: "config/secrets.yml"'),
    Negative("test output", "--- PASS: TestLogin (0.00s)"),
    Negative("test output", "PASS: test_login"),
    Negative("test output", "bypass: true"),
    # URLs and commands without secrets
    Negative("URL", "git@github.com:org/repo.git"),
    Negative("URL", "https://user@example.com/path"),
    Negative("URL", "postgres://localhost:5432/app"),
    Negative("URL", "http://[::1]:8080/api/v1/items?page=2"),
    Negative("CLI", "docker run -u 1000:1000 image"),
    Negative("CLI", "git push -u origin main"),
    Negative("CLI", "pip install scikit-learn  # the task-sk-learn-pipeline-for-everyone-here"),
    Negative("prose", "author: Jane Doe, secretary: Bob"),
    Negative("prose", "the password is wrong, and the token is 5 minutes old"),
]
