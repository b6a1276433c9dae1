"""The xorb format (pure): a run of chunks, each an 8-byte header (version 0, compressed length u24,
compression scheme, uncompressed length u24, little-endian) and its bytes, optionally followed by the
``XETBLOB`` footer that repeats the xorb hash, the chunk hashes and the chunk offsets.

:func:`parse_xorb` reads from a binary stream one chunk at a time (memory stays at one chunk),
decompresses every chunk, recomputes every hash and checks the footer against them: a xorb is
accepted only when it is exactly what its hash says."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import lz4.frame

from batuta_sync.server.xet.chunking import MAX_CHUNK_SIZE
from batuta_sync.server.xet.errors import XetError
from batuta_sync.server.xet.hashing import HASH_LEN, chunk_hash, hash_to_hex, xorb_hash

HEADER_LEN = 8
NONE, LZ4, BG4_LZ4 = 0, 1, 2
MAX_CHUNKS = 8 * 1024
MAX_XORB_DATA = 64 << 20
"""Uncompressed bytes in one xorb (the spec's limit)."""
MAX_XORB_BYTES = MAX_XORB_DATA + MAX_CHUNKS * (HEADER_LEN + 40) + 256
"""Serialized bytes in one xorb, footer included."""
_IDENT = b"XETBLOB"
_IDENT_HASHES = b"XBLBHSH"
_IDENT_BOUNDS = b"XBLBBND"
_FOOTER_BUFFER = 16
_FOOTER_MAX = 96 + 40 * MAX_CHUNKS


@dataclass(frozen=True)
class ChunkRef:
    """One chunk of a stored xorb: where its header starts, its serialized and unpacked sizes."""

    offset: int
    packed_len: int
    unpacked_len: int
    hash: bytes


@dataclass(frozen=True)
class XorbIndex:
    """What the server keeps about a verified xorb."""

    hash: bytes
    chunks: tuple[ChunkRef, ...]
    data_len: int
    """Bytes of the chunk section (the footer, if any, follows)."""

    @property
    def unpacked_len(self) -> int:
        return sum(c.unpacked_len for c in self.chunks)

    def unpacked_starts(self) -> list[int]:
        """Where each chunk starts in the xorb's uncompressed content."""
        out, pos = [], 0
        for c in self.chunks:
            out.append(pos)
            pos += c.unpacked_len
        return out


def _regroup4(g: bytes) -> bytes:
    """Undo the 4-way byte grouping of ``BG4_LZ4``: byte ``i`` of the data went to group ``i % 4``."""
    n = len(g)
    split, rem = divmod(n, 4)
    sizes = [split + (1 if rem > k else 0) for k in range(4)]
    out = bytearray(n)
    pos = 0
    for k, size in enumerate(sizes):
        out[k::4] = g[pos : pos + size]
        pos += size
    return bytes(out)


def _split4(data: bytes) -> bytes:
    return b"".join(data[k::4] for k in range(4))


def decode_chunk(scheme: int, payload: bytes, unpacked_len: int) -> bytes:
    """The uncompressed bytes of one chunk; exactly ``unpacked_len`` of them or :class:`XetError`."""
    if scheme == NONE:
        out = payload
    elif scheme in (LZ4, BG4_LZ4):
        d = lz4.frame.LZ4FrameDecompressor()
        try:
            out = d.decompress(payload, max_length=unpacked_len + 1)
        except RuntimeError as exc:
            raise XetError(f"a xorb chunk does not decompress: {exc}") from None
        if not d.eof or d.unused_data:
            raise XetError("a xorb chunk's compressed stream does not end where its header says")
        if scheme == BG4_LZ4:
            out = _regroup4(out)
    else:
        raise XetError(f"unknown chunk compression scheme {scheme}")
    if len(out) != unpacked_len:
        raise XetError(f"a xorb chunk unpacks to {len(out)} bytes, its header says {unpacked_len}")
    return out


def _header(raw: bytes) -> tuple[int, int, int]:
    version, c0, c1, c2, scheme, u0, u1, u2 = raw
    if version != 0:
        raise XetError(f"unsupported xorb chunk header version {version}")
    clen = c0 | c1 << 8 | c2 << 16
    ulen = u0 | u1 << 8 | u2 << 16
    if not 0 < ulen <= MAX_CHUNK_SIZE or not 0 < clen <= 2 * MAX_CHUNK_SIZE:
        raise XetError(f"xorb chunk sizes out of bounds ({clen} packed, {ulen} unpacked)")
    if scheme == NONE and clen != ulen:
        raise XetError("an uncompressed xorb chunk has different packed and unpacked sizes")
    return scheme, clen, ulen


def parse_xorb(  # noqa: C901 (one strict pass over a hostile binary layout)
    read: Callable[[int], bytes],
    total_len: int,
    expected_hash: bytes | None = None,
    sink: Callable[[bytes], object] | None = None,
) -> XorbIndex:
    """Parse and verify a serialized xorb of ``total_len`` bytes read with ``read(n)``; every byte
    read is passed to ``sink`` (to store it while parsing).  Raises :class:`XetError`."""
    if not 0 < total_len <= MAX_XORB_BYTES:
        raise XetError(f"a xorb is 1..{MAX_XORB_BYTES} bytes, not {total_len}", 413 if total_len > 0 else 400)
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        parts = []
        left = n
        while left:
            b = read(left)
            if not b:
                raise XetError("the xorb ended early")
            parts.append(b)
            left -= len(b)
        data = b"".join(parts)
        if sink is not None:
            sink(data)
        pos += n
        return data

    chunks: list[ChunkRef] = []
    unpacked_total = 0
    footer = b""
    while pos < total_len:
        if total_len - pos < HEADER_LEN:
            raise XetError("trailing bytes after the last xorb chunk")
        raw = take(HEADER_LEN)
        if raw[0] != 0:  # a chunk header starts with version 0, the footer with "XETBLOB"
            if total_len - pos > _FOOTER_MAX:
                raise XetError("the xorb footer is larger than any footer can be")
            footer = raw + take(total_len - pos)
            break
        scheme, clen, ulen = _header(raw)
        if pos + clen > total_len:
            raise XetError("a xorb chunk runs past the end of the xorb")
        data = decode_chunk(scheme, take(clen), ulen)
        if len(chunks) >= MAX_CHUNKS:
            raise XetError(f"a xorb holds at most {MAX_CHUNKS} chunks")
        unpacked_total += ulen
        if unpacked_total > MAX_XORB_DATA:
            raise XetError(f"a xorb holds at most {MAX_XORB_DATA} uncompressed bytes", 413)
        chunks.append(ChunkRef(pos - HEADER_LEN - clen, HEADER_LEN + clen, ulen, chunk_hash(data)))
    if not chunks:
        raise XetError("a xorb holds at least one chunk")
    h = xorb_hash([(c.hash, c.unpacked_len) for c in chunks])
    if expected_hash is not None and h != expected_hash:
        raise XetError(
            f"the xorb's chunks hash to {hash_to_hex(h)}, not to the {hash_to_hex(expected_hash)} it "
            "was uploaded as"
        )
    index = XorbIndex(h, tuple(chunks), sum(c.packed_len for c in chunks))
    if footer:
        _check_footer(footer, index)
    return index


def _check_footer(footer: bytes, index: XorbIndex) -> None:
    """The footer must say exactly what the chunks are (hash, chunk hashes, offsets)."""
    n = len(index.chunks)
    bounds, unpacked, total, up = [], [], 0, 0
    for c in index.chunks:
        total += c.packed_len
        up += c.unpacked_len
        bounds.append(total)
        unpacked.append(up)
    try:
        p = 0

        def get(k: int) -> bytes:
            nonlocal p
            if p + k > len(footer):
                raise XetError("the xorb footer is truncated")
            p += k
            return footer[p - k : p]

        def u32() -> int:
            return int(struct.unpack("<I", get(4))[0])

        ok = get(7) == _IDENT and get(1) == b"\x01" and get(HASH_LEN) == index.hash
        ok = ok and get(7) == _IDENT_HASHES and get(1) == b"\x00" and u32() == n
        ok = ok and [get(HASH_LEN) for _ in range(n)] == [c.hash for c in index.chunks]
        ok = ok and get(7) == _IDENT_BOUNDS
        bver = get(1)[0]
        ok = ok and bver in (0, 1) and u32() == n and [u32() for _ in range(n)] == bounds
        if bver == 1:
            ok = ok and [u32() for _ in range(n)] == unpacked
        ok = ok and u32() == n
        get(8 + _FOOTER_BUFFER)  # section offsets (derivable) and the nonce buffer
        info_len = p
        ok = ok and u32() == info_len and p == len(footer)
    except struct.error:
        ok = False
    if not ok:
        raise XetError("the xorb footer does not describe its chunks (hash, chunk hashes or offsets)")


def serialize_xorb(chunks: Sequence[bytes], scheme: int = LZ4, footer: bool = True) -> tuple[bytes, bytes]:
    """Serialize ``chunks`` as a xorb; return (xorb hash, bytes).  (Tests and batuta's own client.)"""
    out = bytearray()
    hashes: list[tuple[bytes, int]] = []
    bounds: list[int] = []
    unpacked: list[int] = []
    up = 0
    for data in chunks:
        payload, s = data, NONE
        if scheme != NONE:
            packed = lz4.frame.compress(_split4(data) if scheme == BG4_LZ4 else data)
            if len(packed) < len(data):
                payload, s = packed, scheme
        out += bytes((0,)) + len(payload).to_bytes(3, "little") + bytes((s,)) + len(data).to_bytes(3, "little")
        out += payload
        hashes.append((chunk_hash(data), len(data)))
        up += len(data)
        bounds.append(len(out))
        unpacked.append(up)
    h = xorb_hash(hashes)
    if footer:
        n = len(chunks)
        f = bytearray(_IDENT + b"\x01" + h)
        hashes_at = len(f)
        f += _IDENT_HASHES + b"\x00" + struct.pack("<I", n) + b"".join(c for c, _ in hashes)
        bounds_at = len(f)
        f += _IDENT_BOUNDS + b"\x01" + struct.pack("<I", n)
        f += struct.pack(f"<{n}I", *bounds) + struct.pack(f"<{n}I", *unpacked)
        end = len(f) + 12 + _FOOTER_BUFFER
        f += struct.pack("<III", n, end - hashes_at, end - bounds_at) + bytes(_FOOTER_BUFFER)
        f += struct.pack("<I", len(f))
        out += f
    return h, bytes(out)
