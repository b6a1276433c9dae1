"""The shard format (pure): a 48-byte header (a fixed tag, version 2, footer size), the file-info
section (per file: a header, its segments ``xorb[chunk_start:chunk_end]``, optionally one
verification hash per segment and the file's sha256), the xorb-info section (per xorb: a header and
one entry per chunk), each section closed by an all-ones "bookend" entry, then — in stored shards,
not in uploads — lookup tables and a 200-byte footer.  Every entry is 48 bytes, integers are
little-endian.

:func:`parse_shard` is strict (unknown flags, counts past the limits, a missing bookend or trailing
garbage are refused) and bounded (the input is at most ``MAX_SHARD_BYTES``)."""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

from batuta_sync.server.xet.errors import XetError
from batuta_sync.server.xet.hashing import BOOKEND_HASH, HASH_LEN, ZERO_HASH

TAG = b"HFRepoMetaData\x00" + bytes(
    (85, 105, 103, 69, 106, 123, 129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169)
)
HEADER_VERSION = 2
FOOTER_VERSION = 1
FOOTER_LEN = 200
ENTRY = 48
FLAG_VERIFICATION = 1 << 31
FLAG_METADATA_EXT = 1 << 30
CHUNK_FLAG_GLOBAL_DEDUP = 1 << 31
MAX_SHARD_BYTES = 64 << 20
MAX_SEGMENTS = 1 << 20
"""Segments of one file (1 M segments of ≤ 64 MiB each)."""


@dataclass(frozen=True)
class Segment:
    xorb: bytes
    unpacked_len: int
    chunk_start: int
    chunk_end: int


@dataclass(frozen=True)
class FileInfo:
    file_hash: bytes
    segments: tuple[Segment, ...]
    verification: tuple[bytes, ...] | None
    sha256: bytes | None
    """As stored: the spec's hash layout (use ``hash_to_hex`` for the usual hex form)."""


@dataclass(frozen=True)
class XorbChunk:
    hash: bytes
    byte_start: int
    unpacked_len: int
    flags: int = 0


@dataclass(frozen=True)
class XorbInfo:
    xorb: bytes
    chunks: tuple[XorbChunk, ...]
    num_bytes_in_xorb: int
    num_bytes_on_disk: int
    flags: int = 0


@dataclass(frozen=True)
class Shard:
    files: tuple[FileInfo, ...]
    xorbs: tuple[XorbInfo, ...]


def parse_shard(data: bytes) -> Shard:  # noqa: C901 (one strict pass over a hostile binary layout)
    """Parse an uploaded shard (footer optional).  Raises :class:`XetError` (400/413)."""
    if len(data) > MAX_SHARD_BYTES:
        raise XetError(f"a shard is at most {MAX_SHARD_BYTES} bytes", 413)
    if len(data) < ENTRY or data[:32] != TAG:
        raise XetError("not a Xet shard (bad header tag)")
    version, footer_size = struct.unpack_from("<QQ", data, 32)
    if version != HEADER_VERSION:
        raise XetError(f"unsupported shard version {version}")
    if footer_size not in (0, FOOTER_LEN):
        raise XetError(f"invalid shard footer size {footer_size}")
    pos = ENTRY

    def entry() -> bytes:
        nonlocal pos
        if pos + ENTRY > len(data):
            raise XetError("the shard ends inside a section (missing bookend?)")
        pos += ENTRY
        return data[pos - ENTRY : pos]

    files: list[FileInfo] = []
    while True:
        e = entry()
        h = e[:HASH_LEN]
        if h == BOOKEND_HASH:
            break
        flags, n, _ = struct.unpack_from("<IIQ", e, HASH_LEN)
        if flags & ~(FLAG_VERIFICATION | FLAG_METADATA_EXT):
            raise XetError(f"unknown file flags {flags:#x} in the shard")
        if not 0 < n <= MAX_SEGMENTS:
            raise XetError(f"a file in the shard has {n} segments")
        segs = []
        for _ in range(n):
            s = entry()
            _xflags, ulen, cs, ce = struct.unpack_from("<IIII", s, HASH_LEN)
            segs.append(Segment(s[:HASH_LEN], ulen, cs, ce))
        ver = tuple(entry()[:HASH_LEN] for _ in range(n)) if flags & FLAG_VERIFICATION else None
        sha = entry()[:HASH_LEN] if flags & FLAG_METADATA_EXT else None
        files.append(FileInfo(h, tuple(segs), ver, sha))
    xorbs: list[XorbInfo] = []
    while True:
        e = entry()
        h = e[:HASH_LEN]
        if h == BOOKEND_HASH:
            break
        xflags, n, in_xorb, on_disk = struct.unpack_from("<IIII", e, HASH_LEN)
        if not 0 < n <= 8 * 1024:
            raise XetError(f"a xorb in the shard has {n} chunks")
        chunks = []
        for _ in range(n):
            c = entry()
            start, ulen, cflags, _unused = struct.unpack_from("<IIII", c, HASH_LEN)
            chunks.append(XorbChunk(c[:HASH_LEN], start, ulen, cflags))
        xorbs.append(XorbInfo(h, tuple(chunks), in_xorb, on_disk, xflags))
    rest = len(data) - pos
    if (footer_size == 0 and rest) or (footer_size and rest < FOOTER_LEN):
        raise XetError("unexpected bytes after the shard's sections")
    return Shard(tuple(files), tuple(xorbs))


def _u(fmt: str, *vals: int) -> bytes:
    try:
        return struct.pack(fmt, *vals)
    except struct.error:
        raise XetError("a shard field is out of range") from None


def serialize_shard(files: Sequence[FileInfo], xorbs: Sequence[XorbInfo], *, footer: bool = False) -> bytes:
    """Serialize a shard (uploads: no footer; answers of the dedup query: with a footer)."""
    out = bytearray(TAG + _u("<QQ", HEADER_VERSION, FOOTER_LEN if footer else 0))
    for f in files:
        flags = (FLAG_VERIFICATION if f.verification is not None else 0) | (
            FLAG_METADATA_EXT if f.sha256 is not None else 0
        )
        out += f.file_hash + _u("<IIQ", flags, len(f.segments), 0)
        for s in f.segments:
            out += s.xorb + _u("<IIII", 0, s.unpacked_len, s.chunk_start, s.chunk_end)
        for v in f.verification or ():
            out += v + bytes(16)
        if f.sha256 is not None:
            out += f.sha256 + bytes(16)
    out += BOOKEND_HASH + bytes(16)
    xorb_at = len(out)
    materialized = 0
    for x in xorbs:
        out += x.xorb + _u("<IIII", x.flags, len(x.chunks), x.num_bytes_in_xorb, x.num_bytes_on_disk)
        for c in x.chunks:
            out += c.hash + _u("<IIII", c.byte_start, c.unpacked_len, c.flags, 0)
        materialized += x.num_bytes_in_xorb
    out += BOOKEND_HASH + bytes(16)
    if footer:
        end = len(out)
        stored = sum(x.num_bytes_on_disk for x in xorbs)
        out += _u("<QQQ", FOOTER_VERSION, ENTRY, xorb_at)
        out += _u("<QQQQQQ", end, 0, end, 0, end, 0)
        out += ZERO_HASH  # chunk-hash HMAC key: none (hashes in the clear)
        out += _u("<QQ", int(time.time()), 0) + bytes(48)
        out += _u("<QQQQ", stored, materialized, stored, end)
    return bytes(out)
