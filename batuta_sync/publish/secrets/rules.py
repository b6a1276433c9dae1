"""Secret-scanner rules as data: the content rules, the file-name rules and the finding record.

* :data:`RULES` — 28 content formats (each a bounded regex located by a literal anchor);
* :data:`HIGH_CONFIDENCE` — the prefixed token formats (``hf_``, ``ghp_``, ``AKIA``, ``sk-``, private-key
  headers, …) that the raw scan (:mod:`.raw`) looks for in *every byte* of every uploaded file, in ASCII and
  UTF-16/UTF-32, with a loose variant (no boundary lookarounds) for binary payloads;
* :func:`filename_rule` — credential file names (SEC-1);
* :data:`INCOMPLETE_RULE` — the finding for content that could not be scanned fully (a limit was hit, a
  codec is missing, a stream is corrupt): it blocks a push like a secret, unless allow-listed.
"""

from __future__ import annotations

import hashlib
import math
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class Finding:
    """One secret found.  ``redacted`` and ``fingerprint`` are safe to print; the secret is not kept."""

    path: str  # file path inside the pushed folder (posix); container paths use "!" (a.zip!b/.env)
    line: int  # 1-based line in the scanned text (0 when not meaningful, e.g. a file-name finding)
    rule: str
    redacted: str
    fingerprint: str
    location: str = ""  # inner location: "cell[3].outputs[0]", "__metadata__", "decoded:base64", …

    def __str__(self) -> str:
        where = self.path + (f"!{self.location}" if self.location else "")
        if self.line:
            where += f":{self.line}"
        return f"{where}: {self.rule}: {self.redacted} (fingerprint {self.fingerprint[:16]})"

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "rule": self.rule,
            "redacted": self.redacted,
            "fingerprint": self.fingerprint,
            "location": self.location,
        }


def fingerprint(rule: str, path: str, secret: str) -> str:
    return hashlib.sha256(f"{rule}|{path}|{secret}".encode("utf-8", "surrogatepass")).hexdigest()


def redact_value(secret: str) -> str:
    """``hf_ab…`` style: at most 6 leading characters (fewer for short values), never the rest."""
    keep = 6 if len(secret) >= 24 else min(4, max(0, len(secret) // 4))
    return secret[:keep] + "…"


def shannon_entropy(s: str) -> float:
    if not s:
        return 0.0
    counts: dict[str, int] = {}
    for ch in s:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


# --------------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------------

_PLACEHOLDER_RE = re.compile(
    r"(?i)^(?:x{4,}|\*{3,}|your[_-]|<|\$|%|\{\{|example|sample|dummy|placeholder|changeme|redacted|test(?:ing)?$|"
    r"none$|null$|true$|false$|password$|secret$|token$)"
)
_REPEAT_RE = re.compile(r"(.)\1{7,}")
_FILENAME_RE = re.compile(
    r"[\w./-]+\.(?:safetensors|bin|json|jsonl|txt|py|gguf|ggml|pt|pth|md|ya?ml|model|onnx|h5|msgpack|ckpt|png|jpe?g"
    r"|csv|tsv|parquet|arrow|npz|npy|tar|gz|zip|wav|mp3|pkl|tflite|mlmodel|xml|html|js|ts|sh|cfg|ini|toml)"
)
_IDENT_RE = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+){2,}")
_FAKE_RE = re.compile(r"(?i)example|x{5,}|placeholder|dummy|your_|changeme")


def _generic_ok(value: str) -> bool:
    """gitleaks-style filter for keyword=value rules: high entropy, mixed classes, not a placeholder."""
    if _PLACEHOLDER_RE.search(value) or _REPEAT_RE.search(value) or _FAKE_RE.search(value):
        return False
    if not (re.search(r"[0-9]", value) and re.search(r"[A-Za-z]", value)):
        return False
    if re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", value):
        return False  # a UUID is an identifier, not a secret
    if re.fullmatch(r"v?\d+(?:\.\d+)+[\w.-]*", value):
        return False  # version strings
    if _FILENAME_RE.fullmatch(value) or _IDENT_RE.fullmatch(value):
        return False  # file names (index.json weight maps) and dotted/dashed lower-case identifiers
    return shannon_entropy(value) >= 3.5


def _token_ok(value: str) -> bool:
    """For prefixed tokens: reject obvious placeholders (hf_xxxx…, repeated characters)."""
    body = value.split("_", 1)[-1] if "_" in value[:12] else value
    if _REPEAT_RE.search(body) or re.search(r"(?i)x{6,}|example|placeholder", body):
        return False
    return shannon_entropy(body) >= 3.0


def _url_password_ok(value: str) -> bool:
    low = value.lower()
    if low in {"password", "pass", "passwd", "pwd", "secret", "token", "changeme", "x-oauth-basic", "user"}:
        return False
    if value.startswith(("{", "(", "[")):
        return False  # a template or format expression, not a literal password
    return not (_PLACEHOLDER_RE.search(value) or set(value) <= {"*", "x", "X", "."})


@dataclass(frozen=True)
class Rule:
    """One content rule.

    The engine finds each ``anchor`` literal with ``str.find`` (C speed), checks the character before
    it against ``left`` (chars that must NOT precede: a word boundary), then runs ``regex.match`` at
    that position.  ``icase`` rules (keyword-anchored, case-insensitive) instead run their lower-case
    regex with ``finditer`` over the lower-cased text (same length, so spans map back), after a
    presence check of their anchors.  Every quantifier after the anchor is bounded (and possessive where a run could be
    re-scanned), so the work per anchor occurrence is bounded and the scan is linear in the input.
    """

    id: str
    description: str
    regex: re.Pattern[bytes]
    anchors: tuple[str, ...]
    icase: bool = False  # regex (lower-case classes) runs with finditer over the lower-cased text
    scan: bool = False  # one finditer pass of the regex itself (its anchors share a literal prefix and the
    # secret has a short fixed length, so a failed attempt costs O(1)); ``left`` is checked after the match
    left: frozenset[int] = frozenset()  # byte values
    group: int = 1  # the capture group holding the secret
    check: Callable[[str], bool] | None = None
    requires: tuple[str, ...] = ()  # lower-case literals the whole text must also contain


@dataclass(frozen=True)
class RawRule:
    """A high-confidence rule for the raw scan: ``prefixes`` are the literals a match starts with.

    ``strict`` is the rule's own regex (word boundaries on both sides: text); ``loose`` drops the
    right-boundary lookahead (and the engine skips the left check) for binary payloads, where the bytes
    around an embedded token are arbitrary.
    """

    rule: Rule
    prefixes: tuple[bytes, ...]
    loose: re.Pattern[bytes]


_WORD = frozenset((string.ascii_letters + string.digits + "_").encode())
_TOKEN_CHARS = frozenset((string.ascii_letters + string.digits + "_-").encode())
_B64_CHARS = frozenset((string.ascii_letters + string.digits + "+/").encode())


def _r(pattern: str) -> re.Pattern[bytes]:
    """Rules run on bytes (UTF-8): one byte per ASCII char, fast ``bytes.find``, ASCII-only ``lower``."""
    return re.compile(pattern.encode("ascii"))


_ASSIGN = r"[\w.-]{0,25}+[\"'`]?+[ \t]{0,5}+(?:=|:=|:|=>|\?=|,)[ \t\"'`=]{0,5}+"
_AWS_ID = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

RULES: tuple[Rule, ...] = (
    Rule(
        "huggingface-access-token",
        "Hugging Face user access token",
        _r(r"(hf_[A-Za-z0-9]{34})(?![A-Za-z0-9])"),
        ("hf_",),
        left=_WORD,
        check=_token_ok,
    ),
    Rule(
        "huggingface-org-token",
        "Hugging Face organization API token",
        _r(r"(api_org_[A-Za-z0-9]{34})(?![A-Za-z0-9])"),
        ("api_org_",),
        left=_WORD,
        check=_token_ok,
    ),
    Rule(
        "openai-api-key",
        "OpenAI API key (project, service account, admin or legacy)",
        _r(r"(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,250}+|sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})(?![A-Za-z0-9_-])"),
        ("sk-",),
        left=_TOKEN_CHARS,
        check=_token_ok,
    ),
    Rule(
        "anthropic-api-key",
        "Anthropic API or admin key",
        _r(r"(sk-ant-(?:api03|admin01)-[A-Za-z0-9_-]{80,100}+)(?<=AA)(?![A-Za-z0-9_-])"),
        ("sk-ant-",),
        left=_TOKEN_CHARS,
    ),
    Rule(
        "aws-access-key-id",
        "AWS access key id",
        _r(rf"((?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[{_AWS_ID}]{{16}})(?![A-Za-z0-9])"),
        ("A3T", "AKIA", "ASIA", "ABIA", "ACCA"),
        scan=True,
        left=_WORD,
        check=lambda v: not v.endswith("EXAMPLE") and shannon_entropy(v) >= 3.0,
    ),
    Rule(
        "aws-secret-access-key",
        "AWS secret access key (keyword-anchored)",
        _r(r"aws[\w.-]{0,25}?(?:secret|key)" + _ASSIGN + r"([a-z0-9/+]{40})(?![a-z0-9/+=])"),
        ("aws",),
        icase=True,
        check=lambda v: "EXAMPLEKEY" not in v and shannon_entropy(v) >= 3.5,
    ),
    Rule(
        "aws-bedrock-api-key",
        "AWS Bedrock long-term API key",
        _r(r"(ABSK[A-Za-z0-9+/]{100,300}+={0,2})"),
        ("ABSK",),
        left=_WORD | _B64_CHARS,
        check=_token_ok,
    ),
    Rule(
        "github-pat",
        "GitHub classic personal access token",
        _r(r"(ghp_[A-Za-z0-9]{36})(?![A-Za-z0-9])"),
        ("ghp_",),
        left=_WORD,
        check=_token_ok,
    ),
    Rule(
        "github-fine-grained-pat",
        "GitHub fine-grained personal access token",
        _r(r"(github_pat_[A-Za-z0-9_]{82})(?![A-Za-z0-9_])"),
        ("github_pat_",),
        left=_WORD,
        check=_token_ok,
    ),
    Rule(
        "github-app-token",
        "GitHub OAuth / user-to-server / server-to-server / refresh token",
        _r(r"(gh[ousr]_[A-Za-z0-9]{36,76}+)(?![A-Za-z0-9])"),
        ("gho_", "ghu_", "ghs_", "ghr_"),
        scan=True,
        left=_WORD,
        check=_token_ok,
    ),
    Rule(
        "gitlab-pat",
        "GitLab personal access token",
        _r(r"(glpat-[A-Za-z0-9_-]{20,64}+)(?![A-Za-z0-9_-])"),
        ("glpat-",),
        left=_WORD,
        check=_token_ok,
    ),
    Rule(
        "slack-token",
        "Slack bot/user/app token",
        _r(r"(xox[abprse]-[0-9]{6,14}+-[A-Za-z0-9-]{8,200}+)"),
        ("xox",),
        left=_WORD,
        check=_token_ok,
    ),
    Rule(
        "slack-webhook-url",
        "Slack incoming webhook URL",
        _r(r"(hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/+-]{40,160}+)"),
        ("hooks.slack.com/",),
    ),
    Rule(
        "gcp-api-key",
        "Google Cloud API key",
        _r(r"(AIza[A-Za-z0-9_-]{35})(?![A-Za-z0-9_-])"),
        ("AIza",),
        left=_TOKEN_CHARS,
        check=_token_ok,
    ),
    Rule(
        "gcp-service-account",
        "Google Cloud service-account JSON with a private key",
        _r(r"(\"type\"[ \t]{0,5}+:[ \t\r\n]{0,5}+\"service_account\")"),
        ('"type"',),
        requires=('"private_key"',),
    ),
    Rule(
        "azure-ad-client-secret",
        "Azure AD client secret",
        _r(r"([A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}+)(?![A-Za-z0-9_~.-])"),
        ("Q~",),
        # the anchor sits 4 characters into the secret; the engine backs up (see _BACK)
    ),
    Rule(
        "pypi-upload-token",
        "PyPI upload token",
        _r(r"(pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,1000}+)"),
        ("pypi-AgEIcHlwaS5vcmc",),
        left=_WORD,
    ),
    Rule(
        "npm-access-token",
        "npm access token",
        _r(r"(npm_[A-Za-z0-9]{36})(?![A-Za-z0-9])"),
        ("npm_",),
        left=_WORD,
        check=_token_ok,
    ),
    Rule(
        "putty-private-key",
        "PuTTY private key file",
        _r(r"(PuTTY-User-Key-File-\d: [\w-]{3,40}+)"),
        ("PuTTY-User-Key-File-",),
    ),
    Rule(
        "jwt",
        "JSON Web Token",
        _r(r"(ey[A-Za-z0-9]{17,4096}+\.ey[A-Za-z0-9/\\_-]{17,8192}+\.(?:[A-Za-z0-9/\\_-]{10,8192}+={0,2})?)"),
        ("eyJ",),  # a JWT header is base64url('{"…') = "eyJ…"
        left=_WORD,
    ),
    Rule(
        "wandb-api-key",
        "Weights & Biases API key",
        _r(r"wandb[^\n]{0,80}?(?<![0-9a-f])([0-9a-f]{40})(?![0-9a-f])"),
        ("wandb",),
        icase=True,
        check=lambda v: shannon_entropy(v) >= 3.0,
    ),
    Rule(
        "replicate-api-token",
        "Replicate API token",
        _r(r"(r8_[A-Za-z0-9_-]{37})(?![A-Za-z0-9_-])"),
        ("r8_",),
        left=_WORD,
        check=_token_ok,
    ),
    Rule(
        "groq-api-key",
        "Groq API key",
        _r(r"(gsk_[A-Za-z0-9]{52})(?![A-Za-z0-9])"),
        ("gsk_",),
        left=_WORD,
        check=_token_ok,
    ),
    Rule(
        "cohere-api-key",
        "Cohere API key (keyword-anchored)",
        _r(r"(?:cohere|co_api_key)" + _ASSIGN + r"([a-z0-9]{40})(?![a-z0-9])"),
        ("cohere", "co_api_key"),
        icase=True,
        check=lambda v: shannon_entropy(v) >= 3.5,
    ),
    Rule(
        "kaggle-api-key",
        "Kaggle API key (kaggle.json)",
        _r(r"\"key\"[ \t]{0,5}+:[ \t\r\n]{0,5}+\"([0-9a-f]{32})\""),
        ('"key"',),
        requires=('"username"',),
        check=lambda v: shannon_entropy(v) >= 3.0,
    ),
    Rule(
        "stripe-secret-key",
        "Stripe secret or restricted key",
        _r(r"([sr]k_(?:live|test|prod)_[A-Za-z0-9]{10,99}+)(?![A-Za-z0-9])"),
        ("k_live_", "k_test_", "k_prod_"),
        left=_WORD,
        check=_token_ok,
    ),
    Rule(
        "databricks-token",
        "Databricks personal access token",
        _r(r"(dapi[a-f0-9]{32}(?:-\d)?)(?![A-Za-z0-9])"),
        ("dapi",),
        left=_WORD,
        check=lambda v: shannon_entropy(v) >= 3.0,
    ),
    Rule(
        "url-credentials",
        "URL with an embedded password",
        _r(r"://[^\s:@/\"'<>`]{1,100}+:([^\s:@/\"'<>`]{3,200}+)@[A-Za-z0-9_.\[-]"),
        ("://",),
        check=_url_password_ok,
    ),
    Rule(
        "generic-secret-assignment",
        "High-entropy value assigned to a key/token/secret/password variable",
        _r(
            r"(?:key|secret|token|passw(?:or)?d|pwd|credentials?)"
            + _ASSIGN
            + r"([a-z0-9+/_.~!@#^&*=-]{12,200}+)(?![(\[])"  # not a call or subscript
        ),
        ("key", "secret", "token", "passw", "pwd", "credential"),
        icase=True,
        check=_generic_ok,
    ),
)

# How far before its anchor a rule's match starts (the anchor is not the first character).
_BACK = {"azure-ad-client-secret": 4, "stripe-secret-key": 1}
_ANCHORS: dict[str, tuple[bytes, ...]] = {r.id: tuple(a.encode() for a in r.anchors) for r in RULES}
_REQUIRES: dict[str, tuple[bytes, ...]] = {r.id: tuple(a.encode() for a in r.requires) for r in RULES}

PRIVATE_KEY_RULE = "private-key"
_PEM_BEGIN_RE = re.compile(rb"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END_RE = re.compile(rb"-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----")
_PEM_MAX_BODY = 64 * 1024

#: Every content rule id (28 formats: the table above plus the procedural private-key rule).
RULE_IDS: tuple[str, ...] = (*(r.id for r in RULES), PRIVATE_KEY_RULE)

# --------------------------------------------------------------------------------------------------
# File-name rules (SEC-1)
# --------------------------------------------------------------------------------------------------

_NAME_EXACT = {
    ".env": "dotenv-file",
    "id_rsa": "ssh-private-key-file",
    "id_dsa": "ssh-private-key-file",
    "id_ecdsa": "ssh-private-key-file",
    "id_ed25519": "ssh-private-key-file",
    ".netrc": "netrc-file",
    "_netrc": "netrc-file",
    ".git-credentials": "git-credentials-file",
    ".npmrc": "npmrc-file",
    ".pypirc": "pypirc-file",
    "credentials.json": "credentials-file",
    "kaggle.json": "kaggle-credentials-file",
    ".htpasswd": "htpasswd-file",
    ".pgpass": "pgpass-file",
    ".dockercfg": "docker-credentials-file",
}
_NAME_SUFFIX = {
    ".pem": "pem-file",
    ".key": "private-key-file",
    ".p12": "pkcs12-file",
    ".pfx": "pkcs12-file",
    ".jks": "java-keystore-file",
    ".keystore": "java-keystore-file",
    ".kdbx": "keepass-file",
    ".ppk": "putty-key-file",
    ".tfstate": "terraform-state-file",
}
_ENV_TEMPLATES = {".env.example", ".env.sample", ".env.template", ".env.dist"}


def filename_rule(path: str) -> str | None:
    """The SEC-1 rule a repo path trips, or None.  Case-insensitive; looks at every component."""
    p = PurePosixPath(path.replace("\\", "/").lower())
    parts = p.parts
    name = p.name
    if name in _NAME_EXACT:
        return _NAME_EXACT[name]
    if name.startswith(".env.") and name not in _ENV_TEMPLATES:
        return "dotenv-file"
    for suf, rule in _NAME_SUFFIX.items():
        if name.endswith(suf):
            return rule
    if len(parts) >= 2 and parts[-2] == ".aws" and name in {"credentials", "config"}:
        return "aws-credentials-file"
    if len(parts) >= 2 and parts[-2] in {".huggingface", "huggingface"} and name in {"token", "stored_tokens"}:
        return "huggingface-token-file"
    if len(parts) >= 2 and parts[-2] == ".docker" and name == "config.json":
        return "docker-credentials-file"
    if name.endswith(".json") and ("service-account" in name or "service_account" in name or name.endswith("-sa.json")):
        return "gcp-service-account-file"
    return None


#: Content that could not be scanned fully (limit, missing codec, corrupt stream): a finding, never a skip.
INCOMPLETE_RULE = "scan-incomplete"

_RAW_PREFIXES: dict[str, tuple[str, ...]] = {
    "huggingface-access-token": ("hf_",),
    "huggingface-org-token": ("api_org_",),
    "openai-api-key": ("sk-",),
    "anthropic-api-key": ("sk-ant-",),
    "aws-access-key-id": ("A3T", "AKIA", "ASIA", "ABIA", "ACCA"),
    "aws-bedrock-api-key": ("ABSK",),
    "github-pat": ("ghp_",),
    "github-fine-grained-pat": ("github_pat_",),
    "github-app-token": ("gho_", "ghu_", "ghs_", "ghr_"),
    "gitlab-pat": ("glpat-",),
    "slack-token": ("xox",),
    "gcp-api-key": ("AIza",),
    "pypi-upload-token": ("pypi-AgEI",),
    "npm-access-token": ("npm_",),
    "putty-private-key": ("PuTTY-User-Key-File-",),
    "replicate-api-token": ("r8_",),
    "groq-api-key": ("gsk_",),
    "stripe-secret-key": tuple(f"{a}k_{b}_" for a in "sr" for b in ("live", "test", "prod")),
    "databricks-token": ("dapi",),
}
# Rules whose loose form is not just "drop the trailing lookahead".
_LOOSE_OVERRIDE = {
    "anthropic-api-key": r"(sk-ant-(?:api03|admin01)-[A-Za-z0-9_-]{78,98}AA)",
}
_LOOKAHEAD_END = re.compile(rb"\(\?!\[[^\]]*\]\)$")


def _loose(rule: Rule) -> re.Pattern[bytes]:
    if rule.id in _LOOSE_OVERRIDE:
        return _r(_LOOSE_OVERRIDE[rule.id])
    return re.compile(_LOOKAHEAD_END.sub(b"", rule.regex.pattern))


HIGH_CONFIDENCE: tuple[RawRule, ...] = tuple(
    RawRule(r, tuple(p.encode() for p in _RAW_PREFIXES[r.id]), _loose(r)) for r in RULES if r.id in _RAW_PREFIXES
)
#: The ids the raw scan reports (the procedural private-key rule included).
HIGH_CONFIDENCE_IDS: tuple[str, ...] = (*(r.rule.id for r in HIGH_CONFIDENCE), PRIVATE_KEY_RULE)
PEM_BEGIN = b"-----BEGIN"
