"""Reading the chunks of a xorb byte range (Xet Protocol Specification v1.1, "xorb format"), pure.

A xorb is a run of chunks, each an 8-byte header -- version (0), compressed length (u24 LE),
compression scheme (0 none, 1 LZ4 frame, 2 LZ4 frame of the 4-way byte-grouped data),
uncompressed length (u24 LE) -- followed by its compressed bytes.  A reconstruction's fetch URL
serves the bytes of chunks ``[start, end)`` of one xorb; :func:`read_chunks` unpacks exactly those.
Integrity is not decided here: the caller verifies the rebuilt file against its sha256.

The test server (``batuta_sync.server.xet``) writes and verifies xorbs with its own code, on purpose.
"""

from __future__ import annotations

from collections.abc import Iterator

from batuta_sync.fileformats._base import FormatError

HEADER_LEN = 8
NONE, LZ4, BG4_LZ4 = 0, 1, 2
MAX_CHUNK = 128 * 1024  # the chunker's largest chunk (2 x the 64 KiB target)


def _ungroup4(data: bytes) -> bytes:
    """Byte ``i`` of the original went to group ``i % 4``; the groups are stored one after another."""
    n = len(data)
    q, r = divmod(n, 4)
    out = bytearray(n)
    pos = 0
    for k in range(4):
        size = q + (1 if k < r else 0)
        out[k::4] = data[pos : pos + size]
        pos += size
    return bytes(out)


def unpack(scheme: int, payload: bytes, size: int) -> bytes:
    """The ``size`` uncompressed bytes of one chunk, or FormatError."""
    if scheme == NONE:
        out = payload
    elif scheme in (LZ4, BG4_LZ4):
        import lz4.frame

        d = lz4.frame.LZ4FrameDecompressor()
        try:
            out = d.decompress(payload, max_length=size + 1)
        except RuntimeError as exc:
            raise FormatError("xorb-chunk-corrupt", f"a chunk does not decompress ({exc})") from None
        if not d.eof or d.unused_data:
            raise FormatError("xorb-chunk-corrupt", "a chunk's LZ4 frame does not end where its header says")
        if scheme == BG4_LZ4:
            out = _ungroup4(out)
    else:
        raise FormatError("xorb-chunk-scheme", f"unknown chunk compression scheme {scheme}")
    if len(out) != size:
        raise FormatError("xorb-chunk-size", f"a chunk unpacks to {len(out)} bytes, its header says {size}")
    return out


def read_chunks(data: bytes, count: int) -> Iterator[bytes]:
    """The ``count`` chunks packed in ``data`` (a fetched xorb range), uncompressed, in order."""
    pos = 0
    for i in range(count):
        if len(data) - pos < HEADER_LEN:
            raise FormatError("xorb-range-short", f"the range ends before chunk {i} of {count}")
        version, c0, c1, c2, scheme, u0, u1, u2 = data[pos : pos + HEADER_LEN]
        packed, size = c0 | c1 << 8 | c2 << 16, u0 | u1 << 8 | u2 << 16
        if version != 0:
            raise FormatError("xorb-chunk-version", f"chunk header version {version}")
        if not (0 < size <= MAX_CHUNK and 0 < packed <= 2 * MAX_CHUNK):
            raise FormatError("xorb-chunk-size", f"chunk sizes out of bounds ({packed} packed, {size} unpacked)")
        start = pos + HEADER_LEN
        if len(data) - start < packed:
            raise FormatError("xorb-range-short", f"chunk {i} of {count} is cut off")
        yield unpack(scheme, data[start : start + packed], size)
        pos = start + packed
    if pos != len(data):
        raise FormatError("xorb-range-long", f"{len(data) - pos} bytes follow the {count} chunks asked for")
