"""Raw scan: the high-confidence token formats in *every byte* of a stream, in ASCII/UTF-8, UTF-16 and UTF-32.

Two stages per 4 MiB chunk (plus a seam scan of 72 KiB on each side of every chunk boundary, so a token
or a private-key block across it is seen whole):

1. **Prefilter** (C speed).  The run alphabet is letters, digits, ``_``, ``-`` and space; every
   high-confidence token is 18+ characters of it.  In a binary chunk, the even bytes are translated
   (token character or NUL -> ``a``) and searched for ``a``×8: any ASCII, UTF-16 or UTF-32 run of 16+
   characters leaves that trace, random tensor bytes about once per 128 KiB.  Around each trace, the full
   bytes are translated (token character -> ``a``, NUL -> ``z``) and searched for ``a``×16 (ASCII/UTF-8),
   ``az``×16 (UTF-16: big-endian ASCII shifted by one byte reads as little-endian, so one needle serves
   both byte orders) and ``azzz``×16 (UTF-32).  A NUL-free (text) chunk has no UTF-16/32 run at all.
2. **Rules at candidates only**: inside each run, one regex of the literal prefixes (:data:`PREFIX_RE`),
   then the rule itself at each prefix, its placeholder check, and the private-key block check at
   ``-----BEGIN``.

Text keeps the rules' word boundaries; chunks with a NUL byte (binary payloads) use the loose variants
(:attr:`~.rules.RawRule.loose`), because the bytes around a token embedded in tensor data are arbitrary.
UTF-16/UTF-32 runs are decoded unit by unit and matched with their right boundary.  The secret never
leaves this module except inside :class:`RawHit` (for the fingerprint).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from dataclasses import dataclass

from batuta_sync.publish.secrets.rules import (
    HIGH_CONFIDENCE,
    PEM_BEGIN,
    PRIVATE_KEY_RULE,
    RawRule,
    redact_value,
)
from batuta_sync.publish.secrets.text import _scan_private_keys

CHUNK = 4 << 20
MIN_RUN = 16  # the shortest high-confidence token (sk_live_ + 10) has 18 characters
PEM_WINDOW = 16 * 1024  # characters searched after a "-----BEGIN" (blocks up to half of it are seen whole)
_TAIL = 48  # characters after a UTF-16/32 run a rule may still need ("PuTTY-User-Key-File-2: ssh-rsa")
OVERLAP = 4 * PEM_WINDOW + 8 * 1024  # a UTF-32 private-key window, plus slack

_TOKEN = frozenset((string.ascii_letters + string.digits + "_- ").encode())
_TABLE = bytes(0x61 if b in _TOKEN else 0x7A if b == 0 else 0x20 for b in range(256))
# (needle, code-unit size, run matcher, location tag)
_STAGES: tuple[tuple[bytes, int, re.Pattern[bytes], str], ...] = (
    (b"a" * MIN_RUN, 1, re.compile(rb"a+"), "bytes"),
    (b"az" * MIN_RUN, 2, re.compile(rb"(?:az)+"), "utf-16"),
    (b"azzz" * MIN_RUN, 4, re.compile(rb"(?:azzz)+"), "utf-32"),
)

# The coarse binary prefilter on the even bytes (see RawScanner._scan): token characters and NUL -> "a".
_HALF_TABLE = bytes(0x61 if b in _TOKEN or b == 0 else 0x20 for b in range(256))
_HALF_NEEDLE = b"a" * (MIN_RUN // 2)
_HALF_RUN = re.compile(rb"a+")
_PAD = 64  # bytes of neighbourhood checked around each trace

_BY_PREFIX: dict[bytes, tuple[RawRule, ...]] = {}
for _rr in HIGH_CONFIDENCE:
    for _p in _rr.prefixes:
        _BY_PREFIX[_p] = (*_BY_PREFIX.get(_p, ()), _rr)
# A matched prefix also starts every rule whose own prefix is a prefix of it ("sk-ant-" -> the "sk-" rule).
_CANDIDATES: dict[bytes, tuple[RawRule, ...]] = {
    p: tuple(rr for q, rrs in _BY_PREFIX.items() if p.startswith(q) for rr in rrs) for p in _BY_PREFIX
}
#: One regex of every literal prefix (longest first), plus the private-key header.
PREFIX_RE = re.compile(b"|".join(re.escape(p) for p in sorted((*_BY_PREFIX, PEM_BEGIN), key=len, reverse=True)))
_PEM_HINT = (b"PRIVATE KEY", PEM_BEGIN)


@dataclass(frozen=True)
class RawHit:
    rule: str
    secret: str
    offset: int  # byte offset of the match (of its run, for UTF-16/32) in the scanned stream
    encoding: str  # "bytes", "utf-16" or "utf-32"


def match_prefixes(buf: bytes, start: int, end: int, *, loose: bool, left: bool | None = None
                   ) -> Iterator[tuple[str, str, int]]:
    """(rule id, secret, offset) of each high-confidence match whose prefix starts in ``buf[start:end]``.

    ``loose``: the rules without boundary lookarounds (binary payloads); ``left`` (default: not loose):
    check the character before the prefix.
    """
    check_left = not loose if left is None else left
    pem_until = -1
    for m in PREFIX_RE.finditer(buf, start, end):
        pos = m.start()
        prefix = m.group()
        if prefix == PEM_BEGIN:
            # one window per PEM_WINDOW/2 (linear even for a flood of headers without END)
            if pos >= pem_until:
                pem_until = pos + PEM_WINDOW // 2
                for h in _scan_private_keys(buf[pos : pos + PEM_WINDOW]):
                    yield PRIVATE_KEY_RULE, h.secret, pos + h.offset
            continue
        for rr in _CANDIDATES[prefix]:
            rule = rr.rule
            if check_left and pos > 0 and buf[pos - 1] in rule.left:
                continue
            mm = rr.loose.match(buf, pos) if loose else rule.regex.match(buf, pos)
            if mm is None:
                continue
            secret = mm.group(rule.group).decode("latin-1")
            if rule.check is None or rule.check(secret):
                yield rule.id, secret, mm.start(rule.group)


class RawScanner:
    """Feed a stream in pieces of any size; :meth:`finish` returns every hit once (by rule and secret)."""

    def __init__(self, *, binary: bool, ascii: bool = True) -> None:
        self.binary = binary
        # ascii=False: text whose every byte the caller also runs through the text engine (all rules, same
        # strict regexes); only the UTF-16/UTF-32 stages are left to do here.
        self.ascii = ascii
        self._carry = b""
        self._parts: list[bytes] = []
        self._pending = 0
        self._base = 0  # stream offset of the next data to scan
        self._seen: set[tuple[str, str]] = set()
        self.hits: list[RawHit] = []
        self.scanned = 0  # bytes fed

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.scanned += len(data)
        self._parts.append(data)
        self._pending += len(data)
        if self._pending >= CHUNK:
            self._flush()

    def finish(self) -> list[RawHit]:
        if self._parts:
            self._flush()
        return self.hits

    def _flush(self) -> None:
        data = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._parts, self._pending = [], 0
        if self._carry:
            # the seam: what crosses the previous boundary (tokens, a private-key window) is seen whole here
            self._scan(self._carry + data[:OVERLAP], self._base - len(self._carry))
        self._scan(data, self._base)
        self._carry = data[-OVERLAP:]
        self._base += len(data)

    def _add(self, rule: str, secret: str, offset: int, encoding: str) -> None:
        key = (rule, secret)
        if key not in self._seen:
            self._seen.add(key)
            self.hits.append(RawHit(rule, secret, offset, encoding))

    def _scan(self, buf: bytes, base: int) -> None:
        # A NUL byte makes a chunk binary whatever the file's head said (a text head on a binary payload).
        if not self.binary and b"\x00" not in buf:
            # text: no NUL, so no UTF-16/32 run; the prefix regex over the whole buffer (runs would be nearly
            # every line), unless the caller runs the text engine over these bytes anyway
            if self.ascii:
                for rid, secret, off in match_prefixes(buf, 0, len(buf), loose=False):
                    self._add(rid, secret, base + off, "bytes")
            return
        # Binary: a first, coarser prefilter on the even bytes only (half the data to translate and search,
        # one needle).  A 16+ run of any stage leaves 8+ "a" there (token characters or NULs): ASCII -> every
        # other character; UTF-16 -> its characters or its NULs; UTF-32 -> characters and NULs alternating,
        # or NULs.  Each trace is then checked at full resolution on its neighbourhood.
        half = buf[::2].translate(_HALF_TABLE)
        spans: list[tuple[int, int]] = []
        pos = half.find(_HALF_NEEDLE)
        while pos != -1:
            m = _HALF_RUN.match(half, pos)
            end = m.end() if m else pos + len(_HALF_NEEDLE)
            spans.append((max(0, 2 * pos - _PAD), min(len(buf), 2 * end + _PAD)))
            pos = half.find(_HALF_NEEDLE, end)
        spans.sort()
        lo = hi = -1
        for a, b in spans:
            if a > hi:
                if hi > lo:
                    self._scan_range(buf, lo, hi, base)
                lo = a
            hi = max(hi, b)
        if hi > lo:
            self._scan_range(buf, lo, hi, base)

    def _scan_range(self, buf: bytes, lo: int, hi: int, base: int) -> None:
        """Full-resolution prefilter on ``buf[lo:hi]``; rules read ``buf`` past ``hi`` when they need to."""
        tr = buf[lo:hi].translate(_TABLE)
        for needle, unit, run_re, tag in _STAGES:
            pos = tr.find(needle)
            while pos != -1:
                m = run_re.match(tr, pos)
                end = m.end() if m else pos + len(needle)
                if unit == 1:
                    for rid, secret, off in match_prefixes(buf, lo + pos, lo + end, loose=True):
                        self._add(rid, secret, base + off, tag)
                else:
                    self._wide_run(buf, lo + pos, lo + end, unit, base, tag)
                pos = tr.find(needle, end)

    def _wide_run(self, buf: bytes, pos: int, end: int, unit: int, base: int, tag: str) -> None:
        """A UTF-16/32 run: its ASCII characters (plus a tail) from the first one on, matched with boundaries."""
        n = (end - pos + unit - 1) // unit + 1
        dec = _wide_chars(buf, pos, end + unit * _TAIL, unit)
        if any(h in dec[: n + 1] for h in _PEM_HINT):
            dec = _wide_chars(buf, pos, pos + unit * PEM_WINDOW, unit)
        # the unit before a run may be noise that happens to look like a character: no left check; the
        # right boundary holds (after a token in binary bytes comes a non-character unit, i.e. NUL here)
        for rid, secret, off in match_prefixes(dec, 0, n, loose=False, left=False):
            self._add(rid, secret, base + pos + off * unit, tag)


def _wide_chars(buf: bytes, pos: int, hi: int, unit: int) -> bytes:
    """The code units of ``buf[pos:hi]`` (``unit`` bytes each, either byte order) as ASCII bytes; a unit
    whose other bytes are not zero (not an ASCII character: binary noise, other scripts) becomes NUL."""
    out = bytearray()
    n = len(buf)
    for k in range(pos, min(hi, n), unit):
        c = buf[k]
        le = k + unit <= n and not any(buf[k + 1 : k + unit])
        be = k - unit + 1 >= 0 and not any(buf[k - unit + 1 : k])
        out.append(c if c < 0x80 and (le or be) else 0)
    return bytes(out)


def looks_text(head: bytes) -> bool:
    """No NUL byte and valid UTF-8 (a character cut at the end of ``head`` allowed)."""
    if b"\x00" in head:
        return False
    for cut in range(4):
        try:
            head[: len(head) - cut].decode("utf-8")
            return True
        except UnicodeDecodeError:
            continue
    return False


def scan_raw(data: bytes, *, binary: bool | None = None) -> list[RawHit]:
    """Raw hits in ``data`` (``binary`` defaults to a sniff of its first 8 KiB)."""
    sc = RawScanner(binary=not looks_text(data[:8192]) if binary is None else binary)
    view = memoryview(data)
    for i in range(0, len(data), CHUNK):
        sc.feed(bytes(view[i : i + CHUNK]))
    return sc.finish()


def scan_name(path: str) -> list[tuple[str, str]]:
    """(rule id, secret) for tokens in any component of a path (loose: ``backup_hf_…`` counts)."""
    data = path.encode("utf-8", "surrogatepass")
    out: list[tuple[str, str]] = []
    for rid, secret, _off in match_prefixes(data, 0, len(data), loose=True):
        if (rid, secret) not in out:
            out.append((rid, secret))
    return out


def mask_path(path: str) -> str:
    """``path`` with every token in it redacted (a finding's path is printed; the token must not be)."""
    for _rid, secret in scan_name(path):
        path = path.replace(secret, redact_value(secret))
    return path
