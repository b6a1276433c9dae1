"""Text engine: all :data:`~.rules.RULES` over one text (bytes, UTF-8), plus encoded runs and JSON strings.

Every regex is anchored on a word boundary or a literal prefix and uses bounded, possessive repetition,
so matching is linear in the input (no catastrophic backtracking); a keyword pre-filter skips rules whose
literal keyword is absent.  Base64 / hex / percent-encoded runs are decoded and rescanned (SEC-4).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import re
import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from batuta_sync.publish.secrets.rules import (
    _ANCHORS,
    _BACK,
    _PEM_BEGIN_RE,
    _PEM_END_RE,
    _PEM_MAX_BODY,
    _REQUIRES,
    PRIVATE_KEY_RULE,
    RULES,
    Finding,
    fingerprint,
    redact_value,
)

MAX_DECODE_DEPTH = 2

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

