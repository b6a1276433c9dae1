"""Pre-push secret scanner (pure: bytes and text in, findings out; reads only local files).

What it looks at (docs/security.md, reference SEC-1..SEC-9):

* **file names** (``.env``, SSH keys, ``*.pem``, ``.netrc``, ``.npmrc``, ``.pypirc``, cloud credential files, …);
* **contents**: 28 token formats (:data:`RULES`), in plain text, after JSON-decoding (``*.json`` string
  values, notebook cell sources *and* outputs), inside base64/hex-wrapped strings (``decoded:base64``),
  in the ``__metadata__`` of safetensors headers, in GGUF string key/values, in the string constants of
  pickles (walked with :func:`pickletools.genops`, never unpickled), and in zip/tar members (depth ≤ 2);
* findings show ``file:line``, the rule and a *redacted* value (first characters + ``…``) with a
  fingerprint ``sha256(rule|path|secret)``; the secret itself never leaves this module.

Every regex is anchored on a word boundary or a literal prefix and uses bounded, possessive repetition,
so matching is linear in the input (no catastrophic backtracking); a keyword pre-filter skips rules whose
literal keyword is absent, which keeps the scanner well above 20 MB/s on text (tests/bench/bench_push.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import math
import pickletools
import re
import string
import struct
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

SCANNER_VERSION = "1"
ALLOW_FILE = ".batuta-secrets-allow"

# Limits (bounded work on hostile input).
MAX_TEXT_BYTES = 256 * 1024 * 1024  # text files larger than this are scanned in windows
_WINDOW = 8 * 1024 * 1024
_OVERLAP = 4096
MAX_ARCHIVE_DEPTH = 2
MAX_ARCHIVE_MEMBERS = 10_000
MAX_ARCHIVE_TOTAL = 1024 * 1024 * 1024
MAX_MEMBER_RATIO = 100
MAX_PICKLE_BYTES = 512 * 1024 * 1024
MAX_DECODE_DEPTH = 2


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


# --------------------------------------------------------------------------------------------------
# Text scanning
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Hit:
    rule: str
    secret: str
    offset: int  # offset of the secret in the scanned text
    decoded: str = ""


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


_ALNUM_BYTES = (string.ascii_letters + string.digits).encode()


def _scan_private_keys(data: bytes) -> Iterator[_Hit]:
    """PEM private-key blocks with ≥ 64 alphanumerics of body; ENDs are found once (linear)."""
    import bisect

    ends = [(m.start(), m.end()) for m in _PEM_END_RE.finditer(data)]
    if not ends:
        return
    starts = [e[0] for e in ends]
    pos = 0
    while True:
        m = _PEM_BEGIN_RE.search(data, pos)
        if not m:
            return
        i = bisect.bisect_left(starts, m.end())
        if i < len(ends) and ends[i][0] - m.end() <= _PEM_MAX_BODY:
            body = data[m.end() : ends[i][0]]
            if len(body) - len(body.translate(None, _ALNUM_BYTES)) >= 64:
                yield _Hit(PRIVATE_KEY_RULE, data[m.start() : ends[i][1]].decode("latin-1"), m.start())
                pos = ends[i][1]
                continue
        pos = m.end()


# One pass finds candidate runs for base64 (≥ 16 chars) and hex (≥ 32 chars, a subset of the alphabet).
_RUN_ALPHABET = frozenset((string.ascii_letters + string.digits + "+/_-").encode())
_RUN_TABLE = bytes((0x61 if b in _RUN_ALPHABET else 0x20) for b in range(256))
_RUN_NEEDLE = b"a" * 16
_HEX_RE = re.compile(rb"[0-9A-Fa-f]+")
_PCT_RUN_RE = re.compile(rb"%[0-9A-Fa-f]{2}(?:[^%\s\"'<>]{0,64}+%[0-9A-Fa-f]{2}){2,}+[^%\s\"'<>]{0,64}+")
_B64_HINT_RE = re.compile(rb"[0-9+/]")
_NONPRINT_RE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MAX_DECODE_RUN = 16384


def _printable(b: bytes) -> bytes | None:
    """``b`` if it is (almost all) printable UTF-8 text of 8+ bytes, else None."""
    if len(b) < 8:
        return None
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return None
    bad = len(_NONPRINT_RE.findall(b))
    return b if bad <= len(b) // 20 else None


def _decode_candidates(data: bytes) -> Iterator[tuple[bytes, int, str]]:
    """(decoded bytes, offset in ``data``, encoding) for base64 / hex / percent-encoded runs."""
    # Runs of the base64url/base64 alphabet, found with bytes.find on a translated copy (4x faster than
    # a character-class regex): alphabet -> "a", everything else -> " ".
    tr = data.translate(_RUN_TABLE)
    pos = tr.find(_RUN_NEEDLE)
    while pos != -1:
        end = tr.find(b" ", pos)
        if end == -1:
            end = len(tr)
        start = pos
        core = data[pos:end][:_MAX_DECODE_RUN]
        pos = tr.find(_RUN_NEEDLE, end)
        if len(core) >= 32 and len(core) % 2 == 0 and _HEX_RE.fullmatch(core):
            out = _printable(bytes.fromhex(core.decode("ascii")))
            if out:
                yield out, start, "hex"
            continue
        # identifiers and words are not base64 payloads: require a digit or + / somewhere
        if _B64_HINT_RE.search(core) is None:
            continue
        alt = core.replace(b"-", b"+").replace(b"_", b"/")
        try:
            decoded = base64.b64decode(alt + b"=" * (-len(alt) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        out = _printable(decoded)
        if out:
            yield out, start, "base64"
    if b"%" in data:
        from urllib.parse import unquote_to_bytes

        for m in _PCT_RUN_RE.finditer(data):
            # bounded: the first 256 KiB of a run (URL-encoded credentials are short)
            yield unquote_to_bytes(m.group()[: 16 * _MAX_DECODE_RUN]), m.start(), "percent"


def _scan_plain(data: bytes, depth: int = 0) -> list[_Hit]:
    """All rule hits in ``data`` (plus hits inside encoded runs, up to MAX_DECODE_DEPTH)."""
    hits: list[_Hit] = []
    lower: bytes | None = None
    for rule in RULES:
        requires = _REQUIRES[rule.id]
        if rule.icase or requires:
            if lower is None:
                lower = data.lower()  # ASCII-only, length-preserving
            if requires and not all(k in lower for k in requires):
                continue
        anchors = _ANCHORS[rule.id]
        if rule.icase and lower is not None:
            if not any(a in lower for a in anchors):
                continue
            for m in rule.regex.finditer(lower):
                s, e = m.span(rule.group)
                secret = data[s:e].decode("latin-1")
                if rule.check is None or rule.check(secret):
                    hits.append(_Hit(rule.id, secret, s))
            continue
        left = rule.left
        if rule.scan:
            for sm in rule.regex.finditer(data):
                st = sm.start()
                if left and st > 0 and data[st - 1] in left:
                    continue
                secret = sm.group(rule.group).decode("latin-1")
                if rule.check is None or rule.check(secret):
                    hits.append(_Hit(rule.id, secret, sm.start(rule.group)))
            continue
        back = _BACK.get(rule.id, 0)
        for anchor in anchors:
            pos = data.find(anchor)
            while pos != -1:
                start = pos - back
                if start >= 0 and not (left and start > 0 and data[start - 1] in left):
                    mm = rule.regex.match(data, start)
                    if mm is not None:
                        secret = mm.group(rule.group).decode("latin-1")
                        if rule.check is None or rule.check(secret):
                            hits.append(_Hit(rule.id, secret, mm.start(rule.group)))
                pos = data.find(anchor, pos + 1)
    if b"PRIVATE KEY" in data:
        hits.extend(_scan_private_keys(data))
    if depth < MAX_DECODE_DEPTH:
        for decoded, off, enc in _decode_candidates(data):
            for h in _scan_plain(decoded, depth + 1):
                tag = enc if not h.decoded else f"{enc}+{h.decoded}"
                hits.append(_Hit(h.rule, h.secret, off, tag))
    return hits


def _as_bytes(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")


def scan_text(text: str | bytes, path: str = "<text>", *, location: str = "") -> list[Finding]:
    """Findings for one text (``path`` is used for the fingerprint and the report)."""
    data = _as_bytes(text)
    out: list[Finding] = []
    seen: set[str] = set()
    for h in _scan_plain(data):
        # one finding per secret: the specific rules come before the generic assignment rule
        if h.secret in seen:
            continue
        seen.add(h.secret)
        loc = location
        if h.decoded:
            loc = f"{loc}:decoded:{h.decoded}" if loc else f"decoded:{h.decoded}"
        out.append(
            Finding(
                path=path,
                line=_line_of(data, h.offset),
                rule=h.rule,
                redacted=redact_value(h.secret),
                fingerprint=fingerprint(h.rule, path, h.secret),
                location=loc,
            )
        )
    return out


# --------------------------------------------------------------------------------------------------
# Structured containers
# --------------------------------------------------------------------------------------------------


def _json_strings(obj: object, where: str = "$") -> Iterator[tuple[str, str]]:
    """(json path, text) for every string value, as ``"key": "value"`` so keyword rules still see the key."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            sub = f"{where}.{k}"
            if isinstance(v, str):
                yield sub, f"{json.dumps(str(k))}: {json.dumps(v)}\n{k} = {v}"
            else:
                yield from _json_strings(v, sub)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _json_strings(v, f"{where}[{i}]")
    elif isinstance(obj, str):
        yield where, obj


def _notebook_texts(nb: Mapping[str, object]) -> Iterator[tuple[str, str]]:
    cells = nb.get("cells")
    if not isinstance(cells, list):
        return
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict):
            continue
        src = cell.get("source")
        if isinstance(src, list):
            src = "".join(s for s in src if isinstance(s, str))
        if isinstance(src, str) and src:
            yield f"cell[{i}].source", src
        outputs = cell.get("outputs")
        if isinstance(outputs, list):
            for j, o in enumerate(outputs):
                parts: list[str] = []
                for _, s in _json_strings(o):
                    parts.append(s)
                if parts:
                    yield f"cell[{i}].outputs[{j}]", "\n".join(parts)


def _merge(primary: list[Finding], extra: Iterable[Finding]) -> list[Finding]:
    """Add findings of ``extra`` whose (rule, fingerprint) is new."""
    seen = {(f.rule, f.fingerprint) for f in primary}
    for f in extra:
        if (f.rule, f.fingerprint) not in seen:
            seen.add((f.rule, f.fingerprint))
            primary.append(f)
    return primary


def scan_json_text(text: str | bytes, path: str) -> list[Finding]:
    """Raw text scan, plus the JSON-decoded strings (notebook cells get cell locations)."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return scan_text(text, path)
    structured: list[Finding] = []
    if isinstance(doc, dict) and isinstance(doc.get("cells"), list):
        for loc, t in _notebook_texts(doc):
            structured.extend(scan_text(t, path, location=loc))
    raw = scan_text(text, path)
    findings = _merge(structured, raw)
    # Strings whose escapes hide a token from the raw scan (\" \n \uXXXX): scan the decoded values once,
    # joined, and map each new hit back to the JSON path of its string.
    wheres: list[str] = []
    starts: list[int] = []
    parts: list[bytes] = []
    pos = 0
    for where, s in _json_strings(doc):
        b = _as_bytes(s)
        wheres.append(where)
        starts.append(pos)
        parts.append(b)
        pos += len(b) + 1
    if parts:
        import bisect

        joined = b"\n".join(parts)
        known = {(f.rule, f.fingerprint) for f in findings}
        for h in _scan_plain(joined):
            fp = fingerprint(h.rule, path, h.secret)
            if (h.rule, fp) in known:
                continue
            known.add((h.rule, fp))
            i = max(0, bisect.bisect_right(starts, h.offset) - 1)
            loc = wheres[i] + (f":decoded:{h.decoded}" if h.decoded else "")
            findings.append(Finding(path, 0, h.rule, redact_value(h.secret), fp, loc))
    return findings


def safetensors_metadata(data: bytes) -> dict[str, str] | None:
    """The ``__metadata__`` map of a safetensors header (header bytes only), or None if unreadable."""
    if len(data) < 8:
        return None
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        return None
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict):
        return None
    return {str(k): str(v) for k, v in meta.items()}


_PICKLE_STR_OPS = {
    "STRING",
    "BINSTRING",
    "SHORT_BINSTRING",
    "UNICODE",
    "BINUNICODE",
    "SHORT_BINUNICODE",
    "BINUNICODE8",
    "BINBYTES",
    "SHORT_BINBYTES",
    "BINBYTES8",
    "BYTEARRAY8",
    "GLOBAL",
    "INST",
}


def pickle_strings(data: bytes) -> list[str]:
    """String constants of a pickle stream, by walking opcodes (never unpickling)."""
    out: list[str] = []
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        try:
            for op, arg, _pos in pickletools.genops(stream):
                if op.name in _PICKLE_STR_OPS and arg is not None:
                    if isinstance(arg, (bytes, bytearray)):
                        if len(arg) <= 1 << 20:
                            out.append(bytes(arg).decode("latin-1"))
                    else:
                        out.append(str(arg))
        except Exception:  # malformed tail: keep what we have
            break
        # several pickles may be concatenated (torch legacy format); genops stops at STOP
        if stream.tell() < len(data) and data[stream.tell() : stream.tell() + 1] != b"\x80":
            break
    return out


_ASCII_RUN_RE = re.compile(rb"[\x20-\x7e\t\n\r]{16,}")


def binary_strings(data: bytes) -> bytes:
    """``strings(1)``: printable ASCII runs of 16+ bytes, one per line."""
    return b"\n".join(_ASCII_RUN_RE.findall(data))


def is_pickle_bytes(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


# --------------------------------------------------------------------------------------------------
# File scanning
# --------------------------------------------------------------------------------------------------

_TEXT_SUFFIXES = {
    ".py", ".txt", ".md", ".json", ".jsonl", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf", ".sh",
    ".env", ".ipynb", ".csv", ".tsv", ".js", ".ts", ".html", ".xml", ".properties", ".r", ".sql",
}


def _read_safetensors_header(fh: io.BufferedReader, size: int) -> bytes:
    head = fh.read(8)
    if len(head) < 8:
        return head
    (n,) = struct.unpack("<Q", head)
    if n > min(size - 8, 100_000_000):
        return head
    return head + fh.read(n)


def scan_bytes(data: bytes, path: str, *, depth: int = 0) -> list[Finding]:
    """Scan one file's content (already in memory).  Dispatches on content and name."""
    name = path.rsplit("!", 1)[-1].lower()
    if name.endswith(".safetensors"):
        meta = safetensors_metadata(data)
        text = "\n".join(f"{k}: {v}" for k, v in (meta or {}).items())
        return scan_text(text, path, location="__metadata__") if text else []
    if data[:4] == b"GGUF":
        return _scan_gguf_bytes(data, path)
    if is_pickle_bytes(data[:2]) or name.endswith((".pkl", ".pickle")):
        return scan_text("\n".join(pickle_strings(data[:MAX_PICKLE_BYTES])), path, location="pickle")
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        return _scan_zip(data, path, depth)
    if _looks_tar(name, data):
        return _scan_tar(data, path, depth)
    head = data[:8192]
    if b"\x00" in head and not name.endswith(tuple(_TEXT_SUFFIXES)):
        return scan_text(binary_strings(data), path, location="strings")
    if name.endswith((".json", ".ipynb")):
        return scan_json_text(data, path)
    return scan_text(data, path)


def _scan_gguf_bytes(data: bytes, path: str) -> list[Finding]:
    from batuta_sync.publish.validate import ValidationError, read_gguf_strings

    try:
        strings = read_gguf_strings(io.BytesIO(data), len(data))
    except ValidationError:
        return scan_text(binary_strings(data[: 64 * 1024 * 1024]), path, location="strings")
    return scan_text("\n".join(f"{k}: {v}" for k, v in strings), path, location="gguf-metadata")


def _looks_tar(name: str, data: bytes) -> bool:
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return True
    return len(data) > 262 and data[257:262] == b"ustar"


def _member_ok(name: str) -> bool:
    n = name.replace("\\", "/")
    return not (n.startswith("/") or ".." in n.split("/") or ":" in n.split("/")[0])


_TORCH_STORAGE_RE = re.compile(r"(?:^|/)data/\d+$")


def _scan_zip(data: bytes | BinaryIO, path: str, depth: int) -> list[Finding]:
    """Zip members (read one at a time; ``data`` may be an open file, so big checkpoints are streamed).

    Raw tensor storages of torch checkpoints (``archive/data/0``…) are skipped like tensor data of
    safetensors files: only the pickle (``data.pkl``) and other members are scanned.
    """
    out: list[Finding] = []
    if depth >= MAX_ARCHIVE_DEPTH:
        return out
    try:
        zf = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
    except (zipfile.BadZipFile, ValueError, OSError):
        if isinstance(data, bytes):
            return scan_text(binary_strings(data), path, location="strings")
        return out
    total = 0
    with zf:
        for info in zf.infolist()[:MAX_ARCHIVE_MEMBERS]:
            if info.is_dir() or not _member_ok(info.filename):
                continue
            inner = f"{path}!{info.filename}"
            rule = filename_rule(info.filename)
            if rule:
                out.append(Finding(inner, 0, rule, PurePosixPath(info.filename).name, fingerprint(rule, inner, "")))
            if info.flag_bits & 0x1:
                continue  # encrypted member: cannot inspect; its name was checked
            if info.compress_size and info.file_size / max(info.compress_size, 1) > MAX_MEMBER_RATIO:
                continue
            if _TORCH_STORAGE_RE.search(info.filename):
                continue
            total += info.file_size
            if total > MAX_ARCHIVE_TOTAL:
                break
            try:
                member = zf.read(info)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError, ValueError):
                continue
            out.extend(scan_bytes(member, inner, depth=depth + 1))
    return out


def _scan_tar(data: bytes, path: str, depth: int) -> list[Finding]:
    out: list[Finding] = []
    if depth >= MAX_ARCHIVE_DEPTH:
        return out
    try:
        tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")  # noqa: SIM115 - closed by `with` below
    except (tarfile.TarError, OSError, EOFError):
        return scan_text(binary_strings(data), path, location="strings")
    total = 0
    with tf:
        for count, member in enumerate(tf):
            if count >= MAX_ARCHIVE_MEMBERS:
                break
            if not member.isfile() or not _member_ok(member.name):
                continue
            inner = f"{path}!{member.name}"
            rule = filename_rule(member.name)
            if rule:
                out.append(Finding(inner, 0, rule, PurePosixPath(member.name).name, fingerprint(rule, inner, "")))
            total += member.size
            if total > MAX_ARCHIVE_TOTAL:
                break
            fh = tf.extractfile(member)
            if fh is None:
                continue
            out.extend(scan_bytes(fh.read(), inner, depth=depth + 1))
    return out


def scan_file(file: Path, rel: str) -> list[Finding]:
    """Scan one local file: name rule + content (weights are header-only; big text is windowed)."""
    findings: list[Finding] = []
    rule = filename_rule(rel)
    if rule:
        findings.append(Finding(rel, 0, rule, PurePosixPath(rel).name, fingerprint(rule, rel, "")))
    size = file.stat().st_size
    lower = rel.lower()
    with open(file, "rb") as fh:
        if lower.endswith(".safetensors"):
            return findings + scan_bytes(_read_safetensors_header(fh, size), rel)
        head = fh.read(8)
        fh.seek(0)
        if head[:4] == b"GGUF":
            from batuta_sync.publish.validate import ValidationError, read_gguf_strings

            try:
                strings = read_gguf_strings(fh, size)
            except ValidationError:
                strings = []
            text = "\n".join(f"{k}: {v}" for k, v in strings)
            return findings + scan_text(text, rel, location="gguf-metadata")
        if head[:4] == b"PK\x03\x04" and not rel.lower().endswith((".txt", ".md", ".json")):
            return findings + _scan_zip(fh, rel, 0)
        if size <= MAX_TEXT_BYTES or is_pickle_bytes(head):
            return findings + scan_bytes(fh.read(MAX_PICKLE_BYTES if size > MAX_TEXT_BYTES else -1), rel)
        # Very large non-weight file: scan in overlapping windows of its text / strings.
        seen: set[str] = set()
        line_base = 0
        while True:
            chunk = fh.read(_WINDOW)
            if not chunk:
                break
            nxt = fh.peek(_OVERLAP)[:_OVERLAP] if hasattr(fh, "peek") else b""
            window = chunk + nxt
            binary = b"\x00" in window[:8192]
            blob = binary_strings(window) if binary else window
            for f in scan_text(blob, rel, location="strings" if binary else ""):
                if f.fingerprint not in seen:
                    seen.add(f.fingerprint)
                    findings.append(
                        Finding(f.path, (f.line + line_base) if not binary else 0, f.rule, f.redacted,
                                f.fingerprint, f.location)
                    )
            if not binary:
                line_base += chunk.count(b"\n")
    return findings


# --------------------------------------------------------------------------------------------------
# Suppression
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Allowlist:
    """Suppression by fingerprint only (no path wildcards): a prefix of ≥ 16 hex digits is enough."""

    fingerprints: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def load(cls, root: Path, extra: Sequence[str] = ()) -> Allowlist:
        fps: set[str] = {e.strip().lower() for e in extra if e.strip()}
        f = root / ALLOW_FILE
        if f.is_file():
            for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
                entry = line.split("#", 1)[0].strip().lower()
                if entry:
                    fps.add(entry)
        for fp in fps:
            if not re.fullmatch(r"[0-9a-f]{16,64}", fp):
                from batuta_sync.errors import UsageError

                raise UsageError(
                    f"{fp[:20]!r} is not a finding fingerprint.",
                    hint=f"Copy the fingerprint (16+ hex digits) a finding prints into {ALLOW_FILE} or --allow-secret.",
                )
        return cls(frozenset(fps))

    def allows(self, f: Finding) -> bool:
        return any(f.fingerprint.startswith(fp) for fp in self.fingerprints)


def filter_allowed(findings: Iterable[Finding], allow: Allowlist) -> list[Finding]:
    return [f for f in findings if not allow.allows(f)]


def scan_tree(root: Path, paths: Iterable[str]) -> list[Finding]:
    """Scan the given repo-relative paths under ``root`` (no suppression applied)."""
    out: list[Finding] = []
    for rel in paths:
        out.extend(scan_file(root / rel, rel))
    return out


def format_findings(findings: Sequence[Finding]) -> str:
    lines = [f"  {f}" for f in findings]
    return "\n".join(lines)
