"""Xet hashes (pure): chunk hashes, the aggregated merkle hash of xorbs and files, verification range
hashes, and the spec's hash ↔ string conversion.

A hash is 32 raw bytes.  Its string form reads the bytes as four little-endian u64 words and prints
each as 16 hex digits — so each 8-byte group appears byte-reversed compared with ``bytes.hex()``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import blake3

from batuta_sync.server.xet.errors import XetError

HASH_LEN = 32
ZERO_HASH = bytes(HASH_LEN)
BOOKEND_HASH = b"\xff" * HASH_LEN

# Keys fixed by the specification (blake3 keyed hashing).
DATA_KEY = bytes(
    (102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28,
     157, 228, 33, 16, 155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41)
)  # fmt: skip
INTERNAL_NODE_KEY = bytes(
    (1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230,
     93, 221, 83, 111, 55, 199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63)
)  # fmt: skip
VERIFICATION_KEY = bytes(
    (127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243,
     164, 205, 38, 213, 181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195)
)  # fmt: skip

MEAN_BRANCHING = 4
_MAX_GROUP = 2 * MEAN_BRANCHING + 1
_HEX64 = re.compile(r"\A[0-9a-f]{64}\Z")


def hash_to_hex(h: bytes) -> str:
    """The spec's string form of a hash (four little-endian u64 words, each as 16 hex digits)."""
    if len(h) != HASH_LEN:
        raise XetError(f"a Xet hash has {HASH_LEN} bytes, not {len(h)}")
    return "".join(h[i : i + 8][::-1].hex() for i in range(0, HASH_LEN, 8))


def hex_to_hash(s: str) -> bytes:
    """Inverse of :func:`hash_to_hex`; only 64 lowercase hex digits are accepted."""
    if not isinstance(s, str) or not _HEX64.match(s):
        raise XetError("a Xet hash is 64 lowercase hex digits")
    return b"".join(bytes.fromhex(s[i : i + 16])[::-1] for i in range(0, 64, 16))


def is_hash_hex(s: object) -> bool:
    return isinstance(s, str) and bool(_HEX64.match(s))


def chunk_hash(data: bytes) -> bytes:
    """The hash of one chunk's (uncompressed) bytes."""
    return blake3.blake3(data, key=DATA_KEY).digest()


def _internal_node(entries: Sequence[tuple[bytes, int]]) -> tuple[bytes, int]:
    text = "".join(f"{hash_to_hex(h)} : {n}\n" for h, n in entries)
    return blake3.blake3(text.encode(), key=INTERNAL_NODE_KEY).digest(), sum(n for _, n in entries)


def _cut(entries: Sequence[tuple[bytes, int]], start: int) -> int:
    """End (exclusive) of the group of children that starts at ``start``."""
    left = len(entries) - start
    if left <= 2:
        return len(entries)
    end = start + min(_MAX_GROUP, left)
    for i in range(start + 2, end):
        if int.from_bytes(entries[i][0][24:32], "little") % MEAN_BRANCHING == 0:
            return i + 1
    return end


def merkle_root(entries: Sequence[tuple[bytes, int]]) -> bytes:
    """The aggregated merkle hash of ``(hash, size)`` leaves (the zero hash when empty)."""
    level = list(entries)
    if not level:
        return ZERO_HASH
    while len(level) > 1:
        nxt = []
        i = 0
        while i < len(level):
            j = _cut(level, i)
            nxt.append(_internal_node(level[i:j]))
            i = j
        level = nxt
    return level[0][0]


def xorb_hash(chunks: Sequence[tuple[bytes, int]]) -> bytes:
    """The hash of a xorb: the merkle root of its chunks' ``(hash, uncompressed size)``."""
    return merkle_root(chunks)


def file_hash(chunks: Sequence[tuple[bytes, int]]) -> bytes:
    """The hash of a file: the merkle root of its chunks, keyed-hashed once more with a zero key."""
    if not chunks:
        return ZERO_HASH
    return blake3.blake3(merkle_root(chunks), key=ZERO_HASH).digest()


def range_hash(chunk_hashes: Sequence[bytes]) -> bytes:
    """The verification hash of a run of chunks (shard file-verification entries)."""
    return blake3.blake3(b"".join(chunk_hashes), key=VERIFICATION_KEY).digest()
