"""Where the scanner looks: every byte of every uploaded file, through containers and compressed streams.

For each uploaded path (:func:`scan_file`):

1. **name** — :func:`~.rules.filename_rule` on the path, and the raw token scan on the path string (every
   component: a token used as a file or directory name is a finding);
2. **every byte** — the content goes through the raw scan (:class:`~.raw.RawScanner`: the high-confidence
   prefixed tokens in ASCII, UTF-16 and UTF-32), whatever the type — tensor data included;
3. **structure**, by content first, then name — safetensors ``__metadata__``, GGUF string KVs, pickle
   string constants, JSON / notebooks, UTF-16/32 text, plain text (all 28 rules), binary strings; a file
   whose head mimics a binary magic but whose body is text also gets the text scan; zip and tar members
   recursively; gzip / bz2 / xz / zstd streams decompressed (streaming) and scanned as content;
4. **limits are findings** (rule ``scan-incomplete``), never a silent skip: more members than
   :data:`MAX_ARCHIVE_MEMBERS`, nesting deeper than :data:`MAX_ARCHIVE_DEPTH`, more decompressed bytes
   than :data:`MAX_DECOMPRESSED` or a ratio above :data:`MAX_RATIO` (bombs), encrypted members, a
   corrupt stream, a zstd file without the ``zstandard`` package.  They block a push unless their
   fingerprint is allow-listed, like any finding.
"""

from __future__ import annotations

import io
import os
import re
import struct
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol, cast

from batuta_sync.publish.secrets.formats import (
    binary_strings,
    is_pickle_bytes,
    pickle_strings,
    safetensors_header,
)
from batuta_sync.publish.secrets.raw import CHUNK, RawHit, RawScanner, looks_text, mask_path, scan_name
from batuta_sync.publish.secrets.rules import (
    INCOMPLETE_RULE,
    Finding,
    filename_rule,
    fingerprint,
    redact_value,
)
from batuta_sync.publish.secrets.text import scan_json_text, scan_text

# Limits (bounded work on hostile input; reaching one is a scan-incomplete finding).
MAX_TEXT_BYTES = 256 * 1024 * 1024  # content buffered for structured scanning; larger is scanned in windows
_WINDOW = 8 * 1024 * 1024
_OVERLAP = 4096
MAX_ARCHIVE_DEPTH = 3  # container layers (zip, tar, gzip/bz2/xz/zstd) opened inside one uploaded file
MAX_ARCHIVE_MEMBERS = 10_000  # per archive
MAX_DECOMPRESSED = 8 * 1024**3  # bytes produced by decompression, all layers of one uploaded file
MAX_RATIO = 1000  # decompressed : compressed, enforced past RATIO_GRACE bytes of output
RATIO_GRACE = 256 * 1024 * 1024
MAX_PICKLE_BYTES = 512 * 1024 * 1024

_TEXT_SUFFIXES = (
    ".py", ".txt", ".md", ".json", ".jsonl", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf", ".sh",
    ".env", ".ipynb", ".csv", ".tsv", ".js", ".ts", ".html", ".xml", ".properties", ".r", ".sql",
)
_COMPRESSED_SUFFIX = {".gz": "", ".tgz": ".tar", ".bz2": "", ".tbz2": ".tar", ".xz": "", ".txz": ".tar",
                      ".lzma": "", ".zst": "", ".zstd": "", ".tzst": ".tar"}
_TORCH_STORAGE_RE = re.compile(r"(?:^|/)data/\d+$")


class _Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class _Limit(Exception):
    """A scan limit was reached (caught where the layer that enforces it was opened)."""


class _Report:
    """Findings of one uploaded file, deduplicated by (rule, fingerprint).  A raw hit in a container's own
    bytes (a stored member, a tar block) is dropped when a member or name already reported that secret."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self._keys: set[tuple[str, str]] = set()
        self._paths: set[str] = set()  # paths that have findings
        self.decompressed = 0

    def add(self, findings: Iterable[Finding]) -> None:
        for f in findings:
            key = (f.rule, f.fingerprint)
            if key not in self._keys:
                self._keys.add(key)
                self._paths.add(f.path)
                masked = mask_path(f.path)  # the fingerprint keeps the real path; the printed one is redacted
                self.findings.append(f if masked == f.path else replace(f, path=masked))

    def raw(self, path: str, hits: Sequence[RawHit], *, container: bool = False) -> None:
        for h in hits:
            if container and any((h.rule, fingerprint(h.rule, p, h.secret)) in self._keys for p in self._paths):
                continue
            fp = fingerprint(h.rule, path, h.secret)
            self.add([Finding(path, 0, h.rule, redact_value(h.secret), fp, f"{h.encoding}@{h.offset}")])

    def incomplete(self, path: str, reason: str) -> None:
        self.add([Finding(path, 0, INCOMPLETE_RULE, f"could not scan fully: {reason}",
                          fingerprint(INCOMPLETE_RULE, path, reason))])

    def name(self, path: str, name: str) -> None:
        rule = filename_rule(name)
        if rule:
            shown = mask_path(PurePosixPath(name).name)
            self.add([Finding(path, 0, rule, shown, fingerprint(rule, path, ""))])
        for rid, secret in scan_name(name):
            self.add([Finding(path, 0, rid, redact_value(secret), fingerprint(rid, path, secret), "name")])


class _Source:
    """A stream being scanned.  ``first`` holds bytes already read (the sniffed head), ``disk`` the
    seekable local file when the stream is one (zip central directory, weight headers)."""

    def __init__(self, fh: _Readable, *, disk: BinaryIO | None = None, size: int | None = None) -> None:
        self.fh = fh
        self.disk = disk
        self.size = size
        self.first = self._read_full(CHUNK)

    def _read_full(self, n: int) -> bytes:
        parts: list[bytes] = []
        got = 0
        while got < n:
            b = self.fh.read(n - got)
            if not b:
                break
            parts.append(b)
            got += len(b)
        return b"".join(parts)

    def chunks(self) -> Iterable[bytes]:
        """Every byte of the stream, ``first`` included, in pieces of at most CHUNK."""
        first, self.first = self.first, b""
        if first:
            yield first
        while True:
            b = self.fh.read(CHUNK)
            if not b:
                return
            yield b


class _Tee(io.RawIOBase):
    """Read-only view of a source for a container parser: replays the head, feeds every byte read to
    ``raw`` (the container's own bytes get the raw scan too) and counts them (ratio checks)."""

    def __init__(self, src: _Source, raw: RawScanner) -> None:
        self._it = iter(src.chunks())
        self._buf = memoryview(b"")
        self._raw = raw
        self.count = 0

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._buf:
            chunk = next(self._it, b"")
            self._raw.feed(chunk)
            self._buf = memoryview(chunk)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]  # a view: no copy of the rest of the chunk per read
        self.count += n
        return n

    def drain(self) -> None:
        """Read (and raw-scan) whatever the parser left: trailing bytes are uploaded too."""
        self._buf = memoryview(b"")
        for chunk in self._it:
            self._raw.feed(chunk)


class _Capped(io.RawIOBase):
    """Decompressed output with the bomb limits: the per-file byte budget and the ratio to its input."""

    def __init__(self, inner: _Readable, rep: _Report, compressed: Callable[[], int], what: str) -> None:
        self._inner = inner
        self._rep = rep
        self._compressed = compressed
        self._what = what
        self.count = 0

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(b))
        n = len(data)
        b[:n] = data
        self.count += n
        self._rep.decompressed += n
        if self._rep.decompressed > MAX_DECOMPRESSED:
            raise _Limit(f"more than {MAX_DECOMPRESSED} decompressed bytes ({self._what})")
        if self.count > RATIO_GRACE and self.count > MAX_RATIO * max(1, self._compressed()):
            raise _Limit(f"decompression ratio above {MAX_RATIO}:1 ({self._what}; a compression bomb?)")
        return n


def _name_of(path: str) -> str:
    return path.rsplit("!", 1)[-1].lower()


def _sniff(head: bytes, name: str) -> str:
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:3] == b"BZh" and head[4:10] == b"1AY&SY":
        return "bz2"
    if head[:6] == b"\xfd7zXZ\x00" or (name.endswith(".lzma") and head[:1] == b"\x5d"):
        return "xz"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "zip"
    if head[257:262] == b"ustar" or (name.endswith(".tar") and len(head) >= 512):
        return "tar"
    return "plain"


def _inner_name(name: str) -> str:
    """The name a decompressed stream is sniffed by (``a.tar.gz`` -> ``a.tar``); its findings keep the path."""
    for suf, repl in _COMPRESSED_SUFFIX.items():
        if name.endswith(suf):
            return name[: -len(suf)] + repl
    return ""


def _scan_content(rep: _Report, src: _Source, path: str, depth: int, name: str | None = None) -> None:
    """Scan one stream: containers are opened (bounded), everything else is plain content.

    ``name`` (lower case) drives name-based dispatch; it defaults to the last component of ``path``.
    """
    name = _name_of(path) if name is None else name
    kind = _sniff(src.first[:8192], name)
    if kind != "plain" and depth >= MAX_ARCHIVE_DEPTH:
        rep.incomplete(path, f"{kind} nested more than {MAX_ARCHIVE_DEPTH} containers deep (only raw bytes scanned)")
        kind = "plain"
    if kind == "zip":
        _scan_zip(rep, src, path, depth)
    elif kind == "tar":
        _scan_tar(rep, src, path, depth)
    elif kind != "plain":
        _scan_compressed(rep, src, kind, path, depth, name)
    else:
        _scan_plain(rep, src, path, name)


# ----------------------------------------------------------------------------------------- compressed


def _decompressor(kind: str, fh: _Tee) -> _Readable | None:
    if kind == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=fh, mode="rb")
    if kind == "bz2":
        import bz2

        return bz2.BZ2File(fh, "rb")
    if kind == "xz":
        import lzma

        return lzma.LZMAFile(cast(BinaryIO, fh), "rb")
    try:
        import zstandard  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    return _ZstdReader(zstandard, fh)


class _ZstdReader:
    """``zstandard``'s stream reader, its ZstdError turned into OSError (a corrupt stream, like the others)."""

    def __init__(self, zstd: Any, fh: _Tee) -> None:
        self._error: type[Exception] = zstd.ZstdError
        try:
            self._reader: _Readable = zstd.ZstdDecompressor().stream_reader(fh, read_across_frames=True)
        except self._error as e:
            raise OSError(str(e)) from e

    def read(self, n: int = -1, /) -> bytes:
        try:
            return self._reader.read(n)
        except self._error as e:
            raise OSError(str(e)) from e


def _scan_compressed(rep: _Report, src: _Source, kind: str, path: str, depth: int, name: str) -> None:
    import lzma
    import zlib

    raw = RawScanner(binary=True)
    tee = _Tee(src, raw)
    try:
        dec = _decompressor(kind, tee)
        if dec is None:
            rep.incomplete(path, "zstd stream and the 'zstandard' package is not installed (pip install zstandard)")
        else:
            capped = _Capped(dec, rep, lambda: tee.count, kind)
            _scan_content(rep, _Source(capped), path, depth + 1, _inner_name(name))
    except _Limit as e:
        rep.incomplete(path, str(e))
    except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error) as e:
        rep.incomplete(path, f"corrupt {kind} stream ({type(e).__name__})")
    tee.drain()
    rep.raw(path, raw.finish(), container=True)


# ----------------------------------------------------------------------------------------- archives


def _scan_zip(rep: _Report, src: _Source, path: str, depth: int) -> None:
    """Every member (names, content), on the local file or a buffered copy; the zip's own bytes are raw-scanned.

    Members are read, never extracted, so a name like ``../x`` is scanned like any other.
    """
    raw = RawScanner(binary=True)
    if src.disk is not None:
        for chunk in src.chunks():
            raw.feed(chunk)
        src.disk.seek(0)
        fh: BinaryIO = src.disk
    else:
        data = bytearray()
        for chunk in src.chunks():
            raw.feed(chunk)
            if len(data) <= MAX_TEXT_BYTES:
                data += chunk
        if len(data) > MAX_TEXT_BYTES:
            rep.incomplete(path, f"nested zip larger than {MAX_TEXT_BYTES} bytes (only raw bytes scanned)")
            rep.raw(path, raw.finish(), container=True)
            return
        fh = io.BytesIO(bytes(data))
    try:
        zf = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        rep.incomplete(path, f"unreadable zip ({type(e).__name__}; only raw bytes scanned)")
        rep.raw(path, raw.finish(), container=True)
        return
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ARCHIVE_MEMBERS:
            rep.incomplete(path, f"more than {MAX_ARCHIVE_MEMBERS} members ({len(infos)}); the rest were not scanned")
        for info in infos[:MAX_ARCHIVE_MEMBERS]:
            inner = f"{path}!{info.filename}"
            rep.name(inner, info.filename)
            if info.is_dir():
                continue
            if info.flag_bits & 0x1:
                rep.incomplete(inner, "encrypted member")
                continue
            _scan_member(rep, zf, info, inner, depth)
    rep.raw(path, raw.finish(), container=True)


def _scan_member(rep: _Report, zf: zipfile.ZipFile, info: zipfile.ZipInfo, inner: str, depth: int) -> None:
    import zlib

    try:
        with zf.open(info) as mf:
            stream: _Readable = mf
            if info.compress_type != zipfile.ZIP_STORED:
                stream = _Capped(mf, rep, lambda: info.compress_size, "zip member")
            if _TORCH_STORAGE_RE.search(info.filename):
                _raw_only(rep, _Source(stream), inner)  # a tensor storage: every byte, no strings pass
            else:
                _scan_content(rep, _Source(stream), inner, depth + 1)
    except _Limit as e:
        rep.incomplete(inner, str(e))
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError, ValueError, zlib.error) as e:
        rep.incomplete(inner, f"unreadable member ({type(e).__name__})")


def _scan_tar(rep: _Report, src: _Source, path: str, depth: int) -> None:
    """Members streamed in order (``r|``): names, header strings, content; the tar's own bytes are raw-scanned."""
    raw = RawScanner(binary=True)
    tee = _Tee(src, raw)
    try:
        with tarfile.open(fileobj=tee, mode="r|") as tf:
            for count, member in enumerate(tf):
                if count >= MAX_ARCHIVE_MEMBERS:
                    rep.incomplete(path, f"more than {MAX_ARCHIVE_MEMBERS} members; the rest were not scanned")
                    break
                inner = f"{path}!{member.name}"
                rep.name(inner, member.name)
                header = [member.linkname, member.uname, member.gname, *(f"{k}={v}" for k, v in member.pax_headers.items())]
                rep.add(scan_text("\n".join(h for h in header if h), inner, location="tar-header"))
                if not member.isfile():
                    continue
                fh = tf.extractfile(member)
                if fh is not None:
                    _scan_content(rep, _Source(fh), inner, depth + 1)
    except (tarfile.TarError, OSError, EOFError, ValueError) as e:
        rep.incomplete(path, f"unreadable tar ({type(e).__name__}; only raw bytes scanned)")
    tee.drain()
    rep.raw(path, raw.finish(), container=True)


# ----------------------------------------------------------------------------------------- plain content


class _Windowed:
    """Text / strings scan of content too large to hold: overlapping windows, line numbers carried."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.findings: list[Finding] = []
        self._seen: set[str] = set()
        self._line_base = 0
        self._pending = b""

    def feed(self, data: bytes, *, final: bool = False) -> None:
        self._pending += data
        while len(self._pending) >= _WINDOW + _OVERLAP or (final and self._pending):
            chunk = self._pending[:_WINDOW]
            window = self._pending[: _WINDOW + _OVERLAP]
            self._pending = self._pending[_WINDOW:]
            binary = b"\x00" in window[:8192]
            blob = binary_strings(window) if binary else window
            for f in scan_text(blob, self.path, location="strings" if binary else ""):
                if f.fingerprint not in self._seen:
                    self._seen.add(f.fingerprint)
                    line = (f.line + self._line_base) if not binary else 0
                    self.findings.append(Finding(f.path, line, f.rule, f.redacted, f.fingerprint, f.location))
            if not binary:
                self._line_base += chunk.count(b"\n")

    def finish(self) -> list[Finding]:
        self.feed(b"", final=True)
        return self.findings


def _raw_only(rep: _Report, src: _Source, path: str) -> None:
    raw = RawScanner(binary=not looks_text(src.first[:8192]))
    for chunk in src.chunks():
        raw.feed(chunk)
    rep.raw(path, raw.finish())


def _is_weights(head: bytes, name: str) -> bool:
    return name.endswith(".safetensors") or head[:4] == b"GGUF"


def _scan_plain(rep: _Report, src: _Source, path: str, name: str) -> None:
    """Every byte through the raw scan; then the structured scan of the whole content (buffered up to
    MAX_TEXT_BYTES; weights on disk: their header only; anything else larger: windows)."""
    head = src.first[:8192]
    text = looks_text(head)
    # Text gets the text engine over every byte below (buffered, windowed or as a fallback), which covers
    # the ASCII stage of the raw scan; binary gets the raw scan's loose ASCII stage.
    raw = RawScanner(binary=not text, ascii=False)
    weights_on_disk = src.disk is not None and _is_weights(head, name)
    parts: list[bytes] = []
    held = 0
    windowed: _Windowed | None = None
    for chunk in src.chunks():
        raw.feed(chunk)
        if weights_on_disk:
            continue
        if windowed is not None:
            windowed.feed(chunk)
            continue
        parts.append(chunk)
        held += len(chunk)
        if held > MAX_TEXT_BYTES and not (is_pickle_bytes(head) and held <= MAX_PICKLE_BYTES):
            windowed = _Windowed(path)
            windowed.feed(b"".join(parts))
            parts = []
    if weights_on_disk and src.disk is not None:
        found = _weights_header(src.disk, src.size or 0, path, head)
        if found is None:  # not the format its name or magic claims: the whole file as text / strings
            windowed = _Windowed(path)
            src.disk.seek(0)
            while chunk := src.disk.read(CHUNK):
                windowed.feed(chunk)
            found = windowed.finish()
        rep.add(found)
    elif windowed is not None:
        rep.add(windowed.finish())
    else:
        rep.add(_structured(b"".join(parts), path, name))
    rep.raw(path, raw.finish())


def _weights_header(disk: BinaryIO, size: int, path: str, head: bytes) -> list[Finding] | None:
    """Findings in a weight file's header (read from disk), or None when it is not that format."""
    disk.seek(0)
    if head[:4] == b"GGUF":
        from batuta_sync.publish.validate import ValidationError, read_gguf_strings

        try:
            strings = read_gguf_strings(disk, size)
        except ValidationError:
            return None
        return scan_text("\n".join(f"{k}: {v}" for k, v in strings), path, location="gguf-metadata")
    hdr = disk.read(8)
    if len(hdr) == 8:
        (n,) = struct.unpack("<Q", hdr)
        if n <= min(size - 8, 100_000_000):
            hdr += disk.read(n)
    return _safetensors_findings(hdr, path)


def _safetensors_findings(data: bytes, path: str) -> list[Finding] | None:
    """Findings in the ``__metadata__`` of a safetensors header, or None when ``data`` is not one."""
    header = safetensors_header(data)
    if header is None:
        return None
    meta = header.get("__metadata__")
    if not isinstance(meta, dict):
        return []
    text = "\n".join(f"{k}: {v}" for k, v in meta.items())
    return scan_text(text, path, location="__metadata__")


def _fallback(data: bytes, path: str) -> list[Finding]:
    """Content that is not the format its name or magic claims: scanned as text or strings."""
    if looks_text(data[:8192]):
        return scan_text(data, path)
    return scan_text(binary_strings(data), path, location="strings")


_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
         (b"\xfe\xff", "utf-16"))


def _wide_codec(head: bytes) -> str | None:
    """UTF-16/UTF-32 text: a BOM, or ASCII-range characters with their zero bytes in place."""
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return codec
    h = head[:4096]
    if len(h) >= 16:
        n = len(h)
        z = [h[i::4].count(0) for i in range(4)]
        if z[1] + z[2] + z[3] >= 0.9 * 3 * (n // 4) and z[0] <= 0.1 * (n // 4):
            return "utf-32-le"
        if z[0] + z[1] + z[2] >= 0.9 * 3 * (n // 4) and z[3] <= 0.1 * (n // 4):
            return "utf-32-be"
        even, odd = h[0::2].count(0), h[1::2].count(0)
        if odd >= 0.9 * (n // 2) and even <= 0.1 * (n // 2):
            return "utf-16-le"
        if even >= 0.9 * (n // 2) and odd <= 0.1 * (n // 2):
            return "utf-16-be"
    return None


def _structured(data: bytes, path: str, name: str) -> list[Finding]:
    """The structure-aware scan of one content held in memory (dispatch on content, then name)."""
    head = data[:8192]
    if name.endswith(".safetensors"):
        found = _safetensors_findings(data, path)
        return _fallback(data, path) if found is None else found
    out: list[Finding] = []
    if head[:4] == b"GGUF":
        out = _gguf_findings(data, path)
    elif is_pickle_bytes(head[:2]) or name.endswith((".pkl", ".pickle")):
        out = scan_text("\n".join(pickle_strings(data[:MAX_PICKLE_BYTES])), path, location="pickle")
    else:
        codec = _wide_codec(head)
        if codec:
            text = data.decode(codec, "replace")
            return scan_text(text, path, location=codec[:6])
        if b"\x00" in head and not name.endswith(_TEXT_SUFFIXES):
            return scan_text(binary_strings(data), path, location="strings")
        if name.endswith((".json", ".ipynb")):
            return scan_json_text(data, path)
        return scan_text(data, path)
    # A binary magic in front of a text body (e.g. b"GGUF" + a .env): the body gets the text scan too.
    if looks_text(data[16 : 16 + 8192]):
        out = [*out, *scan_text(data, path)]
    return out


def _gguf_findings(data: bytes, path: str) -> list[Finding]:
    from batuta_sync.publish.validate import ValidationError, read_gguf_strings

    try:
        strings = read_gguf_strings(io.BytesIO(data), len(data))
    except ValidationError:
        return scan_text(binary_strings(data), path, location="strings")
    return scan_text("\n".join(f"{k}: {v}" for k, v in strings), path, location="gguf-metadata")


# ----------------------------------------------------------------------------------------- entry points


def scan_bytes(data: bytes, path: str, *, depth: int = 0) -> list[Finding]:
    """Scan one content held in memory (``path`` names it: container members use ``a.zip!b/.env``)."""
    rep = _Report()
    _scan_content(rep, _Source(io.BytesIO(data)), path, depth)
    return rep.findings


def scan_file(file: Path, rel: str) -> list[Finding]:
    """Scan one uploaded file: its path (every component) and every byte of its content."""
    rep = _Report()
    rep.name(rel, rel)
    with open(file, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        _scan_content(rep, _Source(fh, disk=fh, size=size), rel, 0)
    return rep.findings


def scan_tree(root: Path, paths: Iterable[str]) -> list[Finding]:
    """Scan the given repo-relative paths under ``root`` (no suppression applied)."""
    out: list[Finding] = []
    for rel in paths:
        out.extend(scan_file(root / rel, rel))
    return out


def format_findings(findings: Sequence[Finding]) -> str:
    return "\n".join(f"  {f}" for f in findings)
