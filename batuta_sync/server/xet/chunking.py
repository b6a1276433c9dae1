"""Xet content-defined chunking (pure): a GEAR rolling hash over the data, a boundary where the top
16 bits of the hash are zero, chunks between 8 KiB and 128 KiB (target 64 KiB).

This reference implementation is plain Python (about 1 MB/s): the server never chunks — it checks
the chunks a client sends — so it serves conformance tests and small fixtures."""

from __future__ import annotations

from collections.abc import Iterator

from batuta_sync.server.xet._gear import GEAR_TABLE

TARGET_CHUNK_SIZE = 64 * 1024
MIN_CHUNK_SIZE = TARGET_CHUNK_SIZE // 8
MAX_CHUNK_SIZE = TARGET_CHUNK_SIZE * 2
_WINDOW = 64
_M64 = (1 << 64) - 1
MASK = ((TARGET_CHUNK_SIZE - 1) << (64 - 16)) & _M64  # the top 16 bits


def chunk_boundaries(data: bytes) -> list[int]:
    """End offsets of the chunks of ``data`` (the last one is ``len(data)``; [] for no data)."""
    ends: list[int] = []
    n = len(data)
    start = 0
    table = GEAR_TABLE
    while start < n:
        limit = min(n, start + MAX_CHUNK_SIZE)
        i = start + MIN_CHUNK_SIZE - _WINDOW - 1  # bytes before the window can't trigger a cut
        h = 0
        cut = limit
        while i < limit:
            h = ((h << 1) + table[data[i]]) & _M64
            i += 1
            if not h & MASK and i - start >= MIN_CHUNK_SIZE:
                cut = i
                break
        ends.append(cut)
        start = cut
    return ends


def chunks(data: bytes) -> Iterator[bytes]:
    """The chunks of ``data``, in order."""
    start = 0
    for end in chunk_boundaries(data):
        yield data[start:end]
        start = end
